// cmp rollback: switches a device back to its previous release, health-checked like a deploy.

import { TARGETS } from '../../deploy/targets.js';
import type { Parsed } from '../args.js';
import type { CliIo, Command } from '../command.js';
import { RPI_DEPLOY_FLAGS, rpiOptionsFrom } from '../rpi-flags.js';

export const rollbackCommand: Command = {
  def: {
    name: 'rollback',
    summary: 'Switch a device back to its previous release (health-checked; on failure it keeps the current one).',
    positionals: [],
    flags: {
      target: { type: 'string', value: 'NAME', default: 'rpi', choices: ['rpi'], help: 'kind of device' },
      port: { type: 'string', value: 'N', help: 'rpi: SSH port' },
      ...RPI_DEPLOY_FLAGS,
    },
    examples: ['cmp rollback --target rpi --host pi@raspberrypi.local'],
  },
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const result = await TARGETS.rpi.rollback(rpiOptionsFrom(parsed, io, 'rollback'));
    io.progress.done();
    io.out(
      io.json
        ? JSON.stringify(result, null, 2)
        : `${String(result.host)} runs release ${String(result.release)} again (was ${String(result.previous)}): health check passed.`,
    );
    return 0;
  },
};
