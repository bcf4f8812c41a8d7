// cmp deploy --target rpi: releases the model to a Linux device over SSH, switches atomically, health-checks it.
// Also the SSH flags that status, rollback and profile share.

import { CmpError } from '../../errors.js';
import { recordDevice } from '../../deploy/devices.js';
import { deployRpi, type RpiDeployReport, type RpiOptions } from '../../deploy/rpi.js';
import { parseRemoteAddress } from '../../deploy/remote.js';
import { readModelFile } from '../../runtime/model-file.js';
import type { FlagDef, Parsed } from '../args.js';
import type { CliIo } from '../command.js';
import { loadDataFlag } from '../data-flag.js';
import { formatBytes, formatTable } from '../table.js';

/** How to reach an rpi device: every rpi command takes these (and --port for SSH). */
export const RPI_DEPLOY_FLAGS: Record<string, FlagDef> = {
  host: { type: 'string', value: 'USER@HOST[:PORT]', help: 'rpi: the device, e.g. pi@raspberrypi.local' },
  identity: { type: 'string', value: 'FILE', help: 'rpi: SSH private key (default: the SSH agent, then ~/.ssh/id_*)' },
  'accept-new-host-key': {
    type: 'boolean',
    help: 'rpi: trust a device known_hosts does not list yet, and remember it',
  },
  'known-hosts': { type: 'string', value: 'FILE', help: 'rpi: known_hosts file (default ~/.ssh/known_hosts)' },
  'remote-dir': { type: 'string', value: 'DIR', default: '.cmp', help: "rpi: cmp's folder on the device" },
  node: { type: 'string', value: 'PATH', default: 'node', help: 'rpi: Node.js on the device' },
};

/** RpiOptions from the flags; --host is required, --port (SSH) is optional. */
export function rpiOptionsFrom(parsed: Parsed, io: CliIo, command: string): RpiOptions {
  const f = parsed.flags;
  const host = f.host as string | undefined;
  if (!host)
    throw new CmpError('BAD_FLAG', `cmp ${command} --target rpi needs --host USER@HOST (e.g. pi@raspberrypi.local).`);
  let defaultPort = 22;
  if (f.port !== undefined) {
    defaultPort = Number(f.port);
    if (!Number.isInteger(defaultPort) || defaultPort < 1 || defaultPort > 65535) {
      throw new CmpError('BAD_FLAG', `--port "${String(f.port)}" is not an SSH port (1-65535).`);
    }
  }
  return {
    address: parseRemoteAddress(host, defaultPort),
    identity: f.identity as string | undefined,
    acceptNewHostKey: f['accept-new-host-key'] === true,
    knownHosts: f['known-hosts'] as string | undefined,
    remoteDir: f['remote-dir'] as string | undefined,
    node: f.node as string | undefined,
    onProgress: (message) => io.progress.update(message),
  };
}

/** Releases the model to the device. */
export const rpiDeploy = {
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const options = rpiOptionsFrom(parsed, io, 'deploy');
    const file = readModelFile(parsed.positionals[0]);
    const data = await loadDataFlag(parsed.flags.data ?? file.manifest?.training?.dataset, io, {
      limitTest: 1,
      limitTrain: 1,
    });
    const features = data.inputShape.reduce((a, b) => a * b, 1);
    const report = await deployRpi(file, data.test.x.slice(0, features), options);
    const { address, identity, knownHosts, remoteDir, node } = options;
    recordDevice({
      kind: 'rpi',
      name: report.host,
      ssh: { ...address, identity, knownHosts, remoteDir, node },
      model: file.path,
      release: report.release,
      deployedAt: new Date().toISOString(),
    });
    io.progress.done();
    io.out(io.json ? JSON.stringify(report, null, 2) : formatDeploy(report));
    return 0;
  },
};

function formatDeploy(r: RpiDeployReport): string {
  const table = formatTable(
    ['device', 'release', 'previous', 'backend', 'release size', 'uploaded', 'upload ms', 'activate ms'],
    [
      [
        r.host,
        r.release,
        r.previous ?? '-',
        r.backend,
        formatBytes(r.releaseBytes),
        formatBytes(r.uploadedBytes),
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
