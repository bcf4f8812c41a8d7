// cmp run: runs a model on a data set with any backend (auto picks per model): accuracy, batch-1 latency, profile.

import { nowMs, percentile } from '../../core/clock.js';
import { CmpError } from '../../errors.js';
import type { BackendChoice } from '../../runtime/backend.js';
import { backendNames, createBackend } from '../../runtime/backends.js';
import { evaluate, inputDimsFor, type EvalResult } from '../../runtime/evaluate.js';
import { MaskedInput } from '../../runtime/masked-input.js';
import { callerNormalization, datasetConsumer, readModelFile } from '../../runtime/model-file.js';
import { STAGED_REASON, StagedModel } from '../../runtime/early-exit.js';
import type { Dataset } from '../../data/datasets.js';
import { Profiler, type ProfileRow } from '../../runtime/profiler.js';
import { standardize } from '../../runtime/standardize.js';
import { ExitTally } from '../../profile/exit-rows.js';
import type { Parsed } from '../args.js';
import type { CliIo, Command } from '../command.js';
import { DATA_FLAG, loadDataFlag } from '../data-flag.js';
import { applyInputRangeFlag, foreignInputNote, RUN_INPUT_RANGE_FLAG } from '../input-range-flag.js';
import { formatPercent, formatTable } from '../table.js';

/** Batch-1 latency is measured on at most this many samples (after the accuracy pass, which warms the backend up). */
export const RUN_LATENCY_SAMPLES = 1000;

/** What `cmp run` reports; later passes (early exit) add fields. */
export interface RunReport {
  model: string;
  dataset: string;
  backend: string;
  /** With --backend auto on a binary model: the load-time race that chose the backend. */
  backendChoice?: BackendChoice;
  samples: number;
  accuracy: number;
  /** Wall time of one backend call with one sample, milliseconds, with no profiler attached. */
  latencyMs: { p50: number; p99: number; samples: number };
  /**
   * Per-layer times over a second pass of the same batch-1 runs with the profiler attached (backends that profile:
   * bitwasm), and that pass's whole-call p50: timing each layer costs time itself, so it is not latencyMs.p50.
   */
  profile?: ProfileRow[];
  profiledP50Ms?: number;
  /** Masked models: the bytes the sender's frames took, against sending the whole input. */
  link?: EvalResult['link'];
}

export const runCommand: Command = {
  def: {
    name: 'run',
    summary: 'Run a model on a data set with any backend: accuracy, batch-1 latency and (--profile) per-layer time.',
    positionals: ['MODEL'],
    flags: {
      data: DATA_FLAG,
      backend: {
        type: 'string',
        value: 'NAME',
        default: 'auto',
        help: `runtime: auto (the fastest that loads this model), ${backendNames().join(', ')}`,
      },
      limit: { type: 'int', help: 'use the first N test samples only' },
      profile: { type: 'boolean', help: 'print the per-layer time table (backends that profile: bitwasm)' },
      'input-range': RUN_INPUT_RANGE_FLAG,
    },
    examples: [
      'cmp run fm-mlp.onnx --data fashion-mnist --limit 2000',
      'cmp run fm-mlp.onnx --backend bitwasm --data fashion-mnist --profile',
    ],
  },
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const f = parsed.flags;
    const file = applyInputRangeFlag(readModelFile(parsed.positionals[0]), f['input-range']);
    const loadData = (): Promise<Dataset> =>
      loadDataFlag(f.data, io, datasetConsumer(file), {
        limitTest: f.limit as number | undefined,
        limitTrain: 1,
        use: 'test',
      });
    if (file.manifest?.exits?.length)
      return runStaged(file.path, await loadData(), (f.backend as string | undefined) ?? 'auto', io);
    // The backend loads first: a model it cannot run is refused in one line before the data set is read.
    const backend = await createBackend((f.backend as string | undefined) ?? 'auto', file);
    try {
      const data = await loadData();
      const result = await evaluate(backend, file, data, {
        onProgress: (done, total) => io.progress.update(`accuracy ${done}/${total}`),
      });
      const profiler = f.profile ? new Profiler() : undefined;
      if (profiler && !backend.setProfiler) {
        io.progress.log(`Backend ${backend.name} does not profile layers; --profile prints nothing for it.`);
      }
      const count = Math.min(result.count, RUN_LATENCY_SAMPLES);
      if (count === 0)
        throw new CmpError('BAD_ARGUMENT', `Data set ${data.name} has no test samples. Use another data set.`);
      const features = data.inputShape.reduce((a, b) => a * b, 1);
      const { mean, std } = callerNormalization(file);
      const link = await MaskedInput.open(file);
      const dims = link ? [] : inputDimsFor(file, data, 1);
      /** Times `count` batch-1 calls, with `profiler` attached to the backend (undefined: none). */
      const timeCalls = async (label: string, attached: Profiler | undefined): Promise<number[]> => {
        backend.setProfiler?.(attached);
        const latencies: number[] = [];
        for (let i = 0; i < count; i++) {
          let input: Float32Array = data.test.x.slice(i * features, (i + 1) * features);
          let sampleDims = dims;
          if (link) ({ input, dims: sampleDims } = await link.modelInput(input, 1));
          else standardize(input, { mean, std }, input);
          const began = nowMs();
          await backend.run(input, sampleDims);
          latencies.push(nowMs() - began);
          if (i % 50 === 0) io.progress.update(`${label} ${i}/${count}`);
        }
        backend.setProfiler?.(undefined);
        return latencies;
      };
      const latencies = await timeCalls('latency', undefined);
      const profiled = profiler && backend.setProfiler ? await timeCalls('profile', profiler) : undefined;
      io.progress.done();
      if (!file.manifest) io.progress.log(foreignInputNote(file));
      await link?.dispose();
      const report: RunReport = {
        model: file.path,
        dataset: data.name,
        backend: backend.name,
        ...(backend.choice ? { backendChoice: backend.choice } : {}),
        samples: result.count,
        accuracy: result.accuracy,
        latencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), samples: count },
        ...(profiler && profiled ? { profile: profiler.summary(), profiledP50Ms: percentile(profiled, 50) } : {}),
        ...(result.link ? { link: result.link } : {}),
      };
      io.out(io.json ? JSON.stringify(report, null, 2) : formatReport(report));
    } finally {
      await backend.dispose();
    }
    return 0;
  },
};

