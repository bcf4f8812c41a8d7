// The real firmware on QEMU's mps2-an385 over a real PTY with serialport: upload, inference equal to onnxruntime,
// damaged frames caught and resent, noise survived, reconnects after QEMU's startup byte drop.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Dataset } from '../../src/data/datasets.js';
import { exportOnnx } from '../../src/export/export-onnx.js';
import { requireTool, type FirmwareBuild } from '../../src/link/firmware-build.js';
import { McuClient } from '../../src/link/mcu-client.js';
import { convertToMcuModel, type McuModel } from '../../src/core/mcu-model.js';
import { analyzeModel } from '../../src/profile/analyze.js';
import {
  FEATURE_EXITS,
  FEATURE_HANDOFF,
  FEATURE_MASK,
  INFER_LOGITS,
  INFER_RUN,
  INPUT_U8,
  MSG,
} from '../../src/link/protocol.js';
import { bootQemu, type QemuSession } from '../../src/link/qemu.js';
import type { Transport } from '../../src/link/transport.js';
import { openSerialTransport } from '../../src/link/transport-serial.js';
import { createBackend } from '../../src/runtime/backends.js';
import { predict } from '../../src/runtime/evaluate.js';
import { parseModelFile } from '../../src/runtime/model-file.js';
import { DAB_MLP, fixtureData, fixtures } from '../fixtures.js';

const IMAGES = 30;
const CLASSES = 10;
const FEATURES = 784;
/** Device float32 sums run in another order than onnxruntime's: logits and entropy agree to this, labels exactly. */
const TOLERANCE = 1e-4;

/** A relay between client and port that damages one byte on demand, each way (a flaky cable). */
class FaultRelay implements Transport {
  readonly name: string;
  damageNextWrite = false;
  damageNextRead = false;
  /** This many next writes are lost, as QEMU loses what a new client sends before it notices the client. */
  dropWrites = 0;
  droppedWrites = 0;

  constructor(private readonly inner: Transport) {
    this.name = `relay(${inner.name})`;
  }

  write(bytes: Uint8Array): Promise<void> {
    if (this.dropWrites > 0) {
      this.dropWrites--;
      this.droppedWrites++;
      return Promise.resolve();
    }
    if (this.damageNextWrite && bytes.length > 8) {
      this.damageNextWrite = false;
      return this.inner.write(damage(bytes));
    }
    return this.inner.write(bytes);
  }

  onData(listener: (bytes: Uint8Array) => void): () => void {
    return this.inner.onData((bytes) => {
      if (this.damageNextRead && bytes.some((b) => b !== 0 && b !== 0x10)) {
        this.damageNextRead = false;
        listener(damage(bytes));
      } else listener(bytes);
    });
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Flips bit 4 of the middle-most byte that stays non-zero, so the damage is a wrong byte, not a lost delimiter. */
function damage(bytes: Uint8Array): Uint8Array {
  const copy = bytes.slice();
  let i = Math.floor(copy.length / 2);
  while (copy[i] === 0 || copy[i] === 0x10) i = (i + 1) % copy.length;
  copy[i] ^= 0x10;
  return copy;
}

let data: Dataset;
let firmware: FirmwareBuild;
let mcu: McuModel;
let analysis: ReturnType<typeof analyzeModel>;
let expected: Float32Array;
let session: QemuSession;
let relay: FaultRelay;

function pixels(i: number): Uint8Array {
  return Uint8Array.from(data.test.x.subarray(i * FEATURES, (i + 1) * FEATURES), (v) => Math.round(v * 255));
}

function hostRow(i: number): Float32Array {
  return expected.subarray(i * CLASSES, (i + 1) * CLASSES);
}

function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let c = 1; c < row.length; c++) if (row[c] > row[best]) best = c;
  return best;
}

