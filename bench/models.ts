// models: whole-model batch-1 latency (p50, p99) and peak RSS of the binarized MLP and LeNet, of the imported PyTorch
// LeNet-5 fine-tuned with DAB weights and of an int8 MLP and LeNet, on each backend, each backend in its own process so
// peak RSS is its own, the backends taking turns over several rounds; and which backend `auto` picks for each.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { trainRun } from '../src/compress/train-run.js';
import { nowMs, percentile } from '../src/core/clock.js';
import { loadRun } from '../src/core/run.js';
import { withBinarization } from '../src/core/spec.js';
import { loadDataset, type Dataset } from '../src/data/datasets.js';
import { CmpError } from '../src/errors.js';
import { exportOnnx } from '../src/export/export-onnx.js';
import { importRun } from '../src/import/import-run.js';
import type { Backend } from '../src/runtime/backend.js';
import { createOrtNodeBackend } from '../src/runtime/backend-ort-node.js';
import { createBackend } from '../src/runtime/backends.js';
import { inputDimsFor, predict } from '../src/runtime/evaluate.js';
import { readModelFile, type ModelFile } from '../src/runtime/model-file.js';
import { formatBytes, formatTable } from '../src/cli/table.js';
import { atLeast, benchRecord, goalLines, parseBenchFlags, positiveInt, type Goal } from './common.js';
import { describeMachine, machineLine } from './machine.js';
import type { Benchmark } from './run.js';

/** The goal of issue 5 for this benchmark. */
const GOAL_MLP_SPEEDUP = 3;

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The PyTorch LeNet-5 of issue 9 (see ../shared/models/README.md; CMP_SHARED_DIR moves it). */
const LENET5 = process.env.CMP_SHARED_DIR
  ? join(process.env.CMP_SHARED_DIR, 'models', 'lenet5-mnist-pytorch.onnx')
  : fileURLToPath(new URL('../../shared/models/lenet5-mnist-pytorch.onnx', import.meta.url));

/** The backends a child can run: the registered ones, and onnxruntime-node held to one thread (`ort-node-1`). */
async function childBackend(name: string, file: ModelFile): Promise<Backend> {
  return name === 'ort-node-1'
    ? await createOrtNodeBackend(file, { intraOpNumThreads: 1 })
    : await createBackend(name, file);
}

interface ChildResult {
  backend: string;
  samples: number;
  accuracy: number;
  /** Batch-1 latency of every timed call. */
  latenciesMs: number[];
  /** RSS once node, the data and the model file are loaded, before the backend is created. */
  rssBeforeBytes: number;
  /** Peak RSS of the whole process (process.resourceUsage().maxRSS). */
  peakRssBytes: number;
}

/** bitwasm against onnxruntime-node on every test image of the data set. */
interface Agreement {
  model: string;
  images: number;
  /** LOGITS_TOLERANCE, or for int8 models INT8_LOGITS_RELATIVE of the logit scale. */
  tolerance: string;
  labelsEqual: number;
  /** Images whose logits all agree within `tolerance`. */
  logitsWithin: number;
  maxLogitDiff: number;
}

/** The tolerance the bitwasm tests state for logits (test/runtime/backend-bitwasm.test.ts). */
const LOGITS_TOLERANCE = 1e-4;

/**
 * For models with int8 layers, which both runtimes run on quantized inputs (bitwasm per sample, onnxruntime-node in
 * MatMulNBits), the conformance suite's allowance instead: 0.02 of the logit scale max(1, max |logit|)
 * (test/runtime/conformance.ts ALLOWANCES).
 */
const INT8_LOGITS_RELATIVE = 2e-2;

