// What every benchmark shares: flag parsing with one-line errors, goals reported met or missed, saving the record.

import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { nowMs, percentile } from '../src/core/clock.js';
import { CmpError } from '../src/errors.js';
import { describeMachine, type Machine } from './machine.js';

/** A goal an issue states, with how far the measured value is from it. */
export interface Goal {
  goal: string;
  met: boolean;
  value: number;
  target: number;
  /** Signed distance to the target in the goal's unit (positive = better than needed). */
  margin: number;
  unit: string;
}

/** A goal where more is better (met when value >= target, or > target when `strict`). */
export function atLeast(goal: string, value: number, target: number, unit: string, strict = false): Goal {
  const margin = exact(value - target, target);
  return { goal, met: strict ? margin > 0 : margin >= 0, value, target, margin, unit };
}

/** A goal where less is better (met when value <= target). */
export function atMost(goal: string, value: number, target: number, unit: string): Goal {
  const margin = exact(target - value, target);
  return { goal, met: margin >= 0, value, target, margin, unit };
}

/**
 * A margin, with float64's rounding taken out: a value at its target exactly, worked out through sums and products
 * (three seeds' accuracies, each k / 10000, half a point apart on the mean), meets it rather than missing by 1e-14.
 */
function exact(margin: number, target: number): number {
  return Math.abs(margin) <= 1e-9 * Math.max(1, Math.abs(target)) ? 0 : margin;
}

/** One line per goal: MET or MISSED, the value against the target, and by how much. */
export function goalLines(goals: Goal[], digits = 2): string[] {
  // A margin too small for `digits` keeps two significant ones: "short by 0.00030", not "short by 0.000".
  const margin = (m: number): string => (m !== 0 && m < 0.5 * 10 ** -digits ? m.toPrecision(2) : m.toFixed(digits));
  return goals.map(
    (g) =>
      `  ${g.met ? 'MET   ' : 'MISSED'} ${g.goal}: ${g.value.toFixed(digits)} vs ${g.target.toFixed(digits)} ` +
      `(${g.met ? 'by' : 'short by'} ${margin(Math.abs(g.margin))} ${g.unit})`,
  );
}

/** Parses a benchmark's string flags strictly; an unknown or malformed flag is one BAD_FLAG line listing the flags. */
export function parseBenchFlags<K extends string>(
  argv: string[],
  options: Record<K, { default?: string }>,
): Record<K, string | undefined> {
  const spec = Object.fromEntries(
    Object.entries<{ default?: string }>(options).map(([name, o]) => [
      name,
      { type: 'string' as const, ...(o.default ? { default: o.default } : {}) },
    ]),
  );
  try {
    return parseArgs({ args: argv, strict: true, options: spec }).values as Record<K, string | undefined>;
  } catch (err) {
    const flags = Object.keys(options)
      .map((k) => `--${k}`)
      .join(' ');
    throw new CmpError('BAD_FLAG', `${String((err as Error).message).split('\n')[0]} Flags: ${flags} --json.`);
  }
}

/** A flag that must be a positive whole number, or undefined when absent. */
export function positiveInt(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) <= 0) {
    throw new CmpError('BAD_FLAG', `--${name} must be a positive whole number (got "${value}").`);
  }
  return Number(value);
}

/** The record a benchmark prints with --json and writes with --save: machine, inputs, results. */
export function benchRecord(benchmark: string, fields: Record<string, unknown>, save: string | undefined): string {
  const machine: Machine = describeMachine();
  const record = JSON.stringify({ benchmark, machine, ...fields }, null, 2);
  if (save) writeFileSync(save, `${record}\n`);
  return record;
}

/**
 * Where long benchmarks keep what a resumed run needs besides its rows: per-epoch training checkpoints and trained
 * models (large, never committed). CMP_BENCH_DIR moves it (the tests point it at a temporary folder).
 */
export function benchWorkDir(): string {
  return process.env.CMP_BENCH_DIR || '.bench';
}

