// cmp train: train a (binarized) network on a data set and save a run folder.

import { CmpError } from '../../errors.js';
import {
  DEFAULT_KEEP_FLOAT_ACTIVATIONS,
  DEFAULT_MASK_TRAINING,
  trainRun,
  type MaskOptions,
} from '../../compress/train-run.js';
import {
  MASK_SOURCES,
  MASK_VALUE_TYPES,
  parseGranularity,
  type MaskSource,
  type MaskValueType,
} from '../../core/mask.js';
import { DEFAULT_GSS, type GroupSparsityOptions } from '../../compress/gss.js';
import { DEFAULT_TRAIN_OPTIONS } from '../../compress/train.js';
import { maskWithinBytes } from '../../compress/mask.js';
import { chooseMaskCheckpoint, loadRun, prepareRunOut, type MaskCheckpointRecord } from '../../core/run.js';
import {
  ARCHS,
  BINARIZE_MODES,
  exitsAfter,
  isWeightLayer,
  withBinarization,
  type BinarizeMode,
  type ModelSpec,
} from '../../core/spec.js';
import type { Parsed } from '../args.js';
import { checkpointChoice } from '../checkpoint-flags.js';
import type { CliIo, Command } from '../command.js';
import { DATA_FLAG, loadDataFlag, runConsumer } from '../data-flag.js';
import { formatDuration } from '../progress.js';
import { formatPercent, formatTable } from '../table.js';
import { trainProgress } from '../train-progress.js';

/** Named settings of --binarize and --int8. */
export const PRESETS: readonly string[] = Object.freeze(['hybrid']);

export const TRAIN_FLAGS = {
  data: DATA_FLAG,
  arch: { type: 'string', choices: ARCHS, default: 'mlp', help: 'network architecture' },
  binarize: {
    type: 'string',
    choices: BINARIZE_MODES,
    default: 'none',
    help: 'binarize weights: dab fits two levels per channel, xnor uses +/-alpha',
  },
  'binarize-activations': {
    type: 'string',
    choices: BINARIZE_MODES,
    default: 'none',
    help: 'binarize layer inputs too',
  },
  'keep-float': {
    type: 'list',
    value: 'LIST',
    help: 'weight layers kept float: first, last or indices (default: activations of first,last)',
  },
  int8: {
    type: 'list',
    value: 'LIST',
    help: 'weight layers stored int8 (per output channel), trained quantization-aware: first, last, indices or all',
  },
  preset: {
    type: 'string',
    choices: PRESETS,
    help: 'hybrid: int8 first and last layer, dab 1-bit weights between (--binarize dab --int8 first,last)',
  },
  widths: { type: 'ints', value: 'N,N', help: 'hidden dense widths (mlp default 512,512; lenet 256)' },
  filters: { type: 'ints', value: 'N,N', help: 'conv filters per stage (lenet, default 16,32)' },
  exits: { type: 'ints', value: 'N,N', help: 'early-exit heads after these hidden layers (1-based), trained jointly' },
  epochs: { type: 'int', default: String(DEFAULT_TRAIN_OPTIONS.epochs), help: 'passes over the training set' },
  'batch-size': { type: 'int', default: String(DEFAULT_TRAIN_OPTIONS.batchSize), help: 'samples per step' },
  lr: {
    type: 'number',
    default: String(DEFAULT_TRAIN_OPTIONS.learningRate),
    help: 'peak Adam learning rate (cosine decay)',
  },
  seed: {
    type: 'int',
    default: String(DEFAULT_TRAIN_OPTIONS.seed),
    help: 'random seed; the same seed gives the same model',
  },
  'limit-train': { type: 'int', help: 'train on the first N training samples only' },
  'limit-test': { type: 'int', help: 'evaluate on the first N test samples only' },
  sparsity: { type: 'string', choices: ['gss'], help: 'train with guided group sparsity, then remove the dead groups' },
  'keep-alive': { type: 'number', default: '0.1', help: "gss: share of each layer's groups the penalty spares (0..1]" },
  'gss-lambda': {
    type: 'number',
    default: String(DEFAULT_GSS.lambda),
    help: 'gss: lasso strength, shrink per step in learning rates',
  },
  'group-size': { type: 'int', default: String(DEFAULT_GSS.groupSize), help: 'gss: neurons/filters per group' },
  mask: {
    type: 'string',
    choices: ['static', 'dynamic'],
    help: 'learn an input-selection mask: one for all instances, or chosen per instance by a selector',
  },
  granularity: { type: 'string', default: 'pixel', value: 'G', help: 'mask units: pixel, channel or block:N' },
  'mask-source': {
    type: 'string',
    choices: MASK_SOURCES,
    default: 'learned',
    help: 'static masks: learned, or a fixed baseline (importance, random)',
  },
  keep: { type: 'number', value: 'F', help: 'importance/random masks: share of units kept, (0, 1]' },
  values: { type: 'string', choices: MASK_VALUE_TYPES, default: 'uint8', help: 'how selected values travel' },
  'lambda-start': {
    type: 'number',
    default: String(DEFAULT_MASK_TRAINING.schedule.start),
    help: 'mask loss weight at the start',
  },
  'lambda-growth': {
    type: 'number',
    default: String(DEFAULT_MASK_TRAINING.schedule.growth),
    help: 'factor lambda grows by once accuracy held for --mask-patience epochs',
  },
  'mask-patience': {
    type: 'int',
    default: String(DEFAULT_MASK_TRAINING.schedule.patience),
    help: 'epochs without an accuracy drop before lambda grows',
  },
  'mask-warmup': {
    type: 'int',
    default: String(DEFAULT_MASK_TRAINING.warmupEpochs),
    help: 'epochs of the unmasked network before the mask trains',
  },
  'checkpoint-step': {
    type: 'number',
    default: String(DEFAULT_MASK_TRAINING.checkpointStep * 100),
    help: 'save a checkpoint at every accuracy drop of this many points (and every 20% fewer kept units)',
  },
  'min-keep': {
    type: 'number',
    default: String(DEFAULT_MASK_TRAINING.minKeep),
    help: 'lambda stops growing once this share of units or less is kept',
  },
  from: {
    type: 'string',
    value: 'RUN',
    help: 'fine-tune this run (its network and mask) instead of a new network; --binarize compresses it',
  },
  'max-bytes': {
    type: 'number',
    value: 'B',
    help: 'with --from: the most accurate mask checkpoint (validation) sending at most B bytes per instance; a static one up to 10% over is trimmed to B',
  },
  'min-accuracy': {
    type: 'number',
    value: 'A',
    help: 'with --from: the leanest mask checkpoint at least this accurate (validation, 0..1)',
  },
  'selector-pool': { type: 'int', help: 'dynamic masks: average-pool window of the selector input (default side/7)' },
} as const;

