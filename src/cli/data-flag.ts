// Resolving the --data flag shared by commands: a named set, a folder, the model's own, or the default with its note.

import { checkDatasetFits, chooseDataset, loadDataset, type Dataset, type DatasetConsumer } from '../data/datasets.js';
import type { ModelSpec } from '../core/spec.js';
import type { LoadData } from '../deploy/target.js';
import type { CliIo } from './command.js';

export const DATA_FLAG = {
  type: 'string',
  value: 'NAME|DIR',
  help: "fashion-mnist, mnist, or a folder of IDX files (default: the model's own, else fashion-mnist, else mnist)",
} as const;

/** Which splits a command reads: the first progress line counts only those. */
export type SplitUse = 'train+test' | 'test';

export interface DataFlagOptions {
  limitTrain?: number;
  limitTest?: number;
  /** Default 'train+test'. */
  use?: SplitUse;
  /** False: no line naming the data set (a deploy's smoke test reads one image; the data set is not its point). */
  announce?: boolean;
}

/**
 * Loads the data set a command was asked for, else the one `model` records, else the default; refuses one that does
 * not fit the model before any work. Progress gets the notes (a fallback, a data set other than the model's) and a
 * first line naming the data set, its split sizes and the model.
 */
export async function loadDataFlag(
  value: unknown,
  io: CliIo,
  model?: DatasetConsumer,
  options: DataFlagOptions = {},
): Promise<Dataset> {
  // CMP_FASHION_MNIST_DIR points at Fashion-MNIST files outside Debian's location.
  const root = process.env.CMP_FASHION_MNIST_DIR || undefined;
  const asked = typeof value === 'string' && value !== '' ? value : undefined;
  const choice = await chooseDataset(asked, model ?? { name: '' }, { root });
  const data = await loadDataset(choice.name, {
    ...(options.limitTrain !== undefined ? { limitTrain: options.limitTrain } : {}),
    ...(options.limitTest !== undefined ? { limitTest: options.limitTest } : {}),
    ...(root ? { root } : {}),
  });
  if (model) checkDatasetFits(data, model);
  // After the check, so a refusal stays one line.
  if (choice.note) io.progress.log(choice.note);
  const count = (n: number): string => n.toLocaleString('en-US');
  const splits =
    options.use === 'test'
      ? `${count(data.test.count)} test images`
      : `${count(data.train.count)} train / ${count(data.test.count)} test images`;
  if (options.announce === false) return data;
  io.progress.log(`Data: ${data.name}, ${splits} (${data.source})${model?.name ? `; model: ${model.name}` : ''}.`);
  return data;
}

/** What a data set must fit for a run folder: its spec's input, classes and recorded data set. */
export function runConsumer(name: string, spec: ModelSpec, recorded: string | undefined): DatasetConsumer {
  return { name, recorded, inputShape: spec.input.shape, classes: spec.labels.length };
}

/**
 * The --data flag as a target's LoadData: the test split, `count` instances; named in one line unless a smoke test's
 * single image. Each data set loads once however many devices of a fleet ask.
 */
export function dataLoader(value: unknown, io: CliIo): LoadData {
  const loaded = new Map<string, Promise<Dataset>>();
  return (model, count) => {
    const key = JSON.stringify([model.name, model.recorded, count]);
    let data = loaded.get(key);
    if (!data) {
      data = loadDataFlag(value, io, model, { limitTest: count, limitTrain: 1, use: 'test', announce: count > 1 });
      loaded.set(key, data);
    }
    return data;
  };
}
