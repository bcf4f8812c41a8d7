// select: accuracy against real bytes per inference on the link for learned static and dynamic masks, the
// feature-importance and random baselines, pixel and block granularity, with the goals met or missed.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_MASK_TRAINING, trainRun, type MaskOptions, type TrainRunOptions } from '../src/compress/train-run.js';
import type { FrozenModel } from '../src/core/frozen.js';
import { selectorPath } from '../src/core/manifest.js';
import { granularityName, parseGranularity } from '../src/core/mask.js';
import { chooseMaskCheckpoint, loadRun, type MaskCheckpointRecord } from '../src/core/run.js';
import { loadDataset, type Dataset } from '../src/data/datasets.js';
import { CmpError } from '../src/errors.js';
import { exportOnnx } from '../src/export/export-onnx.js';
import { formatTable } from '../src/cli/table.js';
import { createBackend } from '../src/runtime/backends.js';
import { evaluate } from '../src/runtime/evaluate.js';
import { readModelFile } from '../src/runtime/model-file.js';
import { atLeast, benchRecord, goalLines, parseBenchFlags, positiveInt, type Goal } from './common.js';
import { describeMachine, machineLine } from './machine.js';
import type { Benchmark } from './run.js';

/** The goals: bytes per inference at most the whole input over `factor`, within `points` of unmasked. */
const GOALS: Record<string, { factor: number; points: number }> = {
  mnist: { factor: 10, points: 1 },
  'fashion-mnist': { factor: 5, points: 1.5 },
};

interface Row {
  dataset: string;
  granularity: string;
  method: 'full' | 'static' | 'dynamic' | 'importance' | 'random';
  /** 'checkpoint N' (as trained), 'fine-tuned' (a checkpoint, its mask fixed, trained further) or 'trained'. */
  point: string;
  keptFraction: number;
  /** Mean real bytes per inference: cmp-select/1 frames as the runtime sent them (the whole input: raw bytes). */
  bytesPerInference: number;
  testAccuracy: number;
}

