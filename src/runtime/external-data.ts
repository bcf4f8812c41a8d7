// ONNX external data (tensors kept in side files, as PyTorch's dynamo export and onnx.save_model write them): read
// relative to the model file's folder, never outside it, and embedded for runtimes that load a model from memory.

import { closeSync, constants, fstatSync, openSync, readSync, realpathSync } from 'node:fs';
import { onnxTypeBytes, toNumber, type OnnxModel, type OnnxTensor } from '../core/onnx.js';
import { CmpError } from '../errors.js';

/** TensorProto.DataLocation.EXTERNAL. */
const EXTERNAL = 1;

/** Whether a stored tensor keeps its bytes in a side file. */
export function isExternal(t: OnnxTensor): boolean {
  return Number(t.dataLocation) === EXTERNAL;
}

/**
 * Reads the external data of the model at `modelPath`. Locations are relative to the model's folder; an absolute one,
 * one that climbs out of the folder ('..'), one whose real path (symbolic links resolved) is outside it, and anything
 * but a regular file are refused, since a model file must not make cmp read arbitrary files; and no more is read than
 * the tensor's declared size.
 */
export class ExternalData {
  /** Side files read so far: real path to file size. */
  private readonly files = new Map<string, { path: string; bytes: number }>();
  /** True once any tensor was read from outside the model file. */
  used = false;

  constructor(private readonly modelPath: string) {}

  /** The side files read so far: paths as opened, locations relative to the model's folder ('/'), sizes. */
  get sources(): { path: string; location: string; bytes: number }[] {
    const folder = folderOf(this.modelPath).length;
    return [...this.files.values()].map(({ path, bytes }) => ({ path, location: path.slice(folder), bytes }));
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
    let fd: number;
    let real: string;
    try {
      real = realpathSync(path);
      const folder = realpathSync(folderOf(this.modelPath) || '.');
      if (!isInside(real, folder)) throw bad("a link to a file outside the model's folder");
      // Non-blocking: a FIFO put in the file's place must not stall the open.
      fd = openSync(real, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (err) {
      if (err instanceof CmpError) throw err;
      throw bad(`which cannot be read (${(err as Error).message})`);
    }
    try {
      const stat = fstatSync(fd);
      if (!stat.isFile()) throw bad('which is not a regular file');
      const end = length === undefined ? stat.size : offset + length;
      if (!(Number.isSafeInteger(offset) && offset >= 0) || !(Number.isSafeInteger(end) && end <= stat.size)) {
        throw bad(`whose ${stat.size} bytes end before byte ${end}`);
      }
      const data = new Uint8Array(end - offset);
      for (let done = 0; done < data.length;) {
        const n = readSync(fd, data, done, data.length - done, offset + done);
        if (n === 0) throw bad(`which ended at byte ${offset + done} while being read`);
        done += n;
      }
      this.files.set(real, { path, bytes: stat.size });
      this.used = true;
      return data;
    } finally {
      closeSync(fd);
    }
  }

  /**
   * The bytes of an externally stored tensor, as its external_data entries (location, offset, length) say; never more
   * than its dims and type declare.
   */
  readTensor(t: OnnxTensor): Uint8Array {
    const entry = (key: string): string | undefined =>
      (t.externalData ?? []).find((e) => e.key === key)?.value ?? undefined;
    const name = t.name ?? '';
    const location = entry('location') ?? '';
    const dims = (t.dims ?? []).map(toNumber);
    const bad = (problem: string): CmpError =>
      new CmpError('MODEL_INVALID', `${this.modelPath}: tensor "${name}" ${problem}. Re-export the model.`);
    if (!dims.every((d) => Number.isSafeInteger(d) && d >= 0)) throw bad(`has dims [${dims.join(', ')}]`);
    const elementBytes = onnxTypeBytes(t.dataType ?? 0);
    const declared = elementBytes ? Math.ceil(dims.reduce((a, d) => a * d, 1) * elementBytes) : undefined;
    const given = entry('length');
    const length = given === undefined ? declared : Number(given);
    if (length !== undefined && declared !== undefined && length !== declared) {
      throw bad(`declares ${given} bytes in "${location}" for its ${declared}`);
    }
    return this.read(name, location, Number(entry('offset') ?? 0), length);
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

/** Whether the real path `path` lies below the real folder `folder` (either separator: no node:path in browsers). */
function isInside(path: string, folder: string): boolean {
  if (path.length <= folder.length || !path.startsWith(folder)) return false;
  return /[\\/]$/.test(folder) || /[\\/]/.test(path[folder.length]);
}
