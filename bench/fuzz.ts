// fuzz: damaged and crafted inputs at every edge where outside bytes enter cmp (link frames, selected-input frames,
// ONNX files, cmp manifests, external data, profiles, dashboard messages, known_hosts). For each kind it counts the
// inputs tried, how many were refused in one clear line, accepted, accepted although damaged, crashed (any error but
// a CmpError) or took longer than the hang limit. Goal (issue 17): none crashed, hung or was accepted when damaged.

import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatTable } from '../src/cli/table.js';
import { nowMs } from '../src/core/clock.js';
import { freeze } from '../src/core/frozen.js';
import type { MaskSpec } from '../src/core/mask.js';
import { decodeModel, encodeOnnxModel, type OnnxModel } from '../src/core/onnx.js';
import { buildSpec } from '../src/core/spec.js';
import { checkClientMessage } from '../src/dashboard/messages.js';
import { checkHostKey } from '../src/deploy/known-hosts.js';
import { isCmpError } from '../src/errors.js';
import { exportOnnx } from '../src/export/export-onnx.js';
import { maskId, SelectionCodec } from '../src/core/codec.js';
import { crc32 } from '../src/core/crc32.js';
import {
  cobsEncode,
  decodeFrame,
  encodeFrame,
  FrameDecoder,
  MAX_PAYLOAD,
  PROTOCOL_VERSION,
} from '../src/link/frame.js';
import { checkDeviceProfile } from '../src/profile/device-profile-check.js';
import { ExternalData } from '../src/runtime/external-data.js';
import { inspectModel } from '../src/runtime/inspect.js';
import { parseModelFile } from '../src/runtime/model-file.js';
import { atMost, benchRecord, goalLines, parseBenchFlags, positiveInt, type Goal } from './common.js';
import { describeMachine, machineLine } from './machine.js';
import { makeRng } from '../src/core/rng.js';
import type { Benchmark } from './run.js';
import { PROFILE } from './schema-size.js';

/** One input's outcome. `damaged`: the input is known to be damaged, so accepting it is a failure. */
type Outcome = 'refused' | 'accepted' | 'accepted-damaged' | 'crashed' | 'hung';

/** What one kind's fuzzing found. */
export interface FuzzRow {
  kind: string;
  tried: number;
  refused: number;
  accepted: number;
  acceptedDamaged: number;
  crashed: number;
  hung: number;
  /** The slowest single input, in ms. */
  slowestMs: number;
  /** The first crash's message, to reproduce it. */
  firstCrash?: string;
}

/** A single input longer than this counts as a hang (every edge here answers in well under a millisecond or two). */
export const HANG_LIMIT_MS = 2000;

/** Damages `data`: flips 1-3 bits, cuts, extends, overwrites a run, or inserts/deletes a byte; never the identity. */
function mutate(data: Uint8Array, r: () => number): Uint8Array {
  const int = (n: number): number => Math.floor(r() * n);
  for (;;) {
    let out = Uint8Array.from(data);
    const how = int(6);
    if (how === 0) for (let k = 0, n = 1 + int(3); k < n; k++) out[int(out.length)] ^= 1 << int(8);
    else if (how === 1) out = out.slice(0, int(out.length));
    else if (how === 2) out = Uint8Array.from([...out, ...Array.from({ length: 1 + int(16) }, () => int(256))]);
    else if (how === 3)
      for (let k = int(out.length), n = k + 1 + int(8); k < Math.min(n, out.length); k++) out[k] = int(256);
    else if (how === 4) {
      const at = int(out.length + 1);
      out = Uint8Array.from([...out.subarray(0, at), int(256), ...out.subarray(at)]);
    } else {
      const at = int(out.length);
      out = Uint8Array.from([...out.subarray(0, at), ...out.subarray(at + 1)]);
    }
    if (out.length !== data.length || out.some((b, i) => b !== data[i])) return out;
  }
}

/**
 * Runs `count` inputs of one kind; `one` returns what happened to input i (throwing is judged here). An input that
 * takes longer than `hangLimitMs` counts as hung.
 */
