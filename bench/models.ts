// models: whole-model batch-1 latency (p50, p99) and peak RSS of the binarized MLP and LeNet on each backend, each
// backend in its own process so peak RSS is its own.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { trainRun } from '../src/compress/train-run.js';
import { nowMs, percentile } from '../src/core/clock.js';
import { loadDataset } from '../src/data/datasets.js';
import { CmpError } from '../src/errors.js';
import { exportOnnx } from '../src/export/export-onnx.js';
import { createBackend } from '../src/runtime/backends.js';
import { inputDimsFor } from '../src/runtime/evaluate.js';
import { readModelFile } from '../src/runtime/model-file.js';
import { formatBytes, formatTable } from '../src/cli/table.js';
import { describeMachine, machineLine } from './machine.js';
import type { Benchmark } from './run.js';

/** The goal of issue 5 for this benchmark. */
const GOAL_MLP_SPEEDUP = 3;

const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface ChildResult {
  backend: string;
  samples: number;
  accuracy: number;
  p50Ms: number;
  p99Ms: number;
  /** RSS once node, the data and the model file are loaded, before the backend is created. */
  rssBeforeBytes: number;
  /** Peak RSS of the whole process (process.resourceUsage().maxRSS). */
  peakRssBytes: number;
}

interface Row extends ChildResult {
  model: string;
  speedupVsOrtNode: number;
}