export const select: Benchmark = {
  name: 'select',
  summary: 'input selection: accuracy vs real bytes on the wire for static, dynamic, importance and random masks',
  async run(argv: string[], json: boolean): Promise<number> {
    const values = parseBenchFlags(argv, {
      datasets: { default: 'mnist,fashion-mnist' },
      arch: { default: 'mlp' },
      granularities: { default: 'pixel,block:2' },
      epochs: { default: '10' },
      'mask-epochs': { default: '30' },
      finetune: { default: '4' },
      patience: { default: '2' },
      keeps: { default: '0.05,0.1,0.2' },
      'limit-train': {},
      'limit-test': {},
      save: {},
    });
    const epochs = positiveInt('epochs', values.epochs) as number;
    const maskEpochs = positiveInt('mask-epochs', values['mask-epochs']) as number;
    const finetune = positiveInt('finetune', values.finetune) as number;
    const patience = positiveInt('patience', values.patience) as number;
    const limitTrain = positiveInt('limit-train', values['limit-train']);
    const limitTest = positiveInt('limit-test', values['limit-test']);
    const keeps = (values.keeps as string).split(',').map(Number);
    if (keeps.some((k) => !(k > 0 && k <= 1)))
      throw new CmpError('BAD_FLAG', `--keeps must be shares in (0, 1] (got "${values.keeps}").`);
    const granularities = (values.granularities as string).split(',').map(parseGranularity);
    const datasets = (values.datasets as string).split(',');
    const dir = mkdtempSync(join(tmpdir(), 'cmp-bench-select-'));
    const log = (text: string): boolean => process.stderr.write(`${text}\n`);
    const rows: Row[] = [];
    for (const name of datasets) {
      const data = await loadDataset(name, { limitTrain, limitTest });
      const common: TrainRunOptions = {
        arch: values.arch as string,
        binarizeWeights: 'none',
        binarizeActivations: 'none',
        epochs,
        batchSize: 100,
        learningRate: 0.002,
        seed: 1,
      };
      log(`${name}: the unmasked model (${epochs} epochs)`);
      const full = await trainRun(data, common);
      const fullBytes = data.inputShape.reduce((a, b) => a * b, 1);
      rows.push({
        dataset: name,
        granularity: '-',
        method: 'full',
        point: 'trained',
        keptFraction: 1,
        bytesPerInference: fullBytes,
        testAccuracy: (await measure(full.frozen, data, dir)).accuracy,
      });
      const goal = GOALS[name];
      const budget = goal ? fullBytes / goal.factor : undefined;
      for (const granularity of granularities) {
        const g = granularityName(granularity);
        const maskBase: Omit<MaskOptions, 'kind' | 'source'> = {
          granularity,
          values: 'uint8',
          ...DEFAULT_MASK_TRAINING,
          schedule: { ...DEFAULT_MASK_TRAINING.schedule, patience },
        };
        for (const kind of ['static', 'dynamic'] as const) {
          const out = join(dir, `${name}-${g.replace(':', '')}-${kind}`);
          log(`${name} ${g}: learning a ${kind} mask (${maskEpochs} epochs)`);
          const learned = await trainRun(data, {
            ...common,
            epochs: maskEpochs,
            mask: { ...maskBase, kind, source: 'learned' },
            out,
          });
          const checkpoints = learned.masking?.checkpoints ?? [];
          checkpoints.forEach((c, i) =>
            rows.push({
              dataset: name,
              granularity: g,
              method: kind,
              point: `checkpoint ${i + 1}`,
              keptFraction: c.keptFraction,
              bytesPerInference: c.frameBytes,
              testAccuracy: c.testAccuracy,
            }),
          );
          // Fine-tuned points: at each baseline share, and the most accurate checkpoint within the goal's bytes.
          const picks = new Map<string, MaskCheckpointRecord>();
          for (const keep of keeps) {
            try {
              const chosen = chooseMaskCheckpoint(loadRun(out), { keep });
              picks.set(chosen.checkpoint.dir, chosen.checkpoint);
            } catch {
              log(`${name} ${g} ${kind}: no checkpoint keeps at most ${keep}`);
            }
          }
          const withinBudget = checkpoints
            .filter((c) => budget !== undefined && c.frameBytes <= budget)
            .sort((a, b) => b.validationAccuracy - a.validationAccuracy)[0];
          if (withinBudget) picks.set(withinBudget.dir, withinBudget);
          for (const pick of picks.values()) {
            const from = loadRun(join(out, pick.dir));
            log(`${name} ${g} ${kind}: fine-tuning ${pick.dir} (${finetune} epochs)`);
            const tuned = await trainRun(data, {
              ...common,
              epochs: finetune,
              from: { dir: from.dir, spec: from.record.spec, tensors: from.tensors },
            });
            const m = await measure(tuned.frozen, data, dir);
            rows.push({
              dataset: name,
              granularity: g,
              method: kind,
              point: `fine-tuned ${pick.dir.replace('checkpoints/', '#')}`,
              keptFraction: m.keptFraction,
              bytesPerInference: m.bytes,
              testAccuracy: m.accuracy,
            });
          }
        }
        for (const source of ['importance', 'random'] as const) {
          for (const keep of keeps) {
            log(`${name} ${g}: ${source} mask keeping ${keep} (${epochs} epochs)`);
            const fixed = await trainRun(data, { ...common, mask: { ...maskBase, kind: 'static', source, keep } });
            const m = await measure(fixed.frozen, data, dir);
            rows.push({
              dataset: name,
              granularity: g,
              method: source,
              point: 'trained',
              keptFraction: m.keptFraction,
              bytesPerInference: m.bytes,
              testAccuracy: m.accuracy,
            });
          }
        }
      }
    }
    const goals = evaluateGoals(rows);
    const machine = describeMachine();
    const inputs = {
      datasets,
      arch: values.arch,
      granularities: granularities.map(granularityName),
      epochs,
      maskEpochs,
      finetune,
      keeps,
      schedule: { ...DEFAULT_MASK_TRAINING.schedule, patience, warmupEpochs: DEFAULT_MASK_TRAINING.warmupEpochs },
      values: 'uint8',
      limitTrain: limitTrain ?? 'all',
      limitTest: limitTest ?? 'all',
    };
    const record = benchRecord('select', { inputs, rows, goals }, values.save);
    if (json) {
      process.stdout.write(`${record}\n`);
      return 0;
    }
    const out = [
      `select: ${values.arch as string}; unmasked and baselines ${epochs} epochs, learned masks ${maskEpochs} epochs (lambda x${DEFAULT_MASK_TRAINING.schedule.growth} after ${patience} calm epochs), fine-tuning ${finetune}; accuracy by onnxruntime-node on what the receiver decoded, bytes counted frame by frame (uint8 values)`,
      `machine: ${machineLine(machine)}`,
      '',
      formatTable(
        [
          'data set',
          'granularity',
          'mask',
          'point',
          'kept',
          'bytes/inference',
          'fewer bytes',
          'test accuracy',
          'vs full',
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
            `${(fullBytes / r.bytesPerInference).toFixed(1)}x`,
            `${(r.testAccuracy * 100).toFixed(2)}%`,
            `${((r.testAccuracy - base.testAccuracy) * 100).toFixed(2)} pt`,
          ];
        }),
      ),
      '',
      'Goals (issue 4): the most accurate exported mask within the byte budget, against the unmasked model:',
      ...goalLines(goals),
    ];
    process.stdout.write(`${out.join('\n')}\n`);
    return 0;
  },
};