async function agreement(model: string, file: ModelFile, data: Dataset, int8: boolean): Promise<Agreement> {
  // Labels and logits compared image by image, on every test image of the model's data set.
  const outputs: Float32Array[] = [];
  for (const name of ['ort-node', 'bitwasm']) {
    const backend = await createBackend(name, file);
    outputs.push(await predict(backend, file, data, data.test.count, 100));
    await backend.dispose();
  }
  const [ort, bit] = outputs;
  const classes = data.labels.length;
  const tolerance = int8 ? `${INT8_LOGITS_RELATIVE} of the logit scale` : String(LOGITS_TOLERANCE);
  const result: Agreement = {
    model,
    images: data.test.count,
    tolerance,
    labelsEqual: 0,
    logitsWithin: 0,
    maxLogitDiff: 0,
  };
  for (let i = 0; i < data.test.count; i++) {
    let [a, b, diff, scale] = [0, 0, 0, 1];
    for (let c = 0; c < classes; c++) {
      const k = i * classes + c;
      if (ort[k] > ort[i * classes + a]) a = c;
      if (bit[k] > bit[i * classes + b]) b = c;
      diff = Math.max(diff, Math.abs(ort[k] - bit[k]));
      scale = Math.max(scale, Math.abs(ort[k]));
    }
    result.labelsEqual += Number(a === b);
    result.logitsWithin += Number(diff <= (int8 ? INT8_LOGITS_RELATIVE * scale : LOGITS_TOLERANCE));
    result.maxLogitDiff = Math.max(result.maxLogitDiff, diff);
  }
  return result;
}

interface Row extends Omit<ChildResult, 'latenciesMs'> {
  model: string;
  p50Ms: number;
  p99Ms: number;
  /** Timed calls, over all rounds. */
  runs: number;
  speedupVsOrtNode: number;
}

