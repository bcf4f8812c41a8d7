// prune: MINT (as published, and cmp's pairwise variant) vs GSS vs magnitude at equal pruned share and equal retraining,
// 3 seeds, on the MINT paper's MNIST MLP and a Fashion-MNIST conv net, with the paper's figures beside ours.

import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pruneRun } from '../src/compress/prune-run.js';
import {
  nonzeroWeights,
  weightCount,
  type GroupScores,
  type PruneGranularity,
  type PruneMethod,
} from '../src/compress/prune.js';
import { specFor } from '../src/compress/train-run.js';
import { evaluateFrozen, heldOut, train, type TrainOptions } from '../src/compress/train.js';
import { nowMs, percentile } from '../src/core/clock.js';
import { freeze, type FrozenModel } from '../src/core/frozen.js';
import { loadRun, RUN_MODEL_FILE, saveRun, type Run } from '../src/core/run.js';
import { isWeightLayer, type ModelSpec } from '../src/core/spec.js';
import { CMP_VERSION } from '../src/core/version.js';
import { loadDataset, type Dataset } from '../src/data/datasets.js';
import { CmpError } from '../src/errors.js';
import { exportOnnx } from '../src/export/export-onnx.js';
import { createBackend } from '../src/runtime/backends.js';
import { evaluate, inputDimsFor } from '../src/runtime/evaluate.js';
import { parseModelFile } from '../src/runtime/model-file.js';
import { formatBytes, formatTable } from '../src/cli/table.js';
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

/** Which weights a target share counts: the MINT paper's (layer 2, fc2's 500x300) or the whole network's. */
type Measure = 'layer 2' | 'network';

interface Setup {
  name: string;
  dataset: string;
  arch: string;
  widths?: number[];
  /** Hidden layers keep batch norm (cmp's default) or not (the paper's MLP has none). */
  batchNorm: boolean;
  train: Omit<TrainOptions, 'seed'>;
  retrain: Omit<TrainOptions, 'seed'>;
  /** Units per MINT group (the other methods score units one by one). */
  mintGroupSize: number;
  targets: { measure: Measure; share: number }[];
}

/** Held out from the end of the training split for every setup: validation accuracy, never the test split. */
const VALIDATION = 5000;

/** The held-out count: 5000, or a sixth of a small slice. */
function validationCount(data: Dataset): number {
  return Math.min(VALIDATION, Math.floor(data.train.count / 6));
}

/**
 * The MINT paper's MNIST MLP: 784-500-300-10, ReLU, dropout 0.2 after each hidden layer, no batch norm (the authors'
 * `mlp/model/mlp.py`); SGD with Nesterov momentum 0.9 and weight decay 1e-4 under a step schedule (their README's
 * command; rate, epochs and milestones are not given there, so these are ours, fixed before any run). "Layer 2" is fc2.
 */
const MINT_MLP: Setup = {
  name: 'mnist:mint-mlp',
  dataset: 'mnist',
  arch: 'mlp',
  widths: [500, 300],
  batchNorm: false,
  train: {
    epochs: 10,
    batchSize: 100,
    learningRate: 0.05,
    dropout: 0.2,
    sgd: { momentum: 0.9, weightDecay: 1e-4, milestones: [5, 8], gamma: 0.1 },
  },
  // Retraining as long as the training and at its peak rate: the pruned networks are small (an epoch takes seconds),
  // and 4 epochs at a fifth of that rate lost 0.8-1.5 points of validation accuracy in a first run (seed 1).
  retrain: {
    epochs: 15,
    batchSize: 100,
    learningRate: 0.05,
    dropout: 0.2,
    sgd: { momentum: 0.9, weightDecay: 1e-4, milestones: [7, 11], gamma: 0.1 },
  },
  mintGroupSize: 10,
  targets: [
    { measure: 'layer 2', share: 0.96 },
    { measure: 'network', share: 0.9 },
  ],
};

/** cmp's conv net (conv5x5 16, pool, conv5x5 32, pool, fc 256, batch norm) with its Adam recipe; full retraining. */
const LENET: Setup = {
  name: 'fashion-mnist:lenet',
  dataset: 'fashion-mnist',
  arch: 'lenet',
  batchNorm: true,
  train: { epochs: 10, batchSize: 100, learningRate: 0.002 },
  retrain: { epochs: 10, batchSize: 100, learningRate: 0.001 },
  mintGroupSize: 4,
  targets: [{ measure: 'network', share: 0.9 }],
};

