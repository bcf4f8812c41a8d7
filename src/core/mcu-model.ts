// The device model blob ("CMPM" formats 1 and 2, firmware-bridge/MODEL.md), converted from an ONNX file cmp exported.

import { packedRowBytes } from './bitpack.js';
import type { Manifest } from './manifest.js';
import { featuresOf, maskLayout, parseGranularity } from './mask.js';
import type { OnnxModel, OnnxTensor } from './onnx.js';
import { inferShapes, type LayerSpec } from './spec.js';
import { CmpError } from '../errors.js';
import { crc32 } from './crc32.js';

/** The blob format of a plain model; a model with an input mask or exit heads is written as format 2. */
export const MCU_MODEL_FORMAT_VERSION = 1;
export const MCU_MODEL_FORMAT_VERSION_SPLIT = 2;
/** Exit heads the firmware takes, and the bytes of one exit record. */
export const MCU_MAX_EXITS = 4;
export const MCU_EXIT_RECORD_BYTES = 16;
export const MCU_MODEL_HEADER_BYTES = 48;
export const MCU_MODEL_LAYER_BYTES = 64;
export const MCU_MODEL_NAME_BYTES = 16;
/** Most layers the firmware takes (CMP_MAX_LAYERS). */
export const MCU_MAX_LAYERS = 32;

const KIND = Object.freeze({ dense: 1, conv: 2, maxpool: 3, flatten: 4 } as const);
const WEIGHTS = Object.freeze({ none: 0, f32: 1, binary: 2, int8: 3 } as const);
const INPUTS = Object.freeze({ none: 0, xnor: 1, dab: 2 } as const);

/** One layer as the device runs it. */
export interface McuLayer {
  name: string;
  kind: LayerSpec['kind'];
  weights: 'none' | 'float32' | 'binary' | 'int8';
  /** Bytes of weights, levels, scale and shift in the blob. */
  bytes: number;
}

/** A converted model. */
export interface McuModel {
  blob: Uint8Array;
  /** The model's CRC-32 (its trailer: everything before it), what UPLOAD_BEGIN announces and MODEL_INFO echoes. */
  crc: number;
  inputShape: [number, number, number];
  classes: number;
  labels: string[];
  layers: McuLayer[];
  /** Activation and scratch bytes the runtime takes after the blob: all the arena a model built into flash needs. */
  workspaceBytes: number;
  /** What the device's arena must hold for an uploaded model: the blob (rounded to 4) plus the workspace. */
  arenaBytes: number;
  /** The blob's format: 1, or 2 with a mask or exits (the firmware must read it). */
  formatVersion: number;
  /** Format 2: the static input mask the device applies (its kept features, ascending) and its mask id. */
  mask?: { id: number; units: number; features: Int32Array };
  /** Format 2: exit heads (the layer each reads, its threshold in nats; negative: never taken). */
  exits?: { after: number; threshold: number }[];
}

/** The parts of a read ONNX file the converter needs (runtime's ModelFile has them). */
export interface McuModelSource {
  path: string;
  model: OnnxModel;
  manifest?: Manifest;
}

/**
 * Converts an exported cmp ONNX file into the device blob: header, layer table, then per layer the packed bits and
 * float16 levels (binary) or float32 rows [out, in] (float), and float32 scale and shift, each 4-byte aligned, and a
 * CRC-32 trailer.
 */
