// cmp prune: remove neurons/filters from a trained run by conditional mutual information (MINT), group norm (GSS) or
// magnitude.

import { pruneRun } from '../../compress/prune-run.js';
import {
  checkSparsity,
  cutsFromInput,
  nonzeroWeights,
  PRUNE_GRANULARITIES,
  PRUNE_METHODS,
  weightCount,
  type PruneGranularity,
  type PruneMethod,
  type PruneScope,
} from '../../compress/prune.js';
import { DEFAULT_TRAIN_OPTIONS } from '../../compress/train.js';
import { loadRun, prepareRunOut } from '../../core/run.js';
import { BINARIZE_MODES, isWeightLayer, type BinarizeMode } from '../../core/spec.js';
import { CmpError } from '../../errors.js';
import type { Parsed } from '../args.js';
import type { CliIo, Command } from '../command.js';
import { DATA_FLAG, loadDataFlag, runConsumer } from '../data-flag.js';
import { formatPercent, formatTable } from '../table.js';
import { trainProgress } from './train.js';

export const pruneCommand: Command = {
  def: {
    name: 'prune',
    summary:
      'Prune a trained run, whole neurons/filters (the exported model gets smaller) or blocks of connections, then fine-tune.',
    positionals: ['RUN'],
    flags: {
      method: { type: 'string', choices: PRUNE_METHODS, default: 'mint', help: 'how groups are scored' },
      sparsity: { type: 'number', value: 'S', help: 'share of the weights to remove, in (0, 1) (required)' },
      scope: {
        type: 'string',
        choices: ['per-layer', 'global'],
        default: 'per-layer',
        help: 'same share per layer, or ranked across layers',
      },
      granularity: {
        type: 'string',
        choices: PRUNE_GRANULARITIES,
        default: 'unit',
        help: 'remove whole neurons/filters, or cut the blocks of connections between groups (the MINT paper)',
      },
      layers: {
        type: 'string',
        value: 'L,..',
        help: 'weight layers whose weights --sparsity counts (connection: the only ones cut), e.g. fc2',
      },
      'group-size': { type: 'int', default: '1', help: 'neurons/filters scored and removed together' },
      'samples-per-class': {
        type: 'int',
        default: '250',
        help: 'mint, mint-pairwise: class-balanced training samples for the mutual information',
      },
      bins: { type: 'int', default: '8', help: 'mint-pairwise: equal-frequency bins per activation' },
      retrain: { type: 'count', default: '5', help: 'fine-tuning epochs after pruning (0: none)' },
      lr: { type: 'number', default: '0.001', help: 'fine-tuning learning rate' },
      distill: {
        type: 'number',
        value: 'W',
        help: "fine-tune against the unpruned run's softened predictions, with weight W in (0, 1] (knowledge distillation)",
      },
      temperature: { type: 'number', default: '4', help: 'with --distill: the softening temperature' },
      seed: { type: 'int', default: '1', help: 'random seed of the fine-tuning' },
      binarize: {
        type: 'string',
        choices: BINARIZE_MODES,
        help: 'binarize weights while fine-tuning (prune, then binarize)',
      },
      data: DATA_FLAG,
      'limit-train': { type: 'int', help: 'score and fine-tune on the first N training samples only' },
      'limit-test': { type: 'int', help: 'evaluate on the first N test samples only' },
      out: { type: 'string', value: 'DIR', help: 'run folder to write (required)' },
      force: { type: 'boolean', help: 'replace the run already in --out' },
    },
    examples: [
      'cmp prune runs/fm-mlp --method mint --sparsity 0.9 --samples-per-class 250 --group-size 10 --retrain 10 --out runs/fm-mlp-mint',
      'cmp prune runs/fm-mlp --method magnitude --sparsity 0.9 --retrain 10 --out runs/fm-mlp-mag',
      'cmp prune runs/mnist-mlp --method mint --granularity connection --layers fc2 --sparsity 0.96 --group-size 10 --out runs/mnist-mlp-mint',
    ],
  },
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const f = parsed.flags;
    if (typeof f.out !== 'string')
      throw new CmpError(
        'BAD_FLAG',
        'cmp prune needs --out DIR, the run folder to write. Example: --out runs/fm-mlp-mint',
      );
    if (typeof f.sparsity !== 'number')
      throw new CmpError(
        'BAD_FLAG',
        'cmp prune needs --sparsity S, the share of weights to remove, e.g. --sparsity 0.9',
      );
    const run = loadRun(parsed.positionals[0]);
    checkSparsity(f.sparsity);
    const distill = f.distill as number | undefined;
    const temperature = (f.temperature as number | undefined) ?? 4;
    if (distill !== undefined && !(distill > 0 && distill <= 1)) {
      throw new CmpError(
        'BAD_FLAG',
        `--distill is the teacher's share of the loss, in (0, 1]; got ${distill}. Example: --distill 0.7`,
      );
    }
    if (!(temperature > 0)) {
      throw new CmpError('BAD_FLAG', `--temperature must be above 0, got ${temperature}. Example: --temperature 4`);
    }
    const weightLayers = run.record.spec.layers.filter(isWeightLayer).map((l) => l.name);
    const counted = typeof f.layers === 'string' ? f.layers.split(',').map((l) => l.trim()) : undefined;
    const unknown = counted?.find((l) => !weightLayers.includes(l));
    if (unknown !== undefined) {
      throw new CmpError(
        'BAD_FLAG',
        `--layers names "${unknown}", which is not a weight layer of ${run.dir}. Its weight layers: ${weightLayers.join(', ')}.`,
      );
    }
    // The first weight layer's connections come from the input: only a dense layer over an unmasked input has them.
    if (f.granularity === 'connection') cutsFromInput(run.record.spec, counted);
    prepareRunOut(f.out, f.force === true);
    const data = await loadDataFlag(f.data, io, runConsumer(run.dir, run.record.spec, run.record.training.dataset), {
      limitTrain: f['limit-train'] as number | undefined,
      limitTest: f['limit-test'] as number | undefined,
    });
    const result = await pruneRun(run, data, {
      method: ((f.method as string) ?? 'mint') as PruneMethod,
      sparsity: f.sparsity,
      scope: ((f.scope as string) ?? 'per-layer') as PruneScope,
      granularity: ((f.granularity as string) ?? 'unit') as PruneGranularity,
      ...(counted ? { counted } : {}),
      ...(distill !== undefined ? { distill: { weight: distill, temperature } } : {}),
      groupSize: (f['group-size'] as number) ?? 1,
      samplesPerClass: (f['samples-per-class'] as number) ?? 250,
      bins: (f.bins as number) ?? 8,
      retrain: (f.retrain as number) ?? 5,
      batchSize: DEFAULT_TRAIN_OPTIONS.batchSize,
      learningRate: (f.lr as number) ?? 0.001,
      seed: (f.seed as number) ?? 1,
      out: f.out,
      onProgress: (text) => io.progress.update(text),
      onTrainProgress: trainProgress(io.progress, 'retrain'),
      ...(typeof f.binarize === 'string' ? { binarizeWeights: f.binarize as BinarizeMode } : {}),
    });
    io.progress.done();
    const p = result.pruning;
    const before = run.record.training.testAccuracy;
    if (io.json) {
      io.out(
        JSON.stringify(
          { out: f.out, pruning: p, testAccuracyBefore: before, testAccuracy: result.testAccuracy, spec: result.spec },
          null,
          2,
        ),
      );
      return 0;
    }
    io.out(
      formatTable(
        ['layer', 'kept', 'of', 'removed'],
        Object.entries(p.kept).map(([layer, k]) => [layer, k.kept, k.of, formatPercent(1 - k.kept / k.of)]),
      ),
    );
    if (p.granularity === 'connection') {
      const tensors = new Map([...result.tensors].map(([name, t]) => [name, t.data]));
      io.out('');
      io.out(
        formatTable(
          ['layer', 'weights kept', 'of', 'cut'],
          weightLayers.map((l) => {
            const of = weightCount(run.record.spec, [l]);
            const kept = nonzeroWeights(result.spec, tensors, [l]);
            return [l, kept, of, formatPercent(1 - kept / of)];
          }),
        ),
      );
    }
    io.out(
      `\n${p.method}: ${formatPercent(1 - p.weightsAfter / p.weightsBefore)} of the weights removed (${p.weightsBefore} -> ${p.weightsAfter}); ` +
        `test accuracy ${formatPercent(before)} -> ${formatPercent(result.testAccuracy)} after ${result.training.epochs} fine-tuning epoch${result.training.epochs === 1 ? '' : 's'}.`,
    );
    io.out(`Next: cmp export ${f.out} --out model.onnx`);
    return 0;
  },
};