/** Test accuracy in onnxruntime-node on decoded frames, mean real bytes per frame, and the kept share. */
async function measure(
  frozen: FrozenModel,
  data: Dataset,
  dir: string,
): Promise<{ accuracy: number; bytes: number; keptFraction: number }> {
  const exported = exportOnnx(frozen);
  const path = join(dir, 'measure.onnx');
  writeFileSync(path, exported.bytes);
  if (exported.selector) writeFileSync(selectorPath(path), exported.selector);
  const file = readModelFile(path);
  const backend = await createBackend('ort-node', file);
  try {
    const result = await evaluate(backend, file, data);
    const mask = exported.manifest.inputMask;
    const link = result.link;
    const keptFraction = mask && link ? link.units / link.frames / mask.units : 1;
    return {
      accuracy: result.accuracy,
      bytes: result.link?.meanFrameBytes ?? frozen.spec.input.shape.reduce((a, b) => a * b, 1),
      keptFraction,
    };
  } finally {
    await backend.dispose();
  }
}

function evaluateGoals(rows: Row[]): Goal[] {
  const goals: Goal[] = [];
  for (const [dataset, goal] of Object.entries(GOALS)) {
    const full = rows.find((r) => r.dataset === dataset && r.method === 'full');
    if (!full) continue;
    const budget = full.bytesPerInference / goal.factor;
    const exported = rows.filter(
      (r) => r.dataset === dataset && r.method !== 'full' && r.point !== 'trained' && !r.point.startsWith('checkpoint'),
    );
    const fitting = [
      ...exported,
      ...rows.filter((r) => r.dataset === dataset && r.point === 'trained' && r.method !== 'full'),
    ].filter((r) => r.bytesPerInference <= budget);
    const best = fitting.reduce((a, r) => Math.max(a, r.testAccuracy), 0);
    goals.push(
      atLeast(
        `${dataset}: accuracy at <= ${budget.toFixed(1)} bytes (${goal.factor}x fewer) within ${goal.points} pt of ${(full.testAccuracy * 100).toFixed(2)}%`,
        best * 100,
        full.testAccuracy * 100 - goal.points,
        'pt',
      ),
    );
  }
  return goals;
}
