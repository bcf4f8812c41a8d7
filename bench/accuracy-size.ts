// accuracy-size: float against 1-bit (XNOR and DAB; weights only, weights and activations), int8 (post-training and
// quantization-aware) and the hybrid (int8 first and last layer, DAB weights between), MLP and conv net, Fashion-MNIST
// and MNIST, over several seeds: test accuracy (mean and spread) with onnxruntime-node, ONNX bytes and bits per weight,
// with the issues' goals judged on the means and reported met or missed.

import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { DEFAULT_KEEP_FLOAT_ACTIVATIONS, trainRun, type TrainRunOptions } from '../src/compress/train-run.js';
import type { TrainResult } from '../src/compress/train.js';
import { loadRun, RUN_MODEL_FILE, saveRun } from '../src/core/run.js';
import { CMP_VERSION } from '../src/core/version.js';
import { freeze } from '../src/core/frozen.js';
import type { FrozenModel } from '../src/core/frozen.js';
import { withBinarization, type BinarizeMode, type WeightMode } from '../src/core/spec.js';
import { loadDataset, type Dataset } from '../src/data/datasets.js';
import { exportOnnx } from '../src/export/export-onnx.js';
import { createBackend } from '../src/runtime/backends.js';
import { evaluate } from '../src/runtime/evaluate.js';
import { parseModelFile } from '../src/runtime/model-file.js';
import { formatBytes, formatTable } from '../src/cli/table.js';
import { CmpError } from '../src/errors.js';
import {
  atLeast,
  atMost,
  benchRecord,
  goalLines,
  parseBenchFlags,
  positiveInt,
  benchWorkDir,
  RowCache,
  type Goal,
} from './common.js';
import { describeMachine, machineLine } from './machine.js';
import type { Benchmark } from './run.js';

interface FloatModel {
  spec: FrozenModel['spec'];
  tensors: Map<string, Float32Array>;
}

interface Model {
  name: string;
  weights: WeightMode;
  activations: BinarizeMode;
  /** Weight layers in int8 ('all', 'first', 'last'). */
  int8?: string[];
  /** Quantized after training from the float model of the same seed, without training again. */
  postTraining?: boolean;
  /**
   * Fine-tuned from the float model of the same seed for this share of the bench's epochs (the two-stage training
   * of binary-network practice, and the README's `cmp train --from --preset hybrid` flow), instead of from scratch.
   */
  fromFloat?: number;
}

const MODELS: readonly Model[] = Object.freeze([
  { name: 'float', weights: 'none', activations: 'none' },
  { name: 'int8 post-training', weights: 'int8', activations: 'none', int8: ['all'], postTraining: true },
  { name: 'int8 quant-aware', weights: 'int8', activations: 'none', int8: ['all'] },
  { name: 'xnor weights', weights: 'xnor', activations: 'none' },
  { name: 'dab weights', weights: 'dab', activations: 'none' },
  { name: 'hybrid', weights: 'dab', activations: 'none', int8: ['first', 'last'] },
  { name: 'hybrid from float', weights: 'dab', activations: 'none', int8: ['first', 'last'], fromFloat: 0.5 },
  { name: 'xnor weights+act', weights: 'xnor', activations: 'xnor' },
  { name: 'dab weights+act', weights: 'dab', activations: 'dab' },
]);

/** The goals of issue 2 (Fashion-MNIST MLP) and issue 18, judged on the seed means. */
const GOALS = Object.freeze({
  floatAccuracy: 0.89,
  dabWithinPoints: 1.5,
  maxBitsPerWeight: 1.1,
  hybridWithinPoints: 0.5,
  hybridSmaller: 10,
  int8WithinPoints: 0.3,
  int8Smaller: 3.9,
});

interface Row {
  dataset: string;
  arch: string;
  model: string;
  seed: number;
  testAccuracy: number;
  onnxBytes: number;
  /** Over the compressed (int8 or binary) layers: stored bits per weight; 32 for float. */
  bitsPerWeight: number;
  /** The worst binarized layer (0 without one). */
  maxLayerBitsPerWeight: number;
  trainSeconds: number;
}