const SETUPS: readonly Setup[] = Object.freeze([MINT_MLP, LENET]);
/**
 * Rows at the paper's own granularity: blocks of connections between a parent group and a child group are cut (layer
 * 2's for the paper's measure; every layer's, fc1's blocks from groups of pixels included, for the whole network), every
 * method at the target itself. Kept out of Setup so that the rows whole-unit pruning saved earlier still resume.
 */
const CONNECTION_TARGETS: Readonly<Record<string, Setup['targets']>> = Object.freeze({
  [MINT_MLP.name]: [
    { measure: 'layer 2', share: 0.96 },
    { measure: 'network', share: 0.9 },
  ],
});
const CONNECTION_METHODS: readonly PruneMethod[] = Object.freeze(['mint', 'magnitude', 'mint-pairwise']);
const METHODS: readonly PruneMethod[] = Object.freeze(['mint', 'magnitude', 'mint-pairwise', 'gss']);
/** GSS's group lasso as the seed describes it: keep-alive share 5%, one unit per group, with the Adam recipe. */
const GSS = Object.freeze({ lambda: 1.5, keepAlive: 0.05, groupSize: 1 });
const SAMPLES_PER_CLASS = 250;

/** The authors' table (MichiganCOG/MINT README; SEEDS.md section 3): MNIST MLP, only layer 2 compared. */
const PAPER = Object.freeze({
  baseline: 0.9859,
  mint: { layer2Pruned: 0.962, accuracy: 0.9847, memoryMb: 0.022, baselineMemoryMb: 0.537 },
});

interface Row {
  setup: string;
  seed: number;
  method: PruneMethod | 'unpruned';
  /** Absent in rows of whole-unit pruning. */
  granularity?: 'connection';
  measure: Measure | '-';
  target: number;
  layer2Pruned: number;
  weightsPruned: number;
  weights: number;
  testAccuracy: number;
  validationAccuracy: number;
  onnxBytes: number;
  ortP50Ms: number;
  bitwasmP50Ms: number;
  seconds: number;
}