function formatReport(r: RunReport): string {
  const lines = [
    formatTable(
      ['model', 'data', 'backend', 'samples', 'accuracy', 'batch-1 p50 ms', 'batch-1 p99 ms'],
      [
        [
          r.model,
          r.dataset,
          r.backend,
          r.samples,
          formatPercent(r.accuracy),
          r.latencyMs.p50.toFixed(3),
          r.latencyMs.p99.toFixed(3),
        ],
      ],
    ),
  ];
  if (r.backendChoice) lines.push('', `Backend: ${r.backendChoice.reason}.`);
  if (r.link) {
    lines.push(
      '',
      `Link: ${r.link.meanFrameBytes.toFixed(1)} bytes per instance (cmp-select/1), ${r.link.saving.toFixed(1)}x fewer than the whole input.`,
    );
  }
  if (r.profile) {
    const us = (ms: number): string => (ms * 1000).toFixed(1);
    const layersP50 = r.profile.reduce((a, p) => a + p.p50Ms, 0);
    lines.push(
      '',
      `Per layer, over the same ${r.latencyMs.samples} batch-1 runs again with the profiler on (the p50 above is timed without it):`,
      formatTable(
        ['layer', 'kernel', 'calls', 'p50 µs', 'mean µs', 'share of time'],
        r.profile.map((p) => [p.name, p.tag, p.calls, us(p.p50Ms), us(p.meanMs), formatPercent(p.share)]),
      ),
      `The layers' p50s add up to ${us(layersP50)} µs of a profiled call's p50 of ${us(r.profiledP50Ms ?? NaN)} µs (the rest: the engine between layers, and the profiler's own clock reads). Means also count the slow calls (another process on the CPU, a GC pause) that p50s leave out.`,
    );
  }
  return lines.join('\n');
}

/** What `cmp run` reports for a model with early exits, run stage by stage at batch 1. */
export interface StagedRunReport {
  model: string;
  dataset: string;
  backend: string;
  /** With --backend auto: the race on stage 1 that chose the backend for every stage. */
  backendChoice?: BackendChoice;
  samples: number;
  accuracy: number;
  thresholds: number[];
  /** Per exit (1..n) then the final classifier: share of samples, their accuracy and latency percentiles. */
  exits: { exit: string; share: number; accuracy: number; latencyMs: { p50: number; p90: number; p99: number } }[];
  latencyMs: { mean: number; p50: number; p90: number; p99: number };
  /** Per stage file, over the samples that reached it (what cmp profile reports per stage on a device). */
  stages: { name: string; runs: number; mean: number; p50: number; p90: number; p99: number }[];
  /** How the exits run, and why (runtime/early-exit.ts STAGED_REASON). */
  exitsReason: string;
  /** Mean bytes handed from stage to stage per sample (float32 activations), what a split device would send. */
  meanHandoffBytes: number;
  /** Masked models: mean bytes of the sender's cmp-select/1 frame per sample. */
  meanLinkBytes?: number;
}

