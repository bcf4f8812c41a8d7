// cmp deploy --target browser: writes a static site that runs the model with onnxruntime-web or bitwasm.

import { CmpError } from '../../errors.js';
import type { FlagDef, Parsed } from '../args.js';
import type { CliIo } from '../command.js';

/** Flags only this target reads. */
export const BROWSER_DEPLOY_FLAGS: Record<string, FlagDef> = {
  out: { type: 'string', value: 'DIR', help: 'browser: folder the static site is written to' },
};

/** Writes the static site. */
export const browserDeploy = {
  async run(_parsed: Parsed, _io: CliIo): Promise<number> {
    throw new CmpError('BAD_ARGUMENT', 'cmp deploy --target browser is not built yet.');
  },
};