export const prune: Benchmark = {
  name: 'prune',
  summary: 'MINT as published, its pairwise variant, GSS and magnitude pruning at equal share and retraining, 3 seeds',
  async run(argv: string[], json: boolean): Promise<number> {
    const values = parseBenchFlags(argv, {
      setups: { default: SETUPS.map((s) => s.name).join(',') },
      methods: { default: METHODS.join(',') },
      seeds: { default: '1,2,3' },
      epochs: {},
      retrain: {},
      'limit-train': {},
      'limit-test': {},
      save: {},
    });
    const epochs = positiveInt('epochs', values.epochs);
    const retrain = positiveInt('retrain', values.retrain);
    const limitTrain = positiveInt('limit-train', values['limit-train']);
    const limitTest = positiveInt('limit-test', values['limit-test']);
    const seeds = (values.seeds as string).split(',').map((s) => positiveInt('seeds', s) as number);
    const methods = (values.methods as string).split(',') as PruneMethod[];
    for (const m of methods) {
      if (!METHODS.includes(m))
        throw new CmpError('BAD_FLAG', `Unknown method "${m}". Use some of: ${METHODS.join(', ')}.`);
    }
    const recipes = SETUPS.map((setup) => ({
      ...setup,
      train: { ...setup.train, ...(epochs ? { epochs } : {}) },
      retrain: { ...setup.retrain, ...(retrain ? { epochs: retrain } : {}) },
    }));
    const setups = (values.setups as string).split(',').map((name) => {
      const setup = recipes.find((s) => s.name === name);
      if (!setup) {
        throw new CmpError(
          'BAD_FLAG',
          `Unknown setup "${name}". Use some of: ${SETUPS.map((s) => s.name).join(', ')}.`,
        );
      }
      return setup;
    });
    const inputs = {
      setups,
      seeds,
      validation: VALIDATION,
      samplesPerClass: SAMPLES_PER_CLASS,
      gss: GSS,
      limitTrain: limitTrain ?? 'all',
      limitTest: limitTest ?? 'all',
    };
    // One cache for every selection of setups, methods and seeds: a run of a few of them fills rows the full run reuses.
    const cache = new RowCache<Row>('prune', { ...inputs, setups: recipes, seeds: 'any' });
    // Trained models are kept beside the rows, so a resumed run does not train them again; their folder is keyed by
    // what shapes them (recipe, data, seed), so a change to the retraining reuses them.
    const runsDir = join(benchWorkDir(), 'prune-runs');
    const log = (text: string): boolean => process.stderr.write(`${text}\n`);
    const epochLog: TrainOptions['onProgress'] = (p) => {
      if (p.phase === 'epoch')
        log(
          `  epoch ${p.record.epoch}/${p.epochs}: loss ${p.record.loss.toFixed(4)}, ${(p.record.durationMs / 1000).toFixed(0)} s`,
        );
    };
    log(`prune: ${cache.size} rows from ${cache.path}`);
    const rows: Row[] = [];
    for (const setup of setups) {
      let data: Dataset | undefined;
      const dataset = async (): Promise<Dataset> =>
        (data ??= await loadDataset(setup.dataset, { limitTrain, limitTest }));
      for (const seed of seeds) {
        const trained = async (kind: 'plain' | 'gss'): Promise<{ dir: string; seconds: number }> => {
          const shaping = JSON.stringify({
            train: setup.train,
            batchNorm: setup.batchNorm,
            widths: setup.widths,
            limitTrain,
            gss: GSS,
          });
          const hash = createHash('sha256').update(shaping).digest('hex').slice(0, 8);
          const dir = join(runsDir, `${setup.name.replace(':', '-')}-${kind}-${seed}-${hash}`);
          if (existsSync(join(dir, RUN_MODEL_FILE))) return { dir, seconds: 0 };
          const d = await dataset();
          const began = nowMs();
          log(`${setup.name} seed ${seed}: training the ${kind} model (${setup.train.epochs} epochs) into ${dir}`);
          const spec = setupSpec(setup, d);
          const options: TrainOptions =
            kind === 'gss'
              ? { ...LENET.train, epochs: setup.train.epochs, seed, groupSparsity: GSS }
              : { ...setup.train, seed };
          // Each epoch leaves a checkpoint, so a training longer than a session carries on where it stopped.
          const result = await train(spec, d, {
            ...options,
            validationCount: validationCount(d),
            onProgress: epochLog,
            checkpointDir: `${dir}.checkpoint`,
          });
          saveRun(dir, { cmpVersion: CMP_VERSION, spec, training: result.training }, result.tensors);
          return { dir, seconds: (nowMs() - began) / 1000 };
        };
        const baseKey = `${setup.name}|${seed}|unpruned`;
        let base = cache.get(baseKey);
        if (!base) {
          const { dir, seconds } = await trained('plain');
          const d = await dataset();
          const run = loadRun(dir);
          base = await row(setup, seed, 'unpruned', '-', 0, run.record.spec, run, d, seconds);
          cache.put(baseKey, base);
        }
        rows.push(base);
        log(rowLine(base));
        const passes: { granularity: PruneGranularity; method: PruneMethod; targets: Setup['targets'] }[] = [
          ...methods.map((method) => ({ granularity: 'unit' as const, method, targets: setup.targets })),
          ...methods
            .filter((m) => CONNECTION_METHODS.includes(m))
            .map((method) => ({
              granularity: 'connection' as const,
              method,
              targets: CONNECTION_TARGETS[setup.name] ?? [],
            })),
        ];
        const scored = new Map<PruneMethod, GroupScores[]>();
        for (const { granularity, method, targets } of passes) {
          const label = granularity === 'connection' ? `${method}@connection` : method;
          for (const target of targets) {
            // MINT removes groups of units, so it lands a little past the target; the other methods (one unit at a
            // time) are then pruned to the share MINT reached, for an equal pruned share. At connection granularity
            // every method cuts the same blocks, so they all aim at the target itself.
            const mintLabel = granularity === 'connection' ? 'mint@connection' : 'mint';
            const mintKey = `${setup.name}|${seed}|${mintLabel}|${target.measure}|${target.share}`;
            const mintRow = method === 'mint' || granularity === 'connection' ? undefined : cache.get(mintKey);
            const share = !mintRow
              ? target.share
              : target.measure === 'layer 2'
                ? mintRow.layer2Pruned
                : mintRow.weightsPruned;
            const key =
              method === 'mint' ? mintKey : `${mintKey.replace(`|${mintLabel}|`, `|${label}|`)}|${share.toFixed(5)}`;
            let r = cache.get(key);
            if (!r) {
              const d = await dataset();
              const source = loadRun((await trained(method === 'gss' ? 'gss' : 'plain')).dir);
              const began = nowMs();
              const result = await pruneRun(source, d, {
                method,
                sparsity: share,
                scope: 'per-layer',
                granularity,
                counted: target.measure === 'layer 2' ? ['fc2'] : undefined,
                groupSize: method.startsWith('mint') || granularity === 'connection' ? setup.mintGroupSize : 1,
                samplesPerClass: SAMPLES_PER_CLASS,
                bins: 8,
                seed,
                // Scores depend on the group size only: unit and connection pruning share them.
                scores: method.startsWith('mint') ? scored.get(method) : undefined,
                retrain: setup.retrain.epochs,
                batchSize: setup.retrain.batchSize,
                learningRate: setup.retrain.learningRate,
                sgd: setup.retrain.sgd,
                dropout: setup.retrain.dropout,
                validationCount: validationCount(d),
                onProgress: (text) => log(`  ${text}`),
                onTrainProgress: epochLog,
                checkpointDir: join(runsDir, `retrain-${createHash('sha256').update(key).digest('hex').slice(0, 12)}`),
              });
              if (method.startsWith('mint')) scored.set(method, result.scores);
              const seconds = (nowMs() - began) / 1000;
              r = await row(setup, seed, method, target.measure, target.share, source.record.spec, result, d, seconds);
              if (granularity === 'connection') r.granularity = 'connection';
              cache.put(key, r);
            }
            rows.push(r);
            log(rowLine(r));
          }
        }
      }
    }
    const goals = evaluateGoals(rows);
    const record = benchRecord('prune', { inputs, rows, summary: summarize(rows), goals }, values.save);
    if (json) {
      process.stdout.write(`${record}\n`);
      return 0;
    }
    const machine = describeMachine();
    const out = [
      `prune: one-shot structural pruning at a per-layer threshold (the other methods at the share MINT reached), then equal retraining; means over seeds ${seeds.join(',')} ` +
        `(± sample standard deviation); ${VALIDATION} training samples held out for validation; latency: batch 1, p50`,
      `machine: ${machineLine(machine)}`,
      '',
      formatTable(
        [
          'setup',
          'method',
          'target',
          'layer 2 pruned',
          'all pruned',
          'test accuracy',
          'vs unpruned',
          'validation',
          'weights MB',
          'ONNX bytes',
          'ort p50 ms',
          'bitwasm p50 ms',
          'seeds',
        ],
        [
          ...summarize(rows).map((s) => [
            s.setup,
            methodLabel(s),
            s.measure === '-' ? '-' : `${(s.target * 100).toFixed(0)}% of ${s.measure}`,
            s.setup === MINT_MLP.name ? pct(s.layer2Pruned) : '-',
            pct(s.weightsPruned),
            `${pct(s.testAccuracy, 2)} ± ${(s.testAccuracySd * 100).toFixed(2)}`,
            `${(s.drop * -100).toFixed(2)} pt`,
            pct(s.validationAccuracy, 2),
            ((s.weights * 4) / 1e6).toFixed(3),
            formatBytes(s.onnxBytes),
            s.ortP50Ms.toFixed(3),
            s.bitwasmP50Ms.toFixed(3),
            String(s.seeds),
          ]),
          [
            'paper: mnist mlp',
            'MINT',
            '-',
            pct(PAPER.mint.layer2Pruned),
            '-',
            pct(PAPER.mint.accuracy, 2),
            `${((PAPER.mint.accuracy - PAPER.baseline) * 100).toFixed(2)} pt`,
            '-',
            `${PAPER.mint.baselineMemoryMb} -> ${PAPER.mint.memoryMb} "Mb"`,
            '-',
            '-',
            '-',
            '-',
          ],
        ],
      ),
      '',
      'Goals (issue 19):',
      ...goalLines(goals),
    ];
    process.stdout.write(`${out.join('\n')}\n`);
    return 0;
  },
};

