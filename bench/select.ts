// select: accuracy against real bytes per inference on the link for learned static and dynamic masks, the
// random-forest importance and random baselines, pixel and block granularity, the paper's figures beside ours, and the
// issue's goals met or missed. Finished jobs are kept in .bench/ and a rerun resumes.

import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { planToReach, scheduleFor, TRIM_SLACK, trimStaticMask, type KeepPlan } from '../src/compress/mask.js';
import { validationSplit } from '../src/compress/calibrate.js';
import {
  DEFAULT_MASK_TRAINING,
  specFor,
  trainRun,
  type MaskOptions,
  type TrainRunOptions,
} from '../src/compress/train-run.js';
import { freeze, type FrozenModel } from '../src/core/frozen.js';
import { SELECT_HEADER_BYTES } from '../src/core/codec.js';
import { selectorPath } from '../src/core/manifest.js';
import { granularityName, parseGranularity } from '../src/core/mask.js';
import type { ModelSpec } from '../src/core/spec.js';
import {
  chooseMaskCheckpoint,
  loadRun,
  RUN_MODEL_FILE,
  saveRun,
  type MaskCheckpointRecord,
  type Run,
} from '../src/core/run.js';
import { CMP_VERSION } from '../src/core/version.js';
import { loadDataset, type Dataset } from '../src/data/datasets.js';
import { CmpError } from '../src/errors.js';
import { exportOnnx } from '../src/export/export-onnx.js';
import { formatTable } from '../src/cli/table.js';
import { createBackend } from '../src/runtime/backends.js';
import { evaluate } from '../src/runtime/evaluate.js';
import { readModelFile } from '../src/runtime/model-file.js';
import {
  atLeast,
  benchRecord,
  benchWorkDir,
  goalLines,
  parseBenchFlags,
  positiveInt,
  RowCache,
  type Goal,
} from './common.js';
import { describeMachine, machineLine } from './machine.js';
import type { Benchmark } from './run.js';

/** The issue's goals: bytes per inference at most the whole input over `factor`, within `points` of unmasked. */
const GOALS: { dataset: string; factor: number; points: number }[] = [
  { dataset: 'mnist', factor: 10, points: 1 },
  { dataset: 'mnist', factor: 20, points: 0.5 },
  { dataset: 'fashion-mnist', factor: 5, points: 1.5 },
];

/**
 * The networks the bench trains. `lenet5` is the paper's LeNet-5 shape: 6 and 16 5x5 convolutions (no padding), each
 * followed by a 2x2 max pool, then 120 and 84 hidden units; cmp adds batch norm after every hidden layer.
 */
const ARCH_SETUPS: Record<string, Pick<TrainRunOptions, 'arch' | 'filters' | 'widths'>> = {
  mlp: { arch: 'mlp' },
  lenet5: { arch: 'lenet', filters: [6, 16], widths: [120, 84] },
};

/** The softening temperature of --distill (Hinton et al. 2015; prune's default too). */
const DISTILL_TEMPERATURE = 4;

const METHODS = ['full', 'random', 'importance', 'static', 'dynamic'] as const;
type Method = (typeof METHODS)[number];

/**
 * The paper's test accuracy (Oehmcke & Gieseke 2022, LeNet-5, read off its plots, approximate; ../shared/SEEDS.md
 * section 1) at a kept share of the pixels.
 */
const PAPER: { dataset: string; method: Method; kept: number; accuracy: number }[] = [
  { dataset: 'mnist', method: 'full', kept: 1, accuracy: 0.99 },
  { dataset: 'mnist', method: 'dynamic', kept: 0.05, accuracy: 0.985 },
  { dataset: 'mnist', method: 'static', kept: 0.05, accuracy: 0.96 },
  { dataset: 'mnist', method: 'importance', kept: 0.05, accuracy: 0.9 },
  { dataset: 'mnist', method: 'random', kept: 0.05, accuracy: 0.78 },
  { dataset: 'mnist', method: 'static', kept: 0.1, accuracy: 0.985 },
  { dataset: 'fashion-mnist', method: 'full', kept: 1, accuracy: 0.92 },
  { dataset: 'fashion-mnist', method: 'dynamic', kept: 0.06, accuracy: 0.87 },
  { dataset: 'fashion-mnist', method: 'static', kept: 0.06, accuracy: 0.84 },
];

