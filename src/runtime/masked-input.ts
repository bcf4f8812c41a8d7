// Both ends of a masked model's link: the sender selects and encodes (cmp-select/1 frames), the receiver decodes into
// the model's input, and every frame's real bytes are counted.

import { CmpError } from '../errors.js';
import { selectorPath, type ManifestMask } from '../core/manifest.js';
import { checkMaskSpec, parseGranularity, type MaskSpec } from '../core/mask.js';
import { SelectionCodec } from '../core/codec.js';
import { createBackend, type Backend } from './backend.js';
import { callerNormalization, readModelFileAsync, type ModelFile, type ModelReader } from './model-file.js';
import { standardize } from './standardize.js';

/** Bytes that crossed the link so far. */
export interface LinkTally {
  frames: number;
  /** Mask units sent, summed over frames. */
  units: number;
  bytes: number;
  /** Of `bytes`, what said which units a dynamic frame carries (0 for static masks). */
  selectionBytes: number;
  /** What the same instances would cost sent whole, at the mask's value type. */
  fullBytes: number;
}

export class MaskedInput {
  readonly tally: LinkTally = { frames: 0, units: 0, bytes: 0, selectionBytes: 0, fullBytes: 0 };

  private constructor(
    readonly mask: ManifestMask,
    readonly codec: SelectionCodec,
    private readonly shape: [number, number, number],
    /** What the receiver applies to the values it decodes (pixel / 255): the identity when the graph normalizes. */
    private readonly normalize: { mean: number; std: number },
    /** The value of an unsent feature in the model input: the one the network's normalization takes to 0. */
    private readonly unsent: number,
    private readonly selector?: Backend,
  ) {}

  /**
   * The link of `file`, or undefined when the model has no input mask. A dynamic mask loads its selector file with
   * `read` (default: from disk).
   */
  static async open(
    file: ModelFile,
    backend = 'auto',
    read: ModelReader = readModelFileAsync,
  ): Promise<MaskedInput | undefined> {
    const manifest = file.manifest;
    const mask = manifest?.inputMask;
    if (!manifest || !mask || manifest.selector) return undefined;
    const shape = manifest.input.shape;
    const spec = maskSpecOf(mask, file.path);
    // Checked here, where the file enters: a prior outside the mask, or rates that are not one per unit in 1..255,
    // would make frames decode to the wrong units.
    checkMaskSpec(spec, shape);
    const codec = new SelectionCodec(spec, shape, mask.maskId);
    let selector: Backend | undefined;
    if (mask.kind === 'dynamic') {
      const path = selectorPath(file.path);
      const selectorFile = await read(path);
      if (!selectorFile.manifest?.selector || selectorFile.manifest.inputMask?.maskId !== mask.maskId) {
        throw new CmpError(
          'MODEL_INVALID',
          `${path} is not the selector of ${file.path} (mask id differs). Export the model again: cmp export RUN --out ${file.path}`,
        );
      }
      selector = await createBackend(backend, selectorFile);
    }
    // A graph that normalizes maps `mean` to 0, the value training gave unsent features; a caller-normalized input
    // has 0.
    const unsent = file.normalization.by === 'graph' ? manifest.input.mean : 0;
    return new MaskedInput(mask, codec, shape, callerNormalization(file), unsent, selector);
  }

  /** Sender: one frame per instance of `x` ([n, C, H, W] pixels in [0, 1]). */
  async encode(x: Float32Array, n: number): Promise<Uint8Array[]> {
    const features = x.length / n;
    const frames: Uint8Array[] = [];
    const selections = this.selector ? await this.selections(x, n) : undefined;
    for (let i = 0; i < n; i++) {
      const sample = x.subarray(i * features, (i + 1) * features);
      const chosen = selections?.[i];
      const frame = this.codec.encode(sample, chosen);
      this.tally.frames++;
      this.tally.units += chosen ? chosen.length : (this.mask.kept?.length ?? 0);
      this.tally.bytes += frame.length;
      if (chosen) this.tally.selectionBytes += this.codec.selectionLength(chosen);
      this.tally.fullBytes += this.mask.fullInputBytes;
      frames.push(frame);
    }
    return frames;
  }

  /**
   * The units sent for each instance of `x` ([n, C, H, W] pixels in [0, 1]): what the selector file picks (a unit is
   * sent while its score is above 0), or a static mask's kept units.
   */
  async selections(x: Float32Array, n: number): Promise<number[][]> {
    if (!this.selector) return Array.from({ length: n }, () => [...(this.mask.kept ?? [])]);
    const scores = await this.selector.run(this.normalized(x), [n, ...this.shape]);
    const units = this.codec.layout.units;
    const out: number[][] = [];
    for (let i = 0; i < n; i++) {
      const chosen: number[] = [];
      for (let u = 0; u < units; u++) if (scores[i * units + u] > 0) chosen.push(u);
      out.push(chosen);
    }
    return out;
  }

  /** Receiver: the model input for `frames`: static masks the compact kept features, dynamic the whole input. */
  decode(frames: Uint8Array[]): { input: Float32Array; dims: number[] } {
    const staticFeatures = this.codec.staticFeatures;
    const width = staticFeatures ? staticFeatures.length : this.codec.layout.unitOf.length;
    const input = new Float32Array(frames.length * width);
    if (!staticFeatures && this.unsent !== 0) input.fill(this.unsent);
    frames.forEach((frame, i) => {
      const { features, values } = this.codec.decode(frame);
      const base = i * width;
      const standard = standardize(values, this.normalize);
      if (staticFeatures) input.set(standard, base);
      else for (let k = 0; k < standard.length; k++) input[base + features[k]] = standard[k];
    });
    return { input, dims: staticFeatures ? [frames.length, width] : [frames.length, ...this.shape] };
  }

  /** Sender and receiver in one step, for local evaluation. */
  async modelInput(x: Float32Array, n: number): Promise<{ input: Float32Array; dims: number[] }> {
    return this.decode(await this.encode(x, n));
  }

  async dispose(): Promise<void> {
    await this.selector?.dispose();
  }

  private normalized(x: Float32Array): Float32Array {
    const { mean, std } = this.normalize;
    return mean === 0 && std === 1 ? x : standardize(x, this.normalize);
  }
}

/** The codec's view of a manifest's mask. */
export function maskSpecOf(mask: ManifestMask, source: string): MaskSpec {
  const granularity = parseGranularity(mask.granularity);
  if (mask.kind === 'static') {
    if (!Array.isArray(mask.kept)) {
      throw new CmpError('MODEL_INVALID', `The static mask in ${source} lists no kept units. Export the model again.`);
    }
    return { kind: 'static', granularity, source: 'learned', values: mask.values, kept: mask.kept };
  }
  return {
    kind: 'dynamic',
    granularity,
    values: mask.values,
    selectorPool: mask.selectorPool ?? 1,
    ...(mask.prior ? { prior: mask.prior } : {}),
    ...(mask.rates ? { rates: mask.rates } : {}),
  };
}