export function convertToMcuModel(file: McuModelSource): McuModel {
  const bad = (problem: string): CmpError =>
    new CmpError('MODEL_INVALID', `${file.path} ${problem}. Deploy a model made by cmp export.`);
  const manifest = file.manifest;
  if (!manifest) throw bad('has no cmp manifest');
  const spec = manifest.spec;
  if (!spec || !Array.isArray(spec.layers)) throw bad('has a manifest without the layer spec');
  if (manifest.stage) throw bad('is one stage of a model; deploy the whole model file');
  if (manifest.inputMask?.kind === 'dynamic')
    throw bad(
      "has a dynamic mask; the firmware applies static masks only (a dynamic selector runs on the sender's host)",
    );
  if ((spec.exits?.length ?? 0) > MCU_MAX_EXITS)
    throw bad(`has ${spec.exits?.length} exits; the firmware takes ${MCU_MAX_EXITS}`);
  const shapes = inferShapes(spec);
  const maskFeatures =
    manifest.inputMask?.kind === 'static'
      ? featuresOf(
          maskLayout(spec.input.shape, parseGranularity(manifest.inputMask.granularity)),
          manifest.inputMask.kept ?? [],
        )
      : undefined;
  if (spec.layers.length > MCU_MAX_LAYERS)
    throw bad(`has ${spec.layers.length} layers; the firmware takes ${MCU_MAX_LAYERS}`);
  // The firmware's kernels run unpadded convolutions and max pooling only (imported models may have more).
  for (const layer of spec.layers) {
    const problem =
      layer.kind === 'avgpool'
        ? `average pooling layer "${layer.name}" (the firmware pools by max only)`
        : layer.kind === 'conv' && layer.padding
          ? `padded conv layer "${layer.name}" (the firmware runs unpadded convolutions only)`
          : undefined;
    if (problem)
      throw new CmpError(
        'MODEL_INVALID',
        `${file.path} has a ${problem}. Deploy it to a target that runs ONNX (rpi, browser) instead.`,
      );
  }
  const tensors = new Map((file.model.graph?.initializer ?? []).map((t) => [t.name ?? '', t]));
  const tensor = (name: string | undefined, what: string): OnnxTensor => {
    const t = name ? tensors.get(name) : undefined;
    if (!t) throw bad(`lacks initializer ${name ?? `(${what})`}`);
    return t;
  };

  const sections: Uint8Array[] = [];
  let at = MCU_MODEL_HEADER_BYTES + MCU_MODEL_LAYER_BYTES * spec.layers.length;
  const place = (bytes: Uint8Array): number => {
    const offset = at;
    sections.push(bytes);
    at += align4(bytes.length);
    return offset;
  };
  const records: Uint8Array[] = [];
  const layers: McuLayer[] = [];
  spec.layers.forEach((layer, i) => {
    const { inputShape, outputShape, rowLength } = shapes[i];
    for (const d of [...inputShape, ...outputShape])
      if (d > 0xffff) throw bad(`layer "${layer.name}" has a dimension over 65535`);
    const rec = new Uint8Array(MCU_MODEL_LAYER_BYTES);
    const v = new DataView(rec.buffer);
    rec[0] = KIND[layer.kind as keyof typeof KIND];
    inputShape.forEach((d, k) => v.setUint16(4 + 2 * k, d, true));
    outputShape.forEach((d, k) => v.setUint16(10 + 2 * k, d, true));
    const start = at;
    let weights: McuLayer['weights'] = 'none';
    if (layer.kind === 'maxpool') v.setUint16(16, layer.size, true);
    if (layer.kind === 'dense' || layer.kind === 'conv') {
      const lm = manifest.layers.find((l) => l.name === layer.name);
      if (!lm) throw bad(`has no manifest entry for layer "${layer.name}"`);
      const rows = layer.kind === 'dense' ? layer.units : layer.filters;
      rec[2] = INPUTS[lm.inputs];
      rec[3] = layer.activation === 'relu' ? 1 : 0;
      if (layer.kind === 'conv') v.setUint16(16, layer.kernel, true);
      v.setUint32(20, rows, true);
      v.setUint32(24, rowLength, true);
      // A static mask folded into an MLP's first layer left only the kept rows in the file; the device zeroes the
      // other inputs, so it gets the full layer back with zero (float) or any (binary: unset) bits for them.
      const folded =
        maskFeatures && lm.weightShape[0] !== rowLength && layer.kind === 'dense' ? maskFeatures : undefined;
      if (folded && lm.weightShape[0] !== folded.length)
        throw bad(`has a first layer of ${lm.weightShape[0]} rows for a mask of ${folded.length}`);
      if (lm.weights === 'int8') {
        weights = 'int8';
        rec[1] = WEIGHTS.int8;
        if (folded) throw bad(`has an int8 first layer folded to a static mask, which the firmware cannot unfold yet`);
        let q = Int8Array.from(raw(tensor(lm.initializers.weightInt8, 'weightInt8'), rows * rowLength, bad), (b) =>
          b > 127 ? b - 256 : b,
        );
        // ONNX MatMul stores dense weights [in, out]; the device reads rows [out, in].
        if (layer.kind === 'dense') q = Int8Array.from(transpose(Float32Array.from(q), rowLength, rows));
        v.setUint32(28, place(new Uint8Array(q.buffer)), true);
        v.setUint32(32, place(bytesOf(floats(tensor(lm.initializers.weightScale, 'weightScale'), rows, bad))), true);
      } else if (lm.weights === 'none') {
        weights = 'float32';
        rec[1] = WEIGHTS.f32;
        let w = floats(tensor(lm.initializers.weight, 'weight'), (folded?.length ?? rowLength) * rows, bad);
        if (folded) w = unfoldRows(w, folded, rowLength, rows);
        // ONNX MatMul stores dense weights [in, out]; the device reads rows [out, in], like the bit format.
        v.setUint32(28, place(bytesOf(layer.kind === 'dense' ? transpose(w, rowLength, rows) : w)), true);
      } else {
        weights = 'binary';
        rec[1] = WEIGHTS.binary;
        const bits = raw(tensor(lm.initializers.bits, 'bits'), rows * packedRowBytes(folded?.length ?? rowLength), bad);
        v.setUint32(28, place(folded ? unfoldBits(bits, folded, rowLength, rows) : bits), true);
        v.setUint32(32, place(raw(tensor(lm.initializers.upper, 'upper'), rows * 2, bad)), true);
        v.setUint32(36, place(raw(tensor(lm.initializers.lower, 'lower'), rows * 2, bad)), true);
      }
      if (lm.initializers.scale)
        v.setUint32(40, place(bytesOf(floats(tensor(lm.initializers.scale, 'scale'), rows, bad))), true);
      v.setUint32(44, place(bytesOf(floats(tensor(lm.initializers.shift, 'shift'), rows, bad))), true);
    }
    const name = new TextEncoder().encode(layer.name).subarray(0, MCU_MODEL_NAME_BYTES);
    rec.set(name, 48);
    records.push(rec);
    layers.push({ name: layer.name, kind: layer.kind, weights, bytes: at - start });
  });

  let maskOffset = 0;
  let mask: McuModel['mask'];
  if (maskFeatures && manifest.inputMask) {
    const section = new Uint8Array(8 + 2 * maskFeatures.length);
    const sv = new DataView(section.buffer);
    sv.setUint32(0, manifest.inputMask.maskId >>> 0, true);
    sv.setUint16(4, manifest.inputMask.kept?.length ?? 0, true);
    sv.setUint16(6, maskFeatures.length, true);
    maskFeatures.forEach((f, k) => sv.setUint16(8 + 2 * k, f, true));
    maskOffset = place(section);
    mask = { id: manifest.inputMask.maskId >>> 0, units: manifest.inputMask.kept?.length ?? 0, features: maskFeatures };
  }
  let exitOffset = 0;
  let exits: McuModel['exits'];
  if (spec.exits?.length) {
    const classes = spec.labels.length;
    const table = new Uint8Array(4 + MCU_EXIT_RECORD_BYTES * spec.exits.length);
    const tv = new DataView(table.buffer);
    tv.setUint16(0, spec.exits.length, true);
    tv.setUint16(2, MCU_EXIT_RECORD_BYTES, true);
    exits = spec.exits.map((exit, e) => {
      const after = spec.layers.findIndex((l) => l.name === exit.after);
      const features = count(shapes[after].outputShape);
      const weight = floats(tensor(`${exit.name}.weight`, `${exit.name} weight`), features * classes, bad);
      const bias = floats(tensor(`${exit.name}.bias`, `${exit.name} bias`), classes, bad);
      const threshold = manifest.exits?.[e]?.threshold ?? -1;
      const r = 4 + MCU_EXIT_RECORD_BYTES * e;
      tv.setUint16(r, after, true);
      tv.setUint16(r + 2, features, true);
      // ONNX holds the head as MatMul [features, classes]; the device reads one row per class.
      tv.setUint32(r + 4, place(bytesOf(transpose(weight, features, classes))), true);
      tv.setUint32(r + 8, place(bytesOf(bias)), true);
      tv.setFloat32(r + 12, threshold, true);
      return { after, threshold };
    });
    exitOffset = place(table);
  }
  const split = maskOffset !== 0 || exitOffset !== 0;

  const total = at + 4;
  const blob = new Uint8Array(total);
  const view = new DataView(blob.buffer);
  blob.set(new TextEncoder().encode('CMPM'), 0);
  view.setUint16(4, split ? MCU_MODEL_FORMAT_VERSION_SPLIT : MCU_MODEL_FORMAT_VERSION, true);
  view.setUint16(6, MCU_MODEL_HEADER_BYTES, true);
  view.setUint32(8, total, true);
  view.setUint16(12, spec.layers.length, true);
  view.setUint16(14, MCU_MODEL_LAYER_BYTES, true);
  view.setUint32(16, (maskOffset ? 1 : 0) | (exitOffset ? 2 : 0), true); // flags: bit 0 input mask, bit 1 exit heads
  spec.input.shape.forEach((d, k) => view.setUint16(20 + 2 * k, d, true));
  view.setUint16(26, spec.labels.length, true);
  view.setFloat32(28, manifest.input.mean, true);
  view.setFloat32(32, manifest.input.std, true);
  view.setUint32(36, MCU_MODEL_HEADER_BYTES, true);
  view.setUint32(40, maskOffset, true);
  view.setUint32(44, exitOffset, true);
  records.forEach((rec, i) => blob.set(rec, MCU_MODEL_HEADER_BYTES + i * MCU_MODEL_LAYER_BYTES));
  let offset = MCU_MODEL_HEADER_BYTES + MCU_MODEL_LAYER_BYTES * records.length;
  for (const s of sections) {
    blob.set(s, offset);
    offset += align4(s.length);
  }
  view.setUint32(total - 4, crc32(blob.subarray(0, total - 4)), true);

  const workspaceBytes = mcuWorkspaceBytes(
    spec.layers.map((layer, i) => ({
      kind: layer.kind,
      inputs: count(shapes[i].inputShape),
      outputs: count(shapes[i].outputShape),
      rowLength: shapes[i].rowLength,
      binarizes: (manifest.layers.find((l) => l.name === layer.name)?.inputs ?? 'none') !== 'none',
    })),
    count(spec.input.shape),
    { classes: spec.labels.length, exits: exits?.length ?? 0, maskKept: mask?.features.length ?? 0 },
  );
  return {
    blob,
    crc: modelCrc(blob),
    inputShape: [...spec.input.shape],
    classes: spec.labels.length,
    labels: [...spec.labels],
    layers,
    workspaceBytes,
    arenaBytes: align4(total) + workspaceBytes,
    formatVersion: split ? MCU_MODEL_FORMAT_VERSION_SPLIT : MCU_MODEL_FORMAT_VERSION,
    ...(mask ? { mask } : {}),
    ...(exits ? { exits } : {}),
  };
}