function entropy(row: ArrayLike<number>): number {
  const m = Math.max(...Array.from(row));
  const e = Array.from(row, (v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return -e.reduce((h, v) => h + (v / s) * Math.log(v / s), 0);
}

before(async () => {
  // Fails with the apt-get line when arm-none-eabi-gcc or qemu-system-arm is missing.
  requireTool('qemu-system-arm');
  firmware = await fixtures.firmware('mps2-an385');
  data = await fixtureData(DAB_MLP.data);
  const trained = await fixtures.model(DAB_MLP);
  const file = parseModelFile(exportOnnx(trained.frozen).bytes, 'fm-mlp64.onnx');
  mcu = convertToMcuModel(file);
  analysis = analyzeModel(file, { target: 'mcu', board: 'mps2-an385' });
  const backend = await createBackend('ort-node', file);
  expected = await predict(backend, file, data, IMAGES);
  await backend.dispose();
  session = await bootQemu({
    elfPath: firmware.elfPath,
    wrap: (t) => (relay = new FaultRelay(t)),
    client: { timeoutMs: 1500 },
  });
});

after(async () => {
  await session?.close();
});

test('firmware build reports flash and RAM within the board', () => {
  assert.ok(firmware.flashBytes > 1000 && firmware.flashBytes < 64 * 1024, `flash ${firmware.flashBytes}`);
  assert.ok(firmware.ramBytes >= firmware.arenaBytes, `RAM ${firmware.ramBytes} holds the arena`);
  assert.ok(firmware.ramBytes < firmware.arenaBytes + 32 * 1024, `RAM ${firmware.ramBytes}`);
});

test('HELLO answers the capabilities of the emulated board', () => {
  const caps = session.capabilities;
  assert.equal(caps.protocolVersion, 1);
  assert.equal(caps.board, 'mps2-an385');
  assert.equal(caps.arenaBytes, firmware.arenaBytes);
  assert.equal(caps.clockHz, 25_000_000);
  assert.equal(caps.counter, 'systick');
  assert.equal(caps.modelFormatVersion, 2, 'reads model formats 1 and 2');
  assert.equal(caps.features, FEATURE_MASK | FEATURE_EXITS | FEATURE_HANDOFF, 'masks, exits and hand-off');
  assert.equal(caps.model, undefined, 'no model before upload');
});

test('upload: the device verifies the CRC-32 and uses exactly the arena the host computed', async () => {
  const info = await session.client.uploadModel(mcu.blob);
  assert.equal(info.crc, mcu.crc);
  assert.equal(info.bytes, mcu.blob.length);
  assert.equal(info.arenaUsed, mcu.arenaBytes);
  assert.equal(analysis.mcu?.arenaUploadedBytes, info.arenaUsed, 'cmp analyze gives the arena the firmware reports');
  assert.equal(analysis.mcu?.modelBytes, info.bytes, 'and the model bytes');
  assert.equal(info.layers, 4);
  assert.equal(info.inputCount, FEATURES);
  const caps = await session.client.connect();
  assert.deepEqual(caps.model, { crc: mcu.crc, bytes: mcu.blob.length, arenaUsed: mcu.arenaBytes });
});

test(`${IMAGES} Fashion-MNIST images: device labels equal onnxruntime-node's, logits and entropy within ${TOLERANCE}`, async () => {
  let worstLogit = 0;
  let worstEntropy = 0;
  for (let i = 0; i < IMAGES; i++) {
    const r = await session.client.infer(pixels(i), { logits: true });
    const row = hostRow(i);
    assert.equal(r.label, argmax(row), `label of image ${i}`);
    assert.equal(r.exit, 0);
    assert.ok(r.cycles > 0, 'cycles counted');
    for (let c = 0; c < CLASSES; c++)
      worstLogit = Math.max(worstLogit, Math.abs((r.logits as Float32Array)[c] - row[c]));
    worstEntropy = Math.max(worstEntropy, Math.abs(r.entropy - entropy(row)));
  }
  assert.ok(worstLogit <= TOLERANCE, `largest logit difference ${worstLogit}`);
  assert.ok(worstEntropy <= TOLERANCE, `largest entropy difference ${worstEntropy}`);
  const profile = await session.client.profile();
  assert.ok(profile.inferences >= IMAGES);
  assert.equal(profile.layerCycles.length, 4, 'one counter per layer');
});

test('float32 input sent in chunks gives the same result as uint8 pixels', async () => {
  const floats = data.test.x.slice(3 * FEATURES, 4 * FEATURES);
  const sentBefore = session.client.stats.framesSent;
  const r = await session.client.infer(floats, { logits: true });
  assert.ok(session.client.stats.framesSent - sentBefore >= 4, '3136 bytes take several frames');
  const r8 = await session.client.infer(pixels(3), { logits: true });
  assert.equal(r.label, r8.label);
  assert.deepEqual(r.logits, r8.logits);
});

// How many resends a fault costs depends on timing too (a slow answer also runs into the host's timeout, and each
// resend is answered again from the device's cache), so these tests count what the protocol promises instead: one
// bad frame makes exactly one NAK, the device runs the model once per request however often it is sent, and the
// answer is right.
test('a request damaged on the way is NAKed by the device (CRC) and resent; the result is unchanged', async () => {
  const stats = session.client.stats;
  const naks = stats.naks;
  const resends = stats.resends;
  const before = await session.client.profile();
  relay.damageNextWrite = true;
  const r = await session.client.infer(pixels(5), { logits: true });
  assert.equal(r.label, argmax(hostRow(5)));
  assert.equal(stats.naks, naks + 1, 'the device NAKed the one damaged frame');
  assert.ok(stats.resends > resends, 'the host sent the request again');
  const after = await session.client.profile();
  assert.equal(after.framesBad, before.framesBad + 1, 'the device counted the bad frame');
  assert.equal(after.inferences, before.inferences + 1, 'the device ran the model once');
});

test('an answer damaged on the way is dropped by the host and sent again from the device cache', async () => {
  const stats = session.client.stats;
  const bad = stats.badFrames;
  const before = await session.client.profile();
  relay.damageNextRead = true;
  const r = await session.client.infer(pixels(6), { logits: true });
  assert.equal(r.label, argmax(hostRow(6)));
  assert.ok(stats.badFrames > bad, 'the host rejected the damaged answer');
  const after = await session.client.profile();
  assert.ok(after.duplicates > before.duplicates, 'the device answered the resent request from its cache');
  assert.equal(after.inferences, before.inferences + 1, 'without running the model again');
});

test('garbage on the line (noise with zeros, an over-long run) is survived', async () => {
  const noise = Uint8Array.from({ length: 300 }, (_, i) => (i * 37 + 11) & 0xff);
  await session.client.sendRaw(noise);
  await session.client.sendRaw(new Uint8Array(3000).fill(0x5a)); // longer than any frame, no delimiter
  const r = await session.client.infer(pixels(7), { logits: true });
  assert.equal(r.label, argmax(hostRow(7)));
  assert.deepEqual(
    Array.from(r.logits as Float32Array).map((v, c) => Math.abs(v - hostRow(7)[c]) <= TOLERANCE),
    new Array<boolean>(CLASSES).fill(true),
  );
});

test('reserved and unknown message types are refused with a status, not ignored', async () => {
  await assert.rejects(session.client.request(MSG.inferMasked, new Uint8Array(4), MSG.result), /UNSUPPORTED/);
  await assert.rejects(session.client.request(MSG.handoff, new Uint8Array(0), MSG.ack), /UNSUPPORTED/);
  await assert.rejects(session.client.request(0x55, new Uint8Array(0), MSG.ack), /TYPE/);
});

test('INFER is refused before every input arrived, after a gap, and with reserved flag bits; nothing runs', async () => {
  const chunk = (flags: number, offset: number, values: Uint8Array): Uint8Array => {
    const p = new Uint8Array(8 + values.length);
    p[0] = INPUT_U8;
    p[1] = flags;
    new DataView(p.buffer).setUint32(4, offset, true);
    p.set(values, 8);
    return p;
  };
  const image = pixels(9);
  const before = await session.client.profile();
  // RUN after 3 of 784 pixels: the rest of the buffer is what the last image left.
  await assert.rejects(
    session.client.request(MSG.infer, chunk(INFER_RUN | INFER_LOGITS, 0, image.subarray(0, 3)), MSG.result),
    /STATE/,
  );
  // A chunk that skips elements 3..99.
  await assert.rejects(session.client.request(MSG.infer, chunk(0, 100, image.subarray(100, 200)), MSG.ack), /STATE/);
  for (let bit = 3; bit < 8; bit++) {
    await assert.rejects(
      session.client.request(MSG.infer, chunk(INFER_RUN | (1 << bit), 0, image), MSG.result),
      /ARG/,
      `flag bit ${bit}`,
    );
  }
  assert.equal((await session.client.profile()).inferences, before.inferences, 'nothing ran');
  assert.equal((await session.client.infer(image)).label, argmax(hostRow(9)));
});

test('a new connection whose first bytes are lost connects by probing, and finds the model loaded', async () => {
  // serialport locks the port: like a real UART it takes one client at a time, so the first one goes first.
  session.client.dispose();
  await session.transport.close();
  const transport = new FaultRelay(await openSerialTransport(session.qemu.port));
  // Whether or not this QEMU drops the first bytes of a new client, make the first three probes vanish.
  transport.dropWrites = 3;
  const client = new McuClient(transport, { timeoutMs: 1500 });
  session.transport = transport;
  session.client = client;
  const caps = await client.connect({ deadlineMs: 60_000, probeIntervalMs: 250 });
  assert.equal(transport.droppedWrites, 3);
  assert.ok(client.stats.probes > 3, `probes ${client.stats.probes}: HELLO went again until one arrived`);
  assert.deepEqual(caps.model, { crc: mcu.crc, bytes: mcu.blob.length, arenaUsed: mcu.arenaBytes });
  const r = await client.infer(pixels(8));
  assert.equal(r.label, argmax(hostRow(8)));
});

test('after RESET the device has no model and says so', async () => {
  await session.client.reset();
  await assert.rejects(session.client.infer(pixels(0)), /NO_MODEL/);
  assert.equal((await session.client.connect()).model, undefined);
});