/** One configuration over its seeds. */
interface Summary {
  dataset: string;
  arch: string;
  model: string;
  seeds: number;
  meanAccuracy: number;
  minAccuracy: number;
  maxAccuracy: number;
  onnxBytes: number;
  bitsPerWeight: number;
  maxLayerBitsPerWeight: number;
  trainSeconds: number;
}

export const accuracySize: Benchmark = {
  name: 'accuracy-size',
  summary: 'accuracy (mean over seeds), ONNX bytes and bits per weight of float, int8, xnor, dab and hybrid models',
  async run(argv: string[], json: boolean): Promise<number> {
    const values = parseBenchFlags(argv, {
      datasets: { default: 'fashion-mnist,mnist' },
      archs: { default: 'mlp,lenet' },
      models: {},
      epochs: { default: '10' },
      widths: { default: '512,512' },
      seeds: { default: '1,2,3' },
      'limit-train': {},
      'limit-test': {},
      save: {},
    });
    const int = positiveInt;
    const epochs = int('epochs', values.epochs) as number;
    const seeds = (values.seeds as string).split(',').map((s) => int('seeds', s) as number);
    const widths = (values.widths as string).split(',').map((w) => int('widths', w) as number);
    const archs = (values.archs as string).split(',');
    const unknownArch = archs.find((a) => a !== 'mlp' && a !== 'lenet');
    if (unknownArch) throw new CmpError('BAD_FLAG', `--archs takes mlp, lenet (got "${unknownArch}").`);
    const models = values.models ? pickModels(values.models) : MODELS;
    const limitTrain = int('limit-train', values['limit-train']);
    const limitTest = int('limit-test', values['limit-test']);
    const machine = describeMachine();
    const rows: Row[] = [];
    const datasets = (values.datasets as string).split(',');
    const cache = new RowCache<Row>('accuracy-size-seeds', { widths, epochs, limitTrain, limitTest });
    if (cache.size) process.stderr.write(`accuracy-size: resuming, ${cache.size} rows already in ${cache.path}\n`);
    // Each training leaves a checkpoint after every epoch (keyed by what shapes it, cleared when it ends), so a conv
    // net's ten epochs on the full split carry on after a stop instead of starting again.
    const epochsDir = join(benchWorkDir(), 'accuracy-size-epochs');
    // The float models kept for the rows built on them, apart per set of inputs (a short run's are not a full one's).
    const modelsDir = join(benchWorkDir(), 'accuracy-size-models', basename(cache.path, '.json'));
    for (const name of datasets) {
      const data = await loadDataset(name, { limitTrain, limitTest });
      for (const arch of archs) {
        for (const seed of seeds) {
          // The float model of this seed, kept for post-training quantization.
          let float: FloatModel | undefined;
          for (const m of models) {
            const label = `${data.name} ${arch} ${m.name} seed ${seed}`;
            const done = cache.get(label);
            if (done) {
              rows.push(done);
              continue;
            }
            let frozen: FrozenModel;
            let trainSeconds = 0;
            if (m.postTraining) {
              float ??= await floatOf(data, { arch, widths, epochs, seed }, modelsDir, epochsDir);
              const spec = withBinarization(float.spec, {
                int8Weights: m.int8,
                keepFloatWeights: [],
                keepFloatInputs: [],
              });
              frozen = freeze(spec, float.tensors);
            } else if (m.fromFloat) {
              float ??= await floatOf(data, { arch, widths, epochs, seed }, modelsDir, epochsDir);
              const spec = withBinarization(float.spec, {
                binarizeWeights: binaryWeights(m),
                ...(m.int8 ? { int8Weights: m.int8 } : {}),
                keepFloatWeights: [],
                keepFloatInputs: [...DEFAULT_KEEP_FLOAT_ACTIVATIONS],
              });
              const trained = await trainRun(data, {
                ...trainOptions(arch, widths, Math.max(1, Math.round(epochs * m.fromFloat)), seed, label),
                checkpointDir: checkpointDir(epochsDir, label),
                binarizeWeights: binaryWeights(m),
                binarizeActivations: m.activations,
                from: { dir: floatDir(modelsDir, data.name, arch, seed), spec, tensors: float.tensors },
              });
              frozen = trained.frozen;
              trainSeconds = trained.training.durationMs / 1000;
            } else {
              const trained = await trainRun(data, {
                ...trainOptions(arch, widths, epochs, seed, label),
                checkpointDir: checkpointDir(epochsDir, label),
                binarizeWeights: binaryWeights(m),
                binarizeActivations: m.activations,
                ...(m.int8 ? { int8: m.int8 } : {}),
              });
              if (m.weights === 'none') float = keepFloat(floatDir(modelsDir, data.name, arch, seed), trained);
              frozen = trained.frozen;
              trainSeconds = trained.training.durationMs / 1000;
            }
            const row = await measure(frozen, data, { dataset: data.name, arch, model: m.name, seed, trainSeconds });
            cache.put(label, row);
            rows.push(row);
          }
        }
      }
    }
    const summaries = summarize(rows);
    const goals = evaluateGoals(summaries);
    const inputs = {
      archs,
      widths,
      lenet: 'conv 5x5 x16, pool, conv 5x5 x32, pool, dense 256',
      epochs,
      seeds,
      limitTrain: limitTrain ?? 'all',
      limitTest: limitTest ?? 'all',
      datasets,
    };
    const record = benchRecord('accuracy-size', { inputs, rows, summaries, goals }, values.save);
    if (json) {
      process.stdout.write(`${record}\n`);
      return 0;
    }
    const out: string[] = [
      `accuracy-size: ${archs.map((a) => (a === 'mlp' ? `MLP ${widths.join('-')}` : 'LeNet (conv 16, conv 32, dense 256)')).join(' and ')}, ` +
        `${epochs} epochs, seeds ${seeds.join(',')}; accuracy by onnxruntime-node on each test split; mean (min..max) over the seeds`,
      `machine: ${machineLine(machine)}`,
      '',
      formatTable(
        [
          'data set',
          'arch',
          'model',
          'seeds',
          'test accuracy',
          'min..max',
          'vs float',
          'ONNX bytes',
          'vs float',
          'bits/weight',
          'train s',
        ],
        summaries.map((s) => {
          // Without a float row (--models left it out) there is nothing to compare with.
          const base = baseline(summaries, s);
          return [
            s.dataset,
            s.arch,
            s.model,
            s.seeds,
            `${(s.meanAccuracy * 100).toFixed(2)}%`,
            `${(s.minAccuracy * 100).toFixed(2)}..${(s.maxAccuracy * 100).toFixed(2)}`,
            base ? `${((s.meanAccuracy - base.meanAccuracy) * 100).toFixed(2)} pt` : '-',
            formatBytes(s.onnxBytes),
            base ? `${(base.onnxBytes / s.onnxBytes).toFixed(1)}x` : '-',
            s.bitsPerWeight.toFixed(3),
            s.trainSeconds.toFixed(0),
          ];
        }),
      ),
      '',
      ...dabAgainstXnorLines(summaries),
      goals.length ? 'Goals (issues 2 and 18, on the means):' : 'No goal applies to the rows this run measured.',
      ...goalLines(goals, 3),
    ];
    process.stdout.write(`${out.join('\n')}\n`);
    return 0;
  },
};

