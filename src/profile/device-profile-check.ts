// Checks a profile that arrives from outside (a page's POST, a device's reply) against cmp-profile/1, once, at the edge.

import { CmpError } from '../errors.js';
import type { DeviceProfile } from './device-profile.js';

const PROFILE_KEYS: ReadonlySet<string> = new Set([
  'schema',
  'device',
  'model',
  'backend',
  'dataset',
  'samples',
  'accuracy',
  'latencyMs',
  'latenciesMs',
  'stages',
  'exits',
  'throughputPerS',
  'link',
  'rssBytes',
  'backendReason',
  'exitsReason',
  'startedAt',
  'durationMs',
]);
const DEVICE_KEYS: readonly string[] = ['name', 'platform', 'arch', 'cpus', 'memoryBytes', 'runtime'];
const SUMMARY_KEYS: readonly string[] = ['mean', 'p50', 'p90', 'p99', 'min', 'max'];

/** Returns `value` as a DeviceProfile, or throws one CmpError naming the first field that is wrong; `where` names the sender. */
export function checkDeviceProfile(value: unknown, where: string): DeviceProfile {
  const bad = (problem: string): CmpError =>
    new CmpError(
      'BAD_ARGUMENT',
      `Profile from ${where} ${problem}. Send a cmp-profile/1 object (profilePredictor's measurement with device and model).`,
    );
  const object = (v: unknown, name: string): Record<string, unknown> => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(`has no object ${name}`);
    return v as Record<string, unknown>;
  };
  const finite = (v: unknown, name: string, min = -Infinity): number => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min) throw bad(`has ${name} ${JSON.stringify(v)}`);
    return v;
  };
  const count = (v: unknown, name: string): number => {
    if (!Number.isSafeInteger(v) || (v as number) < 0) throw bad(`has ${name} ${JSON.stringify(v)}`);
    return v as number;
  };
  const text = (v: unknown, name: string): string => {
    if (typeof v !== 'string') throw bad(`has no string ${name}`);
    return v;
  };
  const share = (v: unknown, name: string): void => {
    if (finite(v, name, 0) > 1) throw bad(`has ${name} ${JSON.stringify(v)} outside [0, 1]`);
  };
  const summary = (v: unknown, name: string): void => {
    const s = object(v, name);
    for (const key of SUMMARY_KEYS) finite(s[key], `${name}.${key}`, 0);
  };
  const list = (v: unknown, name: string): unknown[] => {
    if (!Array.isArray(v)) throw bad(`has no list ${name}`);
    return v;
  };

  const p = object(value, 'at its top');
  const unknown = Object.keys(p).find((k) => !PROFILE_KEYS.has(k));
  if (unknown !== undefined) throw bad(`has unknown field "${unknown}"`);
  if (p.schema !== 'cmp-profile/1') throw bad(`has schema ${JSON.stringify(p.schema)}, not "cmp-profile/1"`);
  const device = object(p.device, 'device');
  const unknownDevice = Object.keys(device).find((k) => !DEVICE_KEYS.includes(k));
  if (unknownDevice !== undefined) throw bad(`has unknown field "device.${unknownDevice}"`);
  for (const key of ['name', 'platform', 'arch', 'runtime']) text(device[key], `device.${key}`);
  count(device.cpus, 'device.cpus');
  count(device.memoryBytes, 'device.memoryBytes');
  text(object(p.model, 'model').path, 'model.path');
  text(p.backend, 'backend');
  text(p.dataset, 'dataset');
  const samples = count(p.samples, 'samples');
  if (samples === 0) throw bad('has no samples');
  share(p.accuracy, 'accuracy');
  summary(p.latencyMs, 'latencyMs');
  const latencies = list(p.latenciesMs, 'latenciesMs');
  if (latencies.length !== samples) throw bad(`has ${latencies.length} latenciesMs for ${samples} samples`);
  latencies.forEach((ms, i) => finite(ms, `latenciesMs[${i}]`, 0));
  list(p.stages, 'stages').forEach((v, i) => {
    const stage = object(v, `stages[${i}]`);
    text(stage.name, `stages[${i}].name`);
    count(stage.runs, `stages[${i}].runs`);
    summary(stage, `stages[${i}]`);
  });
  list(p.exits, 'exits').forEach((v, i) => {
    const exit = object(v, `exits[${i}]`);
    text(exit.exit, `exits[${i}].exit`);
    share(exit.share, `exits[${i}].share`);
    share(exit.accuracy, `exits[${i}].accuracy`);
  });
  finite(p.throughputPerS, 'throughputPerS', 0);
  if (p.link !== undefined) {
    const link = object(p.link, 'link');
    for (const key of ['meanBytes', 'fullBytes', 'saving']) finite(link[key], `link.${key}`, 0);
  }
  if (p.rssBytes !== undefined) count(p.rssBytes, 'rssBytes');
  if (p.backendReason !== undefined) text(p.backendReason, 'backendReason');
  if (p.exitsReason !== undefined) text(p.exitsReason, 'exitsReason');
  if (Number.isNaN(Date.parse(text(p.startedAt, 'startedAt'))))
    throw bad(`has startedAt ${JSON.stringify(p.startedAt)}`);
  finite(p.durationMs, 'durationMs', 0);
  return p as unknown as DeviceProfile;
}
