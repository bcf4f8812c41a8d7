// One training job end to end: load the data set, build the spec, train, and save the run folder.

import { saveRun, type RunRecord } from '../core/run.js';
import { buildSpec, type ArchOptions, type BinarizeMode, type ModelSpec } from '../core/spec.js';
import { CMP_VERSION } from '../core/version.js';
import type { Dataset } from '../data/datasets.js';
import { train, type TrainOptions, type TrainResult } from './train.js';

export interface TrainRunOptions extends TrainOptions {
  arch: string;
  binarizeWeights: BinarizeMode;
  binarizeActivations: BinarizeMode;
  /** Weight layers kept float, for weights and activations ('first', 'last', or an index); undefined: defaults. */
  keepFloat?: string[];
  widths?: number[];
  filters?: number[];
  /** Where to write the run; nothing is written when undefined. */
  out?: string;
}

/** Weight layers whose inputs stay float unless --keep-float says otherwise: the pixels and the classifier. */
export const DEFAULT_KEEP_FLOAT_ACTIVATIONS: readonly string[] = Object.freeze(['first', 'last']);

/** The spec a training job builds for `data`. */
export function specFor(data: Dataset, options: Omit<TrainRunOptions, keyof TrainOptions>): ModelSpec {
  const arch: ArchOptions = {
    inputShape: data.inputShape,
    labels: data.labels,
    widths: options.widths,
    filters: options.filters,
    binarizeWeights: options.binarizeWeights,
    binarizeInputs: options.binarizeActivations,
    keepFloatWeights: options.keepFloat ?? [],
    keepFloatInputs: options.keepFloat ?? [...DEFAULT_KEEP_FLOAT_ACTIVATIONS],
  };
  return buildSpec(options.arch, arch);
}

/** Trains a model on `data` and, with `out`, saves it as a run folder. */
export async function trainRun(data: Dataset, options: TrainRunOptions): Promise<TrainResult & { spec: ModelSpec }> {
  const spec = specFor(data, options);
  const result = await train(spec, data, options);
  if (options.out) {
    const record: Omit<RunRecord, 'format' | 'tensors'> = { cmpVersion: CMP_VERSION, spec, training: result.training };
    saveRun(options.out, record, result.tensors);
  }
  return { ...result, spec };
}
