// cmp deploy --target rpi: releases the model to a Linux device (or a fleet of them) over SSH through the rpi
// target, and prints what it did.

import { forEachDevice } from '../../../deploy/fleet.js';
import type { ReleasePlans, RpiDeployReport } from '../../../deploy/rpi.js';
import type { RpiDevice } from '../../../deploy/target-rpi.js';
import { TARGETS } from '../../../deploy/targets.js';
import type { Parsed } from '../../args.js';
import type { CliIo } from '../../command.js';
import { dataLoader } from '../../data-flag.js';
import { finishFleet, named, rpiDevicesFrom } from '../../rpi-flags.js';
import { formatBytes, formatTable } from '../../table.js';
import { readModelFile } from '../../../runtime/model-file.js';

export { RPI_DEPLOY_FLAGS } from '../../rpi-flags.js';

/** Releases the model to the device, or to every device of a fleet. */
export const rpiDeploy = {
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const { fleet, parallel, devices } = rpiDevicesFrom(parsed, io, 'deploy');
    const file = readModelFile(parsed.positionals[0]);
    const options = { data: dataLoader(parsed.flags.data, io) };
    // The devices of a fleet that share a platform share one release plan.
    const plans: ReleasePlans = new Map();
    const deployOne = (device: RpiDevice): Promise<RpiDeployReport> =>
      TARGETS.rpi.deploy({ ...device, plans }, file, options);
    if (!fleet) {
      const report = await deployOne(devices[0]);
      io.progress.done();
      io.out(io.json ? JSON.stringify(report, null, 2) : formatDeploy(report));
      return 0;
    }
    let done = 0;
    const results = await forEachDevice(named(devices), parallel, async (d) => {
      const report = await deployOne(d.options);
      io.progress.update(`deployed ${++done}/${devices.length}`);
      return report;
    });
    return finishFleet(
      io,
      results,
      'Deploy',
      {
        headers: ['release', 'backend', 'health', 'p50 ms', 'p99 ms', 'ms'],
        row: (r) => [
          r.unchanged ? `${r.release} (unchanged)` : r.release,
          r.backend,
          r.health?.ok === true ? 'ok' : '?',
          latencyOf(r, 'p50'),
          latencyOf(r, 'p99'),
          Math.round(r.totalMs),
        ],
      },
      (r) => r,
    );
  },
};

function latencyOf(r: RpiDeployReport, p: 'p50' | 'p99'): string {
  const ms = (r.health?.latencyMs as { p50?: number; p99?: number } | undefined)?.[p];
  return typeof ms === 'number' ? ms.toFixed(3) : '-';
}

function formatDeploy(r: RpiDeployReport): string {
  const table = formatTable(
    [
      'device',
      'release',
      'previous',
      'backend',
      'release size',
      'uploaded',
      'on the device',
      'upload ms',
      'activate ms',
    ],
    [
      [
        r.host,
        r.release,
        r.previous ?? '-',
        r.backend,
        formatBytes(r.releaseBytes),
        formatBytes(r.uploadedBytes),
        formatBytes(r.reusedBytes),
        Math.round(r.uploadMs),
        Math.round(r.activateMs),
      ],
    ],
  );
  const device = `${r.facts.uname}, ${r.facts.cpus} CPUs, ${formatBytes(r.facts.memoryBytes)}, Node ${r.facts.nodeVersion}`;
  const what = r.unchanged
    ? `${r.host} already runs release ${r.release} and is healthy: nothing to do.`
    : `${r.host} runs release ${r.release}: smoke test and health check passed.`;
  return `${table}\n\n${what}\nDevice: ${device}. Backend: ${r.backend} (${r.backendReason}).`;
}