/** What the workspace plan needs to know of one layer. */
export interface WorkspaceLayer {
  kind: string;
  /** Input and output element counts. */
  inputs: number;
  outputs: number;
  /** Weight row length (conv: in-channels x k x k). */
  rowLength: number;
  /** The layer binarizes its input (xnor or dab). */
  binarizes: boolean;
}

/**
 * The runtime's workspace in bytes, as the firmware's cmp_model_workspace_bytes (firmware-bridge/src/model.c) plans
 * it, so that the host knows the arena before anything is uploaded: the input sits in buffer a and every layer but
 * flatten writes into the other buffer (a: the input and the outputs of layers 2, 4, ...; b: of layers 1, 3, ...;
 * without a mask b also keeps the received pixels of a hand-off frame); then the packed bits of the largest
 * binarized layer input, one im2col patch (float and packed) of the longest conv row, the exit logits and the
 * hand-off frame of a mask's kept pixels.
 */
export function mcuWorkspaceBytes(
  layers: readonly WorkspaceLayer[],
  inputs: number,
  extra: { classes: number; exits: number; maskKept: number },
): number {
  let a = inputs;
  let b = 0;
  let inA = true;
  let bits = 0;
  let patch = 0;
  for (const layer of layers) {
    if (layer.kind === 'flatten') continue;
    if (inA) b = Math.max(b, layer.outputs);
    else a = Math.max(a, layer.outputs);
    inA = !inA;
    if (layer.binarizes) bits = Math.max(bits, packedRowBytes(layer.inputs));
    if (layer.kind === 'conv') patch = Math.max(patch, layer.rowLength);
  }
  const bBytes = extra.maskKept ? 4 * b : Math.max(4 * b, inputs);
  return (
    align4(4 * a) +
    align4(bBytes) +
    align4(bits) +
    align4(4 * patch) +
    align4(packedRowBytes(patch)) +
    (extra.exits ? align4(4 * extra.classes) : 0) +
    (extra.maskKept ? align4(8 + extra.maskKept) : 0)
  );
}