/** The input mask options from train's flags, or undefined without --mask. */
export function maskFlags(f: Parsed['flags']): MaskOptions | undefined {
  const kind = f.mask as 'static' | 'dynamic' | undefined;
  if (f.from !== undefined && !kind) return undefined;
  for (const [flag, example] of [
    ['min-accuracy', '0.85'],
    ['max-bytes', '78'],
  ])
    if (f[flag] !== undefined && f.from === undefined)
      throw new CmpError(
        'BAD_FLAG',
        `--${flag} picks a mask checkpoint of --from RUN. Example: --from runs/fm-mask --${flag} ${example}`,
      );
  const source = ((f['mask-source'] as string | undefined) ?? 'learned') as MaskSource;
  if (!kind) {
    for (const flag of ['keep', 'mask-source', 'granularity', 'selector-pool', 'lambda-start'])
      if (f[flag] !== undefined)
        throw new CmpError('BAD_FLAG', `--${flag} only applies with --mask. Example: --mask static --${flag} ...`);
    return undefined;
  }
  if (kind === 'dynamic' && source !== 'learned')
    throw new CmpError('BAD_FLAG', `--mask-source ${source} is a static baseline; use it with --mask static.`);
  const keep = f.keep as number | undefined;
  if (source !== 'learned' && (keep === undefined || keep <= 0 || keep > 1))
    throw new CmpError(
      'BAD_FLAG',
      `--mask-source ${source} needs --keep F, the share of units kept in (0, 1]. Example: --keep 0.05`,
    );
  if (source === 'learned' && keep !== undefined)
    throw new CmpError(
      'BAD_FLAG',
      '--keep fixes a baseline mask; a learned mask picks its trade-off at cmp export --keep.',
    );
  const growth = (f['lambda-growth'] as number | undefined) ?? DEFAULT_MASK_TRAINING.schedule.growth;
  if (growth < 1) throw new CmpError('BAD_FLAG', `--lambda-growth must be at least 1 (got ${growth}). Example: 1.5`);
  const step = (f['checkpoint-step'] as number | undefined) ?? DEFAULT_MASK_TRAINING.checkpointStep * 100;
  return {
    kind,
    granularity: parseGranularity((f.granularity as string | undefined) ?? 'pixel'),
    source,
    values: ((f.values as string | undefined) ?? 'uint8') as MaskValueType,
    ...(keep !== undefined ? { keep } : {}),
    ...(f['selector-pool'] !== undefined ? { selectorPool: f['selector-pool'] as number } : {}),
    schedule: {
      ...DEFAULT_MASK_TRAINING.schedule,
      start: (f['lambda-start'] as number | undefined) ?? DEFAULT_MASK_TRAINING.schedule.start,
      growth,
      patience: (f['mask-patience'] as number | undefined) ?? DEFAULT_MASK_TRAINING.schedule.patience,
    },
    warmupEpochs: (f['mask-warmup'] as number | undefined) ?? DEFAULT_MASK_TRAINING.warmupEpochs,
    checkpointStep: step / 100,
    checkpointKeptRatio: DEFAULT_MASK_TRAINING.checkpointKeptRatio,
    minKeep: (f['min-keep'] as number | undefined) ?? DEFAULT_MASK_TRAINING.minKeep,
  };
}

