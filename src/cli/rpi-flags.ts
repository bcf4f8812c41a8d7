// The flags that say which SSH devices a command works on (--host, --hosts, --identity...), shared by deploy,
// status, rollback and profile for --target rpi, and the per-device table a fleet command ends with.

import { CmpError } from '../errors.js';
import { readHostsFile, type FleetResult } from '../deploy/fleet.js';
import { formatAddress, parseRemoteAddress } from '../deploy/remote.js';
import type { RpiDevice } from '../deploy/target-rpi.js';
import type { FlagDef, Parsed } from './args.js';
import type { CliIo } from './command.js';
import { formatTable } from './table.js';

/** How to reach an rpi device: every rpi command takes these (and --port for SSH). */
export const RPI_DEPLOY_FLAGS: Record<string, FlagDef> = {
  host: { type: 'string', value: 'USER@HOST[:PORT]', help: 'rpi: the device, e.g. pi@raspberrypi.local' },
  hosts: {
    type: 'string',
    value: 'FILE',
    help: 'rpi: a fleet: one user@host[:port] per line, optionally remote-dir=, identity=, node=; # comments',
  },
  parallel: { type: 'int', default: '4', help: 'rpi: devices of a fleet worked on at once' },
  identity: { type: 'string', value: 'FILE', help: 'rpi: SSH private key (default: the SSH agent, then ~/.ssh/id_*)' },
  'accept-new-host-key': {
    type: 'boolean',
    help: 'rpi: trust a device known_hosts does not list yet, and remember it',
  },
  'known-hosts': { type: 'string', value: 'FILE', help: 'rpi: known_hosts file (default ~/.ssh/known_hosts)' },
  'remote-dir': { type: 'string', value: 'DIR', default: '.cmp', help: "rpi: cmp's folder on the device" },
  node: { type: 'string', value: 'PATH', default: 'node', help: 'rpi: Node.js on the device' },
};

/** RpiDevice from the flags for one device (--host); --port (SSH) is optional. */
export function rpiOptionsFrom(parsed: Parsed, io: CliIo, command: string): RpiDevice {
  const f = parsed.flags;
  const host = f.host as string | undefined;
  if (!host) {
    throw new CmpError(
      'BAD_FLAG',
      `cmp ${command} --target rpi needs --host USER@HOST (e.g. pi@raspberrypi.local)${command === 'rollback' ? '' : ' or --hosts FILE'}.`,
    );
  }
  if (f.hosts !== undefined)
    throw new CmpError('BAD_FLAG', 'Use --host for one device or --hosts for a fleet, not both.');
  return { ...sharedOptions(parsed, io), address: parseRemoteAddress(host, sshPort(parsed)) };
}

/** The devices a command works on: --hosts FILE (a fleet) or --host (one), with --parallel for fleets. */
export function rpiDevicesFrom(
  parsed: Parsed,
  io: CliIo,
  command: string,
): { fleet: boolean; parallel: number; devices: RpiDevice[] } {
  const f = parsed.flags;
  if (f.hosts === undefined) return { fleet: false, parallel: 1, devices: [rpiOptionsFrom(parsed, io, command)] };
  if (f.host !== undefined)
    throw new CmpError('BAD_FLAG', 'Use --host for one device or --hosts for a fleet, not both.');
  const shared = sharedOptions(parsed, io);
  const devices = readHostsFile(f.hosts as string, sshPort(parsed)).map((d): RpiDevice => ({
    ...shared,
    address: d.address,
    ...(d.remoteDir ? { remoteDir: d.remoteDir } : {}),
    ...(d.identity ? { identity: d.identity } : {}),
    ...(d.node ? { node: d.node } : {}),
    onProgress: (message) => io.progress.update(`${d.name}: ${message}`),
  }));
  return { fleet: true, parallel: (f.parallel as number | undefined) ?? 4, devices };
}

/** Devices named for fleet results. */
export function named(devices: RpiDevice[]): { name: string; options: RpiDevice }[] {
  return devices.map((options) => ({ name: formatAddress(options.address), options }));
}

/** Settings every device of a command shares, from the flags. */
function sharedOptions(parsed: Parsed, io: CliIo): Omit<RpiDevice, 'address'> {
  const f = parsed.flags;
  return {
    identity: f.identity as string | undefined,
    acceptNewHostKey: f['accept-new-host-key'] === true,
    knownHosts: f['known-hosts'] as string | undefined,
    remoteDir: f['remote-dir'] as string | undefined,
    node: f.node as string | undefined,
    onProgress: (message) => io.progress.update(message),
  };
}

/** --port as the SSH port devices without their own :port use. */
function sshPort(parsed: Parsed): number {
  const port = parsed.flags.port;
  if (port === undefined) return 22;
  const n = Number(port);
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    throw new CmpError('BAD_FLAG', `--port "${String(port)}" is not an SSH port (1-65535).`);
  }
  return n;
}

/**
 * Ends a fleet command: prints the per-device table (or JSON) and, when a device failed, one line naming the failed
 * devices; exit code 1 then.
 */
export function finishFleet<T>(
  io: CliIo,
  results: FleetResult<T>[],
  what: string,
  table: { headers: string[]; row: (value: T) => (string | number)[] },
  json: (value: T) => unknown,
): number {
  io.progress.done();
  if (io.json) {
    io.out(
      JSON.stringify(
        results.map((r) => ({
          device: r.device.name,
          ok: r.ok,
          ms: Math.round(r.ms),
          ...(r.ok ? { result: json(r.value) } : { error: r.error }),
        })),
        null,
        2,
      ),
    );
  } else {
    const blank = table.headers.map(() => '-');
    io.out(
      formatTable(
        ['device', 'result', ...table.headers, 'error'],
        results.map((r) => [
          r.device.name,
          r.ok ? 'ok' : 'FAILED',
          ...(r.ok ? table.row(r.value) : blank),
          r.ok ? '' : r.error,
        ]),
      ),
    );
  }
  const failed = results.filter((r) => !r.ok);
  if (failed.length === 0) return 0;
  io.warn(
    `${what} failed on ${failed.length} of ${results.length} devices: ${failed.map((r) => r.device.name).join(', ')}.`,
  );
  return 1;
}