/** The paper's figure for a row: same data set and method, its kept share within a quarter of ours. */
export function paperFigure(r: Row): string {
  const p = PAPER.find(
    (f) => f.dataset === r.dataset && f.method === r.method && Math.abs(f.kept - r.keptFraction) <= 0.25 * f.kept,
  );
  return p ? `${(p.accuracy * 100).toFixed(1)}% at ${(p.kept * 100).toFixed(0)}%` : '';
}

export interface Row {
  dataset: string;
  granularity: string;
  method: Method;
  /**
   * 'checkpoint N' (as trained, at the peak learning rate), 'fine-tuned #N' (checkpoint N, its mask fixed, trained
   * further as the learning rate decays) or 'trained'.
   */
  point: string;
  keptFraction: number;
  /** Mean real bytes per inference: cmp-select/1 frames as the runtime sent them (the whole input: raw bytes). */
  bytesPerInference: number;
  /** Of those bytes, what the selection of a dynamic frame took (0 for static masks and the whole input). */
  selectionBytes: number;
  testAccuracy: number;
  /**
   * On the held-out tenth of the training split (masked models train on the rest): what the goals choose a point by,
   * so the test split only reports. Absent on the unmasked model, and on rows measured before it was kept.
   */
  validationAccuracy?: number;
}

