// cmp deploy --target rpi: releases the model to a Linux device over SSH, switches atomically, health-checks it.

import { CmpError } from '../../errors.js';
import type { FlagDef, Parsed } from '../args.js';
import type { CliIo } from '../command.js';

/** Flags only this target reads. */
export const RPI_DEPLOY_FLAGS: Record<string, FlagDef> = {
  host: { type: 'string', value: 'USER@HOST', help: 'rpi: the device to deploy to' },
};

/** Releases the model to the device. */
export const rpiDeploy = {
  async run(_parsed: Parsed, _io: CliIo): Promise<number> {
    throw new CmpError('BAD_ARGUMENT', 'cmp deploy --target rpi is not built yet.');
  },
};
