// The flags that pick a mask checkpoint of a run, shared by export, masks and train --from: --keep F, --max-bytes B
// and --min-accuracy A, one at a time.

import type { CheckpointChoice } from '../core/run.js';
import { CmpError } from '../errors.js';
import type { FlagDef } from './args.js';

/** The three flags, with what `verb` does with the checkpoint each picks in their help. */
export function checkpointFlags(verb: string): Record<'keep' | 'max-bytes' | 'min-accuracy', FlagDef> {
  return {
    keep: {
      type: 'number',
      value: 'F',
      help: `${verb} the most accurate checkpoint (validation) keeping at most this share of the input`,
    },
    'max-bytes': {
      type: 'number',
      value: 'B',
      help: `${verb} the most accurate checkpoint (validation) sending at most B bytes per instance`,
    },
    'min-accuracy': {
      type: 'number',
      value: 'A',
      help: `${verb} the leanest checkpoint at least this accurate on validation data (0..1)`,
    },
  };
}

/** The checkpoint choice the flags give, checked (one of them, each in range), or undefined without any. */
export function checkpointChoice(flags: {
  keep?: number;
  maxBytes?: number;
  minAccuracy?: number;
}): CheckpointChoice | undefined {
  const { keep, maxBytes, minAccuracy } = flags;
  const given = [
    keep !== undefined && '--keep',
    maxBytes !== undefined && '--max-bytes',
    minAccuracy !== undefined && '--min-accuracy',
  ].filter((g): g is string => g !== false);
  if (given.length > 1)
    throw new CmpError(
      'BAD_FLAG',
      `${given.join(' and ')} each pick a mask checkpoint; give one of --keep, --max-bytes and --min-accuracy.`,
    );
  if (keep !== undefined) {
    if (!(keep > 0 && keep <= 1))
      throw new CmpError('BAD_FLAG', `--keep is a share of the input in (0, 1] (got ${keep}). Example: --keep 0.05`);
    return { keep };
  }
  // The parser takes only positive numbers: any --max-bytes is a budget.
  if (maxBytes !== undefined) return { maxBytes };
  if (minAccuracy !== undefined) {
    if (!(minAccuracy > 0 && minAccuracy <= 1))
      throw new CmpError(
        'BAD_FLAG',
        `--min-accuracy is a fraction in (0, 1] (got ${minAccuracy}). Example: --min-accuracy 0.9`,
      );
    return { minAccuracy };
  }
  return undefined;
}