export const select: Benchmark = {
  name: 'select',
  summary: 'input selection: accuracy vs real bytes on the wire for static, dynamic, importance and random masks',
  async run(argv: string[], json: boolean): Promise<number> {
    const values = parseBenchFlags(argv, {
      datasets: { default: 'mnist,fashion-mnist' },
      arch: { default: 'lenet5' },
      methods: { default: METHODS.join(',') },
      granularities: { default: 'pixel,block:2' },
      epochs: { default: '10' },
      'mask-epochs': { default: '30' },
      finetune: { default: '4' },
      distill: { default: '0' },
      'finetune-seeds': { default: '1,2,3' },
      keeps: { default: '0.05,0.1,0.2' },
      'limit-train': {},
      'limit-test': {},
      save: {},
    });
    const epochs = positiveInt('epochs', values.epochs) as number;
    const maskEpochs = positiveInt('mask-epochs', values['mask-epochs']) as number;
    const finetune = positiveInt('finetune', values.finetune) as number;
    const limitTrain = positiveInt('limit-train', values['limit-train']);
    const limitTest = positiveInt('limit-test', values['limit-test']);
    const distill = Number(values.distill);
    if (!(distill >= 0 && distill <= 1))
      throw new CmpError(
        'BAD_FLAG',
        `--distill is the teacher's share of the fine-tuning loss, in [0, 1] (got "${values.distill}").`,
      );
    const finetuneSeeds = (values['finetune-seeds'] as string).split(',').map(Number);
    if (!finetuneSeeds.length || finetuneSeeds.some((x) => !Number.isSafeInteger(x) || x < 0))
      throw new CmpError('BAD_FLAG', `--finetune-seeds takes seeds like 1,2,3 (got "${values['finetune-seeds']}").`);
    const keeps = (values.keeps as string).split(',').map(Number);
    if (keeps.some((k) => !(k > 0 && k <= 1)))
      throw new CmpError('BAD_FLAG', `--keeps must be shares in (0, 1] (got "${values.keeps}").`);
    const archName = values.arch as string;
    const setup = ARCH_SETUPS[archName];
    if (!setup)
      throw new CmpError(
        'BAD_FLAG',
        `Unknown --arch "${archName}". Use one of: ${Object.keys(ARCH_SETUPS).join(', ')}.`,
      );
    const methods = (values.methods as string).split(',') as Method[];
    const unknown = methods.find((m) => !METHODS.includes(m));
    if (unknown)
      throw new CmpError('BAD_FLAG', `Unknown method "${unknown}" in --methods. Use some of: ${METHODS.join(', ')}.`);
    const granularities = (values.granularities as string).split(',').map(parseGranularity);
    const datasets = (values.datasets as string).split(',');
    const dir = mkdtempSync(join(tmpdir(), 'cmp-bench-select-'));
    const log = (text: string): boolean => process.stderr.write(`${text}\n`);
    // Jobs (one trained model, or one mask run with its fine-tuned points) are kept under inputs that fix their
    // meaning; the flags that only choose which jobs run (data sets, methods, granularities, keeps) are not part of it.
    // The mask jobs' fine-tuning (seeds, teacher) is part of theirs alone: the unmasked model and the baselines keep
    // one file whatever it is. One fine-tuning seed (1) without a teacher was all before 5 December.
    const jobInputs = { arch: archName, epochs, maskEpochs, finetune, limitTrain, limitTest };
    const cache = new RowCache<Row[]>('select', jobInputs);
    const tunedCache =
      finetuneSeeds.join() === '1' && !distill
        ? cache
        : new RowCache<Row[]>('select', {
            ...jobInputs,
            finetuneSeeds,
            ...(distill ? { distill, temperature: DISTILL_TEMPERATURE } : {}),
          });
    const rows: Row[] = [];
    // Every training also keeps a checkpoint after every epoch beside the rows, so a job cut short (a session's end)
    // carries on from its last epoch. A learned mask's run folder lies there too: its mask checkpoints survive a stop.
    const epochsDir = (key: string): string => join(benchWorkDir(), 'select-epochs', key.replace(/[^a-z0-9.]+/gi, '-'));
    const job = async (key: string, measureJob: () => Promise<Row[]>, store = cache): Promise<void> => {
      const saved = store.get(key);
      // Rows saved before exported points kept their validation accuracy are measured again (a mask run's training is
      // read back from its folder; only its fine-tuning runs again).
      if (saved && exportedRows(saved).some((r) => r.validationAccuracy === undefined))
        log(`${key}: measured again, its rows lack validation accuracy`);
      else if (saved) {
        log(`${key}: kept from ${store.path}`);
        rows.push(...saved);
        return;
      }
      const began = Date.now();
      const made = await measureJob();
      log(`${key}: ${((Date.now() - began) / 60000).toFixed(1)} min`);
      store.put(key, made);
      rows.push(...made);
    };
    for (const name of datasets) {
      const data = await loadDataset(name, { limitTrain, limitTest });
      const common: TrainRunOptions = {
        ...setup,
        binarizeWeights: 'none',
        binarizeActivations: 'none',
        epochs,
        batchSize: 100,
        learningRate: 0.002,
        seed: 1,
        // One line per epoch on stderr: a full-split run takes hours on a loaded machine.
        onProgress: (p) => {
          if (p.phase !== 'epoch') return;
          const r = p.record;
          const kept = r.keptFraction === undefined ? '' : `, kept ${(r.keptFraction * 100).toFixed(1)}%`;
          log(
            `  epoch ${r.epoch}/${p.epochs}: test ${(r.testAccuracy * 100).toFixed(2)}%${kept}, ${(r.durationMs / 1000).toFixed(0)} s`,
          );
        },
      };
      const fullBytes = data.inputShape.reduce((a, b) => a * b, 1);
      const budgets = budgetsFor(name, fullBytes);
      // The unmasked model, kept in its folder: with --distill it teaches the masks' fine-tuning.
      const fullDir = join(epochsDir(`${name} full`), 'run');
      const trainFull = async (): Promise<FrozenModel> => {
        log(`${name}: the unmasked model (${epochs} epochs)`);
        const full = await trainRun(data, { ...common, checkpointDir: epochsDir(`${name} full`) });
        saveRun(fullDir, { cmpVersion: CMP_VERSION, spec: full.spec, training: full.training }, full.tensors);
        return full.frozen;
      };
      let teacher: FrozenModel | undefined;
      const teaching = async (): Promise<Pick<TrainRunOptions, 'distill'>> => {
        if (!distill) return {};
        if (!teacher) {
          const kept = existsSync(join(fullDir, RUN_MODEL_FILE)) ? loadRun(fullDir) : undefined;
          teacher = kept ? freeze(kept.record.spec, kept.tensors) : await trainFull();
        }
        return { distill: { teacher, weight: distill, temperature: DISTILL_TEMPERATURE } };
      };
      if (methods.includes('full')) {
        await job(`${name} full`, async () => {
          const m = await measure(await trainFull(), data, dir, 0);
          return [{ dataset: name, granularity: '-', method: 'full', point: 'trained', ...m }];
        });
      }
      for (const granularity of granularities) {
        const g = granularityName(granularity);
        const maskBase: Omit<MaskOptions, 'kind' | 'source'> = {
          granularity,
          values: 'uint8',
          ...DEFAULT_MASK_TRAINING,
        };
        for (const source of (['random', 'importance'] as const).filter((m) => methods.includes(m))) {
          for (const keep of keeps) {
            // The importance ranking is a random forest's (it was mutual information per unit before).
            const key = `${name} ${g} ${source === 'importance' ? 'importance-forest' : source} ${keep}`;
            await job(key, async () => {
              log(`${name} ${g}: ${source} mask keeping ${keep} (${epochs} epochs)`);
              const fixed = await trainRun(data, {
                ...common,
                mask: { ...maskBase, kind: 'static', source, keep },
                checkpointDir: epochsDir(key),
              });
              const m = await measure(fixed.frozen, data, dir, fixed.training.validationCount ?? 0);
              return [{ dataset: name, granularity: g, method: source, point: 'trained', ...m }];
            });
          }
        }
        for (const kind of (['static', 'dynamic'] as const).filter((m) => methods.includes(m))) {
          const schedule = scheduleFor(granularity, data.inputShape, keepPlan(budgets, fullBytes, maskEpochs));
          // Dynamic frames may code their selection with the mask's rates since cmp-select/1's coding 5: rows measured
          // before it are kept under the key without the mark.
          const key = `${name} ${g} ${kind} ${JSON.stringify(schedule)}${kind === 'dynamic' ? ' rates' : ''}`;
          await job(
            key,
            async () => {
              const out = join(epochsDir(key), 'run');
              // A mask run that finished before a stop cut its fine-tuning short is read back, not trained again (its
              // training checkpoint is cleared when it ends; the run folder holds the checkpoints made).
              const options: TrainRunOptions = {
                ...common,
                epochs: maskEpochs,
                mask: { ...maskBase, schedule, kind, source: 'learned' },
                out,
                checkpointDir: epochsDir(key),
              };
              const earlier = existsSync(join(out, RUN_MODEL_FILE)) ? loadRun(out) : undefined;
              const finished = earlier && sameTraining(earlier, data, options) ? earlier.record.masking : undefined;
              log(
                finished
                  ? `${name} ${g} ${kind}: the mask run finished earlier, in ${out}`
                  : `${name} ${g}: learning a ${kind} mask (${maskEpochs} epochs, lambda from ${schedule.start})`,
              );
              const masking = finished ?? (await trainRun(data, options)).masking;
              const checkpoints = masking?.checkpoints ?? [];
              const made: Row[] = checkpoints.map((c, i) => ({
                dataset: name,
                granularity: g,
                method: kind,
                point: `checkpoint ${i + 1}`,
                keptFraction: c.keptFraction,
                bytesPerInference: c.frameBytes,
                selectionBytes: 0,
                testAccuracy: c.testAccuracy,
                validationAccuracy: c.validationAccuracy,
              }));
              // Fine-tuned points: at each baseline share, and the most accurate checkpoint (on validation data) within
              // each goal's bytes. A static mask's most compact checkpoint over a budget by at most TRIM_SLACK is also
              // trimmed to it (its least open units dropped) and fine-tuned: the plan holds the mask at the budget, but
              // a checkpoint can land a pixel over.
              const picks = new Map<
                string,
                { point: string; run: Run; spec: ModelSpec; tensors: Map<string, Float32Array> }
              >();
              const pick = (c: MaskCheckpointRecord): void => {
                const run = loadRun(join(out, c.dir));
                const point = `fine-tuned ${c.dir.replace('checkpoints/', '#')}`;
                picks.set(point, { point, run, spec: run.record.spec, tensors: run.tensors });
              };
              for (const keep of keeps) {
                try {
                  pick(chooseMaskCheckpoint(loadRun(out), { keep }).checkpoint);
                } catch {
                  log(`${name} ${g} ${kind}: no checkpoint keeps at most ${keep}`);
                }
              }
              for (const budget of budgets) {
                const best = checkpoints
                  .filter((c) => c.frameBytes <= budget)
                  .sort((a, b) => b.validationAccuracy - a.validationAccuracy)[0];
                if (best) pick(best);
                const over = checkpoints
                  .filter((c) => c.frameBytes > budget && c.frameBytes <= budget * TRIM_SLACK)
                  .sort((a, b) => a.frameBytes - b.frameBytes)[0];
                if (kind !== 'static' || !over) continue;
                const run = loadRun(join(out, over.dir));
                const trimmed = trimStaticMask(run.record.spec, run.tensors, budget);
                const point = `trimmed ${over.dir.replace('checkpoints/', '#')} to ${budget.toFixed(1)} B, fine-tuned`;
                if (trimmed) picks.set(point, { point, run, ...trimmed });
              }
              // Each pick is fine-tuned once per seed (the order of the batches): a goal's point is the seed the
              // validation data likes best, and the rows show how far the seeds spread.
              for (const p of picks.values()) {
                for (const seed of finetuneSeeds) {
                  const point = finetuneSeeds.length > 1 ? `${p.point}, seed ${seed}` : p.point;
                  log(
                    `${name} ${g} ${kind}: ${point.replace(', fine-tuned', '')}: fine-tuning ${p.run.dir} (${finetune} epochs)`,
                  );
                  const tuned = await trainRun(data, {
                    ...common,
                    seed,
                    epochs: finetune,
                    from: { dir: p.run.dir, spec: p.spec, tensors: p.tensors },
                    ...(await teaching()),
                    checkpointDir: epochsDir(`${key} ${point}${distill ? ` distill ${distill}` : ''}`),
                  });
                  const m = await measure(tuned.frozen, data, dir, tuned.training.validationCount ?? 0);
                  made.push({ dataset: name, granularity: g, method: kind, point, ...m });
                }
              }
              return made;
            },
            tunedCache,
          );
        }
      }
    }
    const goals = evaluateGoals(rows, archName);
    const machine = describeMachine();
    const inputs = {
      datasets,
      arch: archName,
      network: setup,
      methods,
      granularities: granularities.map(granularityName),
      epochs,
      maskEpochs,
      finetune,
      distill,
      finetuneSeeds,
      keeps,
      schedules: Object.fromEntries(granularities.map((g) => [granularityName(g), scheduleFor(g, [1, 28, 28])])),
      keepPlans: Object.fromEntries(datasets.map((d) => [d, keepPlan(budgetsFor(d, 784), 784, maskEpochs)])),
      warmupEpochs: DEFAULT_MASK_TRAINING.warmupEpochs,
      values: 'uint8',
      limitTrain: limitTrain ?? 'all',
      limitTest: limitTest ?? 'all',
      rowsFrom: [...new Set([cache.path, tunedCache.path])],
    };
    const record = benchRecord('select', { inputs, rows, goals }, values.save);
    if (json) {
      process.stdout.write(`${record}\n`);
      return 0;
    }
    const out = [
      `select: ${archName}; unmasked and baselines ${epochs} epochs, learned masks ${maskEpochs} epochs (lambda per granularity, x${DEFAULT_MASK_TRAINING.schedule.growth} after calm epochs), fine-tuning ${finetune} (seeds ${finetuneSeeds.join()})${distill ? ` distilled from the unmasked model (weight ${distill}, T ${DISTILL_TEMPERATURE})` : ''}; accuracy by onnxruntime-node on what the receiver decoded, bytes counted frame by frame (uint8 values); paper: Oehmcke & Gieseke 2022, LeNet-5, read off its plots`,
      `machine: ${machineLine(machine)}`,
      `rows kept in ${[...new Set([cache.path, tunedCache.path])].join(' and ')}`,
      '',
      formatTable(
        [
          'data set',
          'granularity',
          'mask',
          'point',
          'kept',
          'bytes/inference',
          'selection',
          'fewer bytes',
          'validation',
          'test accuracy',
          'vs full',
          'paper',
        ],
        rows.map((r) => {
          const base = rows.find((b) => b.dataset === r.dataset && b.method === 'full') ?? r;
          const fullBytes = base.bytesPerInference;
          return [
            r.dataset,
            r.granularity,
            r.method,
            r.point,
            `${(r.keptFraction * 100).toFixed(1)}%`,
            r.bytesPerInference.toFixed(1),
            r.method === 'dynamic' && !r.point.startsWith('checkpoint')
              ? `${((r.selectionBytes / r.bytesPerInference) * 100).toFixed(0)}%`
              : '',
            `${(fullBytes / r.bytesPerInference).toFixed(1)}x`,
            r.validationAccuracy === undefined ? '' : `${(r.validationAccuracy * 100).toFixed(2)}%`,
            `${(r.testAccuracy * 100).toFixed(2)}%`,
            `${((r.testAccuracy - base.testAccuracy) * 100).toFixed(2)} pt`,
            paperFigure(r),
          ];
        }),
      ),
      '',
      'Goals (issue 20): the exported mask (fine-tuned or trained with it) most accurate on validation data within the byte budget, its test accuracy against the unmasked model:',
      ...goalLines(goals),
    ];
    process.stdout.write(`${out.join('\n')}\n`);
    return 0;
  },
};

