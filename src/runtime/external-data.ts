// ONNX external data (tensors kept in side files, as PyTorch's dynamo export and onnx.save_model write them): read
// relative to the model file's folder, never outside it, and embedded for runtimes that load a model from memory.

import { readFileSync } from 'node:fs';
import type { OnnxModel, OnnxTensor } from '../core/onnx.js';
import { CmpError } from '../errors.js';

/** TensorProto.DataLocation.EXTERNAL. */
const EXTERNAL = 1;

/** Whether a stored tensor keeps its bytes in a side file. */
export function isExternal(t: OnnxTensor): boolean {
  return Number(t.dataLocation) === EXTERNAL;
}

/**
 * Reads the external data files of the model at `modelPath`, each file once. Locations are relative to the model's
 * folder; an absolute one or one that climbs out of the folder ('..') is refused, since a model file must not make
 * cmp read arbitrary files.
 */
export class ExternalData {
  private readonly files = new Map<string, Uint8Array>();
  /** True once any tensor was read from outside the model file. */
  used = false;

  constructor(private readonly modelPath: string) {}

  /** The side files read so far: paths as opened, locations relative to the model's folder ('/'), sizes. */
  get sources(): { path: string; location: string; bytes: number }[] {
    const folder = folderOf(this.modelPath).length;
    return [...this.files].map(([path, data]) => ({ path, location: path.slice(folder), bytes: data.length }));
  }

  /** `length` bytes at `offset` of `location` (relative to the model's folder, inside it), or all after `offset`. */
  read(tensor: string, location: string, offset: number, length: number | undefined): Uint8Array {
    const bad = (problem: string): CmpError =>
      new CmpError(
        'MODEL_INVALID',
        `${this.modelPath} keeps tensor "${tensor}" in "${location}", ${problem}. Keep the data file beside the model as the exporter wrote it.`,
      );
    const relative = insideFolder(location);
    if (relative === undefined) throw bad("a path outside the model's folder");
    const path = folderOf(this.modelPath) + relative;
    let file = this.files.get(path);
    if (!file) {
      try {
        file = readFileSync(path);
      } catch (err) {
        throw bad(`which cannot be read (${(err as Error).message})`);
      }
      this.files.set(path, file);
    }
    const end = length === undefined ? file.length : offset + length;
    if (!(offset >= 0) || !(end <= file.length)) throw bad(`whose ${file.length} bytes end before byte ${end}`);
    this.used = true;
    return file.subarray(offset, end);
  }

  /** The bytes of an externally stored tensor, as its external_data entries (location, offset, length) say. */
  readTensor(t: OnnxTensor): Uint8Array {
    const entry = (key: string): string | undefined =>
      (t.externalData ?? []).find((e) => e.key === key)?.value ?? undefined;
    const length = entry('length');
    return this.read(
      t.name ?? '',
      entry('location') ?? '',
      Number(entry('offset') ?? 0),
      length ? Number(length) : undefined,
    );
  }
}

/**
 * Moves every externally stored initializer of `model` into the model (raw data), reading it through `external`;
 * returns false when there was none. The model is changed in place.
 */
export function embedExternalData(model: OnnxModel, external: ExternalData): boolean {
  let embedded = false;
  for (const t of model.graph?.initializer ?? []) {
    if (!isExternal(t)) continue;
    t.rawData = Uint8Array.from(external.readTensor(t));
    t.dataLocation = 0;
    t.externalData = [];
    embedded = true;
  }
  return embedded;
}

/** `location` as a path below the model's folder ('/'-separated), or undefined when it is absolute or climbs out. */
function insideFolder(location: string): string | undefined {
  if (location === '' || /^([a-zA-Z]:|[\\/])/.test(location)) return undefined;
  const parts = location.split(/[\\/]+/).filter((p) => p !== '' && p !== '.');
  if (parts.length === 0 || parts.includes('..')) return undefined;
  return parts.join('/');
}

/** The folder part of a file path, with its trailing separator ('' for a bare file name). */
function folderOf(path: string): string {
  const end = Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\'));
  return end < 0 ? '' : path.slice(0, end + 1);
}
