// The mcu target: a microcontroller running cmp's firmware on a serial port. Deploy converts the model for the
// firmware, uploads it, verifies its CRC and smoke-tests it against onnxruntime; profile runs split inference
// (the board answers what its exits can, the host finishes the rest) as a cmp-profile/1.

import { nowMs } from '../core/clock.js';
import type { Split } from '../data/datasets.js';
import { CmpError } from '../errors.js';
import { McuClient, type LinkStats } from '../link/mcu-client.js';
import { convertToMcuModel, type McuModel } from '../core/mcu-model.js';
import type { Capabilities } from '../link/protocol.js';
import { DEFAULT_BAUD_RATE, openSerialTransport } from '../link/transport-serial.js';
import { analyzeModel } from '../profile/analyze.js';
import { costTablePath, recordCosts, type CostSample } from '../profile/cost-table.js';
import { summarize, type DeviceProfile } from '../profile/device-profile.js';
import { ExitTally } from '../profile/exit-rows.js';
import { runSplit, type SplitReport } from '../profile/split.js';
import { createBackend } from '../runtime/backends.js';
import { predict } from '../runtime/evaluate.js';
import { datasetConsumer, type ModelFile } from '../runtime/model-file.js';
import { cmpHome, recordDevice } from './devices.js';
import { modelOf } from './target-local.js';
import type { Target } from './target.js';

/** Largest |device logit - onnxruntime logit| the smoke test accepts (float32 sums in another order). */
export const DEPLOY_LOGIT_TOLERANCE = 1e-3;
/** The same for a model with int8 layers (see the ONNX file in the README: onnxruntime's int8 MatMul). */
export const DEPLOY_INT8_LOGIT_TOLERANCE = 5e-2;
/** Whole inferences whose layer times make the cost samples (the median of each layer's over them). */
export const COST_RUNS = 9;

/** A board on a serial port. */
export interface McuDevice {
  /** /dev/ttyACM0, or the pseudo-terminal `cmp firmware qemu` prints. */
  port: string;
  /** Line speed; a PTY ignores it, the uplink time in a profile is computed at it. */
  baudRate?: number;
  /**
   * Profiles also run the model COST_RUNS more times, reading each layer's cycles, and record the board's cost table
   * ($CMP_HOME/costs/BOARD.json, which cmp analyze reads).
   */
  recordCosts?: boolean;
}

/** What a deploy to the board reports. */
export interface McuDeployReport {
  model: string;
  target: 'mcu';
  port: string;
  board: string;
  firmwareVersion: string;
  blobBytes: number;
  /** 0x and 8 hex digits. */
  crc: string;
  arenaUsed: number;
  arenaBytes: number;
  uploadMs: number;
  smoke: {
    image: number;
    dataset: string;
    deviceLabel: number;
    hostLabel: number;
    maxLogitDiff: number;
    entropy: number;
    cycles: number;
    deviceMs: number;
  };
  link: LinkStats;
}

/** What split inference measures besides the cmp-profile/1: the board, the link and the bytes each way. */
export interface McuProfileDetails {
  port: string;
  board: string;
  firmwareVersion: string;
  clockHz: number;
  arenaBytes: number;
  report: SplitReport;
  /** Mean time the board computed per inference (its cycle counter), milliseconds. */
  deviceMsMean: number;
  link: LinkStats;
  /** With recordCosts: one whole inference on the board (median of COST_RUNS) and the cost table written. */
  costs?: { wholeMs: number; path: string };
}

