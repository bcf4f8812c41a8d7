// The host side of the serial protocol: probe, upload, infer, profile, reset, with timeouts, resends and resync.

import { CmpError } from '../errors.js';
import { modelCrc } from '../core/mcu-model.js';
import { encodeFrame, FrameDecoder, PROTOCOL_VERSION, type Frame, type FrameFault } from './frame.js';
import {
  INFER_HANDOFF,
  INFER_LOGITS,
  INFER_RUN,
  parseHandoff,
  type DeviceHandoff,
  INPUT_F32,
  INPUT_U8,
  MSG,
  parseCaps,
  parseError,
  parseModelInfo,
  parseProfile,
  parseResult,
  payload,
  type Capabilities,
  type DeviceProfile,
  type DeviceResult,
  type ModelInfo,
} from './protocol.js';
import type { Transport } from './transport.js';

/** Options of {@link McuClient}. */
export interface McuClientOptions {
  /** How long to wait for an answer before sending the request again, ms. */
  timeoutMs?: number;
  /** Tries per request, the first included. */
  attempts?: number;
}

/** Options of {@link McuClient.connect}. */
export interface ConnectOptions {
  /** Give up after this long, ms. QEMU's PTY drops what it gets in its first second or so. */
  deadlineMs?: number;
  /** Send HELLO again after this long without an answer, ms. */
  probeIntervalMs?: number;
}

/** What crossed the link, counted by the host. */
export interface LinkStats {
  framesSent: number;
  framesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  /** Requests sent again (after a NAK, a corrupt answer or a timeout). */
  resends: number;
  /** Device NAKs: the device received one of our frames damaged. */
  naks: number;
  /** Received frames dropped for bad COBS, length or CRC. */
  badFrames: number;
  timeouts: number;
  /** Answers to an earlier request (duplicates after a resend), ignored. */
  stale: number;
  /** HELLOs sent before the device answered. */
  probes: number;
}

type Outcome = Frame | 'nak' | 'corrupt' | 'timeout';

const TYPE_NAMES: Readonly<Record<number, string>> = Object.freeze(
  Object.fromEntries(Object.entries(MSG).map(([name, type]) => [type, name])),
);