/** Test accuracy in onnxruntime-node on decoded frames, mean real bytes per frame (and of its selection), kept share. */
async function measure(
  frozen: FrozenModel,
  data: Dataset,
  dir: string,
  validationCount: number,
): Promise<Pick<Row, 'testAccuracy' | 'validationAccuracy' | 'bytesPerInference' | 'selectionBytes' | 'keptFraction'>> {
  const exported = exportOnnx(frozen);
  const path = join(dir, 'measure.onnx');
  writeFileSync(path, exported.bytes);
  if (exported.selector) writeFileSync(selectorPath(path), exported.selector);
  const file = readModelFile(path);
  const backend = await createBackend('ort-node', file);
  try {
    const result = await evaluate(backend, file, data);
    const validation = validationCount
      ? await evaluate(backend, file, { ...data, test: validationSplit(data, validationCount) })
      : undefined;
    const mask = exported.manifest.inputMask;
    const link = result.link;
    return {
      testAccuracy: result.accuracy,
      ...(validation ? { validationAccuracy: validation.accuracy } : {}),
      bytesPerInference: link?.meanFrameBytes ?? frozen.spec.input.shape.reduce((a, b) => a * b, 1),
      selectionBytes: link && link.frames ? link.selectionBytes / link.frames : 0,
      keptFraction: mask && link ? link.units / link.frames / mask.units : 1,
    };
  } finally {
    await backend.dispose();
  }
}

