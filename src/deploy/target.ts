// The Target interface every kind of device implements (deploy, profile, and where the device keeps releases,
// status and rollback), the one name of each kind, and the registry that finds a target by kind.

import type { Dataset, DatasetConsumer } from '../data/datasets.js';
import { CmpError } from '../errors.js';
import type { DeviceProfile } from '../profile/device-profile.js';
import type { ModelFile } from '../runtime/model-file.js';

/**
 * The kinds of device, one name each across the CLI (`--target`), the dashboard (device ids `<kind>:<name>`) and
 * devices.json: this machine, a Linux device over SSH, a microcontroller on a serial port, a static site for
 * browsers, the dashboard's Electron app.
 */
export const DEVICE_KINDS = Object.freeze(['local', 'rpi', 'mcu', 'browser', 'electron'] as const);
/** One of DEVICE_KINDS. */
export type DeviceKind = (typeof DEVICE_KINDS)[number];

/**
 * Names a kind had before one name served everywhere: the dashboard called a board on a serial port `serial`.
 * Files and messages written with them are read as the kind they meant.
 */
export const OLD_KIND_NAMES: Readonly<Record<string, DeviceKind>> = Object.freeze({ serial: 'mcu' });

/** The kind a name means, its old names included; undefined for a name that is none. */
export function readDeviceKind(name: unknown): DeviceKind | undefined {
  if (typeof name !== 'string') return undefined;
  if ((DEVICE_KINDS as readonly string[]).includes(name)) return name as DeviceKind;
  return Object.hasOwn(OLD_KIND_NAMES, name) ? OLD_KIND_NAMES[name] : undefined;
}

/**
 * Loads the test instances a deploy's smoke test or a profile runs: `model` is what they must fit (a model file, or
 * for a device that runs its own release, the data set the release records), `count` how many. The CLI resolves its
 * --data flag here, the dashboard its form's choice; both load the same set for the same choice.
 */
export type LoadData = (model: DatasetConsumer, count: number) => Promise<Dataset>;

/** What every deploy is given besides the device and the model. */
export interface DeployOptions {
  /** The smoke test's instances (deploys that run one) and the site's samples (browser). */
  data: LoadData;
  /** One line at a time: what the deploy is doing. */
  onProgress?: (message: string) => void;
}

/** One request to profile a device. */
export interface ProfileRequest {
  /** The model to run; devices that run their own release (rpi) ignore it. */
  model?: ModelFile;
  data: LoadData;
  /** Instances to run, one at a time (fewer when the data set has fewer). */
  count: number;
  /** The backend to run on, where the device has a choice (default: the target's). */
  backend?: string;
  onProgress?: (done: number, total: number, message: string) => void;
}

/** A profile as cmp-profile/1, and what the target measured besides (a board's link, for one). */
export interface TargetProfile<Details = undefined> {
  profile: DeviceProfile;
  details: Details;
}

/**
 * One kind of device. `Device` says which one and how to reach it (an SSH address, a serial port, a site folder),
 * `Deployed` what a deploy reports. A target keeps no state between calls: every call connects, works, closes.
 */
export interface Target<Device, Deployed, Details = undefined, Status = never> {
  readonly kind: DeviceKind;
  /** One line for help and errors: what the device is and the flag that names it. */
  readonly what: string;
  /** Puts `model` on the device, checks it answers there, and records the device in devices.json. */
  deploy(device: Device, model: ModelFile, options: DeployOptions): Promise<Deployed>;
  /** Runs a model on the device one instance at a time: a cmp-profile/1 the dashboard and `cmp profile` share. */
  profile(device: Device, request: ProfileRequest): Promise<TargetProfile<Details>>;
  /** What the device runs and whether it is healthy (targets that keep releases). */
  status?(device: Device): Promise<Status>;
  /** Back to the previous release, health-checked (targets that keep releases). */
  rollback?(device: Device): Promise<Record<string, unknown>>;
}

/** A target of any kind, as the registry holds it: callers that know the kind use TARGETS (targets.ts) for its types. */
export type AnyTarget = Target<never, unknown, unknown, unknown>;

const registry = new Map<DeviceKind, AnyTarget>();

/** Registers a target under its kind (a later registration of the same kind replaces it). */
export function registerTarget(target: AnyTarget): void {
  registry.set(target.kind, target);
}

/** The registered kinds, in DEVICE_KINDS order. */
export function targetKinds(): DeviceKind[] {
  return DEVICE_KINDS.filter((kind) => registry.has(kind));
}

/** The target of a kind (an old name is read as its kind); an unknown name gets one line listing the kinds. */
export function targetFor(name: string): AnyTarget {
  const kind = readDeviceKind(name);
  const target = kind && registry.get(kind);
  if (!target) throw new CmpError('BAD_ARGUMENT', `Unknown target "${name}". Use one of: ${targetKinds().join(', ')}.`);
  return target;
}
