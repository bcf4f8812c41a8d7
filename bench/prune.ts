// prune: MINT vs GSS vs magnitude at several sparsities, against the unpruned model: weights pruned, accuracy,
// ONNX bytes and onnxruntime-node batch-1 latency, with the goals reported met or missed.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pruneRun } from '../src/compress/prune-run.js';
import { weightCount, type PruneMethod } from '../src/compress/prune.js';
import { trainRun } from '../src/compress/train-run.js';
import { nowMs, percentile } from '../src/core/clock.js';
import type { FrozenModel } from '../src/core/frozen.js';
import { loadRun } from '../src/core/run.js';
import { loadDataset, type Dataset } from '../src/data/datasets.js';
import { CmpError } from '../src/errors.js';
import { exportOnnx } from '../src/export/export-onnx.js';
import { createBackend } from '../src/runtime/backends.js';
import { evaluate, inputDimsFor } from '../src/runtime/evaluate.js';
import { parseModelFile } from '../src/runtime/model-file.js';
import { formatBytes, formatTable } from '../src/cli/table.js';
import { atLeast, benchRecord, goalLines, parseBenchFlags, positiveInt, type Goal } from './common.js';
import { describeMachine, machineLine } from './machine.js';
import type { Benchmark } from './run.js';

const SETUPS: readonly { dataset: string; arch: string }[] = Object.freeze([
  { dataset: 'mnist', arch: 'mlp' },
  { dataset: 'fashion-mnist', arch: 'mlp' },
  { dataset: 'fashion-mnist', arch: 'lenet' },
]);
const METHODS: readonly PruneMethod[] = Object.freeze(['mint', 'gss', 'magnitude']);

interface Row {
  dataset: string;
  arch: string;
  method: PruneMethod | 'unpruned';
  sparsityTarget: number;
  weightsPruned: number;
  testAccuracy: number;
  onnxBytes: number;
  latencyP50Ms: number;
}

export const prune: Benchmark = {
  name: 'prune',
  summary: 'MINT, GSS and magnitude pruning at several sparsities against the unpruned model',
  async run(argv: string[], json: boolean): Promise<number> {
    const values = parseBenchFlags(argv, {
      setups: { default: SETUPS.map((s) => `${s.dataset}:${s.arch}`).join(',') },
      sparsities: { default: '0.5,0.8,0.9,0.95' },
      epochs: { default: '10' },
      retrain: { default: '5' },
      'limit-train': {},
      'limit-test': {},
      save: {},
    });
    const int = (name: string, v: string | undefined): number | undefined =>
      name === 'retrain' && v === '0' ? 0 : positiveInt(name, v);
    const epochs = int('epochs', values.epochs) as number;
    const retrain = int('retrain', values.retrain) as number;
    const limitTrain = int('limit-train', values['limit-train']);
    const limitTest = int('limit-test', values['limit-test']);
    const sparsities = (values.sparsities as string).split(',').map(Number);
    if (sparsities.some((s) => !(s > 0 && s < 1)))
      throw new CmpError('BAD_FLAG', `--sparsities must be numbers in (0, 1) (got "${values.sparsities}").`);
    const setups = (values.setups as string).split(',').map((s) => {
      const [dataset, arch] = s.split(':');
      if (!dataset || !arch)
        throw new CmpError('BAD_FLAG', `--setups takes DATASET:ARCH pairs, e.g. mnist:mlp (got "${s}").`);
      return { dataset, arch };
    });
    const dir = mkdtempSync(join(tmpdir(), 'cmp-bench-prune-'));
    const log = (text: string): boolean => process.stderr.write(`${text}\n`);
    const rows: Row[] = [];
    for (const setup of setups) {
      const data = await loadDataset(setup.dataset, { limitTrain, limitTest });
      const tag = `${setup.dataset}-${setup.arch}`;
      const common = {
        arch: setup.arch,
        binarizeWeights: 'none',
        binarizeActivations: 'none',
        epochs,
        batchSize: 100,
        learningRate: 0.002,
        seed: 1,
      } as const;
      log(`${tag}: training the unpruned model (${epochs} epochs)`);
      const base = await trainRun(data, { ...common, out: join(dir, tag) });
      const baseWeights = weightCount(base.spec);
      rows.push({
        dataset: setup.dataset,
        arch: setup.arch,
        method: 'unpruned',
        sparsityTarget: 0,
        weightsPruned: 0,
        ...(await measure(base.frozen, data)),
      });
      log(`${tag}: training with GSS (${epochs} epochs)`);
      await trainRun(data, {
        ...common,
        groupSparsity: { lambda: 1.5, keepAlive: 0.05, groupSize: 1 },
        // The emptied groups stay in, so GSS is pruned to each sparsity by group norm like the other methods.
        keepDeadGroups: true,
        out: join(dir, `${tag}-gss`),
      });
      for (const sparsity of sparsities) {
        for (const method of METHODS) {
          // GSS prunes its own lasso-trained run by group norm; MINT and magnitude prune the plain run.
          const source = loadRun(join(dir, method === 'gss' ? `${tag}-gss` : tag));
          const result = await pruneRun(source, data, {
            method,
            sparsity,
            scope: 'per-layer',
            groupSize: 1,
            samplesPerClass: 250,
            bins: 8,
            retrain,
            batchSize: 100,
            learningRate: 0.001,
            seed: 1,
          });
          const row: Row = {
            dataset: setup.dataset,
            arch: setup.arch,
            method,
            sparsityTarget: sparsity,
            weightsPruned: 1 - weightCount(result.spec) / baseWeights,
            ...(await measure(result.frozen, data)),
          };
          rows.push(row);
          log(
            `${tag}: ${method} ${sparsity}: ${(row.weightsPruned * 100).toFixed(1)}% pruned, ${(row.testAccuracy * 100).toFixed(2)}%`,
          );
        }
      }
    }
    const goals = evaluateGoals(rows);
    const machine = describeMachine();
    const inputs = {
      epochs,
      retrain,
      sparsities,
      setups,
      groupSize: 1,
      samplesPerClass: 250,
      scope: 'per-layer',
      limitTrain: limitTrain ?? 'all',
      limitTest: limitTest ?? 'all',
    };
    const record = benchRecord('prune', { inputs, rows, goals }, values.save);
    if (json) {
      process.stdout.write(`${record}\n`);
      return 0;
    }
    const out = [
      `prune: float models, ${epochs} epochs; pruning per layer, one-shot, then ${retrain} fine-tuning epochs; accuracy and batch-1 latency by onnxruntime-node`,
      `machine: ${machineLine(machine)}`,
      '',
      formatTable(
        [
          'data set',
          'arch',
          'method',
          'target',
          'weights pruned',
          'test accuracy',
          'vs unpruned',
          'ONNX bytes',
          'p50 ms',
        ],
        rows.map((r) => {
          const base = rows.find((b) => b.dataset === r.dataset && b.arch === r.arch && b.method === 'unpruned') ?? r;
          return [
            r.dataset,
            r.arch,
            r.method,
            r.sparsityTarget ? r.sparsityTarget.toFixed(2) : '-',
            `${(r.weightsPruned * 100).toFixed(1)}%`,
            `${(r.testAccuracy * 100).toFixed(2)}%`,
            `${((r.testAccuracy - base.testAccuracy) * 100).toFixed(2)} pt`,
            formatBytes(r.onnxBytes),
            r.latencyP50Ms.toFixed(3),
          ];
        }),
      ),
      '',
      'Goals (issue 3, MNIST MLP):',
      ...goalLines(goals),
    ];
    process.stdout.write(`${out.join('\n')}\n`);
    return 0;
  },
};

