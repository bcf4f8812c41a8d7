// Latency histograms for the dashboard and its report: computed once on the server, so every view shows the same bins.

import type { LatencyHistogram } from './messages.js';

/** Most bins a histogram gets; fewer for few instances (about the square root of the count). */
export const MAX_HISTOGRAM_BINS = 40;

/** Equal-width bins from the fastest to the slowest instance; the last bin includes its upper edge. */
export function latencyHistogram(latenciesMs: readonly number[]): LatencyHistogram {
  const values = latenciesMs.filter((v) => Number.isFinite(v));
  if (values.length === 0) return { edgesMs: [], counts: [] };
  const min = Math.min(...values);
  const max = Math.max(...values);
  const bins = max > min ? Math.min(MAX_HISTOGRAM_BINS, Math.max(5, Math.ceil(Math.sqrt(values.length)))) : 1;
  // One instance, or all equal: one bin a thousandth of the value wide (at least 1 ns), so it has a width to draw.
  const width = max > min ? (max - min) / bins : Math.max(min * 1e-3, 1e-6);
  const edgesMs = Array.from({ length: bins + 1 }, (_, i) => min + i * width);
  const counts = new Array<number>(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.floor((v - min) / width))]++;
  return { edgesMs, counts };
}