/** Exported rows: fine-tuned mask checkpoints and models trained with a fixed mask (not checkpoints at peak rate). */
function exportedRows(rows: Row[], dataset?: string, method?: Method): Row[] {
  return rows.filter(
    (r) =>
      (dataset === undefined || r.dataset === dataset) &&
      r.method !== 'full' &&
      !r.point.startsWith('checkpoint') &&
      (method === undefined || r.method === method),
  );
}

export function evaluateGoals(rows: Row[], arch: string): Goal[] {
  const goals: Goal[] = [];
  for (const goal of GOALS) {
    const full = rows.find((r) => r.dataset === goal.dataset && r.method === 'full');
    if (!full) continue;
    const budget = full.bytesPerInference / goal.factor;
    // The point the validation data likes best within the budget; its test accuracy is what is judged.
    const fitting = exportedRows(rows, goal.dataset).filter((r) => r.bytesPerInference <= budget);
    const best = fitting
      .filter((r) => r.validationAccuracy !== undefined)
      .sort((a, b) => (b.validationAccuracy as number) - (a.validationAccuracy as number))[0];
    const which = best
      ? `${best.method} ${best.point}`
      : fitting.length
        ? 'no point within it has a validation accuracy'
        : 'no exported point within it';
    goals.push(
      atLeast(
        `${goal.dataset}, ${arch}: accuracy at <= ${budget.toFixed(1)} bytes (${goal.factor}x fewer) within ${goal.points} pt of ${(full.testAccuracy * 100).toFixed(2)}% (${which}, chosen on validation)`,
        (best?.testAccuracy ?? 0) * 100,
        full.testAccuracy * 100 - goal.points,
        'pt',
      ),
    );
  }
  // Dynamic against the learned static mask in bytes at equal accuracy: for each dynamic point, the fewest bytes a
  // static point at least as accurate needs over the dynamic point's bytes. Where no static point is that accurate,
  // the static mask's largest point (which stayed below) bounds what it would need from below. The best such ratio
  // over the data sets; above 1, dynamic wins.
  let ratio = 0;
  let where = 'no learned static and dynamic points to compare';
  for (const dataset of new Set(rows.map((r) => r.dataset))) {
    const statics = exportedRows(rows, dataset, 'static');
    if (!statics.length) continue;
    for (const d of exportedRows(rows, dataset, 'dynamic')) {
      const rivals = statics.filter((s) => s.testAccuracy >= d.testAccuracy);
      const needs = rivals.length
        ? Math.min(...rivals.map((s) => s.bytesPerInference))
        : Math.max(...statics.map((s) => s.bytesPerInference));
      if (needs / d.bytesPerInference > ratio) {
        ratio = needs / d.bytesPerInference;
        where = `${dataset} ${d.granularity} ${d.point}: ${d.bytesPerInference.toFixed(1)} bytes at ${(d.testAccuracy * 100).toFixed(2)}%, static ${rivals.length ? '' : 'more than '}${needs.toFixed(1)}`;
      }
    }
  }
  if (rows.some((r) => r.method === 'dynamic'))
    goals.push(
      atLeast(
        `dynamic beats static in bytes at equal accuracy (static bytes / dynamic bytes; ${where})`,
        ratio,
        1,
        'x',
        true,
      ),
    );
  return goals;
}

