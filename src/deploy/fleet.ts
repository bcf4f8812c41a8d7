// Fleets: a hosts file of devices and a bounded pool that runs one action per device, each failure kept with its
// device instead of stopping the others.

import { readFileSync } from 'node:fs';
import { nowMs } from '../core/clock.js';
import { CmpError } from '../errors.js';
import { formatAddress, parseRemoteAddress, type RemoteAddress } from './remote.js';

/** One line of a hosts file. */
export interface FleetDevice {
  address: RemoteAddress;
  /** Per-device settings after the address (`remote-dir=`, `identity=`, `node=`); flags give the rest. */
  remoteDir?: string;
  identity?: string;
  node?: string;
  /** user@host:port, how results name the device. */
  name: string;
}

/** What one device's action gave, or why it failed. */
export type FleetResult<T, D extends { name: string } = { name: string }> =
  { device: D; ok: true; value: T; ms: number } | { device: D; ok: false; error: string; ms: number };

const SETTINGS: Readonly<Record<string, keyof FleetDevice>> = Object.freeze({
  'remote-dir': 'remoteDir',
  identity: 'identity',
  node: 'node',
});

/**
 * Reads a hosts file: one `user@host[:port]` per line, optionally followed by `remote-dir=DIR`, `identity=FILE` or
 * `node=PATH`; `#` starts a comment. A bad line is one error naming the file and line.
 */
export function readHostsFile(path: string, defaultPort = 22): FleetDevice[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CmpError('BAD_FLAG', `Cannot read --hosts ${path}: ${(err as Error).message}. Check the path.`, {
      cause: err,
    });
  }
  const devices: FleetDevice[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) return;
    const [host, ...settings] = line.split(/\s+/);
    let address: RemoteAddress;
    try {
      address = parseRemoteAddress(host, defaultPort);
    } catch (err) {
      throw new CmpError('BAD_FLAG', `${path}:${i + 1}: ${(err as Error).message}`, { cause: err });
    }
    const device: FleetDevice = { address, name: formatAddress(address) };
    for (const setting of settings) {
      const [key, ...rest] = setting.split('=');
      const field = SETTINGS[key];
      if (!field || rest.length === 0 || !rest.join('=')) {
        throw new CmpError(
          'BAD_FLAG',
          `${path}:${i + 1}: unknown setting "${setting}". Use ${Object.keys(SETTINGS)
            .map((k) => `${k}=VALUE`)
            .join(', ')}.`,
        );
      }
      (device as unknown as Record<string, string>)[field] = rest.join('=');
    }
    if (devices.some((d) => d.name === device.name && d.remoteDir === device.remoteDir)) {
      throw new CmpError('BAD_FLAG', `${path}:${i + 1}: ${device.name} is listed twice. List each device once.`);
    }
    devices.push(device);
  });
  if (devices.length === 0)
    throw new CmpError('BAD_FLAG', `--hosts ${path} lists no devices. Put one user@host per line.`);
  return devices;
}

/** Runs `action` on every device, at most `parallel` at a time; results come back in the file's order. */
export async function forEachDevice<D extends { name: string }, T>(
  devices: D[],
  parallel: number,
  action: (device: D) => Promise<T>,
): Promise<FleetResult<T, D>[]> {
  const results = new Array<FleetResult<T, D>>(devices.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < devices.length) {
      const i = next++;
      const began = nowMs();
      try {
        results[i] = { device: devices[i], ok: true, value: await action(devices[i]), ms: nowMs() - began };
      } catch (err) {
        const error = String((err as Error)?.message ?? err).split('\n')[0];
        results[i] = { device: devices[i], ok: false, error, ms: nowMs() - began };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, devices.length)) }, worker));
  return results;
}