/**
 * The run (or the mask checkpoint of it that --keep, --max-bytes or --min-accuracy picks, trimmed to --max-bytes where
 * maskWithinBytes says) that --from fine-tunes.
 */
function fromFlags(
  dir: string,
  f: Parsed['flags'],
): {
  dir: string;
  spec: ModelSpec;
  tensors: Map<string, Float32Array>;
  dataset: string;
  checkpoint?: MaskCheckpointRecord;
  trimmedBytes?: number;
} {
  // With --mask, --keep is the new mask's share of units; otherwise it picks a mask checkpoint of the run.
  const choice = checkpointChoice({
    keep: f.mask === undefined ? (f.keep as number | undefined) : undefined,
    maxBytes: f['max-bytes'] as number | undefined,
    minAccuracy: f['min-accuracy'] as number | undefined,
  });
  for (const flag of ['arch', 'widths', 'filters', 'sparsity'])
    if (f[flag] !== undefined)
      throw new CmpError(
        'BAD_FLAG',
        `--${flag} describes a new network; --from ${dir} fine-tunes that run as it is. Drop --${flag}.`,
      );
  const { binarize: weights, int8 } = precisionFlags(f);
  const inputs = f['binarize-activations'] as BinarizeMode | undefined;
  const keepFloat = f['keep-float'] as string[] | undefined;
  if (keepFloat && !weights && !inputs)
    throw new CmpError(
      'BAD_FLAG',
      `--keep-float picks layers to leave out of --binarize or --binarize-activations; with --from ${dir} give one of them.`,
    );
  const whole = loadRun(dir);
  let run = { dir: whole.dir, spec: whole.record.spec, tensors: whole.tensors, dataset: whole.record.training.dataset };
  let picked: { checkpoint: MaskCheckpointRecord; trimmedBytes?: number } | undefined;
  if (choice && 'maxBytes' in choice) {
    const within = maskWithinBytes(whole, choice.maxBytes);
    run = { ...run, dir: within.dir, spec: within.spec, tensors: within.tensors };
    picked = { checkpoint: within.checkpoint, ...(within.trimmedBytes ? { trimmedBytes: within.trimmedBytes } : {}) };
  } else if (choice) {
    const chosen = chooseMaskCheckpoint(whole, choice);
    const loaded = loadRun(chosen.dir);
    run = { ...run, dir: loaded.dir, spec: loaded.record.spec, tensors: loaded.tensors };
    picked = { checkpoint: chosen.checkpoint };
  }
  // --binarize, --binarize-activations and --int8 compress the run's network while it fine-tunes (an imported one,
  // say).
  const spec =
    weights || inputs || int8
      ? withBinarization(run.spec, {
          ...(weights ? { binarizeWeights: weights } : {}),
          ...(inputs ? { binarizeInputs: inputs } : {}),
          ...(int8 ? { int8Weights: int8 } : {}),
          keepFloatWeights: keepFloat ?? [],
          keepFloatInputs: keepFloat ?? [...DEFAULT_KEEP_FLOAT_ACTIVATIONS],
        })
      : run.spec;
  // --exits adds heads to a run without them (an imported one, say); the new heads start fresh, the rest as trained.
  const exits = f.exits as number[] | undefined;
  if (exits && spec.exits?.length) {
    throw new CmpError('BAD_FLAG', `${dir} already has exits; --from fine-tunes them as they are. Drop --exits.`);
  }
  if (f.mask !== undefined && spec.inputMask) {
    throw new CmpError('BAD_FLAG', `${dir} already has an input mask; --from fine-tunes it as it is. Drop --mask.`);
  }
  return {
    dir: run.dir,
    spec: exits ? { ...spec, exits: exitsAfter(spec.layers, exits) } : spec,
    tensors: run.tensors,
    dataset: run.dataset,
    ...picked,
  };
}

