// Profiling one device for the dashboard: this machine (Predictor on a backend), a microcontroller over a serial port
// (split inference, turned into a cmp-profile/1 view), an SSH host (its agent), or a saved profile file.

import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { availableParallelism, totalmem } from 'node:os';
import { nowMs } from '../core/clock.js';
import { checkDatasetFits, chooseDataset, loadDataset, type Dataset, type DatasetConsumer } from '../data/datasets.js';
import type { DeviceRecord } from '../deploy/devices.js';
import { profileRpi } from '../deploy/rpi.js';
import { CmpError } from '../errors.js';
import { McuClient } from '../link/mcu-client.js';
import { convertToMcuModel } from '../core/mcu-model.js';
import { DEFAULT_BAUD_RATE, openSerialTransport } from '../link/transport-serial.js';
import { checkDeviceProfile } from '../profile/device-profile-check.js';
import { profilePredictor, summarize, type DeviceFacts, type DeviceProfile } from '../profile/device-profile.js';
import { runSplit } from '../profile/split.js';
import { createBackend } from '../runtime/backends.js';
import { datasetConsumer, readModelFile, type ModelFile } from '../runtime/model-file.js';
import { Predictor } from '../runtime/predictor.js';
import type { DashboardDataset, McuDetails } from './messages.js';

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