/** A device running the cmp firmware, behind any Transport. One request is in flight at a time. */
export class McuClient {
  readonly stats: LinkStats = {
    framesSent: 0,
    framesReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    resends: 0,
    naks: 0,
    badFrames: 0,
    timeouts: 0,
    stale: 0,
    probes: 0,
  };
  /** Set by connect(). */
  capabilities?: Capabilities;
  private readonly timeoutMs: number;
  private readonly attempts: number;
  private readonly decoder: FrameDecoder;
  private readonly unsubscribe: () => void;
  private waiter?: (event: Frame | 'nak' | 'corrupt') => void;
  // A random start keeps a new client's first request from matching the device's last remembered sequence number.
  private seq = Math.floor(Math.random() * 0x10000);
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly transport: Transport,
    options: McuClientOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 2000;
    this.attempts = options.attempts ?? 6;
    this.decoder = new FrameDecoder(
      (frame) => this.received(frame),
      (fault) => this.fault(fault),
    );
    this.unsubscribe = transport.onData((bytes) => {
      this.stats.bytesReceived += bytes.length;
      this.decoder.push(bytes);
    });
  }

  /**
   * Sends HELLO until the device answers (QEMU's PTY drops bytes until it notices the client), checks the protocol
   * version and returns the capabilities.
   */
  async connect(options: ConnectOptions = {}): Promise<Capabilities> {
    const deadline = Date.now() + (options.deadlineMs ?? 15000);
    const interval = options.probeIntervalMs ?? 250;
    return this.exclusive(async () => {
      while (Date.now() < deadline) {
        const seq = this.nextSeq();
        this.stats.probes++;
        await this.send(encodeFrame(MSG.hello, seq, payload([PROTOCOL_VERSION, 'u8'])));
        const outcome = await this.wait(seq, Math.min(interval, Math.max(1, deadline - Date.now())));
        if (typeof outcome !== 'string' && outcome.type === MSG.caps) {
          const caps = parseCaps(outcome.payload);
          if (caps.protocolVersion !== PROTOCOL_VERSION) {
            throw new CmpError(
              'IO',
              `The device on ${this.transport.name} speaks protocol ${caps.protocolVersion}, this cmp speaks ${PROTOCOL_VERSION}. Rebuild the firmware with cmp firmware build.`,
            );
          }
          this.capabilities = caps;
          return caps;
        }
      }
      throw new CmpError(
        'IO',
        `No answer to HELLO on ${this.transport.name} within ${options.deadlineMs ?? 15000} ms. Check the port and that the cmp firmware runs there (cmp firmware qemu).`,
      );
    });
  }

  /**
   * Uploads a device model blob in chunks, then asks the device to verify its CRC-32 and load it. Throws when the
   * device reports another CRC than the host computed, or refuses the model (arena, format).
   */
  async uploadModel(blob: Uint8Array, onProgress?: (sent: number, total: number) => void): Promise<ModelInfo> {
    const caps = this.requireCaps();
    const crc = modelCrc(blob);
    await this.request(MSG.uploadBegin, payload([blob.length, 'u32'], [crc, 'u32']), MSG.ack);
    const chunk = caps.maxPayload - 4;
    for (let offset = 0; offset < blob.length; offset += chunk) {
      const part = blob.subarray(offset, Math.min(blob.length, offset + chunk));
      const ack = await this.request(MSG.uploadChunk, payload([offset, 'u32'], part), MSG.ack);
      const acked = new DataView(ack.payload.buffer, ack.payload.byteOffset).getUint32(4, true);
      if (acked !== offset + part.length) {
        throw new CmpError(
          'IO',
          `The device acknowledged model bytes up to ${acked}, expected ${offset + part.length}. Retry the upload.`,
        );
      }
      onProgress?.(offset + part.length, blob.length);
    }
    const info = parseModelInfo((await this.request(MSG.uploadEnd, new Uint8Array(0), MSG.modelInfo)).payload);
    if (info.crc !== crc || info.bytes !== blob.length) {
      throw new CmpError(
        'IO',
        `The device holds a model with CRC-32 ${hex(info.crc)} (${info.bytes} bytes), the host sent ${hex(crc)} (${blob.length} bytes). Upload again.`,
      );
    }
    return info;
  }

  /**
   * Runs one inference on raw input values: a Float32Array goes as float32 (already normalized), a Uint8Array as
   * pixels the device normalizes with the model's mean and std. Inputs larger than one frame go in chunks.
   */
  async infer(input: Float32Array | Uint8Array, options: { logits?: boolean } = {}): Promise<DeviceResult> {
    return (await this.inferFrames(input, options.logits ? INFER_LOGITS : 0, [MSG.result])) as DeviceResult;
  }

  /**
   * Split inference on sensor pixels: the device applies its mask, runs up to its last exit, and answers a RESULT
   * when an exit is confident, else a HANDOFF carrying the selected inputs (cmp-select/1) for the host to finish.
   */
  async inferSplit(pixels: Uint8Array): Promise<{ result: DeviceResult } | { handoff: DeviceHandoff }> {
    const frame = await this.inferFrames(pixels, INFER_HANDOFF, [MSG.result, MSG.handoff], true);
    return frame instanceof Uint8Array ? { handoff: parseHandoff(frame) } : { result: frame };
  }

  /** Sends an input in INFER chunks; the last (RUN) gets one of `answers`. */
  private async inferFrames(
    input: Float32Array | Uint8Array,
    extraFlags: number,
    answers: number[],
    raw = false,
  ): Promise<DeviceResult | Uint8Array> {
    const caps = this.requireCaps();
    const floats = input instanceof Float32Array;
    const elementBytes = floats ? 4 : 1;
    const perChunk = Math.floor((caps.maxPayload - 8) / elementBytes);
    const bytes = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
    for (let offset = 0; ; offset += perChunk) {
      const last = offset + perChunk >= input.length;
      const flags = last ? INFER_RUN | extraFlags : 0;
      const values = bytes.subarray(offset * elementBytes, Math.min(input.length, offset + perChunk) * elementBytes);
      const head = payload([floats ? INPUT_F32 : INPUT_U8, 'u8'], [flags, 'u8'], [0, 'u16'], [offset, 'u32']);
      const frame = await this.request(MSG.infer, concat(head, values), last ? answers : [MSG.ack]);
      if (last) return raw && frame.type === MSG.handoff ? frame.payload : parseResult(frame.payload);
    }
  }

  /** Reads the device's counters; `reset` zeroes them after reading. */
  async profile(reset = false): Promise<DeviceProfile> {
    return parseProfile((await this.request(MSG.profileGet, payload([reset ? 1 : 0, 'u8']), MSG.profile)).payload);
  }

  /** Makes the device forget its model and counters. */
  async reset(): Promise<void> {
    await this.request(MSG.reset, payload([0, 'u8']), MSG.ack);
  }

  /** Sends raw bytes as they are (tests use it to put garbage on the line). */
  async sendRaw(bytes: Uint8Array): Promise<void> {
    await this.exclusive(() => this.send(bytes));
  }

  /** Stops listening to the transport (the caller closes the transport). */
  dispose(): void {
    this.unsubscribe();
    this.waiter = undefined;
  }

  /** Sends a request and resolves with the answer of type `expect`, resending after NAKs, corruption or timeouts. */
  async request(type: number, body: Uint8Array, expected: number | number[]): Promise<Frame> {
    const expect = Array.isArray(expected) ? expected : [expected];
    return this.exclusive(async () => {
      const seq = this.nextSeq();
      const wire = encodeFrame(type, seq, body);
      const name = TYPE_NAMES[type] ?? `type 0x${type.toString(16)}`;
      for (let attempt = 0; attempt < this.attempts; attempt++) {
        if (attempt > 0) this.stats.resends++;
        await this.send(wire);
        const outcome = await this.wait(seq, this.timeoutMs);
        if (typeof outcome === 'string') continue;
        if (outcome.type === MSG.error) {
          const e = parseError(outcome.payload);
          throw new CmpError(
            'IO',
            `The device refused ${name}: ${e.statusName} (detail ${e.detail}). ${advice(e.statusName, e.detail)}`,
          );
        }
        if (!expect.includes(outcome.type)) {
          throw new CmpError(
            'IO',
            `The device answered ${name} with ${TYPE_NAMES[outcome.type] ?? outcome.type}, expected ${expect.map((t) => TYPE_NAMES[t]).join(' or ')}. Rebuild the firmware to match this cmp.`,
          );
        }
        return outcome;
      }
      throw new CmpError(
        'IO',
        `No valid answer to ${name} from ${this.transport.name} after ${this.attempts} tries of ${this.timeoutMs} ms. Check the link and that the firmware runs.`,
      );
    });
  }

  private requireCaps(): Capabilities {
    if (!this.capabilities) throw new CmpError('INTERNAL', 'McuClient.connect() must succeed before other requests.');
    return this.capabilities;
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) & 0xffff;
    return this.seq;
  }

  private async send(wire: Uint8Array): Promise<void> {
    this.stats.framesSent++;
    this.stats.bytesSent += wire.length;
    await this.transport.write(wire);
  }

  /** Runs `job` after every earlier one: the protocol has one request in flight. */
  private exclusive<T>(job: () => Promise<T>): Promise<T> {
    const run = this.queue.then(job, job);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Waits for the answer carrying `seq`, a NAK, a corrupt frame or the timeout, whichever comes first. */
  private wait(seq: number, timeoutMs: number): Promise<Outcome> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        this.stats.timeouts++;
        resolve('timeout');
      }, timeoutMs);
      this.waiter = (event) => {
        if (typeof event !== 'string' && event.seq !== seq) {
          this.stats.stale++;
          return;
        }
        clearTimeout(timer);
        this.waiter = undefined;
        resolve(event);
      };
    });
  }

  private received(frame: Frame): void {
    this.stats.framesReceived++;
    // A NAK answers a frame the device could not read: its type byte is 0 because no request type is known.
    if (frame.type === MSG.error && frame.payload.length >= 2 && frame.payload[1] === 0) {
      this.stats.naks++;
      this.waiter?.('nak');
      return;
    }
    if (this.waiter) this.waiter(frame);
    else this.stats.stale++;
  }

  private fault(_fault: FrameFault): void {
    this.stats.badFrames++;
    // Most likely our answer, damaged: ask again now; the device resends its cached answer without redoing work.
    this.waiter?.('corrupt');
  }
}

function advice(status: string, detail: number): string {
  switch (status) {
    case 'ARENA':
      return `The model needs more memory than the device's arena (${detail} bytes); use a smaller model or a bigger ARENA_BYTES.`;
    case 'NO_MODEL':
      return 'Upload a model first (cmp deploy).';
    case 'MODEL':
    case 'MODEL_VERSION':
    case 'UNSUPPORTED':
      return 'Convert the model with this cmp and rebuild the firmware with cmp firmware build.';
    case 'CRC':
      return 'The upload arrived damaged; upload again.';
    default:
      return 'Check that the firmware and cmp versions match.';
  }
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
