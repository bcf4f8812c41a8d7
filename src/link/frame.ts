// Link framing: COBS with a 0x00 delimiter around a body of version, type, sequence number, payload and CRC-32.

import { CmpError } from '../errors.js';
import { crc32 } from '../core/crc32.js';

/** Protocol version (byte 0 of every body); see firmware-bridge/PROTOCOL.md. */
export const PROTOCOL_VERSION = 1;
/** Largest payload either side sends (firmware CMP_MAX_PAYLOAD). */
export const MAX_PAYLOAD = 1024;
/** version u8, type u8, seq u16 LE. */
export const FRAME_HEADER_BYTES = 4;
export const FRAME_CRC_BYTES = 4;
/** The longest encoded body a decoder keeps before it gives up on a frame (COBS overhead included). */
const MAX_ENCODED = FRAME_HEADER_BYTES + MAX_PAYLOAD + FRAME_CRC_BYTES + 16;

/**
 * The most bytes one frame with `payload` bytes takes on the wire: both delimiters, header, CRC and COBS's worst
 * case (one code byte per 254 bytes of body). Frames whose bodies hold zeros take exactly this or up to a few less.
 */
export function frameWireBytes(payload: number): number {
  const body = FRAME_HEADER_BYTES + payload + FRAME_CRC_BYTES;
  return 2 + body + Math.floor(body / 254) + 1;
}

/** One decoded frame. */
export interface Frame {
  version: number;
  type: number;
  /** 16-bit sequence number: a response carries its request's. */
  seq: number;
  payload: Uint8Array;
}

/** COBS-encodes `data` (no delimiter). */
export function cobsEncode(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length + Math.floor(data.length / 254) + 1);
  let codeAt = 0;
  let o = 1;
  let code = 1;
  for (const b of data) {
    if (b === 0) {
      out[codeAt] = code;
      codeAt = o++;
      code = 1;
    } else {
      out[o++] = b;
      if (++code === 0xff) {
        out[codeAt] = code;
        codeAt = o++;
        code = 1;
      }
    }
  }
  out[codeAt] = code;
  return out.subarray(0, o);
}

/** Decodes one COBS block sequence (without delimiter); undefined when it is not valid COBS. */
export function cobsDecode(data: Uint8Array): Uint8Array | undefined {
  const out = new Uint8Array(data.length);
  let i = 0;
  let o = 0;
  while (i < data.length) {
    const code = data[i++];
    if (code === 0) return undefined;
    for (let j = 1; j < code; j++) {
      if (i >= data.length || data[i] === 0) return undefined;
      out[o++] = data[i++];
    }
    if (code !== 0xff && i < data.length) out[o++] = 0;
  }
  return out.subarray(0, o);
}

/** The bytes on the wire for one frame: 0x00, COBS(body + CRC-32), 0x00 (the leading 0x00 flushes line noise). */
export function encodeFrame(type: number, seq: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  if (payload.length > MAX_PAYLOAD) {
    throw new CmpError(
      'INTERNAL',
      `Frame payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD}; send it in chunks.`,
    );
  }
  const body = new Uint8Array(FRAME_HEADER_BYTES + payload.length + FRAME_CRC_BYTES);
  const view = new DataView(body.buffer);
  body[0] = PROTOCOL_VERSION;
  body[1] = type;
  view.setUint16(2, seq & 0xffff, true);
  body.set(payload, FRAME_HEADER_BYTES);
  const end = FRAME_HEADER_BYTES + payload.length;
  view.setUint32(end, crc32(body.subarray(0, end)), true);
  const encoded = cobsEncode(body);
  const wire = new Uint8Array(encoded.length + 2);
  wire.set(encoded, 1);
  return wire;
}

/** Why a received frame was dropped. */
export type FrameFault = 'cobs' | 'short' | 'crc' | 'overflow';

/** Checks one encoded frame (between delimiters): a Frame, or the fault that makes it unusable. */
export function decodeFrame(encoded: Uint8Array): Frame | FrameFault {
  const body = cobsDecode(encoded);
  if (!body) return 'cobs';
  if (body.length < FRAME_HEADER_BYTES + FRAME_CRC_BYTES) return 'short';
  // PROTOCOL.md: a receiver drops a frame longer than the largest payload, whatever its CRC says.
  if (body.length > FRAME_HEADER_BYTES + MAX_PAYLOAD + FRAME_CRC_BYTES) return 'overflow';
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const end = body.length - FRAME_CRC_BYTES;
  if (crc32(body.subarray(0, end)) !== view.getUint32(end, true)) return 'crc';
  return {
    version: body[0],
    type: body[1],
    seq: view.getUint16(2, true),
    payload: body.slice(FRAME_HEADER_BYTES, end),
  };
}

/**
 * Splits a byte stream into frames at 0x00 delimiters. Garbage resynchronises at the next delimiter: it comes out
 * as one fault, never as a frame (the CRC-32 rejects it), and never delays the frame after it.
 */
export class FrameDecoder {
  private buffer = new Uint8Array(MAX_ENCODED);
  private length = 0;
  private overflow = false;

  constructor(
    private readonly onFrame: (frame: Frame) => void,
    private readonly onFault: (fault: FrameFault) => void,
  ) {}

  /** Feeds received bytes; calls back once per completed frame or fault. */
  push(bytes: Uint8Array): void {
    for (const b of bytes) {
      if (b !== 0) {
        if (this.length < this.buffer.length) this.buffer[this.length++] = b;
        else this.overflow = true;
        continue;
      }
      if (this.overflow) this.onFault('overflow');
      else if (this.length > 0) {
        const result = decodeFrame(this.buffer.subarray(0, this.length));
        if (typeof result === 'string') this.onFault(result);
        else this.onFrame(result);
      }
      this.length = 0;
      this.overflow = false;
    }
  }
}
