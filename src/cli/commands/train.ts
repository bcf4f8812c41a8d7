// cmp train: train a (binarized) network on a data set and save a run folder.

import { CmpError } from '../../errors.js';
import { trainRun } from '../../compress/train-run.js';
import { DEFAULT_GSS, type GroupSparsityOptions } from '../../compress/gss.js';
import { DEFAULT_TRAIN_OPTIONS, type TrainProgress } from '../../compress/train.js';
import { ARCHS, BINARIZE_MODES, type BinarizeMode } from '../../core/spec.js';
import type { Parsed } from '../args.js';
import type { CliIo, Command } from '../command.js';
import { DATA_FLAG, loadDataFlag } from '../data-flag.js';
import { formatDuration, type Progress } from '../progress.js';
import { formatPercent, formatTable } from '../table.js';

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
} as const;

/** Reports training progress: a live status line, and a line per epoch. */
export function trainProgress(progress: Progress, label: string): (p: TrainProgress) => void {
  return (p) => {
    if (p.phase === 'batch') {
      progress.update(
        `${label} epoch ${p.epoch}/${p.epochs} batch ${p.batch}/${p.batches} loss ${p.loss.toFixed(4)} ETA ${formatDuration(p.etaMs)}`,
      );
    } else {
      const r = p.record;
      progress.log(
        `${label} epoch ${r.epoch}/${p.epochs}: loss ${r.loss.toFixed(4)}, train ${formatPercent(r.trainAccuracy)}, test ${formatPercent(r.testAccuracy)} (${formatDuration(r.durationMs)}, ETA ${formatDuration(p.etaMs)})`,
      );
    }
  };
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
    flags: { ...TRAIN_FLAGS, out: { type: 'string', value: 'DIR', help: 'run folder to write (required)' } },
    examples: [
      'cmp train --data fashion-mnist --arch mlp --binarize dab --epochs 20 --out runs/fm-mlp',
      'cmp train --data mnist --arch lenet --binarize xnor --binarize-activations xnor --out runs/mn-lenet',
      'cmp train --data fashion-mnist --arch lenet --sparsity gss --keep-alive 0.1 --out runs/fm-lenet-gss',
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
    const data = await loadDataFlag(f.data, io, {
      limitTrain: f['limit-train'] as number,
      limitTest: f['limit-test'] as number,
    });
    io.progress.log(
      `Training on ${data.name}: ${data.train.count} train / ${data.test.count} test samples (${data.source})`,
    );
    const result = await trainRun(data, {
      arch: (f.arch as string) ?? 'mlp',
      binarizeWeights: ((f.binarize as string) ?? 'none') as BinarizeMode,
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
              (f.binarize as string) ?? 'none',
              (f['binarize-activations'] as string) ?? 'none',
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
      io.out(`\nNext: cmp export ${f.out} --out model.onnx`);
    }
    return 0;
  },
};