/** The setup's network: cmp's architecture, without batch norm in the hidden layers where the paper has none. */
function setupSpec(setup: Setup, data: Dataset): ModelSpec {
  const spec = specFor(data, {
    arch: setup.arch,
    widths: setup.widths,
    binarizeWeights: 'none',
    binarizeActivations: 'none',
  });
  if (setup.batchNorm) return spec;
  return { ...spec, layers: spec.layers.map((l) => (isWeightLayer(l) ? { ...l, batchNorm: false } : l)) };
}

/**
 * One row: shares of weights pruned count the weights that are not zero (connection pruning leaves zeros in place), of
 * fc2 (the paper's layer 2) and of the whole network.
 */
async function row(
  setup: Setup,
  seed: number,
  method: Row['method'],
  measure: Row['measure'],
  target: number,
  before: ModelSpec,
  model: { spec: ModelSpec; frozen: FrozenModel; tensors: Map<string, { data: Float32Array }> } | Run,
  data: Dataset,
  seconds: number,
): Promise<Row> {
  const spec = 'frozen' in model ? model.spec : model.record.spec;
  const tensors = 'frozen' in model ? new Map([...model.tensors].map(([name, t]) => [name, t.data])) : model.tensors;
  const frozen = 'frozen' in model ? model.frozen : freeze(spec, tensors);
  const hasFc2 = before.layers.some((l) => l.name === 'fc2');
  const weights = nonzeroWeights(spec, tensors);
  return {
    setup: setup.name,
    seed,
    method,
    measure,
    target,
    layer2Pruned: hasFc2 ? 1 - nonzeroWeights(spec, tensors, ['fc2']) / weightCount(before, ['fc2']) : 0,
    weightsPruned: 1 - weights / weightCount(before),
    weights,
    validationAccuracy: await evaluateFrozen(frozen, data, heldOut(data, validationCount(data))),
    ...(await measureModel(frozen, data)),
    seconds,
  };
}