function pickModels(list: string): Model[] {
  const names = list.split(',');
  const unknown = names.find((n) => !MODELS.some((m) => m.name === n));
  if (unknown !== undefined)
    throw new CmpError('BAD_FLAG', `--models takes: ${MODELS.map((m) => m.name).join(', ')} (got "${unknown}").`);
  return MODELS.filter((m) => names.includes(m.name));
}

function trainOptions(
  arch: string,
  widths: number[],
  epochs: number,
  seed: number,
  label: string,
): Omit<TrainRunOptions, 'binarizeWeights' | 'binarizeActivations'> {
  return {
    arch,
    ...(arch === 'mlp' ? { widths } : {}),
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
  };
}

/** A model's 1-bit weight mode; int8 layers are float to the binarizer. */
function binaryWeights(m: Model): BinarizeMode {
  return m.weights === 'int8' ? 'none' : m.weights;
}

/** A training's per-epoch checkpoint folder, named after its row. */
function checkpointDir(epochsDir: string, label: string): string {
  return join(epochsDir, label.replace(/[^A-Za-z0-9.-]+/g, '-'));
}

/** Where the float model of a seed is kept for the rows built from it (post-training int8, the hybrid from float). */
function floatDir(modelsDir: string, dataset: string, arch: string, seed: number): string {
  return join(modelsDir, `${dataset}-${arch}-float-seed-${seed}`);
}

