// Messages of the cmp serial protocol, version 1: type numbers and payload layouts (firmware-bridge/PROTOCOL.md).

import { CmpError } from '../errors.js';

/** Message types; host-to-device requests and device-to-host responses share one number space. */
export const MSG = Object.freeze({
  hello: 0x01,
  caps: 0x02,
  uploadBegin: 0x10,
  uploadChunk: 0x11,
  uploadEnd: 0x12,
  modelInfo: 0x13,
  infer: 0x20,
  result: 0x21,
  /** Reserved: the host sending a compact frame of selected inputs to the device. */
  inferMasked: 0x22,
  /** Device -> host when no exit is confident: the selected inputs as a cmp-select/1 frame, for the host to finish. */
  handoff: 0x23,
  profileGet: 0x30,
  profile: 0x31,
  reset: 0x40,
  ack: 0x7e,
  error: 0x7f,
} as const);

/** Device status codes (firmware cmp_status_t), by number. */
export const DEVICE_STATUS: Readonly<Record<number, string>> = Object.freeze({
  0: 'OK',
  1: 'ARG',
  2: 'ARENA',
  3: 'MODEL',
  4: 'MODEL_VERSION',
  5: 'CRC',
  6: 'NO_MODEL',
  7: 'UNSUPPORTED',
  8: 'FRAME',
  9: 'TYPE',
  10: 'RANGE',
  11: 'STATE',
  12: 'VERSION',
});
export const STATUS_CRC = 5;
export const STATUS_FRAME = 8;

/** INFER input encodings. */
export const INPUT_F32 = 0;
export const INPUT_U8 = 1;
/** INFER flags. */
export const INFER_RUN = 0x01;
export const INFER_LOGITS = 0x02;
/** Split inference: stop after the last exit's stage and hand the selected inputs off when no exit is confident. */
export const INFER_HANDOFF = 0x04;
/** CAPS feature bits. */
export const FEATURE_MASK = 0x01;
export const FEATURE_EXITS = 0x02;
export const FEATURE_HANDOFF = 0x04;
/** The image holds a model compiled into flash (cmp firmware build --model). */
export const FEATURE_BUILTIN = 0x08;

/** How the device counts time (CAPS byte 16). */
export const COUNTER_KINDS: readonly string[] = Object.freeze(['none', 'systick', 'dwt', 'host']);

/** What HELLO tells about the device. */
export interface Capabilities {
  protocolVersion: number;
  firmwareVersion: string;
  board: string;
  arenaBytes: number;
  /** Counter ticks per second (the core clock for SysTick and DWT). */
  clockHz: number;
  counter: string;
  maxPayload: number;
  modelFormatVersion: number;
  /** Feature bits: 1 input mask, 2 early exit, 4 stage-2 hand-off (none yet). */
  features: number;
  maxLayers: number;
  /**
   * The loaded model's CRC-32 and size, when one is loaded; `builtIn`: it is the model compiled into flash;
   * `arenaUsed`: the arena bytes it takes (firmware that reports it: CAPS after the board name).
   */
  model?: { crc: number; bytes: number; builtIn?: boolean; arenaUsed?: number };
}

/** What UPLOAD_END answers once the device verified and loaded a model. */
export interface ModelInfo {
  crc: number;
  bytes: number;
  layers: number;
  classes: number;
  inputCount: number;
  /** Arena bytes in use: blob plus workspace. */
  arenaUsed: number;
  arenaBytes: number;
}

/** A RESULT. */
export interface DeviceResult {
  label: number;
  /** 0: the final classifier answered (exit heads come with model format 2). */
  exit: number;
  /** Softmax entropy of the answering logits, nats. */
  entropy: number;
  /** Counter ticks of the inference on the device. */
  cycles: number;
  inputCount: number;
  logits?: Float32Array;
}

/** A RESULT's payload before its optional logits. */
export const RESULT_BYTES = 20;
/** A HANDOFF's payload before its cmp-select/1 frame (entropy, cycles, exits checked, padding). */
export const HANDOFF_HEADER_BYTES = 12;

/** A HANDOFF: no exit was confident; the device sends the selected inputs (cmp-select/1) for the host to finish. */
export interface DeviceHandoff {
  /** Entropy of the last exit checked (NaN without exits). */
  entropy: number;
  cycles: number;
  exitsChecked: number;
  /** The cmp-select/1 frame (core/codec.ts). */
  frame: Uint8Array;
}

export function parseHandoff(payload: Uint8Array): DeviceHandoff {
  const v = reader(payload, 'HANDOFF', HANDOFF_HEADER_BYTES + 8);
  return {
    entropy: v.getFloat32(0, true),
    cycles: v.getUint32(4, true),
    exitsChecked: payload[8],
    frame: payload.slice(HANDOFF_HEADER_BYTES),
  };
}

/** Link and inference counters read by PROFILE_GET. */
export interface DeviceProfile {
  framesOk: number;
  framesBad: number;
  duplicates: number;
  bytesRx: number;
  bytesTx: number;
  inferences: number;
  lastCycles: number;
  totalCycles: number;
  clockHz: number;
  /** Counter ticks of each layer in the last inference, in model order. */
  layerCycles: number[];
}