function rowLine(r: Row): string {
  return (
    `${r.setup} seed ${r.seed} ${methodLabel(r)} ${r.measure} ${r.target}: layer 2 ${pct(r.layer2Pruned)}, all ${pct(r.weightsPruned)}, ` +
    `test ${pct(r.testAccuracy, 2)}, validation ${pct(r.validationAccuracy, 2)} (${r.seconds.toFixed(0)} s)`
  );
}

/** The method, and the granularity where it is not whole units. */
function methodLabel(r: Pick<Row, 'method' | 'granularity'>): string {
  return r.granularity ? `${r.method}, ${r.granularity}s` : r.method;
}

function pct(v: number, digits = 1): string {
  return `${(v * 100).toFixed(digits)}%`;
}

/** Test accuracy, ONNX bytes, and batch-1 latency (p50 of 300 single-image runs) in onnxruntime-node and bitwasm. */
async function measureModel(
  frozen: FrozenModel,
  data: Dataset,
): Promise<{ testAccuracy: number; onnxBytes: number; ortP50Ms: number; bitwasmP50Ms: number }> {
  const { bytes } = exportOnnx(frozen);
  const file = parseModelFile(bytes, 'bench.onnx');
  const p50 = async (name: string): Promise<{ p50: number; accuracy: number }> => {
    const backend = await createBackend(name, file);
    try {
      const { accuracy } = name === 'ort-node' ? await evaluate(backend, file, data) : { accuracy: 0 };
      const features = data.inputShape.reduce((a, b) => a * b, 1);
      const dims = inputDimsFor(file, data, 1);
      const times: number[] = [];
      for (let i = 0; i < 330; i++) {
        const input = data.test.x.slice((i % data.test.count) * features, ((i % data.test.count) + 1) * features);
        const start = nowMs();
        await backend.run(input, dims);
        if (i >= 30) times.push(nowMs() - start);
      }
      return { p50: percentile(times, 50), accuracy };
    } finally {
      await backend.dispose();
    }
  };
  const ort = await p50('ort-node');
  const bitwasm = await p50('bitwasm');
  return { testAccuracy: ort.accuracy, onnxBytes: bytes.length, ortP50Ms: ort.p50, bitwasmP50Ms: bitwasm.p50 };
}

interface Summary extends Omit<Row, 'seed' | 'seconds'> {
  testAccuracySd: number;
  /** Mean over seeds of (unpruned - pruned) test accuracy, same seed. */
  drop: number;
  seeds: number;
}