/** Keeps a trained float model on disk, so a resumed run builds on it instead of training it again. */
function keepFloat(dir: string, trained: TrainResult): FloatModel {
  saveRun(dir, { cmpVersion: CMP_VERSION, spec: trained.spec, training: trained.training }, trained.tensors);
  return { spec: trained.spec, tensors: flat(trained.tensors) };
}

/** The float model of a seed: the one kept on disk, or trained again (its row was cached, its tensors were not). */
async function floatOf(
  data: Dataset,
  { arch, widths, epochs, seed }: { arch: string; widths: number[]; epochs: number; seed: number },
  modelsDir: string,
  epochsDir: string,
): Promise<FloatModel> {
  const dir = floatDir(modelsDir, data.name, arch, seed);
  if (existsSync(join(dir, RUN_MODEL_FILE))) {
    const run = loadRun(dir);
    return { spec: run.record.spec, tensors: run.tensors };
  }
  const label = `${data.name} ${arch} float seed ${seed}`;
  const trained = await trainRun(data, {
    ...trainOptions(arch, widths, epochs, seed, label),
    checkpointDir: checkpointDir(epochsDir, label),
    binarizeWeights: 'none',
    binarizeActivations: 'none',
  });
  return keepFloat(dir, trained);
}

function flat(tensors: Map<string, { data: Float32Array }>): Map<string, Float32Array> {
  return new Map([...tensors].map(([name, t]) => [name, t.data]));
}

/** Exports, evaluates with onnxruntime-node and sizes one model. */
async function measure(
  frozen: FrozenModel,
  data: Dataset,
  row: Pick<Row, 'dataset' | 'arch' | 'model' | 'seed' | 'trainSeconds'>,
): Promise<Row> {
  const { bytes, manifest } = exportOnnx(frozen);
  const file = parseModelFile(bytes, `${row.dataset}-${row.arch}-${row.model}.onnx`);
  const backend = await createBackend('ort-node', file);
  const result = await evaluate(backend, file, data).finally(() => backend.dispose());
  const compressed = manifest.layers.filter((l) => l.weights !== 'none');
  const layers = compressed.length ? compressed : manifest.layers;
  const binary = manifest.layers.filter((l) => l.weights === 'xnor' || l.weights === 'dab');
  return {
    ...row,
    testAccuracy: result.accuracy,
    onnxBytes: bytes.length,
    bitsPerWeight: (layers.reduce((a, l) => a + l.weightBytes, 0) * 8) / layers.reduce((a, l) => a + l.weightCount, 0),
    maxLayerBitsPerWeight: Math.max(0, ...binary.map((l) => l.bitsPerWeight)),
  };
}