/** This machine as cmp-profile/1 names it; inside Electron the runtime says so. */
export function localFacts(): DeviceFacts {
  const electron = process.versions.electron;
  return {
    name: 'this machine',
    platform: process.platform,
    arch: process.arch,
    cpus: availableParallelism(),
    memoryBytes: totalmem(),
    runtime: electron ? `electron ${electron} (node ${process.version})` : `node ${process.version}`,
  };
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

/** Profiles `request.model` on this machine with `backend`, one instance at a time. */
export async function profileLocal(backend: string, request: ProfileJobRequest): Promise<ProfileJobResult> {
  const file = readModel(request.model);
  const data = await loadProfileData(request.dataset, datasetConsumer(file), request.count, (note) =>
    request.onProgress(0, request.count, note),
  );
  const count = Math.min(request.count, data.test.count);
  request.onProgress(0, count, `opening ${file.path} on ${backend}`);
  const predictor = await Predictor.open(file, { backend });
  try {
    checkFeatures(file, predictor.features, data);
    const measured = await profilePredictor(predictor, data.test.x, data.test.y, count, {
      dataset: data.name,
      onProgress: (done, total) => request.onProgress(done, total, `${done}/${total} on ${backend}`),
    });
    return {
      profile: {
        schema: 'cmp-profile/1',
        device: localFacts(),
        model: { path: file.path },
        ...measured,
        rssBytes: process.resourceUsage().maxRSS * 1024,
      },
    };
  } finally {
    await predictor.dispose();
  }
}

/**
 * Profiles split inference with the board on `port`: the board (the sensor end) runs the model up to its exits and
 * hands the kept inputs off; the host finishes in onnxruntime-node. The board must already hold `request.model`.
 */
export async function profileSerial(port: string, request: ProfileJobRequest): Promise<ProfileJobResult> {
  const file = readModel(request.model);
  const mcu = convertToMcuModel(file);
  const data = await loadProfileData(request.dataset, datasetConsumer(file), request.count, (note) =>
    request.onProgress(0, request.count, note),
  );
  const count = Math.min(request.count, data.test.count);
  const features = data.inputShape.reduce((a, b) => a * b, 1);
  request.onProgress(0, count, `connecting to ${port}`);
  const transport = await openSerialTransport(port, { baudRate: DEFAULT_BAUD_RATE });
  const client = new McuClient(transport);
  const backend = await createBackend('ort-node', file).catch(async (err: unknown) => {
    client.dispose();
    await transport.close();
    throw err;
  });
  try {
    const caps = await client.connect();
    if (caps.model?.crc !== mcu.crc) {
      throw new CmpError(
        'BAD_ARGUMENT',
        `The board on ${port} holds ${caps.model ? `another model (CRC-32 0x${caps.model.crc.toString(16)})` : 'no model'}. Deploy it first: cmp deploy ${file.path} --target mcu --port ${port}`,
      );
    }
    await client.profile(true);
    const startedAt = new Date().toISOString();
    const began = nowMs();
    const { report, samples } = await runSplit(client, file, backend, data.test, count, {
      baudRate: DEFAULT_BAUD_RATE,
      onProgress: (done, total) => request.onProgress(done, total, `${done}/${total} on ${port}`),
    });
    const durationMs = nowMs() - began;
    const device = await client.profile();
    const exits = mcu.exits?.length ?? 0;
    const latencies = samples.map((s) => s.latencyMs);
    const exitRows = Array.from({ length: exits + 1 }, (_, k) => {
      const taken = samples
        .map((s, i) => ({ s, i }))
        .filter(({ s }) => (k === exits ? s.exit === 0 : s.exit === k + 1));
      return {
        exit: k === exits ? 'final' : `exit${k + 1}`,
        share: samples.length ? taken.length / samples.length : 0,
        accuracy: taken.length ? taken.filter(({ s, i }) => s.label === data.test.y[i]).length / taken.length : 0,
      };
    });
    const onDevice = samples.filter((s) => s.exit > 0).map((s) => s.latencyMs);
    const handedOff = samples.filter((s) => s.exit === 0).map((s) => s.latencyMs);
    const profile: DeviceProfile = {
      schema: 'cmp-profile/1',
      device: {
        name: port,
        platform: caps.board,
        arch: 'mcu',
        cpus: 1,
        // The board reports its arena, not its memory: unknown, as a browser without navigator.deviceMemory.
        memoryBytes: 0,
        runtime: `cmp firmware ${caps.firmwareVersion}`,
      },
      model: { path: file.path },
      backend: 'mcu-split',
      dataset: data.name,
      samples: report.samples,
      accuracy: report.accuracy,
      latencyMs: summarize(latencies),
      latenciesMs: latencies.map((ms) => Math.round(ms * 1e4) / 1e4),
      stages: [
        ...(onDevice.length ? [{ name: 'answered on the device', runs: onDevice.length, ...summarize(onDevice) }] : []),
        ...(handedOff.length
          ? [{ name: 'handed off to the host', runs: handedOff.length, ...summarize(handedOff) }]
          : []),
      ],
      exits: exitRows,
      throughputPerS: durationMs > 0 ? (report.samples / durationMs) * 1000 : 0,
      // The link is what the sensor end sends per inference, against the whole input as uint8 pixels.
      link: {
        meanBytes: report.meanUpBytes,
        fullBytes: features,
        saving: report.meanUpBytes > 0 ? features / report.meanUpBytes : 0,
      },
      startedAt,
      durationMs,
    };
    return {
      profile,
      mcu: {
        port,
        board: caps.board,
        firmwareVersion: caps.firmwareVersion,
        clockHz: caps.clockHz,
        arenaBytes: caps.arenaBytes,
        baudRate: report.baudRate,
        deviceShare: report.deviceShare,
        meanUpBytes: report.meanUpBytes,
        meanDownBytes: report.meanDownBytes,
        meanHandoffBytes: report.meanHandoffBytes,
        uplinkMsAtBaud: report.uplinkMsAtBaud,
        deviceMsMean: (device.totalCycles / Math.max(device.inferences, 1) / caps.clockHz) * 1000,
        resends: client.stats.resends,
      },
    };
  } finally {
    client.dispose();
    await backend.dispose();
    await transport.close();
  }
}

/** Profiles the release an SSH device runs, on the device (its agent), as `cmp profile --target rpi` does. */
export async function profileSsh(record: DeviceRecord, request: ProfileJobRequest): Promise<ProfileJobResult> {
  const ssh = record.ssh;
  if (!ssh) throw new CmpError('BAD_ARGUMENT', `Device ${record.name} has no SSH address. Deploy to it again.`);
  const profile = await profileRpi(
    {
      address: { user: ssh.user, host: ssh.host, port: ssh.port },
      identity: ssh.identity,
      knownHosts: ssh.knownHosts,
      remoteDir: ssh.remoteDir,
      node: ssh.node,
      onProgress: (message) => {
        const m = /(\d+)\/(\d+)/.exec(message);
        request.onProgress(m ? Number(m[1]) : 0, m ? Number(m[2]) : request.count, message);
      },
    },
    async (releaseDataset) => {
      const data = await loadProfileData(
        request.dataset,
        { name: 'the release', recorded: releaseDataset },
        request.count,
      );
      return { name: data.name, split: data.test, features: data.inputShape.reduce((a, b) => a * b, 1) };
    },
    request.count,
  );
  return { profile: checkDeviceProfile(profile, record.name) };
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

function checkFeatures(file: ModelFile, features: number, data: Dataset): void {
  const values = data.inputShape.reduce((a, b) => a * b, 1);
  if (features !== values) {
    throw new CmpError(
      'BAD_ARGUMENT',
      `${file.path} takes ${features} values per instance but ${data.name} images have ${values}. Pick the model's data set.`,
    );
  }
}