export const mcuTarget: Target<McuDevice, McuDeployReport, McuProfileDetails> = {
  kind: 'mcu',
  what: 'a microcontroller, with --port PATH',

  async deploy(device, file, options) {
    const { port } = device;
    const progress = options.onProgress ?? (() => undefined);
    const mcu = convertToMcuModel(file);
    const data = await options.data(datasetConsumer(file), 1);
    const transport = await openSerialTransport(port, { baudRate: device.baudRate });
    const client = new McuClient(transport);
    try {
      progress(`connecting to ${port}`);
      const caps = await client.connect();
      checkFits(file.path, mcu, caps, port);
      const began = nowMs();
      const info = await client.uploadModel(mcu.blob, (sent, total) => progress(`upload ${sent}/${total} bytes`));
      const uploadMs = nowMs() - began;
      progress('smoke test');
      const features = mcu.inputShape.reduce((a, b) => a * b, 1);
      const pixels = Uint8Array.from(data.test.x.subarray(0, features), (v) => Math.round(v * 255));
      const answer = await client.infer(pixels, { logits: true });
      const backend = await createBackend('ort-node', file);
      const host = await predict(backend, file, data, 1).finally(() => backend.dispose());
      const hostLabel = host.indexOf(Math.max(...host));
      let logitDiff = 0;
      answer.logits?.forEach((v, c) => (logitDiff = Math.max(logitDiff, Math.abs(v - host[c]))));
      // onnxruntime runs an int8 dense layer as MatMulNBits, which quantizes its input to int8 too; the device does not.
      const int8 = mcu.layers.some((l) => l.weights === 'int8');
      if (answer.label !== hostLabel || logitDiff > (int8 ? DEPLOY_INT8_LOGIT_TOLERANCE : DEPLOY_LOGIT_TOLERANCE)) {
        throw new CmpError(
          'IO',
          `Smoke test failed on ${port}: the device answered label ${answer.label}, onnxruntime ${hostLabel} (largest logit difference ${logitDiff.toExponential(2)}). Rebuild the firmware with this cmp and deploy again.`,
        );
      }
      recordDevice({ kind: 'mcu', name: port, path: port, model: file.path, deployedAt: new Date().toISOString() });
      return {
        model: file.path,
        target: 'mcu',
        port,
        board: caps.board,
        firmwareVersion: caps.firmwareVersion,
        blobBytes: mcu.blob.length,
        crc: `0x${info.crc.toString(16).padStart(8, '0')}`,
        arenaUsed: info.arenaUsed,
        arenaBytes: info.arenaBytes,
        uploadMs: Math.round(uploadMs),
        smoke: {
          image: 0,
          dataset: data.name,
          deviceLabel: answer.label,
          hostLabel,
          maxLogitDiff: logitDiff,
          entropy: answer.entropy,
          cycles: answer.cycles,
          deviceMs: (answer.cycles / caps.clockHz) * 1000,
        },
        link: client.stats,
      };
    } finally {
      client.dispose();
      await transport.close();
    }
  },

  /** The board must already hold `request.model` (its CRC is compared); the host finishes on onnxruntime-node. */
  async profile(device, request) {
    const { port } = device;
    const baudRate = device.baudRate ?? DEFAULT_BAUD_RATE;
    const progress = request.onProgress ?? (() => undefined);
    const file = modelOf(request);
    const mcu = convertToMcuModel(file);
    const data = await request.data(datasetConsumer(file), request.count);
    const count = Math.min(request.count, data.test.count);
    const features = data.inputShape.reduce((a, b) => a * b, 1);
    progress(0, count, `connecting to ${port}`);
    const transport = await openSerialTransport(port, { baudRate });
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
        baudRate,
        onProgress: (done, total) => progress(done, total, `${done}/${total} on ${port}`),
      });
      const durationMs = nowMs() - began;
      const counters = await client.profile();
      const tally = new ExitTally(mcu.exits?.length ?? 0);
      samples.forEach((s, i) => tally.add(s.exit, s.label === data.test.y[i]));
      const latencies = samples.map((s) => s.latencyMs);
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
          // Not "cmp firmware ...": the CLI would print that as a command line to paste (npx cmp firmware ...).
          runtime: `firmware-bridge ${caps.firmwareVersion}`,
        },
        model: { path: file.path },
        backend: 'mcu-split',
        dataset: data.name,
        samples: report.samples,
        accuracy: report.accuracy,
        latencyMs: summarize(latencies),
        latenciesMs: latencies.map((ms) => Math.round(ms * 1e4) / 1e4),
        stages: [
          ...(onDevice.length
            ? [{ name: 'answered on the device', runs: onDevice.length, ...summarize(onDevice) }]
            : []),
          ...(handedOff.length
            ? [{ name: 'handed off to the host', runs: handedOff.length, ...summarize(handedOff) }]
            : []),
        ],
        exits: tally.rows(),
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
      const deviceMsMean = (counters.totalCycles / Math.max(counters.inferences, 1) / caps.clockHz) * 1000;
      let costs: McuProfileDetails['costs'];
      if (device.recordCosts) {
        progress(count, count, 'layer costs');
        costs = await measureLayerCosts(client, file, data.test, caps.board, caps.clockHz);
      }
      return {
        profile,
        details: {
          port,
          board: caps.board,
          firmwareVersion: caps.firmwareVersion,
          clockHz: caps.clockHz,
          arenaBytes: caps.arenaBytes,
          report,
          deviceMsMean,
          link: client.stats,
          ...(costs ? { costs } : {}),
        },
      };
    } finally {
      client.dispose();
      await backend.dispose();
      await transport.close();
    }
  },
};