/** Accuracy on the test split, file size, and batch-1 latency (p50 of 300 single-image runs) in onnxruntime-node. */
async function measure(
  frozen: FrozenModel,
  data: Dataset,
): Promise<{ testAccuracy: number; onnxBytes: number; latencyP50Ms: number }> {
  const { bytes } = exportOnnx(frozen);
  const file = parseModelFile(bytes, 'bench.onnx');
  const backend = await createBackend('ort-node', file);
  try {
    const { accuracy } = await evaluate(backend, file, data);
    const features = data.inputShape.reduce((a, b) => a * b, 1);
    const dims = inputDimsFor(file, data, 1);
    const times: number[] = [];
    for (let i = 0; i < 330; i++) {
      const input = data.test.x.slice((i % data.test.count) * features, ((i % data.test.count) + 1) * features);
      const start = nowMs();
      await backend.run(input, dims);
      if (i >= 30) times.push(nowMs() - start);
    }
    return { testAccuracy: accuracy, onnxBytes: bytes.length, latencyP50Ms: percentile(times, 50) };
  } finally {
    await backend.dispose();
  }
}

function evaluateGoals(rows: Row[]): Goal[] {
  const mnist = rows.filter((r) => r.dataset === 'mnist' && r.arch === 'mlp');
  const base = mnist.find((r) => r.method === 'unpruned');
  if (!base) return [];
  const goals: Goal[] = [];
  // The most-pruned model within 0.5 points of the unpruned accuracy, over every method and sparsity.
  const within = mnist.filter((r) => r.method !== 'unpruned' && base.testAccuracy - r.testAccuracy <= 0.005);
  const best = within.reduce((a, r) => Math.max(a, r.weightsPruned), 0) * 100;
  goals.push(atLeast('MLP weights pruned within 0.5 pt of unpruned', best, 90, '%'));
  const mint = mnist.find((r) => r.method === 'mint' && r.sparsityTarget === 0.9);
  const magnitude = mnist.find((r) => r.method === 'magnitude' && r.sparsityTarget === 0.9);
  if (mint && magnitude) {
    const gain = (mint.testAccuracy - magnitude.testAccuracy) * 100;
    goals.push(atLeast('MINT at least as accurate as magnitude at 0.9', gain, 0, 'pt'));
  }
  return goals;
}
