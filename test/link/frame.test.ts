// Link framing: CRC-32 and COBS round trips, damaged frames rejected, the stream decoder resynchronising after noise.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crc32 } from '../../src/core/crc32.js';
import {
  cobsDecode,
  cobsEncode,
  decodeFrame,
  encodeFrame,
  FrameDecoder,
  frameWireBytes,
  MAX_PAYLOAD,
  PROTOCOL_VERSION,
  type Frame,
  type FrameFault,
} from '../../src/link/frame.js';

function bytes(length: number, seed: number, zeroEvery = 0): Uint8Array {
  const out = new Uint8Array(length);
  let s = seed;
  for (let i = 0; i < length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = zeroEvery && i % zeroEvery === 0 ? 0 : s >>> 24;
  }
  return out;
}

function splitAtZeros(data: Uint8Array): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i <= data.length; i++) {
    if (i === data.length || data[i] === 0) {
      if (i > start) pieces.push(data.subarray(start, i));
      start = i + 1;
    }
  }
  return pieces;
}

function collect(): { decoder: FrameDecoder; frames: Frame[]; faults: FrameFault[] } {
  const frames: Frame[] = [];
  const faults: FrameFault[] = [];
  return {
    decoder: new FrameDecoder(
      (f) => frames.push(f),
      (f) => faults.push(f),
    ),
    frames,
    faults,
  };
}