/**
 * --binarize and --int8 from train's flags, or from --preset: `hybrid` keeps the first and last weight layers in int8
 * and binarizes the weights between with DAB (Larq users know it with float first and last layers; int8 keeps those
 * close to float at a quarter of the bytes).
 */
export function precisionFlags(f: Parsed['flags']): { binarize?: BinarizeMode; int8?: string[] } {
  const int8 = f.int8 as string[] | undefined;
  const bad = int8?.find((s) => !/^(first|last|all|\d+)$/.test(s));
  if (bad !== undefined)
    throw new CmpError(
      'BAD_FLAG',
      `--int8 takes weight layers as first, last, all or 0-based indices (got "${bad}"). Example: --int8 first,last`,
    );
  if (f.preset === undefined) return { binarize: f.binarize as BinarizeMode | undefined, int8 };
  for (const flag of ['binarize', 'int8', 'keep-float'])
    if (f[flag] !== undefined)
      throw new CmpError('BAD_FLAG', `--preset ${String(f.preset)} sets the layers' precision itself. Drop --${flag}.`);
  return { binarize: 'dab', int8: ['first', 'last'] };
}

/** What a spec's weight layers store (or take as inputs): one mode when all agree, else each layer's, by '/'. */
function layerModes(spec: ModelSpec, part: 'weights' | 'inputs'): string {
  const modes = spec.layers.filter(isWeightLayer).map((l) => l.binarize[part]);
  return new Set(modes).size === 1 ? modes[0] : modes.join('/');
}

/** The GSS options from train's flags. */
function gssFlags(f: Parsed['flags']): GroupSparsityOptions {
  const keepAlive = (f['keep-alive'] as number | undefined) ?? 0.1;
  if (keepAlive > 1)
    throw new CmpError(
      'BAD_FLAG',
      `--keep-alive is a share of each layer's groups, at most 1 (got ${keepAlive}). Example: --keep-alive 0.1`,
    );
  return {
    keepAlive,
    lambda: (f['gss-lambda'] as number | undefined) ?? DEFAULT_GSS.lambda,
    groupSize: (f['group-size'] as number | undefined) ?? DEFAULT_GSS.groupSize,
  };
}

