// The --input-range flag shared by import, eval and run: the values a model expects for black and white pixels.

import { parseInputRange } from '../import/import-run.js';
import { withInputRange, type ModelFile } from '../runtime/model-file.js';
import type { FlagValue } from './args.js';

export const INPUT_RANGE_FLAG = {
  type: 'string',
  value: 'LO,HI',
  default: '0,1',
  help: 'the values the model expects for black and white pixels (negative: --input-range=-1,1)',
} as const;

/** The same flag on eval and run, where a cmp file's own manifest is the default. */
export const RUN_INPUT_RANGE_FLAG = { ...INPUT_RANGE_FLAG, default: "0,1, or a cmp file's own" } as const;

/** `file` as --input-range says to feed it (unchanged without the flag); a cmp file's manifest must agree with it. */
export function applyInputRangeFlag(file: ModelFile, value: FlagValue): ModelFile {
  return typeof value === 'string' ? withInputRange(file, parseInputRange(value)) : file;
}

/** What eval and run feed a file without a cmp manifest, in one line. */
export function foreignInputNote(file: ModelFile): string {
  const { mean, std } = file.normalization;
  if (mean === 0 && std === 1) {
    return `${file.path} has no cmp manifest: feeding pixels in [0, 1] as is (pass --input-range LO,HI if it expects another range).`;
  }
  const range = [-mean / std, (1 - mean) / std].map((v) => +v.toPrecision(6));
  return `${file.path} has no cmp manifest: feeding pixels in [${range.join(', ')}] (--input-range).`;
}