/** Float rows [kept, out] of a folded first layer back to [inputs, out], zero rows for the inputs the mask drops. */
function unfoldRows(w: Float32Array, kept: Int32Array, inputs: number, out: number): Float32Array {
  const full = new Float32Array(inputs * out);
  kept.forEach((f, k) => full.set(w.subarray(k * out, (k + 1) * out), f * out));
  return full;
}

/** Packed bits [rows, kept] of a folded first layer back to [rows, inputs]: dropped inputs get clear bits. */
function unfoldBits(bits: Uint8Array, kept: Int32Array, inputs: number, rows: number): Uint8Array {
  const from = packedRowBytes(kept.length);
  const to = packedRowBytes(inputs);
  const out = new Uint8Array(rows * to);
  for (let r = 0; r < rows; r++)
    kept.forEach((f, k) => {
      if ((bits[r * from + (k >> 3)] >> (k & 7)) & 1) out[r * to + (f >> 3)] |= 1 << (f & 7);
    });
  return out;
}

/**
 * The CRC-32 that names a blob: of everything before its trailer (the trailer holds it). A CRC over the trailer too
 * is the same constant, 0x2144DF1C, for every valid blob.
 */
export function modelCrc(blob: Uint8Array): number {
  return crc32(blob.subarray(0, blob.length - 4));
}

function align4(n: number): number {
  return (n + 3) & ~3;
}

function count(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The raw little-endian bytes of a stored tensor, checked against the expected size. */
function raw(t: OnnxTensor, bytes: number, bad: (problem: string) => CmpError): Uint8Array {
  const data = t.rawData;
  if (!data || data.length !== bytes)
    throw bad(`has initializer ${t.name} of ${data?.length ?? 0} bytes, expected ${bytes}`);
  return data;
}

/** A float32 tensor's values, from raw bytes or the float_data field. */
function floats(t: OnnxTensor, length: number, bad: (problem: string) => CmpError): Float32Array {
  if (t.dataType !== 1) throw bad(`has initializer ${t.name} of ONNX type ${t.dataType}, expected float32`);
  if (t.rawData && t.rawData.length) {
    const bytes = raw(t, length * 4, bad);
    return new Float32Array(Uint8Array.from(bytes).buffer); // a copy: rawData may be a view into a shared Buffer pool
  }
  const values = t.floatData ?? [];
  if (values.length !== length) throw bad(`has initializer ${t.name} with ${values.length} values, expected ${length}`);
  return Float32Array.from(values);
}

function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = m[r * cols + c];
  return out;
}

function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