function summarize(rows: Row[]): Summary[] {
  const groups = new Map<string, Row[]>();
  for (const r of rows) {
    const key = `${r.dataset}\u0000${r.arch}\u0000${r.model}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const mean = (a: number[]): number => a.reduce((s, v) => s + v, 0) / a.length;
  return [...groups.values()].map((g) => {
    const accuracies = g.map((r) => r.testAccuracy);
    return {
      dataset: g[0].dataset,
      arch: g[0].arch,
      model: g[0].model,
      seeds: g.length,
      meanAccuracy: mean(accuracies),
      minAccuracy: Math.min(...accuracies),
      maxAccuracy: Math.max(...accuracies),
      onnxBytes: mean(g.map((r) => r.onnxBytes)),
      bitsPerWeight: mean(g.map((r) => r.bitsPerWeight)),
      maxLayerBitsPerWeight: Math.max(...g.map((r) => r.maxLayerBitsPerWeight)),
      trainSeconds: mean(g.map((r) => r.trainSeconds)),
    };
  });
}

function baseline(summaries: Summary[], s: Summary): Summary | undefined {
  return summaries.find((b) => b.dataset === s.dataset && b.arch === s.arch && b.model === 'float');
}

function find(summaries: Summary[], dataset: string, arch: string, model: string): Summary | undefined {
  return summaries.find((s) => s.dataset === dataset && s.arch === arch && s.model === model);
}

/** DAB against XNOR on every data set and network: the goal is on the conv net, the MLP is reported either way. */
function dabAgainstXnorLines(summaries: Summary[]): string[] {
  const lines: string[] = [];
  for (const dab of summaries.filter((s) => s.model.startsWith('dab '))) {
    const xnor = find(summaries, dab.dataset, dab.arch, dab.model.replace('dab', 'xnor'));
    if (!xnor) continue;
    const diff = (dab.meanAccuracy - xnor.meanAccuracy) * 100;
    lines.push(
      `  ${dab.dataset} ${dab.arch} ${dab.model.slice(4)}: dab ${diff >= 0 ? '+' : ''}${diff.toFixed(2)} pt against xnor ` +
        `(means of ${Math.min(dab.seeds, xnor.seeds)} seeds)`,
    );
  }
  return lines.length ? ['DAB against XNOR:', ...lines, ''] : [];
}

function evaluateGoals(summaries: Summary[]): Goal[] {
  const goals: Goal[] = [];
  const points = (a: Summary, b: Summary): number => (a.meanAccuracy - b.meanAccuracy) * 100;
  // Issue 2, on the Fashion-MNIST MLP.
  const fmFloat = find(summaries, 'fashion-mnist', 'mlp', 'float');
  const fmDab = find(summaries, 'fashion-mnist', 'mlp', 'dab weights');
  if (fmFloat) goals.push(atLeast('FM MLP float >= 89%', fmFloat.meanAccuracy * 100, GOALS.floatAccuracy * 100, 'pt'));
  if (fmFloat && fmDab)
    goals.push(
      atMost('FM MLP dab weights within 1.5 pt of float', points(fmFloat, fmDab), GOALS.dabWithinPoints, 'pt'),
    );
  const fmBinary = summaries.filter(
    (s) => s.dataset === 'fashion-mnist' && s.arch === 'mlp' && s.maxLayerBitsPerWeight > 0,
  );
  if (fmBinary.length) {
    const worst = Math.max(...fmBinary.map((s) => s.maxLayerBitsPerWeight));
    goals.push(atMost('FM MLP every binarized layer <= 1.1 bits per weight', worst, GOALS.maxBitsPerWeight, 'bits'));
  }
  // Issue 18.
  for (const s of summaries.filter((x) => x.arch === 'lenet' && x.model === 'dab weights+act')) {
    const xnor = find(summaries, s.dataset, 'lenet', 'xnor weights+act');
    if (xnor) goals.push(atLeast(`${s.dataset} conv net dab weights+act >= xnor`, points(s, xnor), 0, 'pt'));
  }
  for (const s of summaries.filter((x) => x.model.startsWith('hybrid') || x.model.startsWith('int8 '))) {
    const float = baseline(summaries, s);
    if (!float) continue;
    const hybrid = s.model.startsWith('hybrid');
    const within = hybrid ? GOALS.hybridWithinPoints : GOALS.int8WithinPoints;
    const smaller = hybrid ? GOALS.hybridSmaller : GOALS.int8Smaller;
    const what = `${s.dataset} ${s.arch} ${s.model}`;
    goals.push(atMost(`${what} within ${within} pt of float`, points(float, s), within, 'pt'));
    goals.push(atLeast(`${what} >= ${smaller}x smaller file`, float.onnxBytes / s.onnxBytes, smaller, 'x'));
  }
  return goals;
}
