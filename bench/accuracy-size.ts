// accuracy-size: float vs XNOR vs DAB (weights only, weights and activations): test accuracy with onnxruntime-node,
// ONNX bytes and bits per weight, on Fashion-MNIST and MNIST, with the goals reported met or missed.

import { trainRun } from '../src/compress/train-run.js';
import type { BinarizeMode } from '../src/core/spec.js';
import { loadDataset } from '../src/data/datasets.js';
import { exportOnnx } from '../src/export/export-onnx.js';
import { createBackend } from '../src/runtime/backends.js';
import { evaluate } from '../src/runtime/evaluate.js';
import { parseModelFile } from '../src/runtime/model-file.js';
import { formatBytes, formatTable } from '../src/cli/table.js';
import {
  atLeast,
  atMost,
  benchRecord,
  goalLines,
  parseBenchFlags,
  positiveInt,
  RowCache,
  type Goal,
} from './common.js';
import { describeMachine, machineLine } from './machine.js';
import type { Benchmark } from './run.js';

const MODELS: readonly { name: string; weights: BinarizeMode; activations: BinarizeMode }[] = Object.freeze([
  { name: 'float', weights: 'none', activations: 'none' },
  { name: 'xnor weights', weights: 'xnor', activations: 'none' },
  { name: 'dab weights', weights: 'dab', activations: 'none' },
  { name: 'xnor weights+act', weights: 'xnor', activations: 'xnor' },
  { name: 'dab weights+act', weights: 'dab', activations: 'dab' },
]);

/** The goals of issue 2, on Fashion-MNIST. */
const GOALS = Object.freeze({ floatAccuracy: 0.89, dabWithinPoints: 1.5, maxBitsPerWeight: 1.1 });

interface Row {
  dataset: string;
  model: string;
  weights: BinarizeMode;
  activations: BinarizeMode;
  testAccuracy: number;
  onnxBytes: number;
  /** Over the binarized layers (bits, levels and padding per weight); 32 for float. */
  bitsPerWeight: number;
  /** The worst binarized layer. */
  maxLayerBitsPerWeight: number;
  trainSeconds: number;
}