function fuzzKind(
  kind: string,
  count: number,
  one: (i: number) => 'accepted' | 'accepted-damaged',
  hangLimitMs: number,
): FuzzRow {
  const row: FuzzRow = {
    kind,
    tried: 0,
    refused: 0,
    accepted: 0,
    acceptedDamaged: 0,
    crashed: 0,
    hung: 0,
    slowestMs: 0,
  };
  for (let i = 0; i < count; i++) {
    const began = nowMs();
    let outcome: Outcome;
    try {
      outcome = one(i);
    } catch (err) {
      if (isCmpError(err) && !err.message.includes('\n')) outcome = 'refused';
      else {
        outcome = 'crashed';
        row.firstCrash ??= String((err as Error)?.stack ?? err).split('\n')[0];
      }
    }
    const ms = nowMs() - began;
    row.slowestMs = Math.max(row.slowestMs, ms);
    if (ms > hangLimitMs) outcome = 'hung';
    row.tried++;
    if (outcome === 'refused') row.refused++;
    else if (outcome === 'accepted') row.accepted++;
    else if (outcome === 'accepted-damaged') row.acceptedDamaged++;
    else if (outcome === 'crashed') row.crashed++;
    else row.hung++;
  }
  return row;
}

/** A tiny cmp model (untrained weights): the ONNX file and manifest fuzzers start from it. */
function tinyModel(): Uint8Array {
  const spec = buildSpec('mlp', {
    inputShape: [1, 8, 8],
    labels: ['a', 'b', 'c'],
    widths: [8],
    binarizeWeights: 'dab',
    binarizeInputs: 'none',
    keepFloatWeights: [],
    keepFloatInputs: ['first', 'last'],
  });
  const tensors = new Map<string, Float32Array>([
    ['fc1.weight', Float32Array.from({ length: 64 * 8 }, (_, i) => Math.sin(i))],
    ['fc1.bn.gamma', new Float32Array(8).fill(1)],
    ['fc1.bn.beta', new Float32Array(8)],
    ['fc1.bn.mean', new Float32Array(8)],
    ['fc1.bn.variance', new Float32Array(8).fill(1)],
    ['logits.weight', Float32Array.from({ length: 24 }, (_, i) => Math.cos(i))],
    ['logits.bias', new Float32Array(3)],
  ]);
  return exportOnnx(freeze(spec, tensors)).bytes;
}

/** Replaces a random value somewhere inside `value` (JSON) by a value of another type, or removes a key. */
function mutateJson(value: unknown, r: () => number, marker: string): unknown {
  const replacements: unknown[] = [null, -1, 1e308, 'x', marker, [], {}, true, NaN, 2 ** 53, [marker], { [marker]: 1 }];
  const pick = <T>(list: readonly T[]): T => list[Math.floor(r() * list.length)];
  const copy = JSON.parse(JSON.stringify(value)) as unknown;
  let node = copy as Record<string, unknown>;
  for (let depth = 0; depth < 4; depth++) {
    const keys = Object.keys(node);
    if (keys.length === 0) break;
    const key = pick(keys);
    const child = node[key];
    if (typeof child === 'object' && child !== null && r() < 0.6) {
      node = child as Record<string, unknown>;
      continue;
    }
    if (r() < 0.25 && !Array.isArray(node)) delete node[key];
    else if (r() < 0.15 && !Array.isArray(node)) node[marker] = pick(replacements);
    else node[key] = pick(replacements);
    return copy;
  }
  node[marker] = pick(replacements);
  return copy;
}

/**
 * Every kind of input, `scale` times the full counts. `hangLimitMs` (default {@link HANG_LIMIT_MS}) is when a single
 * input counts as hung; the test raises it to its hang guard, so that a loaded machine cannot fail it.
 */