/** Runs a model with exits stage by stage on every test sample: exit shares, accuracy and latency per exit. */
async function runStaged(path: string, data: Dataset, backend: string, io: CliIo): Promise<number> {
  const model = await StagedModel.load(path, backend);
  const link = await MaskedInput.open(readModelFile(path));
  try {
    const features = data.inputShape.reduce((a, b) => a * b, 1);
    const n = model.exitCount;
    const tally = new ExitTally(n);
    const latenciesByExit = Array.from({ length: n + 1 }, (): number[] => []);
    const all: number[] = [];
    const stageTimes: number[][] = [];
    let handoff = 0;
    for (let i = 0; i < data.test.count; i++) {
      const sample = data.test.x.slice(i * features, (i + 1) * features);
      const result = await model.run(link ? (await link.modelInput(sample, 1)).input : sample);
      const ms = result.stageMs.reduce((a, b) => a + b, 0);
      tally.add(result.exit, result.label === data.test.y[i]);
      latenciesByExit[tally.slot(result.exit)].push(ms);
      all.push(ms);
      result.stageMs.forEach((t, k) => (stageTimes[k] ??= []).push(t));
      handoff += result.handoffBytes.reduce((a, b) => a + b, 0);
      if (i % 100 === 0) io.progress.update(`run ${i}/${data.test.count}`);
    }
    io.progress.done();
    const count = data.test.count;
    const report: StagedRunReport = {
      model: path,
      dataset: data.name,
      backend: model.backendName,
      ...(model.backendChoice ? { backendChoice: model.backendChoice } : {}),
      samples: count,
      accuracy: tally.accuracy(),
      thresholds: model.thresholds,
      exits: tally.rows().map((row, k) => ({
        ...row,
        latencyMs: {
          p50: percentile(latenciesByExit[k], 50),
          p90: percentile(latenciesByExit[k], 90),
          p99: percentile(latenciesByExit[k], 99),
        },
      })),
      latencyMs: {
        mean: all.reduce((a, b) => a + b, 0) / count,
        p50: percentile(all, 50),
        p90: percentile(all, 90),
        p99: percentile(all, 99),
      },
      stages: stageTimes.map((times, k) => ({
        name: `stage${k + 1}`,
        runs: times.length,
        mean: times.reduce((a, b) => a + b, 0) / times.length,
        p50: percentile(times, 50),
        p90: percentile(times, 90),
        p99: percentile(times, 99),
      })),
      exitsReason: STAGED_REASON,
      meanHandoffBytes: handoff / count,
      ...(link ? { meanLinkBytes: link.tally.bytes / Math.max(link.tally.frames, 1) } : {}),
    };
    if (io.json) {
      io.out(JSON.stringify(report, null, 2));
      return 0;
    }
    io.out(
      formatTable(
        ['exit', 'share', 'accuracy', 'p50 ms', 'p90 ms', 'p99 ms'],
        report.exits.map((e) => [
          e.exit,
          formatPercent(e.share),
          formatPercent(e.accuracy),
          e.latencyMs.p50.toFixed(3),
          e.latencyMs.p90.toFixed(3),
          e.latencyMs.p99.toFixed(3),
        ]),
      ),
    );
    io.out('');
    io.out(
      formatTable(
        ['stage', 'runs', 'mean ms', 'p50 ms', 'p90 ms', 'p99 ms'],
        report.stages.map((s) => [
          s.name,
          s.runs,
          s.mean.toFixed(3),
          s.p50.toFixed(3),
          s.p90.toFixed(3),
          s.p99.toFixed(3),
        ]),
      ),
    );
    io.out(
      `\n${report.model} on ${report.dataset} (${count} samples, ${report.backend}, stage by stage): accuracy ${formatPercent(report.accuracy)}, ` +
        `mean ${report.latencyMs.mean.toFixed(3)} ms, p99 ${report.latencyMs.p99.toFixed(3)} ms, ${report.meanHandoffBytes.toFixed(0)} bytes handed on per sample.`,
    );
    if (report.backendChoice) io.out(`Backend, chosen on stage 1: ${report.backendChoice.reason}.`);
    io.out(`Exits: ${report.exitsReason}.`);
    return 0;
  } finally {
    await model.dispose();
  }
}