export const accuracySize: Benchmark = {
  name: 'accuracy-size',
  summary: 'accuracy, ONNX bytes and bits per weight of float, xnor and dab models',
  async run(argv: string[], json: boolean): Promise<number> {
    const values = parseBenchFlags(argv, {
      datasets: { default: 'fashion-mnist,mnist' },
      epochs: { default: '10' },
      widths: { default: '512,512' },
      'limit-train': {},
      'limit-test': {},
      seed: { default: '1' },
      save: {},
    });
    const int = positiveInt;
    const epochs = int('epochs', values.epochs) as number;
    const seed = int('seed', values.seed) as number;
    const widths = (values.widths as string).split(',').map((w) => int('widths', w) as number);
    const limitTrain = int('limit-train', values['limit-train']);
    const limitTest = int('limit-test', values['limit-test']);
    const machine = describeMachine();
    const rows: Row[] = [];
    const datasets = (values.datasets as string).split(',');
    const cache = new RowCache<Row>('accuracy-size', { widths, epochs, seed, limitTrain, limitTest });
    if (cache.size) process.stderr.write(`accuracy-size: resuming, ${cache.size} rows already in ${cache.path}\n`);
    for (const name of datasets) {
      const data = await loadDataset(name, { limitTrain, limitTest });
      for (const m of MODELS) {
        const label = `${data.name} ${m.name}`;
        const done = cache.get(label);
        if (done) {
          rows.push(done);
          continue;
        }
        const trained = await trainRun(data, {
          arch: 'mlp',
          widths,
          binarizeWeights: m.weights,
          binarizeActivations: m.activations,
          epochs,
          batchSize: 100,
          learningRate: 0.002,
          seed,
          onProgress: (p) => {
            if (p.phase === 'epoch') {
              process.stderr.write(
                `${label}: epoch ${p.record.epoch}/${p.epochs} test ${(p.record.testAccuracy * 100).toFixed(2)}%\n`,
              );
            }
          },
        });
        const { bytes, manifest } = exportOnnx(trained.frozen);
        const file = parseModelFile(bytes, `${label}.onnx`);
        const backend = await createBackend('ort-node', file);
        const result = await evaluate(backend, file, data).finally(() => backend.dispose());
        const binary = manifest.layers.filter((l) => l.weights !== 'none');
        const layers = binary.length ? binary : manifest.layers;
        const row: Row = {
          dataset: data.name,
          model: m.name,
          weights: m.weights,
          activations: m.activations,
          testAccuracy: result.accuracy,
          onnxBytes: bytes.length,
          bitsPerWeight:
            (layers.reduce((a, l) => a + l.weightBytes, 0) * 8) / layers.reduce((a, l) => a + l.weightCount, 0),
          maxLayerBitsPerWeight: Math.max(...layers.map((l) => l.bitsPerWeight)),
          trainSeconds: trained.training.durationMs / 1000,
        };
        cache.put(label, row);
        rows.push(row);
      }
    }
    const goals = evaluateGoals(rows);
    const inputs = {
      arch: 'mlp',
      widths,
      epochs,
      seed,
      limitTrain: limitTrain ?? 'all',
      limitTest: limitTest ?? 'all',
      datasets,
    };
    const record = benchRecord('accuracy-size', { inputs, rows, goals }, values.save);
    if (json) {
      process.stdout.write(`${record}\n`);
      return 0;
    }
    const out: string[] = [
      `accuracy-size: MLP ${widths.join('-')}, ${epochs} epochs, seed ${seed}; accuracy by onnxruntime-node on each full test split`,
      `machine: ${machineLine(machine)}`,
      '',
      formatTable(
        [
          'data set',
          'model',
          'test accuracy',
          'vs float',
          'ONNX bytes',
          'vs float',
          'bits/weight',
          'worst layer',
          'train s',
        ],
        rows.map((r) => {
          const base = rows.find((b) => b.dataset === r.dataset && b.weights === 'none') ?? r;
          return [
            r.dataset,
            r.model,
            `${(r.testAccuracy * 100).toFixed(2)}%`,
            `${((r.testAccuracy - base.testAccuracy) * 100).toFixed(2)} pt`,
            formatBytes(r.onnxBytes),
            `${(base.onnxBytes / r.onnxBytes).toFixed(1)}x`,
            r.bitsPerWeight.toFixed(3),
            r.maxLayerBitsPerWeight.toFixed(3),
            r.trainSeconds.toFixed(0),
          ];
        }),
      ),
      '',
      ...(goals.length
        ? ['Goals (issue 2, Fashion-MNIST):', ...goalLines(goals, 3)]
        : ['Goals (issue 2) are on Fashion-MNIST, which this run left out: none reported.']),
    ];
    process.stdout.write(`${out.join('\n')}\n`);
    return 0;
  },
};

function evaluateGoals(rows: Row[]): Goal[] {
  const fm = rows.filter((r) => r.dataset === 'fashion-mnist');
  if (fm.length === 0) return [];
  const pick = (weights: BinarizeMode, activations: BinarizeMode): Row | undefined =>
    fm.find((r) => r.weights === weights && r.activations === activations);
  const goals: Goal[] = [];
  const float = pick('none', 'none');
  const dab = pick('dab', 'none');
  const xnor = pick('xnor', 'none');
  if (float)
    goals.push(atLeast('float MLP test accuracy >= 89%', float.testAccuracy * 100, GOALS.floatAccuracy * 100, 'pt'));
  if (float && dab) {
    const drop = (float.testAccuracy - dab.testAccuracy) * 100;
    goals.push(atMost('dab weights within 1.5 pt of float', drop, GOALS.dabWithinPoints, 'pt'));
  }
  if (dab && xnor) {
    goals.push(atLeast('dab weights above xnor weights', (dab.testAccuracy - xnor.testAccuracy) * 100, 0, 'pt', true));
  }
  const binary = fm.filter((r) => r.weights !== 'none');
  if (binary.length) {
    const worst = Math.max(...binary.map((r) => r.maxLayerBitsPerWeight));
    goals.push(atMost('every binarized layer <= 1.1 bits per weight', worst, GOALS.maxBitsPerWeight, 'bits'));
  }
  return goals;
}