/**
 * Whether a run folder left by a finished training is what `options` would train now: the same layers, data split
 * and recipe (the folder's path names the mask and schedule, not the network or the data limits).
 */
/** The goals' byte budgets for a data set whose whole input is `fullBytes`. */
function budgetsFor(dataset: string, fullBytes: number): number[] {
  return GOALS.filter((g) => g.dataset === dataset).map((g) => fullBytes / g.factor);
}

/**
 * The share a learned mask's lambda must reach: the smallest budget's bytes after the frame header, over one byte a
 * feature. A static mask then keeps the units whose frame fits it; a dynamic one pays its selection out of it.
 */
export function keepPlan(budgets: number[], fullBytes: number, maskEpochs: number): KeepPlan | undefined {
  if (budgets.length === 0) return undefined;
  // Whole bytes: a share a fraction of a pixel over the budget held Fashion-MNIST's static mask at 157 bytes, 0.2 over.
  const keep = Math.max(Math.floor(Math.min(...budgets) - SELECT_HEADER_BYTES), 1) / fullBytes;
  return planToReach(keep, DEFAULT_MASK_TRAINING.warmupEpochs, maskEpochs);
}

function sameTraining(run: Run, data: Dataset, options: TrainRunOptions): boolean {
  const t = run.record.training;
  return (
    JSON.stringify(run.record.spec.layers) === JSON.stringify(specFor(data, options).layers) &&
    t.epochs === options.epochs &&
    t.seed === options.seed &&
    t.batchSize === options.batchSize &&
    t.learningRate === options.learningRate &&
    t.trainCount + (t.validationCount ?? 0) === data.train.count &&
    t.testCount === data.test.count
  );
}