export function runFuzz(options: { seed: number; scale: number; hangLimitMs?: number }): FuzzRow[] {
  const hangLimitMs = options.hangLimitMs ?? HANG_LIMIT_MS;
  const tryKind = (kind: string, count: number, one: (i: number) => 'accepted' | 'accepted-damaged'): FuzzRow =>
    fuzzKind(kind, count, one, hangLimitMs);
  const r = makeRng(options.seed);
  const int = (n: number): number => Math.floor(r() * n);
  const n = (base: number): number => Math.max(1, Math.round(base * options.scale));
  const rows: FuzzRow[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'cmp-fuzz-'));

  // Link frames: valid frames damaged anywhere, and over-long payloads with a valid CRC (PROTOCOL.md drops them).
  rows.push(
    tryKind('link frame, damaged', n(10_000), () => {
      const payload = randomBytes(int(MAX_PAYLOAD + 1));
      const wire = encodeFrame(int(256), int(65536), payload);
      const body = wire.subarray(1, wire.length - 1);
      let damaged = body;
      // The stream splits at zeros, so a damaged frame carries none; one that ends up as it was is damaged again.
      while (damaged.length === body.length && damaged.every((b, k) => b === body[k])) {
        damaged = mutate(body, r).filter((b) => b !== 0);
      }
      let accepted = false;
      new FrameDecoder(
        () => (accepted = true),
        () => undefined,
      ).push(Uint8Array.from([0, ...damaged, 0]));
      return accepted ? 'accepted-damaged' : 'accepted';
    }),
  );
  rows[rows.length - 1] = asRefusals(rows[rows.length - 1]);
  rows.push(
    asRefusals(
      tryKind('link frame, payload over 1024', n(2_000), () => {
        const length = MAX_PAYLOAD + 1 + int(64);
        const body = new Uint8Array(4 + length + 4);
        body.set([PROTOCOL_VERSION, int(256)]);
        body.set(randomBytes(length), 4);
        new DataView(body.buffer).setUint32(4 + length, crc32(body.subarray(0, 4 + length)), true);
        return typeof decodeFrame(cobsEncode(body)) === 'string' ? 'accepted' : 'accepted-damaged';
      }),
    ),
  );

  // Selected-input frames: damage to the mask id or the length must be refused; any damage must not crash.
  const mask: MaskSpec = { kind: 'dynamic', granularity: { kind: 'pixel' }, values: 'uint8', selectorPool: 4 };
  const shape: [number, number, number] = [1, 28, 28];
  const codec = new SelectionCodec(mask, shape, maskId(mask, shape));
  rows.push(
    tryKind('cmp-select/1 frame, damaged', n(5_000), () => {
      const units = Array.from({ length: 784 }, (_, u) => u).filter(() => r() < r());
      const frame = codec.encode(
        Float32Array.from({ length: 784 }, () => r()),
        units,
      );
      const damaged = mutate(frame, r);
      const structural = damaged.length !== frame.length || [2, 3, 4, 5].some((k) => damaged[k] !== frame[k]);
      codec.decode(damaged);
      return structural ? 'accepted-damaged' : 'accepted';
    }),
  );

  // ONNX files: a cmp model damaged anywhere, parsed and described as eval, run and inspect do.
  const model = tinyModel();
  rows.push(
    tryKind('ONNX file, damaged', n(3_000), () => {
      const path = join(dir, 'fuzz.onnx');
      inspectModel(parseModelFile(mutate(model, r), path));
      return 'accepted';
    }),
  );

  // cmp manifests: the JSON inside a valid file with one field removed or of the wrong type.
  const decoded = decodeModel(model, 'tiny.onnx');
  const entry = (decoded.metadataProps ?? []).find((p) => p.key === 'cmp') as { value: string };
  const manifest = JSON.parse(entry.value) as unknown;
  rows.push(
    tryKind('cmp manifest, damaged', n(3_000), () => {
      const copy = structuredClone<OnnxModel>(decoded);
      const e = (copy.metadataProps ?? []).find((p) => p.key === 'cmp') as { value: string };
      e.value = JSON.stringify(mutateJson(manifest, r, 'FUZZ'));
      inspectModel(parseModelFile(encodeOnnxModel(copy, 'fuzz.onnx'), join(dir, 'fuzz.onnx')));
      return 'accepted';
    }),
  );

  // External data: a model folder with a data file, links out of it (to /etc/passwd, /dev/zero) and a FIFO; tensors
  // naming any of them with any offset, length and dims. A read outside the folder or past the tensor's size is a
  // failure.
  const models = join(dir, 'models');
  mkdirSync(models);
  writeFileSync(join(models, 'w.bin'), randomBytes(4096));
  symlinkSync('/etc/passwd', join(models, 'passwd.bin'));
  symlinkSync('/dev/zero', join(models, 'zero.bin'));
  const locations = ['w.bin', 'passwd.bin', 'zero.bin', '../w.bin', '/etc/passwd', 'missing.bin', './w.bin', 'models'];
  rows.push(
    tryKind('external data entry', n(3_000), () => {
      const location = locations[int(locations.length)];
      const dims = [int(3) === 0 ? -int(5) : int(40), int(3) === 0 ? 2 ** (20 + int(40)) : int(40)];
      const entries = [
        { key: 'location', value: location },
        ...(r() < 0.8 ? [{ key: 'offset', value: String(int(3) === 0 ? -int(9) : int(5000)) }] : []),
        ...(r() < 0.8 ? [{ key: 'length', value: String(int(5000)) }] : []),
      ];
      const data = new ExternalData(join(models, 'm.onnx')).readTensor({
        name: 't',
        dataType: 1,
        dims,
        dataLocation: 1,
        externalData: entries,
      });
      const declared = dims[0] * dims[1] * 4;
      const escaped = location !== 'w.bin' && location !== './w.bin';
      return escaped || data.length !== declared ? 'accepted-damaged' : 'accepted';
    }),
  );

  // Profiles loaded from a file: a valid one with a field removed or mistyped; an error may never quote a value.
  const marker = 'SECRET-FUZZ';
  rows.push(
    tryKind('profile file, damaged', n(5_000), () => {
      const value = mutateJson(PROFILE, r, marker);
      try {
        checkDeviceProfile(value, 'fuzz.json', { quote: false });
      } catch (err) {
        if (isCmpError(err) && err.message.includes(marker))
          throw new Error(`quoted the file: ${err.message}`, { cause: err });
        throw err;
      }
      return 'accepted';
    }),
  );

  // Dashboard messages: valid requests with a field removed, mistyped or added.
  const messages: unknown[] = [
    { id: 1, type: 'hello' },
    { id: 2, type: 'load-profile', path: 'p.json' },
    { id: 3, type: 'profile', device: 'local:ort-node', model: 'm.onnx', dataset: 'auto', count: 10 },
    { id: 4, type: 'model', path: 'm.onnx' },
    { id: 5, type: 'remove-profile', key: 'k' },
  ];
  rows.push(
    tryKind('dashboard message, damaged', n(5_000), () => {
      checkClientMessage(mutateJson(messages[int(messages.length)], r, marker));
      return 'accepted';
    }),
  );

  // known_hosts: random lines around an entry for the host with another key; the host in any letter case must come
  // out as a mismatch, never unknown or known.
  const key = randomBytes(51);
  const other = randomBytes(51).toString('base64');
  rows.push(
    tryKind('known_hosts file, crafted', n(2_000), () => {
      const noise = Array.from({ length: int(6) }, () =>
        Buffer.from(randomBytes(int(60)))
          .toString('latin1')
          .replace(/\n/g, ' '),
      );
      const lines = [...noise, `[pi.local]:2222 ssh-ed25519 ${other}`];
      lines.sort(() => r() - 0.5);
      const path = join(dir, 'known_hosts');
      writeFileSync(path, `${lines.join('\n')}\n`);
      const host = [...'pi.local'].map((c) => (r() < 0.5 ? c.toUpperCase() : c)).join('');
      const verdict = checkHostKey(path, host, 2222, key);
      return verdict === 'mismatch' || verdict === 'revoked' ? 'accepted' : 'accepted-damaged';
    }),
  );
  return rows;
}