/**
 * Runs the model COST_RUNS times on the board, reading the cycles of each layer after each run, and records every
 * layer's median time with its kernel and work units in the board's cost table ($CMP_HOME/costs/BOARD.json).
 */
async function measureLayerCosts(
  client: McuClient,
  file: ModelFile,
  test: Split,
  board: string,
  clockHz: number,
): Promise<{ path: string; wholeMs: number }> {
  const analysis = analyzeModel(file, { target: 'mcu', board });
  const features = analysis.layers.length ? analysis.layers[0].inputShape.reduce((a, b) => a * b, 1) : 0;
  const runs = Math.min(COST_RUNS, Math.max(1, Math.floor(test.x.length / features)));
  const perLayer: number[][] = analysis.layers.map(() => []);
  const overhead: number[] = [];
  const whole: number[] = [];
  for (let i = 0; i < runs; i++) {
    const pixels = Uint8Array.from(test.x.subarray(i * features, (i + 1) * features), (v) => Math.round(v * 255));
    const r = await client.infer(pixels);
    whole.push((r.cycles / clockHz) * 1000);
    const p = await client.profile();
    p.layerCycles.forEach((c, l) => c > 0 && perLayer[l]?.push((c / clockHz) * 1000));
    overhead.push(((p.lastCycles - p.layerCycles.reduce((a, b) => a + b, 0)) / clockHz) * 1000);
  }
  const samples: CostSample[] = [];
  analysis.layers.forEach((l, i) => {
    if (perLayer[i].length) samples.push({ kernel: l.kernel, units: l.units, ms: median(perLayer[i]) });
  });
  const path = costTablePath(cmpHome(), board);
  recordCosts(
    path,
    board,
    `counter ticks at ${clockHz} Hz (under QEMU: its virtual clock, host time)`,
    file.path,
    samples,
    Math.max(0, median(overhead)),
  );
  return { path, wholeMs: median(whole) };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : 0;
}

/** Refuses, before uploading anything, a model the device cannot hold or read, with the sizes in the message. */
function checkFits(path: string, mcu: McuModel, caps: Capabilities, port: string): void {
  if (mcu.arenaBytes > caps.arenaBytes) {
    throw new CmpError(
      'MODEL_INVALID',
      `${path} needs ${mcu.arenaBytes} bytes of device arena (model ${mcu.blob.length} + activations ${mcu.workspaceBytes}) but the board on ${port} has ${caps.arenaBytes}. Use a smaller or more binarized model, or rebuild the firmware with --arena-bytes.`,
    );
  }
  if (caps.modelFormatVersion < mcu.formatVersion || mcu.layers.length > caps.maxLayers) {
    throw new CmpError(
      'MODEL_INVALID',
      `The firmware on ${port} reads model format ${caps.modelFormatVersion} with ${caps.maxLayers} layers; ${path} needs format ${mcu.formatVersion} with ${mcu.layers.length}${mcu.formatVersion > 1 ? ' (input mask or exits)' : ''}. Rebuild the firmware with cmp firmware build.`,
    );
  }
}
