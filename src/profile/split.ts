// Split inference over a real link: the device applies the mask and runs up to its exits; when none is confident it
// hands the selected inputs to the host, which finishes with the whole model. Every byte is counted each way.

import { nowMs, percentile } from '../core/clock.js';
import { argmaxAt } from '../core/entropy.js';
import type { Split } from '../data/datasets.js';
import { CmpError } from '../errors.js';
import { SelectionCodec } from '../core/codec.js';
import { frameWireBytes } from '../link/frame.js';
import type { McuClient } from '../link/mcu-client.js';
import { HANDOFF_HEADER_BYTES, RESULT_BYTES } from '../link/protocol.js';
import type { Backend } from '../runtime/backend.js';
import { maskSpecOf } from '../runtime/masked-input.js';
import { callerNormalization, type ModelFile } from '../runtime/model-file.js';

/** Link speed the report converts bytes into time with: 10 bits per byte on a UART (start, 8 data, stop). */
export const UART_BITS_PER_BYTE = 10;

/** The most uplink bytes one split inference costs when an exit answers on the device: a RESULT without logits. */
export function resultUplinkBytes(): number {
  return frameWireBytes(RESULT_BYTES);
}

/** The most uplink bytes one split inference costs when the device hands a `frameBytes` cmp-select/1 frame off. */
export function handoffUplinkBytes(frameBytes: number): number {
  return frameWireBytes(HANDOFF_HEADER_BYTES + frameBytes);
}

export interface SplitSample {
  label: number;
  /** 0: the host finished; 1..n: the device's exit answered. */
  exit: number;
  /** Wire bytes device -> host (framed answers) and host -> device (the emulated sensor feed and requests). */
  upBytes: number;
  downBytes: number;
  /** Bytes of the cmp-select/1 frame handed off (0 when the device answered). */
  handoffBytes: number;
  /** Wall time of the whole inference: device, link and host. */
  latencyMs: number;
}

export interface SplitReport {
  samples: number;
  accuracy: number;
  /** Share answered on the device by an exit. */
  deviceShare: number;
  meanUpBytes: number;
  meanDownBytes: number;
  meanHandoffBytes: number;
  /** Time the uplink bytes need at `baudRate`, per inference, milliseconds. */
  uplinkMsAtBaud: number;
  baudRate: number;
  latencyMs: { p50: number; p90: number; p99: number; mean: number };
}

/**
 * Runs `count` instances of `split` (pixels in [0, 1]) through device and host. `file` is the same exported model
 * the device holds, run on `backend` for the hand-offs.
 */
export async function runSplit(
  client: McuClient,
  file: ModelFile,
  backend: Backend,
  split: Split,
  count: number,
  options: { baudRate?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<{ report: SplitReport; samples: SplitSample[] }> {
  const manifest = file.manifest;
  if (!manifest) throw new CmpError('MODEL_INVALID', `${file.path} has no cmp manifest. Deploy a model cmp exported.`);
  const shape = manifest.input.shape;
  const features = shape[0] * shape[1] * shape[2];
  const mask = manifest.inputMask;
  const codec =
    mask?.kind === 'static' ? new SelectionCodec(maskSpecOf(mask, file.path), shape, mask.maskId) : undefined;
  const classes = manifest.labels.length;
  const samples: SplitSample[] = [];
  const n = Math.min(count, split.count);
  for (let i = 0; i < n; i++) {
    const pixels = Uint8Array.from(split.x.subarray(i * features, (i + 1) * features), (v) => Math.round(v * 255));
    const up = client.stats.bytesReceived;
    const down = client.stats.bytesSent;
    const began = nowMs();
    const answer = await client.inferSplit(pixels);
    let label: number;
    let exit = 0;
    let handoffBytes = 0;
    if ('result' in answer) {
      label = answer.result.label;
      exit = answer.result.exit;
    } else {
      handoffBytes = answer.handoff.frame.length;
      const { input, dims } = modelInput(answer.handoff.frame, codec, features, shape, callerNormalization(file));
      const logits = await backend.run(input, dims);
      label = argmaxAt(logits, 0, classes);
    }
    samples.push({
      label,
      exit,
      upBytes: client.stats.bytesReceived - up,
      downBytes: client.stats.bytesSent - down,
      handoffBytes,
      latencyMs: nowMs() - began,
    });
    options.onProgress?.(i + 1, n);
  }
  const baudRate = options.baudRate ?? 115200;
  const mean = (f: (s: SplitSample) => number): number => samples.reduce((a, s) => a + f(s), 0) / Math.max(n, 1);
  const latencies = samples.map((s) => s.latencyMs);
  const meanUpBytes = mean((s) => s.upBytes);
  return {
    samples,
    report: {
      samples: n,
      accuracy: samples.filter((s, i) => s.label === split.y[i]).length / Math.max(n, 1),
      deviceShare: mean((s) => Number(s.exit > 0)),
      meanUpBytes,
      meanDownBytes: mean((s) => s.downBytes),
      meanHandoffBytes: mean((s) => s.handoffBytes),
      uplinkMsAtBaud: (meanUpBytes * UART_BITS_PER_BYTE * 1000) / baudRate,
      baudRate,
      latencyMs: {
        p50: percentile(latencies, 50),
        p90: percentile(latencies, 90),
        p99: percentile(latencies, 99),
        mean: mean((s) => s.latencyMs),
      },
    },
  };
}

/**
 * The host model's input from a hand-off frame: a static mask's compact kept values; a model without a mask gets
 * the whole image, which the device sends as a static frame with mask id 0 and every pixel. The frame carries
 * pixels; `norm` is what the host applies to them (the identity when the model's graph normalizes).
 */
function modelInput(
  frame: Uint8Array,
  codec: SelectionCodec | undefined,
  features: number,
  shape: [number, number, number],
  norm: { mean: number; std: number },
): { input: Float32Array; dims: number[] } {
  let values: Float32Array;
  if (codec) values = codec.decode(frame).values;
  else {
    const id = new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(2, true);
    if (frame.length !== 8 + features || id !== 0) {
      throw new CmpError(
        'FRAME_INVALID',
        `Hand-off of ${frame.length} bytes with mask id ${id} for a model without a mask (expected 0 and ${8 + features} bytes). Deploy the same model to device and host.`,
      );
    }
    values = Float32Array.from(frame.subarray(8), (p) => p / 255);
  }
  const input = values.map((v) => (v - norm.mean) / norm.std);
  return { input, dims: codec ? [1, input.length] : [1, ...shape] };
}
