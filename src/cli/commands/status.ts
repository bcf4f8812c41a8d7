// cmp status: what a device (or each device of a fleet) runs: its release, the previous one, the service, its health.

import { CmpError } from '../../errors.js';
import { forEachDevice } from '../../deploy/fleet.js';
import type { RpiStatus } from '../../deploy/rpi.js';
import { TARGETS } from '../../deploy/targets.js';
import type { Parsed } from '../args.js';
import type { CliIo, Command } from '../command.js';
import { finishFleet, named, RPI_DEPLOY_FLAGS, rpiDevicesFrom } from '../rpi-flags.js';
import { formatTable } from '../table.js';

export const statusCommand: Command = {
  def: {
    name: 'status',
    summary: 'Show the release a device (or each device of a fleet) runs, the previous one, its service and health.',
    positionals: [],
    flags: {
      target: { type: 'string', value: 'NAME', default: 'rpi', choices: ['rpi'], help: 'kind of device' },
      port: { type: 'string', value: 'N', help: 'rpi: SSH port' },
      ...RPI_DEPLOY_FLAGS,
    },
    examples: ['cmp status --target rpi --host pi@raspberrypi.local', 'cmp status --target rpi --hosts fleet.txt'],
  },
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const { fleet, parallel, devices } = rpiDevicesFrom(parsed, io, 'status');
    if (fleet) {
      const results = await forEachDevice(named(devices), parallel, async (d) =>
        healthy(await TARGETS.rpi.status(d.options)),
      );
      return finishFleet(
        io,
        results,
        'Status',
        { headers: ['release', 'previous', 'backend', 'health', 'inferences'], row: (s) => statusRow(s).slice(1) },
        (s) => s,
      );
    }
    const status = await TARGETS.rpi.status(devices[0]);
    io.progress.done();
    if (io.json) {
      io.out(JSON.stringify(status, null, 2));
      return status.current && status.health?.ok ? 0 : 1;
    }
    if (!status.current) {
      io.out(`${status.host}: no release deployed.`);
      return 1;
    }
    io.out(formatTable(['device', 'release', 'previous', 'backend', 'health', 'inferences'], [statusRow(status)]));
    if (status.backendReason) io.out(`\nBackend: ${status.health?.backend ?? '-'} (${status.backendReason}).`);
    return status.health?.ok ? 0 : 1;
  },
};

/** A fleet device counts as failed when it runs nothing or its service is unhealthy. */
function healthy(status: RpiStatus): RpiStatus {
  if (!status.current) throw new CmpError('IO', 'no release deployed');
  if (!status.health?.ok)
    throw new CmpError('IO', `release ${status.current} is unhealthy: ${status.health?.error ?? '?'}`);
  return status;
}

function statusRow(s: RpiStatus): (string | number)[] {
  return [
    s.host,
    s.current ?? '-',
    s.previous ?? '-',
    s.health?.backend ?? '-',
    s.health?.ok ? 'ok' : `failing: ${s.health?.error ?? '?'}`,
    s.health?.inferences ?? '-',
  ];
}