/** Runs in the child process: one model, one backend, batch 1 over `samples` test images. */
async function child(model: string, backendName: string, samples: number): Promise<void> {
  const data = await loadDataset('fashion-mnist', { limitTrain: 1, limitTest: samples });
  const file = readModelFile(model);
  const rssBeforeBytes = process.memoryUsage().rss;
  const backend = await createBackend(backendName, file);
  const features = data.inputShape.reduce((a, b) => a * b, 1);
  const dims = inputDimsFor(file, data, 1);
  const classes = data.labels.length;
  const latencies: number[] = [];
  let correct = 0;
  for (let pass = 0; pass < 2; pass++) {
    for (let i = 0; i < data.test.count; i++) {
      const input = data.test.x.slice(i * features, (i + 1) * features);
      const began = nowMs();
      const logits = await backend.run(input, dims);
      const ms = nowMs() - began;
      // The first pass warms up (and scores); the second is timed.
      if (pass === 0) {
        let best = 0;
        for (let c = 1; c < classes; c++) if (logits[c] > logits[best]) best = c;
        if (best === data.test.y[i]) correct++;
      } else latencies.push(ms);
    }
  }
  await backend.dispose();
  const result: ChildResult = {
    backend: backend.name,
    samples: data.test.count,
    accuracy: correct / data.test.count,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    rssBeforeBytes,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

export const models: Benchmark = {
  name: 'models',
  summary: 'whole-model batch-1 latency and peak RSS of the binarized MLP and LeNet on every backend',
  async run(argv: string[], json: boolean): Promise<number> {
    let values;
    try {
      ({ values } = parseArgs({
        args: argv,
        strict: true,
        options: {
          child: { type: 'boolean' },
          model: { type: 'string' },
          backend: { type: 'string' },
          samples: { type: 'string', default: '1000' },
          epochs: { type: 'string', default: '1' },
          'limit-train': { type: 'string', default: '5000' },
          backends: { type: 'string', default: 'bitwasm,ort-node,ort-web' },
        },
      }));
    } catch (err) {
      throw new CmpError(
        'BAD_FLAG',
        `${String((err as Error).message).split('\n')[0]} Flags: --samples N --epochs N --limit-train N --backends LIST --json.`,
      );
    }
    const int = (name: string, v: string): number => {
      if (!/^\d+$/.test(v) || Number(v) <= 0)
        throw new CmpError('BAD_FLAG', `--${name} must be a positive whole number (got "${v}").`);
      return Number(v);
    };
    const samples = int('samples', values.samples);
    if (values.child) {
      await child(values.model ?? '', values.backend ?? '', samples);
      return 0;
    }
    const epochs = int('epochs', values.epochs);
    const limitTrain = int('limit-train', values['limit-train']);
    const backends = values.backends.split(',');
    const data = await loadDataset('fashion-mnist', { limitTrain, limitTest: 1000 });
    const dir = mkdtempSync(join(tmpdir(), 'cmp-bench-models-'));
    const specs = [
      { name: 'MLP 784-512-512-10 dab w+act', arch: 'mlp', widths: [512, 512] },
      { name: 'LeNet dab w+act', arch: 'lenet', widths: [256] },
    ];
    const machine = describeMachine();
    const rows: Row[] = [];
    for (const spec of specs) {
      process.stderr.write(`training ${spec.name} (${epochs} epoch on ${limitTrain} images)\n`);
      const trained = await trainRun(data, {
        arch: spec.arch,
        widths: spec.widths,
        binarizeWeights: 'dab',
        binarizeActivations: 'dab',
        epochs,
        batchSize: 100,
        learningRate: 0.002,
        seed: 1,
      });
      const path = join(dir, `${spec.arch}.onnx`);
      writeFileSync(path, exportOnnx(trained.frozen).bytes);
      const results: ChildResult[] = [];
      for (const backend of backends) {
        const args = ['--import', './test/register.js', 'bench/run.ts', 'models', '--child'];
        args.push('--model', path, '--backend', backend, '--samples', String(samples));
        const run = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', timeout: 600_000 });
        if (run.status !== 0) {
          throw new CmpError(
            'INTERNAL',
            `models: ${backend} on ${spec.name} failed: ${run.stderr.trim().split('\n').pop()}`,
          );
        }
        const result = JSON.parse(run.stdout.trim().split('\n').pop() ?? '{}') as ChildResult;
        process.stderr.write(`${spec.name} ${backend}: p50 ${result.p50Ms.toFixed(3)} ms\n`);
        results.push(result);
      }
      const base = results.find((r) => r.backend === 'ort-node');
      for (const r of results) {
        rows.push({ model: spec.name, ...r, speedupVsOrtNode: base ? base.p50Ms / r.p50Ms : Number.NaN });
      }
    }
    const mlpBit = rows.find((r) => r.model.startsWith('MLP') && r.backend === 'bitwasm');
    const goals = mlpBit
      ? [
          {
            goal: 'binarized MLP: bitwasm batch-1 p50 >= 3x faster than onnxruntime-node',
            met: mlpBit.speedupVsOrtNode >= GOAL_MLP_SPEEDUP,
            value: mlpBit.speedupVsOrtNode,
            target: GOAL_MLP_SPEEDUP,
          },
        ]
      : [];
    const inputs = { samples, epochs, limitTrain, backends, dataset: 'fashion-mnist', seed: 1 };
    if (json) {
      process.stdout.write(`${JSON.stringify({ benchmark: 'models', machine, inputs, rows, goals }, null, 2)}\n`);
      return 0;
    }
    const out = [
      'models: batch 1, one process per backend; ratio = onnxruntime-node p50 / this p50',
      `machine: ${machineLine(machine)}`,
      `inputs: ${JSON.stringify(inputs)}`,
      '',
      formatTable(
        ['model', 'backend', 'accuracy', 'p50 ms', 'p99 ms', 'vs ort-node', 'RSS before load', 'peak RSS'],
        rows.map((r) => [
          r.model,
          r.backend,
          `${(r.accuracy * 100).toFixed(2)}%`,
          r.p50Ms.toFixed(3),
          r.p99Ms.toFixed(3),
          `${r.speedupVsOrtNode.toFixed(2)}x`,
          formatBytes(r.rssBeforeBytes),
          formatBytes(r.peakRssBytes),
        ]),
      ),
      '',
      'Goals (issue 5):',
      ...goals.map(
        (g) =>
          `  ${g.met ? 'MET   ' : 'MISSED'} ${g.goal}: ${g.value.toFixed(2)}x vs ${g.target}x (${g.met ? 'by' : 'short by'} ${Math.abs(g.value - g.target).toFixed(2)}x)`,
      ),
    ];
    process.stdout.write(`${out.join('\n')}\n`);
    return 0;
  },
};
