// The devices this user has deployed to (~/.cmp/devices.json, or $CMP_HOME/devices.json): what the dashboard lists
// and fleet commands start from. A deploy records its device; a damaged file is one clear error, never overwritten.
// Paths in it are absolute: the dashboard that reads them may start in any folder.

import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { CmpError } from '../errors.js';
import { readDeviceKind, type DeviceKind } from './target.js';

/**
 * One device a deploy went to. `kind` is its target's (deploy/target.ts); `name` identifies it: user@host:port for
 * rpi, the site folder for browser, the serial port for mcu.
 */
export interface DeviceRecord {
  kind: Extract<DeviceKind, 'rpi' | 'browser' | 'mcu'>;
  name: string;
  /** rpi: how to reach it again (never a secret: the key stays where it is, by path). */
  ssh?: {
    user: string;
    host: string;
    port: number;
    identity?: string;
    knownHosts?: string;
    remoteDir?: string;
    node?: string;
  };
  /** browser: the site folder (its profiles/ holds what browsers posted). mcu: the serial port. */
  path?: string;
  /** The model last deployed there: an absolute path (files before December 2026 kept it as given on the command line). */
  model: string;
  release?: string;
  deployedAt: string;
}

interface DevicesFile {
  schema: 'cmp-devices/1';
  devices: DeviceRecord[];
}

/** Where cmp keeps its own state on this machine. */
export function cmpHome(): string {
  return process.env.CMP_HOME || join(homedir(), '.cmp');
}

/** The recorded devices, most recent deploy first. */
export function listDevices(path = join(cmpHome(), 'devices.json')): DeviceRecord[] {
  if (!existsSync(path)) return [];
  let file: DevicesFile;
  try {
    file = JSON.parse(readFileSync(path, 'utf8')) as DevicesFile;
  } catch (err) {
    throw new CmpError('IO', `${path} is not valid JSON (${(err as Error).message}). Fix or remove it.`, {
      cause: err,
    });
  }
  if (file?.schema !== 'cmp-devices/1' || !Array.isArray(file.devices)) {
    throw new CmpError('IO', `${path} is not a cmp device list (cmp-devices/1). Fix or remove it.`);
  }
  return file.devices.map(readRecord).sort((a, b) => b.deployedAt.localeCompare(a.deployedAt));
}

/**
 * An entry as written, its kind under today's name, with a relative model path (older files kept it as typed, relative to a folder nobody
 * recorded) made absolute where it can be found: a browser site's own copy under model/, else from this folder.
 * One found nowhere stays as written, and the dashboard says it is missing when it is used.
 */
function readRecord(written: DeviceRecord): DeviceRecord {
  // A kind written under an old name (the dashboard's `serial` for a board) is read as the kind it meant.
  const kind = readDeviceKind(written.kind);
  const record = kind && kind !== written.kind ? { ...written, kind: kind as DeviceRecord['kind'] } : written;
  if (typeof record.model !== 'string' || isAbsolute(record.model)) return record;
  const candidates = [
    ...(record.kind === 'browser' && record.path ? [join(record.path, 'model', basename(record.model))] : []),
    resolve(record.model),
  ];
  const found = candidates.find((path) => existsSync(path));
  return found ? { ...record, model: found } : record;
}

/** A record with every local path absolute. */
function absolutePaths(record: DeviceRecord): DeviceRecord {
  const ssh = record.ssh && {
    ...record.ssh,
    ...(record.ssh.identity ? { identity: resolve(record.ssh.identity) } : {}),
    ...(record.ssh.knownHosts ? { knownHosts: resolve(record.ssh.knownHosts) } : {}),
  };
  return {
    ...record,
    model: resolve(record.model),
    ...(ssh ? { ssh } : {}),
    ...(record.path ? { path: resolve(record.path) } : {}),
  };
}

/**
 * Records a deploy: replaces the entry of the same kind and name, with its paths made absolute. Written to a
 * temporary file, then renamed.
 */
export function recordDevice(record: DeviceRecord, path = join(cmpHome(), 'devices.json')): void {
  const devices = listDevices(path).filter((d) => !(d.kind === record.kind && d.name === record.name));
  devices.unshift(absolutePaths(record));
  mkdirSync(dirname(path), { recursive: true });
  const body: DevicesFile = { schema: 'cmp-devices/1', devices };
  writeFileSync(`${path}.tmp`, `${JSON.stringify(body, null, 2)}\n`);
  renameSync(`${path}.tmp`, path);
}