export const trainCommand: Command = {
  def: {
    name: 'train',
    summary: 'Train a network (float or binarized) and save it as a run folder for cmp export.',
    positionals: [],
    flags: {
      ...TRAIN_FLAGS,
      out: { type: 'string', value: 'DIR', help: 'run folder to write (required)' },
      force: { type: 'boolean', help: 'replace the run already in --out' },
    },
    examples: [
      'cmp train --data fashion-mnist --arch mlp --binarize dab --epochs 20 --out runs/fm-mlp',
      'cmp train --data mnist --arch lenet --binarize xnor --binarize-activations xnor --out runs/mn-lenet',
      'cmp train --data fashion-mnist --arch lenet --sparsity gss --keep-alive 0.1 --out runs/fm-lenet-gss',
      'cmp train --data fashion-mnist --arch mlp --mask static --granularity pixel --out runs/fm-mask',
      'cmp train --data mnist --arch lenet --mask dynamic --granularity block:4 --out runs/mn-dyn',
      'cmp train --from runs/lenet --data mnist --binarize dab --epochs 5 --out runs/lenet-bin',
      'cmp train --from runs/lenet --data mnist --preset hybrid --epochs 3 --out runs/lenet-hybrid',
      'cmp train --data mnist --arch lenet --int8 all --out runs/mn-lenet-int8',
    ],
  },
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const f = parsed.flags;
    if (typeof f.out !== 'string') {
      throw new CmpError(
        'BAD_FLAG',
        'cmp train needs --out DIR, the run folder to write. Example: cmp train --out runs/fm-mlp',
      );
    }
    const mask = maskFlags(f);
    const from = typeof f.from === 'string' ? fromFlags(f.from, f) : undefined;
    prepareRunOut(f.out, f.force === true);
    // --from fine-tunes on the data set the run was trained on unless --data says otherwise.
    const data = await loadDataFlag(f.data, io, from ? runConsumer(from.dir, from.spec, from.dataset) : undefined, {
      limitTrain: f['limit-train'] as number | undefined,
      limitTest: f['limit-test'] as number | undefined,
    });
    const precision = precisionFlags(f);
    const result = await trainRun(data, {
      arch: (f.arch as string) ?? 'mlp',
      binarizeWeights: precision.binarize ?? 'none',
      ...(precision.int8 ? { int8: precision.int8 } : {}),
      binarizeActivations: ((f['binarize-activations'] as string) ?? 'none') as BinarizeMode,
      keepFloat: f['keep-float'] as string[] | undefined,
      widths: f.widths as number[] | undefined,
      filters: f.filters as number[] | undefined,
      exits: f.exits as number[] | undefined,
      epochs: (f.epochs as number) ?? DEFAULT_TRAIN_OPTIONS.epochs,
      batchSize: (f['batch-size'] as number) ?? DEFAULT_TRAIN_OPTIONS.batchSize,
      learningRate: (f.lr as number) ?? DEFAULT_TRAIN_OPTIONS.learningRate,
      seed: (f.seed as number) ?? DEFAULT_TRAIN_OPTIONS.seed,
      out: f.out,
      onProgress: trainProgress(io.progress, 'train'),
      ...(f.sparsity === 'gss' ? { groupSparsity: gssFlags(f) } : {}),
      ...(mask ? { mask } : {}),
      ...(from ? { from: { dir: from.dir, spec: from.spec, tensors: from.tensors } } : {}),
    });
    io.progress.done();
    if (io.json) {
      io.out(
        JSON.stringify(
          {
            out: f.out,
            spec: result.spec,
            training: result.training,
            testAccuracy: result.testAccuracy,
            pruning: result.pruning,
            masking: result.masking,
            ...(from?.checkpoint
              ? { from: { dir: from.dir, checkpoint: from.checkpoint, trimmedBytes: from.trimmedBytes } }
              : {}),
          },
          null,
          2,
        ),
      );
    } else {
      io.out(
        formatTable(
          ['run', 'arch', 'weights', 'activations', 'epochs', 'test accuracy', 'time'],
          [
            [
              f.out,
              result.spec.arch,
              layerModes(result.spec, 'weights'),
              layerModes(result.spec, 'inputs'),
              result.training.epochs,
              formatPercent(result.testAccuracy),
              formatDuration(result.training.durationMs),
            ],
          ],
        ),
      );
      if (result.pruning) {
        const p = result.pruning;
        const widths = Object.entries(p.kept)
          .map(([layer, k]) => `${layer} ${k.kept}/${k.of}`)
          .join(', ');
        io.out(`\nGSS removed ${formatPercent(1 - p.weightsAfter / p.weightsBefore)} of the weights (${widths}).`);
      }
      if (result.masking) {
        const m = result.masking;
        io.out(
          `\nInput mask (${m.kind}, ${m.granularity}, ${m.source}): ${formatPercent(m.keptFraction)} of ${m.units} units kept, ${m.frameBytes.toFixed(1)} bytes per instance vs ${m.fullInputBytes} for the whole input; ${m.checkpoints.length} checkpoints (cmp masks ${f.out}).`,
        );
      }
      if (from?.checkpoint) {
        const c = from.checkpoint;
        const trimmed = from.trimmedBytes
          ? `, trimmed to ${from.trimmedBytes.toFixed(1)} bytes to fit --max-bytes`
          : '';
        io.out(
          `\nStarted from ${from.dir} (${c.frameBytes.toFixed(1)} bytes per instance, ${formatPercent(c.validationAccuracy)} on validation)${trimmed}.`,
        );
      }
      io.out(`\nNext: cmp export ${f.out} --out model.onnx`);
    }
    return 0;
  },
};