/** For kinds whose every input is damaged by construction: a clean refusal there is what "accepted" counted. */
function asRefusals(row: FuzzRow): FuzzRow {
  return { ...row, refused: row.refused + row.accepted, accepted: 0 };
}

export const fuzz: Benchmark = {
  name: 'fuzz',
  summary: 'damaged and crafted inputs at every edge: counts tried, refused, accepted, crashed, hung',
  async run(argv: string[], json: boolean): Promise<number> {
    const values = parseBenchFlags(argv, { seed: { default: '17' }, scale: { default: '1' }, save: {} });
    const seed = positiveInt('seed', values.seed) as number;
    const scale = Number(values.scale);
    if (!(scale > 0)) throw new Error(`--scale must be a positive number (got "${values.scale}").`);
    const began = nowMs();
    const rows = runFuzz({ seed, scale });
    const durationMs = nowMs() - began;
    const total = (k: keyof FuzzRow): number => rows.reduce((a, row) => a + (row[k] as number), 0);
    const goals: Goal[] = [
      atMost('inputs that crashed (an error other than one clear line)', total('crashed'), 0, 'inputs'),
      atMost(`inputs that hung (over ${HANG_LIMIT_MS} ms)`, total('hung'), 0, 'inputs'),
      atMost('inputs accepted although damaged', total('acceptedDamaged'), 0, 'inputs'),
    ];
    if (json) {
      process.stdout.write(
        `${benchRecord('fuzz', { inputs: { seed, scale }, rows, goals, durationMs }, values.save)}\n`,
      );
    } else {
      process.stdout.write(
        `${formatTable(
          ['kind', 'tried', 'refused', 'accepted', 'accepted damaged', 'crashed', 'hung', 'slowest ms'],
          rows.map((row) => [
            row.kind,
            row.tried,
            row.refused,
            row.accepted,
            row.acceptedDamaged,
            row.crashed,
            row.hung,
            row.slowestMs.toFixed(1),
          ]),
        )}\n`,
      );
      for (const row of rows)
        if (row.firstCrash) process.stdout.write(`first crash in ${row.kind}: ${row.firstCrash}\n`);
      process.stdout.write(
        `\n${total('tried')} inputs, seed ${seed}, ${(durationMs / 1000).toFixed(1)} s on ${machineLine(describeMachine())}\n`,
      );
      process.stdout.write(`${goalLines(goals, 0).join('\n')}\n`);
    }
    return goals.every((g) => g.met) ? 0 : 1;
  },
};
