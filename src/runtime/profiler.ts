// The one profiler: per-layer begin/end events timed by core/clock.ts, summarised per event name (TFLM style).

import { nowMs, percentile } from '../core/clock.js';

/** One timed span, in milliseconds on the clock of core/clock.ts. */
export interface ProfileEvent {
  /** Layer name, e.g. "fc1"; the device and the host report the same names. */
  name: string;
  /** What ran, e.g. "dense binary xnor-popcount". */
  tag: string;
  startMs: number;
  endMs: number;
}

/** Totals of the events sharing a name, in first-seen order. */
export interface ProfileRow {
  name: string;
  tag: string;
  calls: number;
  totalMs: number;
  meanMs: number;
  /** Median of one call: unlike the mean, not moved by the rare slow call (a GC pause, a first call). */
  p50Ms: number;
  /** totalMs over the sum of every row's totalMs. */
  share: number;
}

/** Records begin/end events. `begin` returns a handle for `end`; events nest or follow each other freely. */
export class Profiler {
  private readonly recorded: ProfileEvent[] = [];

  /** Starts an event and returns its handle. */
  begin(name: string, tag = ''): number {
    this.recorded.push({ name, tag, startMs: nowMs(), endMs: Number.NaN });
    return this.recorded.length - 1;
  }

  /** Ends the event `handle` returned by begin. */
  end(handle: number): void {
    this.recorded[handle].endMs = nowMs();
  }

  /** The finished events so far. */
  get events(): readonly ProfileEvent[] {
    return this.recorded.filter((e) => !Number.isNaN(e.endMs));
  }

  /** Forgets every event (e.g. after warm-up runs). */
  reset(): void {
    this.recorded.length = 0;
  }

  /** Per-name totals in first-seen order. */
  summary(): ProfileRow[] {
    const rows = new Map<string, ProfileRow & { spans: number[] }>();
    let all = 0;
    for (const e of this.events) {
      const ms = e.endMs - e.startMs;
      all += ms;
      const row = rows.get(e.name) ?? {
        name: e.name,
        tag: e.tag,
        calls: 0,
        totalMs: 0,
        meanMs: 0,
        p50Ms: 0,
        share: 0,
        spans: [],
      };
      row.calls++;
      row.totalMs += ms;
      row.spans.push(ms);
      rows.set(e.name, row);
    }
    return [...rows.values()].map(({ spans, ...r }) => ({
      ...r,
      meanMs: r.totalMs / r.calls,
      p50Ms: percentile(spans, 50),
      share: all > 0 ? r.totalMs / all : 0,
    }));
  }
}