/** Rows averaged over seeds, per setup, method and target. */
function summarize(rows: Row[]): Summary[] {
  const groups = new Map<string, Row[]>();
  for (const r of rows) {
    const key = `${r.setup}|${r.method}|${r.granularity ?? 'unit'}|${r.measure}|${r.target}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()].map((g) => {
    const mean = (f: (r: Row) => number): number => g.reduce((a, r) => a + f(r), 0) / g.length;
    const accuracy = mean((r) => r.testAccuracy);
    const sd =
      g.length > 1 ? Math.sqrt(g.reduce((a, r) => a + (r.testAccuracy - accuracy) ** 2, 0) / (g.length - 1)) : 0;
    const baseOf = (r: Row): Row | undefined =>
      rows.find((b) => b.setup === r.setup && b.seed === r.seed && b.method === 'unpruned');
    return {
      setup: g[0].setup,
      method: g[0].method,
      ...(g[0].granularity ? { granularity: g[0].granularity } : {}),
      measure: g[0].measure,
      target: g[0].target,
      layer2Pruned: mean((r) => r.layer2Pruned),
      weightsPruned: mean((r) => r.weightsPruned),
      weights: mean((r) => r.weights),
      testAccuracy: accuracy,
      testAccuracySd: sd,
      drop: mean((r) => (baseOf(r)?.testAccuracy ?? r.testAccuracy) - r.testAccuracy),
      validationAccuracy: mean((r) => r.validationAccuracy),
      onnxBytes: mean((r) => r.onnxBytes),
      ortP50Ms: mean((r) => r.ortP50Ms),
      bitwasmP50Ms: mean((r) => r.bitwasmP50Ms),
      seeds: g.length,
    };
  });
}

function evaluateGoals(rows: Row[]): Goal[] {
  const summary = summarize(rows);
  const find = (
    setup: string,
    method: string,
    measure: Measure,
    share: number,
    granularity?: 'connection',
  ): Summary | undefined =>
    summary.find(
      (s) =>
        s.setup === setup &&
        s.method === method &&
        s.granularity === granularity &&
        s.measure === measure &&
        s.target === share,
    );
  const goals: Goal[] = [];
  const seedsNote = (s: Summary): string => `${s.seeds} seed${s.seeds === 1 ? '' : 's'}`;
  // The paper's measure, at the paper's granularity (blocks of connections) and at cmp's whole units.
  for (const granularity of ['connection', undefined] as const) {
    const paper = find(MINT_MLP.name, 'mint', 'layer 2', 0.96, granularity);
    if (!paper) continue;
    const how = granularity ? 'cutting connections (the paper)' : 'removing units';
    goals.push(
      atLeast(
        `MNIST MLP, MINT ${how}: share of layer 2 pruned (${seedsNote(paper)})`,
        paper.layer2Pruned * 100,
        96,
        '%',
      ),
    );
    goals.push(atMost(`MNIST MLP, MINT ${how} at that share: points lost vs unpruned`, paper.drop * 100, 0.2, 'pt'));
  }
  const whole = summary.filter(
    (s) => s.setup === MINT_MLP.name && s.measure === 'network' && s.target === 0.9 && s.method !== 'unpruned',
  );
  if (whole.length > 0) {
    const best = whole.reduce((a, s) => (s.drop < a.drop ? s : a));
    goals.push(
      atMost(
        `MNIST MLP, >= 90% of all weights pruned (${pct(best.weightsPruned)}, best: ${best.method}, ${seedsNote(best)}): points lost`,
        best.drop * 100,
        0.5,
        'pt',
      ),
    );
  }
  for (const setup of SETUPS) {
    for (const granularity of [undefined, 'connection'] as const) {
      const mint = find(setup.name, 'mint', 'network', 0.9, granularity);
      const magnitude = find(setup.name, 'magnitude', 'network', 0.9, granularity);
      if (mint && magnitude) {
        goals.push(
          atLeast(
            `${setup.name}: MINT minus magnitude at 90%${granularity ? ', cutting connections' : ''} (${seedsNote(mint)} vs ${seedsNote(magnitude)})`,
            (mint.testAccuracy - magnitude.testAccuracy) * 100,
            0,
            'pt',
          ),
        );
      }
    }
  }
  // Files and latency fall as the pruned share rises: MINT's rows of the MNIST MLP, ordered by share.
  const ladder = summary
    .filter((s) => s.setup === MINT_MLP.name && !s.granularity && (s.method === 'unpruned' || s.method === 'mint'))
    .sort((a, b) => a.weightsPruned - b.weightsPruned);
  if (ladder.length >= 2) {
    const first = ladder[0];
    const last = ladder[ladder.length - 1];
    const falls = (f: (s: Summary) => number): number => (ladder.slice(1).every((s, i) => f(s) < f(ladder[i])) ? 1 : 0);
    goals.push(
      atLeast(
        'MNIST MLP, MINT: ONNX bytes fall at every step of pruned share (1 = yes)',
        falls((s) => s.onnxBytes),
        1,
        '',
      ),
    );
    goals.push(
      atLeast(
        `MNIST MLP, MINT: bitwasm batch-1 latency falls with share (${first.bitwasmP50Ms.toFixed(3)} -> ${last.bitwasmP50Ms.toFixed(3)} ms; 1 = yes)`,
        falls((s) => s.bitwasmP50Ms),
        1,
        '',
      ),
    );
  }
  return goals;
}
