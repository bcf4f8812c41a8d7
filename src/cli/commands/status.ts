// cmp status: what a device runs: its release, the previous one, the service and its health.

import { rpiStatus } from '../../deploy/rpi.js';
import type { Parsed } from '../args.js';
import type { CliIo, Command } from '../command.js';
import { formatTable } from '../table.js';
import { RPI_DEPLOY_FLAGS, rpiOptionsFrom } from './deploy-rpi.js';

export const statusCommand: Command = {
  def: {
    name: 'status',
    summary: 'Show the release a device runs, the previous one, its service and its health.',
    positionals: [],
    flags: {
      target: { type: 'string', value: 'NAME', default: 'rpi', choices: ['rpi'], help: 'kind of device' },
      port: { type: 'string', value: 'N', help: 'rpi: SSH port' },
      ...RPI_DEPLOY_FLAGS,
    },
    examples: ['cmp status --target rpi --host pi@raspberrypi.local'],
  },
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const status = await rpiStatus(rpiOptionsFrom(parsed, io, 'status'));
    io.progress.done();
    if (io.json) {
      io.out(JSON.stringify(status, null, 2));
      return status.current ? 0 : 1;
    }
    if (!status.current) {
      io.out(`${status.host}: no release deployed.`);
      return 1;
    }
    const health = status.health ?? {};
    const service = status.service ?? { mode: 'process' };
    io.out(
      formatTable(
        ['device', 'release', 'previous', 'service', 'backend', 'health', 'inferences'],
        [
          [
            status.host,
            status.current,
            status.previous ?? '-',
            service.mode === 'systemd' ? `systemd ${service.unit}` : `pid ${service.pid ?? 'none'}`,
            health.backend ?? '-',
            health.ok ? 'ok' : `failing: ${health.error ?? '?'}`,
            health.inferences ?? '-',
          ],
        ],
      ),
    );
    return health.ok ? 0 : 1;
  },
};
