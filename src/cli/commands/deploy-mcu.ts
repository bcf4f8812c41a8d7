// cmp deploy --target mcu: converts an exported model for the firmware, uploads it, verifies its CRC, smoke-tests it.

import { nowMs } from '../../core/clock.js';
import { recordDevice } from '../../deploy/devices.js';
import { CmpError } from '../../errors.js';
import { McuClient } from '../../link/mcu-client.js';
import { convertToMcuModel, type McuModel } from '../../core/mcu-model.js';
import type { Capabilities } from '../../link/protocol.js';
import { DEFAULT_BAUD_RATE, openSerialTransport } from '../../link/transport-serial.js';
import { createBackend } from '../../runtime/backends.js';
import { predict } from '../../runtime/evaluate.js';
import { datasetConsumer, readModelFile } from '../../runtime/model-file.js';
import type { FlagDef, Parsed } from '../args.js';
import type { CliIo } from '../command.js';
import { loadDataFlag } from '../data-flag.js';
import { formatTable } from '../table.js';

/** Largest |device logit - onnxruntime logit| the smoke test accepts (float32 sums in another order). */
export const DEPLOY_LOGIT_TOLERANCE = 1e-3;
/** The same for a model with int8 layers (see the ONNX file in the README: onnxruntime's int8 MatMul). */
export const DEPLOY_INT8_LOGIT_TOLERANCE = 5e-2;

/** Flags only this target reads. */
export const MCU_DEPLOY_FLAGS: Record<string, FlagDef> = {
  'baud-rate': { type: 'int', default: String(DEFAULT_BAUD_RATE), help: 'mcu: line speed (a PTY ignores it)' },
};

/** Deploys to a microcontroller running cmp's firmware on a serial port. */
export const mcuDeploy = {
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const f = parsed.flags;
    const port = f.port as string | undefined;
    if (!port) {
      throw new CmpError(
        'BAD_FLAG',
        "cmp deploy --target mcu needs --port PATH (cmp firmware qemu prints the emulated board's).",
      );
    }
    const file = readModelFile(parsed.positionals[0]);
    const mcu = convertToMcuModel(file);
    const data = await loadDataFlag(f.data, io, datasetConsumer(file), {
      limitTest: 1,
      limitTrain: 1,
      use: 'test',
      announce: false,
    });
    const transport = await openSerialTransport(port, { baudRate: f['baud-rate'] as number | undefined });
    const client = new McuClient(transport);
    try {
      io.progress.update(`connecting to ${port}`);
      const caps = await client.connect();
      checkFits(file.path, mcu, caps, port);
      const began = nowMs();
      const info = await client.uploadModel(mcu.blob, (sent, total) =>
        io.progress.update(`upload ${sent}/${total} bytes`),
      );
      const uploadMs = nowMs() - began;
      io.progress.update('smoke test');
      const features = mcu.inputShape.reduce((a, b) => a * b, 1);
      const pixels = Uint8Array.from(data.test.x.subarray(0, features), (v) => Math.round(v * 255));
      const device = await client.infer(pixels, { logits: true });
      const backend = await createBackend('ort-node', file);
      const host = await predict(backend, file, data, 1).finally(() => backend.dispose());
      io.progress.done();
      const hostLabel = host.indexOf(Math.max(...host));
      let logitDiff = 0;
      device.logits?.forEach((v, c) => (logitDiff = Math.max(logitDiff, Math.abs(v - host[c]))));
      // onnxruntime runs an int8 dense layer as MatMulNBits, which quantizes its input to int8 too; the device does not.
      const int8 = mcu.layers.some((l) => l.weights === 'int8');
      if (device.label !== hostLabel || logitDiff > (int8 ? DEPLOY_INT8_LOGIT_TOLERANCE : DEPLOY_LOGIT_TOLERANCE)) {
        throw new CmpError(
          'IO',
          `Smoke test failed on ${port}: the device answered label ${device.label}, onnxruntime ${hostLabel} (largest logit difference ${logitDiff.toExponential(2)}). Rebuild the firmware with this cmp and deploy again.`,
        );
      }
      const result = {
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
          deviceLabel: device.label,
          hostLabel,
          maxLogitDiff: logitDiff,
          entropy: device.entropy,
          cycles: device.cycles,
          deviceMs: (device.cycles / caps.clockHz) * 1000,
        },
        link: client.stats,
      };
      recordDevice({ kind: 'mcu', name: port, path: port, model: file.path, deployedAt: new Date().toISOString() });
      if (io.json) io.out(JSON.stringify(result, null, 2));
      else {
        io.out(
          formatTable(
            [
              'model',
              'board',
              'blob bytes',
              'arena used',
              'CRC-32',
              'upload ms',
              'label (device/host)',
              'max logit diff',
              'device ms',
            ],
            [
              [
                file.path,
                caps.board,
                mcu.blob.length,
                `${info.arenaUsed}/${info.arenaBytes}`,
                result.crc,
                result.uploadMs,
                `${device.label}/${hostLabel}`,
                logitDiff.toExponential(1),
                result.smoke.deviceMs.toFixed(2),
              ],
            ],
          ),
        );
      }
      return 0;
    } finally {
      client.dispose();
      await transport.close();
    }
  },
};

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