/** Runs in the child process: one model, one backend, batch 1 over `samples` test images of `dataset`. */
async function child(model: string, backendName: string, samples: number, dataset: string): Promise<void> {
  const data = await loadDataset(dataset, { limitTrain: 1, limitTest: samples });
  const file = readModelFile(model);
  const rssBeforeBytes = process.memoryUsage().rss;
  const backend = await childBackend(backendName, file);
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
    backend: backendName,
    samples: data.test.count,
    accuracy: correct / data.test.count,
    latenciesMs: latencies.map((ms) => Math.round(ms * 1e6) / 1e6),
    rssBeforeBytes,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

export const models: Benchmark = {
  name: 'models',
  summary: 'whole-model batch-1 latency and peak RSS of the binarized MLP and LeNet on every backend',
  async run(argv: string[], json: boolean): Promise<number> {
    const flags = parseBenchFlags(argv, {
      child: {},
      model: {},
      backend: {},
      data: { default: 'fashion-mnist' },
      samples: { default: '1000' },
      rounds: { default: '3' },
      epochs: { default: '1' },
      'limit-train': { default: '5000' },
      backends: { default: 'bitwasm,ort-node,ort-node-1,ort-web' },
      save: {},
    });
    const samples = positiveInt('samples', flags.samples) ?? 1000;
    if (flags.child === 'yes') {
      await child(flags.model ?? '', flags.backend ?? '', samples, flags.data ?? 'fashion-mnist');
      return 0;
    }
    const rounds = positiveInt('rounds', flags.rounds) ?? 3;
    const epochs = positiveInt('epochs', flags.epochs) ?? 1;
    const limitTrain = positiveInt('limit-train', flags['limit-train']) ?? 5000;
    const backends = (flags.backends ?? '').split(',');
    // The whole test split: the agreement check runs every image; latency runs the first `samples`.
    const sets = new Map<string, Dataset>();
    for (const name of ['fashion-mnist', 'mnist']) sets.set(name, await loadDataset(name, { limitTrain }));
    const dir = mkdtempSync(join(tmpdir(), 'cmp-bench-models-'));
    const train = (data: Dataset, arch: string, widths: number[], binarizeActivations: 'dab' | 'none', int8 = false) =>
      trainRun(data, {
        arch,
        widths,
        binarizeWeights: 'dab',
        binarizeActivations,
        // Every weight layer int8 (quantization-aware), activations float.
        ...(int8 ? { int8: ['all'] } : {}),
        epochs,
        batchSize: 100,
        learningRate: 0.002,
        seed: 1,
      });
    // The imported LeNet-5 fine-tuned as a user would (cmp train --from RUN --binarize dab): DAB weights, float
    // activations, every layer binary.
    const lenet5 = async (data: Dataset): ReturnType<typeof trainRun> => {
      const run = join(dir, 'lenet5-imported');
      await importRun(LENET5, { mean: 0, std: 1, data, out: run });
      const imported = loadRun(run);
      const spec = withBinarization(imported.record.spec, {
        binarizeWeights: 'dab',
        keepFloatWeights: [],
        keepFloatInputs: [],
      });
      return trainRun(data, {
        arch: imported.record.spec.arch,
        binarizeWeights: 'dab',
        binarizeActivations: 'none',
        epochs,
        batchSize: 100,
        learningRate: 0.002,
        seed: 1,
        from: { dir: run, spec, tensors: imported.tensors },
      });
    };
    const specs = [
      {
        name: 'MLP 784-512-512-10 dab w+act',
        file: 'mlp',
        dataset: 'fashion-mnist',
        make: (d: Dataset) => train(d, 'mlp', [512, 512], 'dab'),
      },
      {
        name: 'LeNet dab w+act',
        file: 'lenet',
        dataset: 'fashion-mnist',
        make: (d: Dataset) => train(d, 'lenet', [256], 'dab'),
      },
      { name: 'LeNet-5 (PyTorch) dab w', file: 'lenet5', dataset: 'mnist', make: lenet5 },
      {
        name: 'MLP 784-512-512-10 int8 w',
        file: 'mlp-int8',
        dataset: 'fashion-mnist',
        make: (d: Dataset) => train(d, 'mlp', [512, 512], 'none', true),
      },
      {
        name: 'LeNet int8 w',
        file: 'lenet-int8',
        dataset: 'fashion-mnist',
        make: (d: Dataset) => train(d, 'lenet', [256], 'none', true),
      },
    ];
    const rows: Row[] = [];
    const agreements: Agreement[] = [];
    const picks: { model: string; auto: string }[] = [];
    for (const spec of specs) {
      const data = sets.get(spec.dataset) as Dataset;
      process.stderr.write(`training ${spec.name} (${epochs} epoch on ${limitTrain} ${spec.dataset} images)\n`);
      const trained = await spec.make(data);
      const path = join(dir, `${spec.file}.onnx`);
      writeFileSync(path, exportOnnx(trained.frozen).bytes);
      if (backends.includes('bitwasm'))
        agreements.push(await agreement(spec.name, readModelFile(path), data, spec.name.includes('int8')));
      // What `auto` loads for this file here: it races bitwasm against onnxruntime-node at load.
      const auto = await createBackend('auto', readModelFile(path));
      picks.push({ model: spec.name, auto: auto.name });
      await auto.dispose();
      // The backends take turns, one process each per round, so that a machine whose speed drifts (CPU steal on a
      // shared VM) weighs on all of them alike; the rounds' timed calls are pooled.
      const runs = new Map<string, ChildResult[]>(backends.map((b) => [b, []]));
      for (let round = 0; round < rounds; round++) {
        for (let j = 0; j < backends.length; j++) {
          const backend = backends[(round + j) % backends.length];
          const args = ['--import', './test/register.js', 'bench/run.ts', 'models', '--child', 'yes'];
          args.push('--model', path, '--backend', backend, '--samples', String(samples), '--data', spec.dataset);
          const run = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', timeout: 600_000 });
          if (run.status !== 0) {
            throw new CmpError(
              'INTERNAL',
              `models: ${backend} on ${spec.name} failed: ${run.stderr.trim().split('\n').pop()}`,
            );
          }
          const result = JSON.parse(run.stdout.trim().split('\n').pop() ?? '{}') as ChildResult;
          process.stderr.write(
            `${spec.name} ${backend} round ${round + 1}: p50 ${percentile(result.latenciesMs, 50).toFixed(3)} ms\n`,
          );
          runs.get(backend)?.push(result);
        }
      }
      const pooled = backends.map((backend) => {
        const results = runs.get(backend) ?? [];
        const latencies = results.flatMap((r) => r.latenciesMs);
        return {
          backend,
          samples: results[0].samples,
          accuracy: results[0].accuracy,
          p50Ms: percentile(latencies, 50),
          p99Ms: percentile(latencies, 99),
          runs: latencies.length,
          rssBeforeBytes: Math.max(...results.map((r) => r.rssBeforeBytes)),
          peakRssBytes: Math.max(...results.map((r) => r.peakRssBytes)),
        };
      });
      const base = pooled.find((r) => r.backend === 'ort-node');
      for (const r of pooled) {
        rows.push({ model: spec.name, ...r, speedupVsOrtNode: base ? base.p50Ms / r.p50Ms : Number.NaN });
      }
    }
    const mlpBit = rows.find((r) => r.model.startsWith('MLP') && r.backend === 'bitwasm');
    const goals = mlpBit
      ? [
          atLeast(
            'binarized MLP: bitwasm batch-1 p50 >= 3x faster than onnxruntime-node',
            mlpBit.speedupVsOrtNode,
            GOAL_MLP_SPEEDUP,
            'x',
          ),
        ]
      : [];
    const goals22 = issue22Goals(rows, picks);
    const inputs = {
      samples,
      rounds,
      epochs,
      limitTrain,
      backends,
      datasets: specs.map((s) => `${s.file}: ${s.dataset}`),
      testImages: Object.fromEntries([...sets].map(([name, d]) => [name, d.test.count])),
      seed: 1,
    };
    const record = benchRecord(
      'models',
      { inputs, rows, agreements, picks, goals: [...goals, ...goals22] },
      flags.save,
    );
    if (json) {
      process.stdout.write(`${record}\n`);
      return 0;
    }
    const out = [
      'models: batch 1, one process per backend and round, backends in turn; ratio = onnxruntime-node p50 / this p50',
      `machine: ${machineLine(describeMachine())}`,
      `inputs: ${JSON.stringify(inputs)}`,
      '',
      formatTable(
        ['model', 'backend', 'accuracy', 'p50 ms', 'p99 ms', 'runs', 'vs ort-node', 'RSS before load', 'peak RSS'],
        rows.map((r) => [
          r.model,
          r.backend,
          `${(r.accuracy * 100).toFixed(2)}%`,
          r.p50Ms.toFixed(3),
          r.p99Ms.toFixed(3),
          r.runs,
          `${r.speedupVsOrtNode.toFixed(2)}x`,
          formatBytes(r.rssBeforeBytes),
          formatBytes(r.peakRssBytes),
        ]),
      ),
      '',
      ...agreements.map(
        (a) =>
          `${a.model}: bitwasm against ort-node on all ${a.images} test images: labels equal on ${a.labelsEqual}, ` +
          `logits within ${a.tolerance} on ${a.logitsWithin} (largest difference ${a.maxLogitDiff.toExponential(2)})`,
      ),
      '',
      ...picks.map((p) => `${p.model}: auto picks ${p.auto}`),
      '',
      'Goals (issue 5):',
      ...goalLines(goals),
      'Goals (issue 22):',
      ...goalLines(goals22),
    ];
    process.stdout.write(`${out.join('\n')}\n`);
    return 0;
  },
};

/**
 * Issue 22's goals here: the imported LeNet-5 with DAB weights and float activations at least as fast on bitwasm as on
 * onnxruntime-node held to one thread, `auto` picking bitwasm for it (and for the models with binary activations), and
 * for the int8 models the faster of bitwasm and onnxruntime-node.
 */
function issue22Goals(rows: Row[], picks: { model: string; auto: string }[]): Goal[] {
  const goals: Goal[] = [];
  const p50 = (model: string, backend: string): number | undefined =>
    rows.find((r) => r.model === model && r.backend === backend)?.p50Ms;
  for (const pick of picks) {
    const bit = p50(pick.model, 'bitwasm');
    const one = p50(pick.model, 'ort-node-1');
    if (pick.model.startsWith('LeNet-5') && bit !== undefined && one !== undefined) {
      goals.push(
        atLeast(`${pick.model}: bitwasm batch-1 p50 at least as fast as ort-node 1 thread`, one / bit, 1, 'x'),
      );
    }
    if (pick.model.includes('int8')) {
      // int8 models: auto should pick bitwasm where it wins, so the goal is the faster of the two in this run.
      const ort = p50(pick.model, 'ort-node');
      if (bit === undefined || ort === undefined) continue;
      const faster = bit <= ort ? 'bitwasm' : 'ort-node';
      goals.push(
        atLeast(`${pick.model}: auto picks the faster here, ${faster} (1 = yes)`, Number(pick.auto === faster), 1, ''),
      );
      continue;
    }
    goals.push(atLeast(`${pick.model}: auto picks bitwasm (1 = yes)`, Number(pick.auto === 'bitwasm'), 1, ''));
  }
  return goals;
}
