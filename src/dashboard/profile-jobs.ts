// Profiling one device for the dashboard through its target (TARGETS[kind].profile(), as cmp profile does), and
// reading saved profile files.

import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { checkDatasetFits, chooseDataset, loadDataset, type Dataset, type DatasetConsumer } from '../data/datasets.js';
import type { DeviceRecord } from '../deploy/devices.js';
import type { ProfileRequest } from '../deploy/target.js';
import type { McuProfileDetails } from '../deploy/target-mcu.js';
import { rpiDeviceOf } from '../deploy/target-rpi.js';
import { TARGETS } from '../deploy/targets.js';
import { CmpError } from '../errors.js';
import { checkDeviceProfile } from '../profile/device-profile-check.js';
import type { DeviceProfile } from '../profile/device-profile.js';
import { readModelFile, type ModelFile } from '../runtime/model-file.js';
import type { DashboardDataset, DashboardDevice, McuDetails } from './messages.js';

/** Largest saved profile the dashboard reads, bytes (one latency per instance leaves room for 100,000). */
export const MAX_PROFILE_FILE_BYTES = 8 * 1024 * 1024;

/** What a job reports while it runs: instances done of the total, and what it is doing. */
export type JobProgress = (done: number, total: number, message: string) => void;

/** One request to profile: the model (not for rpi, which runs its release), the data set choice and the count. */
export interface ProfileJobRequest {
  model?: string;
  dataset: DashboardDataset;
  count: number;
  onProgress: JobProgress;
}

/** What a job measured: a cmp-profile/1 profile, and for split inference the link details. */
export interface ProfileJobResult {
  profile: DeviceProfile;
  mcu?: McuDetails;
}

/**
 * The test images a profile runs: `auto` is the model's own data set (its manifest), else Fashion-MNIST when
 * installed, else MNIST (as cmp's --data flag resolves it; CMP_FASHION_MNIST_DIR moves the files). A data set that
 * does not fit the model is refused before anything runs.
 */
export async function loadProfileData(
  choice: DashboardDataset,
  model: DatasetConsumer,
  count: number,
  onNote: (note: string) => void = () => undefined,
): Promise<Dataset> {
  const root = process.env.CMP_FASHION_MNIST_DIR || undefined;
  const chosen = await chooseDataset(choice === 'auto' ? undefined : choice, model, { root });
  if (chosen.note) onNote(chosen.note);
  const data = await loadDataset(chosen.name, { limitTest: count, limitTrain: 1, ...(root ? { root } : {}) });
  checkDatasetFits(data, model);
  return data;
}

/**
 * Profiles one device of the list through its target, as `cmp profile --target KIND` does: this machine on a backend
 * (`local:BACKEND`), a board on a serial port (split inference; it must already hold `request.model`), an SSH device
 * devices.json recorded (`record`; it runs its release). Browsers profile themselves, in their page.
 */
export async function profileDevice(
  device: DashboardDevice,
  record: DeviceRecord | undefined,
  request: ProfileJobRequest,
): Promise<ProfileJobResult> {
  const asked: ProfileRequest = {
    ...(device.needsModel ? { model: readModel(request.model) } : {}),
    data: (model, count) =>
      loadProfileData(request.dataset, model, count, (note) => request.onProgress(0, request.count, note)),
    count: request.count,
    onProgress: request.onProgress,
  };
  if (device.kind === 'local') {
    const { profile } = await TARGETS.local.profile({ backend: device.id.slice('local:'.length) }, asked);
    return { profile };
  }
  if (device.kind === 'mcu') {
    const { profile, details } = await TARGETS.mcu.profile({ port: device.name }, asked);
    return { profile, mcu: mcuDetails(details) };
  }
  if (device.kind === 'rpi') {
    if (!record) throw new CmpError('BAD_ARGUMENT', `${device.name} is no longer in devices.json. Deploy to it again.`);
    const { profile } = await TARGETS.rpi.profile(rpiDeviceOf(record), asked);
    return { profile };
  }
  throw new CmpError(
    'BAD_ARGUMENT',
    `${device.name} profiles itself: serve the site (cmp serve ${device.name}) and press Profile in its page.`,
  );
}

/** What the dashboard shows of a board's split inference beside its profile. */
function mcuDetails(d: McuProfileDetails): McuDetails {
  return {
    port: d.port,
    board: d.board,
    firmwareVersion: d.firmwareVersion,
    clockHz: d.clockHz,
    arenaBytes: d.arenaBytes,
    baudRate: d.report.baudRate,
    deviceShare: d.report.deviceShare,
    meanUpBytes: d.report.meanUpBytes,
    meanDownBytes: d.report.meanDownBytes,
    meanHandoffBytes: d.report.meanHandoffBytes,
    uplinkMsAtBaud: d.report.uplinkMsAtBaud,
    deviceMsMean: d.deviceMsMean,
    resends: d.link.resends,
  };
}

/**
 * The profiles in a saved file: one cmp-profile/1 (cmp profile --out), a fleet's array of them
 * (cmp profile --hosts --out), or a fleet's --json rows ({ device, ok, result }); failed rows are skipped.
 */
export async function readProfileFile(path: string): Promise<DeviceProfile[]> {
  // No message below quotes the file: the path is whatever the page sent, and the file may be a secret.
  let text: string;
  try {
    // Non-blocking, regular files only, and no more than the size limit: /dev/zero or a FIFO must not fill memory or
    // stall the dashboard.
    const file = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const stat = await file.stat();
      if (!stat.isFile()) {
        throw new CmpError('BAD_ARGUMENT', `${path} is not a regular file. Load a cmp-profile/1 file.`);
      }
      if (stat.size > MAX_PROFILE_FILE_BYTES) {
        throw new CmpError(
          'BAD_ARGUMENT',
          `${path} is ${stat.size} bytes, more than a profile's ${MAX_PROFILE_FILE_BYTES}. Load a cmp-profile/1 file.`,
        );
      }
      const bytes = Buffer.alloc(stat.size);
      const { bytesRead } = await file.read(bytes, 0, bytes.length, 0);
      text = bytes.subarray(0, bytesRead).toString('utf8');
    } finally {
      await file.close();
    }
  } catch (err) {
    if (err instanceof CmpError) throw err;
    // Node's own message names the code, the call and the path, never the content.
    throw new CmpError('IO', `Cannot read ${path}: ${(err as Error).message}. Check the path.`, { cause: err });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new CmpError('BAD_ARGUMENT', `${path} is not JSON. Load a cmp-profile/1 file (cmp profile --out FILE).`, {
      cause: err,
    });
  }
  const check = (v: unknown, where: string): DeviceProfile => checkDeviceProfile(v, where, { quote: false });
  if (!Array.isArray(value)) return [check(value, path)];
  const profiles = value.flatMap((item: unknown, i) => {
    const row = item as { ok?: unknown; result?: unknown };
    if (row && typeof row === 'object' && 'ok' in row)
      return row.ok === true ? [check(row.result, `${path}[${i}]`)] : [];
    return [check(item, `${path}[${i}]`)];
  });
  if (profiles.length === 0) {
    throw new CmpError('BAD_ARGUMENT', `${path} holds no successful profile. Load a cmp-profile/1 file or a fleet's.`);
  }
  return profiles;
}

function readModel(path: string | undefined): ModelFile {
  if (!path) throw new CmpError('BAD_ARGUMENT', 'Profiling this device needs a model: give the path of an ONNX file.');
  return readModelFile(path);
}
