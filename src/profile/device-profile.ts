// The profile a device brings back (cmp-profile/1): latency percentiles per stage, exit shares, accuracy, link bytes.
// The rpi agent, the browser page and the dashboard's local device all measure through profilePredictor.

import * as v from 'valibot';
import { nowMs, percentile } from '../core/clock.js';
import type { Predictor } from '../runtime/predictor.js';
import { ExitTally } from './exit-rows.js';

/** A count: a whole number >= 0. */
const COUNT = v.pipe(v.number(), v.safeInteger(), v.minValue(0));
/** A share or an accuracy, in [0, 1]. */
const SHARE = v.pipe(v.number(), v.minValue(0), v.maxValue(1));
const NON_NEGATIVE = v.pipe(v.number(), v.minValue(0));

/** What the device is: read on the device itself. */
export const DEVICE_FACTS_SCHEMA = v.strictObject({
  /** How the user named it: user@host, "browser", "this machine". */
  name: v.string(),
  /** node: process.platform; browsers: navigator.platform. */
  platform: v.string(),
  /** node: process.arch (x64, arm64, arm); browsers: "wasm". */
  arch: v.string(),
  cpus: COUNT,
  /** Physical memory, bytes (browsers: navigator.deviceMemory when known, else 0). */
  memoryBytes: COUNT,
  /** e.g. "node v20.20.2" or the browser's user agent. */
  runtime: v.string(),
});
export type DeviceFacts = v.InferOutput<typeof DEVICE_FACTS_SCHEMA>;

/** Latency percentiles in milliseconds. */
const LATENCY_FIELDS = {
  mean: NON_NEGATIVE,
  p50: NON_NEGATIVE,
  p90: NON_NEGATIVE,
  p99: NON_NEGATIVE,
  min: NON_NEGATIVE,
  max: NON_NEGATIVE,
};
export const LATENCY_SUMMARY_SCHEMA = v.object(LATENCY_FIELDS);
export type LatencySummary = v.InferOutput<typeof LATENCY_SUMMARY_SCHEMA>;

/** The profile format's name and version, the value of its `schema` field. */
export const PROFILE_FORMAT = 'cmp-profile/1';

/** A profile of one model on one device (cmp-profile/1). Unknown top-level and device fields are refused. */
export const DEVICE_PROFILE_SCHEMA = v.strictObject({
  schema: v.literal(PROFILE_FORMAT),
  device: DEVICE_FACTS_SCHEMA,
  model: v.object({ path: v.string(), release: v.optional(v.string()) }),
  backend: v.string(),
  /** Why the device runs this backend (deployed releases: e.g. no onnxruntime-node binary for linux/arm). */
  backendReason: v.optional(v.string()),
  /** Models with exits: how the exits run and why (stage by stage, see runtime/early-exit.ts STAGED_REASON). */
  exitsReason: v.optional(v.string()),
  dataset: v.string(),
  samples: v.pipe(v.number(), v.safeInteger(), v.minValue(1)),
  accuracy: SHARE,
  /** Whole-instance latency (selection, stages, classifier). */
  latencyMs: LATENCY_SUMMARY_SCHEMA,
  /** Every instance's latency, milliseconds rounded to 0.1 µs, in run order (histograms); one per sample. */
  latenciesMs: v.array(NON_NEGATIVE),
  /** Per stage (models with exits: stage1.., else one "model" stage), over the instances that reached it. */
  stages: v.array(v.object({ name: v.string(), runs: COUNT, ...LATENCY_FIELDS })),
  /** Per exit then the final classifier: share of instances and their accuracy. */
  exits: v.array(v.object({ exit: v.string(), share: SHARE, accuracy: SHARE })),
  /** Instances per second over the measured run. */
  throughputPerS: NON_NEGATIVE,
  /** Masked models: bytes per instance on the link against sending the whole input. */
  link: v.optional(v.object({ meanBytes: NON_NEGATIVE, fullBytes: NON_NEGATIVE, saving: NON_NEGATIVE })),
  /** Peak resident memory of the process, bytes, where the platform tells. */
  rssBytes: v.optional(COUNT),
  startedAt: v.pipe(v.string(), v.isoTimestamp()),
  durationMs: NON_NEGATIVE,
});
export type DeviceProfile = v.InferOutput<typeof DEVICE_PROFILE_SCHEMA>;

/** The measurement part of a profile; the caller adds device, model and memory. */
export type ProfileMeasurement = Omit<DeviceProfile, 'schema' | 'device' | 'model' | 'rssBytes'>;

export interface ProfileOptions {
  dataset: string;
  /** Untimed instances run first (default 10, at most the count). */
  warmup?: number;
  /** Full-input bytes of one instance on the link, for the saving (default: the mask's, else 1 byte per value). */
  fullInputBytes?: number;
  onProgress?: (done: number, total: number) => void;
}

/** Runs `count` instances (`x` holds count x features values in [0, 1], `y` their labels) one at a time. */
export async function profilePredictor(
  predictor: Predictor,
  x: Float32Array,
  y: ArrayLike<number>,
  count: number,
  options: ProfileOptions,
): Promise<ProfileMeasurement> {
  const f = predictor.features;
  const sample = (i: number): Float32Array => x.subarray(i * f, (i + 1) * f);
  for (let i = 0; i < Math.min(options.warmup ?? 10, count); i++) await predictor.infer(sample(i));
  const exits = predictor.thresholds.length;
  const tally = new ExitTally(exits);
  const stageTimes: number[][] = [];
  const latencies: number[] = [];
  let linkBytes = 0;
  let correct = 0;
  const startedAt = new Date().toISOString();
  const began = nowMs();
  for (let i = 0; i < count; i++) {
    const p = await predictor.infer(sample(i));
    latencies.push(p.latencyMs);
    p.stageMs.forEach((ms, k) => (stageTimes[k] ??= []).push(ms));
    const right = p.label === y[i];
    tally.add(p.exit, right);
    correct += Number(right);
    linkBytes += p.linkBytes ?? 0;
    if (i % 25 === 0) options.onProgress?.(i, count);
  }
  const durationMs = nowMs() - began;
  options.onProgress?.(count, count);
  const fullBytes = options.fullInputBytes ?? predictor.fullInputBytes ?? f;
  return {
    backend: predictor.backendName,
    ...(predictor.backendReason ? { backendReason: predictor.backendReason } : {}),
    ...(predictor.exitsReason ? { exitsReason: predictor.exitsReason } : {}),
    dataset: options.dataset,
    samples: count,
    accuracy: count ? correct / count : 0,
    latencyMs: summarize(latencies),
    latenciesMs: latencies.map((ms) => Math.round(ms * 1e4) / 1e4),
    stages: stageTimes.map((times, k) => ({
      name: exits ? `stage${k + 1}` : 'model',
      runs: times.length,
      ...summarize(times),
    })),
    exits: tally.rows(),
    throughputPerS: durationMs > 0 ? (count / durationMs) * 1000 : 0,
    ...(predictor.masked && count
      ? { link: { meanBytes: linkBytes / count, fullBytes, saving: linkBytes ? (fullBytes * count) / linkBytes : 0 } }
      : {}),
    startedAt,
    durationMs,
  };
}

/** Mean, percentiles and range of `values` (NaN when empty). */
export function summarize(values: number[]): LatencySummary {
  return {
    mean: values.length ? values.reduce((a, b) => a + b, 0) / values.length : NaN,
    p50: percentile(values, 50),
    p90: percentile(values, 90),
    p99: percentile(values, 99),
    min: values.length ? Math.min(...values) : NaN,
    max: values.length ? Math.max(...values) : NaN,
  };
}