/**
 * Where finished rows go: CMP_BENCH_ROWS, else the work folder. The project's own long runs set
 * CMP_BENCH_ROWS=bench/rows, whose files are committed, so a run that spans sessions (each on a fresh checkout, without
 * `.bench/`) resumes from the rows that landed, and every figure the README quotes has its row in the repository.
 */
export function benchRowsDir(): string {
  return process.env.CMP_BENCH_ROWS || benchWorkDir();
}

/**
 * Finished rows of a long benchmark, kept in `benchRowsDir()` under a hash of its inputs, so a run that stops (a
 * session's end, a crash) resumes where it stopped: rerun the same command and the rows already measured are not
 * measured again. Other inputs (epochs, seed, a limit) start a file of their own; delete the file to measure anew.
 */
export class RowCache<Row> {
  readonly path: string;
  private readonly rows: Record<string, Row>;

  constructor(benchmark: string, inputs: unknown, dir = benchRowsDir()) {
    const key = createHash('sha256').update(JSON.stringify(inputs)).digest('hex').slice(0, 12);
    mkdirSync(dir, { recursive: true });
    this.path = join(dir, `${benchmark}-${key}.json`);
    let saved: Record<string, Row> = {};
    try {
      saved = (JSON.parse(readFileSync(this.path, 'utf8')) as { rows: Record<string, Row> }).rows;
    } catch {
      // No file yet (or one cut short before its rename, which cannot happen): start empty.
    }
    this.rows = saved;
  }

  /** The row measured earlier under `key`, if any. */
  get(key: string): Row | undefined {
    return this.rows[key];
  }

  /** How many rows were measured earlier. */
  get size(): number {
    return Object.keys(this.rows).length;
  }

  /**
   * Keeps a finished row; written to a temporary name and renamed, so the file is never half-written. Rows another
   * process put in the same file meanwhile (two setups of one bench run side by side) are read back first and kept.
   */
  put(key: string, row: Row): void {
    try {
      const onDisk = (JSON.parse(readFileSync(this.path, 'utf8')) as { rows: Record<string, Row> }).rows;
      for (const [k, r] of Object.entries(onDisk)) if (!(k in this.rows)) this.rows[k] = r;
    } catch {
      // No file yet.
    }
    this.rows[key] = row;
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify({ rows: this.rows }, null, 2));
    renameSync(tmp, this.path);
  }
}

/** Latency of one contender, in milliseconds. */
export interface Timing {
  p50Ms: number;
  p99Ms: number;
  runs: number;
}

/**
 * Times several contenders in alternating blocks: each round gives every contender (the first one rotates) a block of
 * calls, the first three of which warm its caches and are not counted. A machine that slows down or speeds up
 * part-way (CPU steal on a shared VM, a neighbour's memory traffic) then weighs on every side alike and the ratios
 * stay fair, while each block still measures a warm contender, as a user calling it in a loop sees it. Call by call
 * alternation would not: every call would find its weights evicted by the others and onnxruntime's spinning pool
 * threads still busy. Each contender gets `budgetMs` in all, over `rounds` blocks, and at least `minRuns` samples.
 */
export async function timeInterleaved(
  contenders: (() => Promise<unknown>)[],
  budgetMs: number,
  rounds = 8,
  minRuns = 20,
): Promise<Timing[]> {
  const samples = contenders.map((): number[] => []);
  const blockMs = budgetMs / rounds;
  const blockRuns = Math.ceil(minRuns / rounds);
  for (let round = 0; round < rounds; round++) {
    for (let j = 0; j < contenders.length; j++) {
      const k = (round + j) % contenders.length;
      for (let i = 0; i < 3; i++) await contenders[k]();
      const began = nowMs();
      for (let n = 0; n < blockRuns || (nowMs() - began < blockMs && n < 5000); n++) {
        const t = nowMs();
        await contenders[k]();
        samples[k].push(nowMs() - t);
      }
    }
  }
  return samples.map((s) => ({ p50Ms: percentile(s, 50), p99Ms: percentile(s, 99), runs: s.length }));
}
