// cmp run: runs a model on a data set with any backend (auto picks per model): accuracy, batch-1 latency, profile.

import { nowMs, percentile } from '../../core/clock.js';
import { CmpError } from '../../errors.js';
import { backendNames, createBackend } from '../../runtime/backends.js';
import { evaluate, inputDimsFor } from '../../runtime/evaluate.js';
import { readModelFile } from '../../runtime/model-file.js';
import { Profiler, type ProfileRow } from '../../runtime/profiler.js';
import type { Parsed } from '../args.js';
import type { CliIo, Command } from '../command.js';
import { DATA_FLAG, loadDataFlag } from '../data-flag.js';
import { formatPercent, formatTable } from '../table.js';

/** Batch-1 latency is measured on at most this many samples (after the accuracy pass, which warms the backend up). */
export const RUN_LATENCY_SAMPLES = 1000;

/** What `cmp run` reports; later passes (early exit) add fields. */
export interface RunReport {
  model: string;
  dataset: string;
  backend: string;
  samples: number;
  accuracy: number;
  /** Wall time of one backend call with one sample, milliseconds. */
  latencyMs: { p50: number; p99: number; samples: number };
  /** Per-layer totals over the batch-1 runs (backends that profile: bitwasm). */
  profile?: ProfileRow[];
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
    },
    examples: [
      'cmp run fm-mlp.onnx --data fashion-mnist --limit 2000',
      'cmp run fm-mlp.onnx --backend bitwasm --data fashion-mnist --profile',
    ],
  },
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const f = parsed.flags;
    const file = readModelFile(parsed.positionals[0]);
    const data = await loadDataFlag(f.data ?? file.manifest?.training?.dataset, io, {
      limitTest: f.limit as number | undefined,
      limitTrain: 1,
    });
    const backend = await createBackend((f.backend as string | undefined) ?? 'auto', file);
    try {
      const result = await evaluate(backend, file, data, {
        onProgress: (done, total) => io.progress.update(`accuracy ${done}/${total}`),
      });
      const profiler = f.profile ? new Profiler() : undefined;
      if (profiler && !backend.setProfiler) {
        io.progress.log(`Backend ${backend.name} does not profile layers; --profile prints nothing for it.`);
      }
      backend.setProfiler?.(profiler);
      const count = Math.min(result.count, RUN_LATENCY_SAMPLES);
      if (count === 0)
        throw new CmpError('BAD_ARGUMENT', `Data set ${data.name} has no test samples. Use another data set.`);
      const features = data.inputShape.reduce((a, b) => a * b, 1);
      const mean = file.manifest?.input.mean ?? 0;
      const std = file.manifest?.input.std ?? 1;
      const dims = inputDimsFor(file, data, 1);
      const latencies: number[] = [];
      for (let i = 0; i < count; i++) {
        const input = data.test.x.slice(i * features, (i + 1) * features);
        if (mean !== 0 || std !== 1) for (let k = 0; k < features; k++) input[k] = (input[k] - mean) / std;
        const began = nowMs();
        await backend.run(input, dims);
        latencies.push(nowMs() - began);
        if (i % 50 === 0) io.progress.update(`latency ${i}/${count}`);
      }
      io.progress.done();
      backend.setProfiler?.(undefined);
      const report: RunReport = {
        model: file.path,
        dataset: data.name,
        backend: backend.name,
        samples: result.count,
        accuracy: result.accuracy,
        latencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), samples: count },
        ...(profiler && backend.setProfiler ? { profile: profiler.summary() } : {}),
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
  if (r.profile) {
    lines.push(
      '',
      `Per layer, over ${r.latencyMs.samples} batch-1 runs:`,
      formatTable(
        ['layer', 'kernel', 'calls', 'mean µs', 'share'],
        r.profile.map((p) => [p.name, p.tag, p.calls, (p.meanMs * 1000).toFixed(1), formatPercent(p.share)]),
      ),
    );
  }
  return lines.join('\n');
}