function reader(payload: Uint8Array, type: string, min: number): DataView {
  if (payload.length < min) {
    throw new CmpError(
      'IO',
      `The device sent a ${type} of ${payload.length} bytes (at least ${min} expected). Rebuild the firmware to match this cmp.`,
    );
  }
  return new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
}

export function parseCaps(payload: Uint8Array): Capabilities {
  const v = reader(payload, 'CAPS', 29);
  const nameLength = payload[28];
  const loaded = payload[18] === 1 || payload[18] === 2; // 2: the built-in model, read from flash
  const arenaUsed = payload.length >= 33 + nameLength ? v.getUint32(29 + nameLength, true) : undefined;
  return {
    protocolVersion: payload[0],
    firmwareVersion: `${payload[1]}.${payload[2]}.${payload[3]}`,
    arenaBytes: v.getUint32(4, true),
    clockHz: v.getUint32(8, true),
    maxPayload: v.getUint16(12, true),
    modelFormatVersion: v.getUint16(14, true),
    counter: COUNTER_KINDS[payload[16]] ?? `kind${payload[16]}`,
    features: payload[17],
    maxLayers: payload[19],
    ...(loaded
      ? {
          model: {
            crc: v.getUint32(20, true),
            bytes: v.getUint32(24, true),
            ...(payload[18] === 2 ? { builtIn: true } : {}),
            ...(arenaUsed !== undefined ? { arenaUsed } : {}),
          },
        }
      : {}),
    board: new TextDecoder().decode(payload.subarray(29, 29 + nameLength)),
  };
}

export function parseModelInfo(payload: Uint8Array): ModelInfo {
  const v = reader(payload, 'MODEL_INFO', 24);
  return {
    crc: v.getUint32(0, true),
    bytes: v.getUint32(4, true),
    layers: v.getUint16(8, true),
    classes: v.getUint16(10, true),
    inputCount: v.getUint32(12, true),
    arenaUsed: v.getUint32(16, true),
    arenaBytes: v.getUint32(20, true),
  };
}

export function parseResult(payload: Uint8Array): DeviceResult {
  const v = reader(payload, 'RESULT', RESULT_BYTES);
  const count = v.getUint16(16, true);
  const result: DeviceResult = {
    label: v.getUint16(0, true),
    exit: payload[2],
    entropy: v.getFloat32(4, true),
    cycles: v.getUint32(8, true),
    inputCount: v.getUint32(12, true),
  };
  if (count > 0) {
    reader(payload, 'RESULT', RESULT_BYTES + 4 * count);
    result.logits = new Float32Array(count);
    for (let k = 0; k < count; k++) result.logits[k] = v.getFloat32(RESULT_BYTES + 4 * k, true);
  }
  return result;
}

export function parseProfile(payload: Uint8Array): DeviceProfile {
  const v = reader(payload, 'PROFILE', 44);
  const layers = v.getUint16(40, true);
  reader(payload, 'PROFILE', 44 + 4 * layers);
  return {
    framesOk: v.getUint32(0, true),
    framesBad: v.getUint32(4, true),
    duplicates: v.getUint32(8, true),
    bytesRx: v.getUint32(12, true),
    bytesTx: v.getUint32(16, true),
    inferences: v.getUint32(20, true),
    lastCycles: v.getUint32(24, true),
    totalCycles: v.getUint32(28, true) + v.getUint32(32, true) * 2 ** 32,
    clockHz: v.getUint32(36, true),
    layerCycles: Array.from({ length: layers }, (_, i) => v.getUint32(44 + 4 * i, true)),
  };
}

/** An ERROR payload: the device's status, the request type it refers to and a detail (bytes needed, CRC, ...). */
export interface DeviceError {
  status: number;
  statusName: string;
  forType: number;
  detail: number;
}

export function parseError(payload: Uint8Array): DeviceError {
  const v = reader(payload, 'ERROR', 8);
  return {
    status: payload[0],
    statusName: DEVICE_STATUS[payload[0]] ?? `status ${payload[0]}`,
    forType: payload[1],
    detail: v.getUint32(4, true),
  };
}

/** Little-endian payload builder. */
export function payload(...fields: ([number, 'u8' | 'u16' | 'u32'] | Uint8Array)[]): Uint8Array {
  const size = fields.reduce((n, f) => n + (f instanceof Uint8Array ? f.length : { u8: 1, u16: 2, u32: 4 }[f[1]]), 0);
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  let at = 0;
  for (const f of fields) {
    if (f instanceof Uint8Array) {
      out.set(f, at);
      at += f.length;
    } else if (f[1] === 'u8') v.setUint8(at++, f[0]);
    else if (f[1] === 'u16') {
      v.setUint16(at, f[0], true);
      at += 2;
    } else {
      v.setUint32(at, f[0], true);
      at += 4;
    }
  }
  return out;
}