test('crc32 matches the standard check value and continues across pieces', () => {
  const text = new TextEncoder().encode('123456789');
  assert.equal(crc32(text), 0xcbf43926);
  assert.equal(crc32(text.subarray(4), crc32(text.subarray(0, 4))), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
});

test('COBS round-trips payloads of every awkward length without a zero byte on the wire', () => {
  for (const length of [0, 1, 253, 254, 255, 508, 1000, 1100]) {
    for (const zeroEvery of [0, 1, 3, 300]) {
      const data = bytes(length, length + zeroEvery, zeroEvery);
      const encoded = cobsEncode(data);
      assert.ok(!encoded.includes(0), `no zero in encoding of ${length}/${zeroEvery}`);
      assert.ok(encoded.length <= length + Math.floor(length / 254) + 1);
      assert.deepEqual(cobsDecode(encoded), data, `round trip ${length}/${zeroEvery}`);
    }
  }
  assert.equal(cobsDecode(Uint8Array.of(3, 1)), undefined, 'truncated block');
  assert.equal(cobsDecode(Uint8Array.of(2, 0)), undefined, 'zero inside');
});

test('frameWireBytes is what a short frame takes on the wire, and never less than a long one takes', () => {
  // Bodies under 254 bytes get exactly one COBS code byte whatever they hold: the bound is their exact size.
  for (const length of [0, 20, 32, 53, 240, 245]) {
    for (const zeroEvery of [0, 1, 7]) {
      assert.equal(encodeFrame(0x21, 0x0100, bytes(length, length, zeroEvery)).length, frameWireBytes(length));
    }
  }
  let tight = false;
  for (const length of [246, 254, 500, 796, MAX_PAYLOAD]) {
    for (const zeroEvery of [0, 3, 300]) {
      const wire = encodeFrame(0x23, 0x0101, bytes(length, length + 1, zeroEvery)).length;
      assert.ok(wire <= frameWireBytes(length), `${length}/${zeroEvery}: ${wire} > ${frameWireBytes(length)}`);
      tight ||= wire === frameWireBytes(length);
    }
  }
  assert.ok(tight, 'payloads without zeros reach the bound');
});

test('a frame decodes to its type, sequence number and payload', () => {
  const payload = bytes(MAX_PAYLOAD, 9, 5);
  const wire = encodeFrame(0x20, 0xbeef, payload);
  assert.equal(wire[0], 0, 'leading delimiter');
  assert.equal(wire[wire.length - 1], 0, 'trailing delimiter');
  const frame = decodeFrame(wire.subarray(1, wire.length - 1));
  assert.deepEqual(frame, { version: PROTOCOL_VERSION, type: 0x20, seq: 0xbeef, payload });
  assert.throws(() => encodeFrame(0x20, 1, new Uint8Array(MAX_PAYLOAD + 1)), /exceeds 1024/);
});

test('every single flipped bit of a frame is caught (never accepted as a frame)', () => {
  const wire = encodeFrame(0x11, 7, bytes(64, 3, 4));
  const inner = wire.subarray(1, wire.length - 1);
  let caught = 0;
  for (let i = 0; i < inner.length; i++) {
    for (let bit = 0; bit < 8; bit++) {
      const damaged = inner.slice();
      damaged[i] ^= 1 << bit;
      // A bit flipped to 0x00 is a new delimiter: the receiver then sees two pieces, and neither may pass.
      const pieces = damaged.includes(0) ? splitAtZeros(damaged) : [damaged];
      for (const piece of pieces) assert.equal(typeof decodeFrame(piece), 'string', `byte ${i} bit ${bit}`);
      caught++;
    }
  }
  assert.equal(caught, inner.length * 8);
});

test('the stream decoder drops noise and damaged frames and still delivers the frames around them', () => {
  const { decoder, frames, faults } = collect();
  const good1 = encodeFrame(0x02, 1, bytes(40, 1));
  const damaged = encodeFrame(0x21, 2, bytes(40, 2));
  damaged[10] ^= 0x40;
  const good2 = encodeFrame(0x21, 3, bytes(900, 3, 7));
  const noise = Uint8Array.from([0x55, 0xaa, 0x13, 0x00, 0xff, 0xfe, 0x01]);
  const stream = Uint8Array.from([...noise, ...good1, ...damaged, ...noise, ...good2]);
  // Delivered in awkward pieces, as a serial port does.
  for (let at = 0; at < stream.length; at += 7) decoder.push(stream.subarray(at, at + 7));
  assert.deepEqual(
    frames.map((f) => f.seq),
    [1, 3],
  );
  assert.deepEqual(frames[1].payload, bytes(900, 3, 7));
  assert.ok(faults.length >= 2, `faults ${faults.join(',')}`);
  assert.ok(faults.includes('crc') || faults.includes('cobs'));
});

test('an endless run without a delimiter is dropped as one overflow, then framing resumes', () => {
  const { decoder, frames, faults } = collect();
  decoder.push(new Uint8Array(5000).fill(0x41));
  decoder.push(encodeFrame(0x02, 42, bytes(10, 4)));
  assert.deepEqual(faults, ['overflow']);
  assert.deepEqual(
    frames.map((f) => f.seq),
    [42],
  );
});

/** A frame body of any payload length with a valid CRC, COBS-encoded: what a sender that ignored the limit sends. */
function oversizedFrame(payloadBytes: number): Uint8Array {
  const body = new Uint8Array(4 + payloadBytes + 4);
  const view = new DataView(body.buffer);
  body.set([PROTOCOL_VERSION, 0x21]);
  view.setUint16(2, 7, true);
  body.set(bytes(payloadBytes, payloadBytes), 4);
  view.setUint32(4 + payloadBytes, crc32(body.subarray(0, 4 + payloadBytes)), true);
  return cobsEncode(body);
}

test('a frame whose payload is over 1024 bytes is dropped even with a valid CRC (PROTOCOL.md)', () => {
  assert.equal((decodeFrame(oversizedFrame(MAX_PAYLOAD)) as Frame).payload.length, MAX_PAYLOAD);
  // 1025 to 1038 bytes still fit the decoder's buffer (its COBS slack): the length check, not the buffer, drops them.
  for (let n = MAX_PAYLOAD + 1; n <= MAX_PAYLOAD + 14; n++) {
    assert.equal(decodeFrame(oversizedFrame(n)), 'overflow', `${n} bytes`);
    const { decoder, frames, faults } = collect();
    decoder.push(Uint8Array.from([0, ...oversizedFrame(n), 0]));
    assert.deepEqual([frames.length, faults], [0, ['overflow']], `${n} bytes through the stream decoder`);
  }
});
