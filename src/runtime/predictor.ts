// One instance at a time, as a device serves it: input selection, stage-by-stage early exit or one backend call.

import { CmpError } from '../errors.js';
import { nowMs } from '../core/clock.js';
import { argmaxAt, softmaxEntropy } from '../core/entropy.js';
import { createBackend, type Backend } from './backends.js';
import { STAGED_REASON, StagedModel } from './early-exit.js';
import { MaskedInput } from './masked-input.js';
import { callerNormalization, readModelFileAsync, type ModelFile, type ModelReader } from './model-file.js';
import { standardize } from './standardize.js';

/** The answer for one instance. */
export interface Prediction {
  label: number;
  logits: Float32Array;
  /** 1..n for an early exit, 0 for the final classifier (always 0 without exits). */
  exit: number;
  /** Entropy (nats) of the answer's logits. */
  entropy: number;
  /** Wall time from pixels to answer, milliseconds (selection, stages, classifier). */
  latencyMs: number;
  /** Wall time of each stage that ran (models with exits), milliseconds. */
  stageMs: number[];
  /** Masked models: bytes of the cmp-select/1 frame this instance needed on the link. */
  linkBytes?: number;
}

export interface PredictorOptions {
  /** Backend name, or 'auto' (default). */
  backend?: string;
  /** Reads the model's sibling files (stages, selector); default: from disk. */
  read?: ModelReader;
}

/** A loaded model that answers single instances given as [0, 1] pixels of the whole input. */
export class Predictor {
  private constructor(
    readonly file: ModelFile,
    /** Values of one whole instance (channels x height x width). */
    readonly features: number,
    readonly classes: number,
    readonly backendName: string,
    private readonly link: MaskedInput | undefined,
    private readonly staged: StagedModel | undefined,
    private readonly backend: Backend | undefined,
  ) {}

  static async open(file: ModelFile, options: PredictorOptions = {}): Promise<Predictor> {
    const name = options.backend ?? 'auto';
    const read = options.read ?? readModelFileAsync;
    const shape = file.manifest?.input.shape ?? file.inputDims;
    const features = shape.reduce((a, b) => a * b, 1);
    const classes = file.manifest?.labels.length ?? file.outputDims[file.outputDims.length - 1] ?? -1;
    if (!(features > 0) || !(classes > 0)) {
      throw new CmpError(
        'MODEL_INVALID',
        `${file.path} leaves its input [${shape.join(', ')}] or output open. Export it with fixed input and class dims.`,
      );
    }
    const link = await MaskedInput.open(file, name, read);
    try {
      if (file.manifest?.exits?.length) {
        const staged = await StagedModel.load(file.path, name, read);
        return new Predictor(file, features, classes, staged.backendName, link, staged, undefined);
      }
      const backend = await createBackend(name, file);
      return new Predictor(file, features, classes, backend.name, link, undefined, backend);
    } catch (err) {
      await link?.dispose();
      throw err;
    }
  }

  /** With backend 'auto' on a binary model: the load-time race that chose the backend, as one line. */
  get backendReason(): string | undefined {
    return (this.backend?.choice ?? this.staged?.backendChoice)?.reason;
  }

  /** Models with exits: how the exits run, and why (stage by stage); undefined without exits. */
  get exitsReason(): string | undefined {
    return this.staged ? STAGED_REASON : undefined;
  }

  /** Whether inputs cross a link as cmp-select/1 frames (the model has an input mask). */
  get masked(): boolean {
    return this.link !== undefined;
  }

  /** Masked models: bytes of one whole instance at the mask's value type, what sending it unselected costs. */
  get fullInputBytes(): number | undefined {
    return this.link?.mask.fullInputBytes;
  }

  /** Entropy thresholds of the exits (nats); empty without exits. */
  get thresholds(): number[] {
    return this.staged?.thresholds ?? [];
  }

  set thresholds(values: number[]) {
    if (this.staged) this.staged.thresholds = values;
  }

  /** Answers one instance: `pixels` holds `features` values in [0, 1]. */
  async infer(pixels: Float32Array): Promise<Prediction> {
    if (pixels.length !== this.features) {
      throw new CmpError(
        'BAD_ARGUMENT',
        `${this.file.path} takes ${this.features} input values per instance, not ${pixels.length}. Send one whole instance.`,
      );
    }
    const began = nowMs();
    const bytesBefore = this.link?.tally.bytes ?? 0;
    let input: Float32Array;
    let dims: number[];
    if (this.link) ({ input, dims } = await this.link.modelInput(pixels, 1));
    else ({ input, dims } = this.normalized(pixels));
    const linkBytes = this.link ? this.link.tally.bytes - bytesBefore : undefined;
    if (this.staged) {
      const r = await this.staged.run(input);
      return {
        label: r.label,
        logits: r.logits,
        exit: r.exit,
        entropy: softmaxEntropy(r.logits, 0, this.classes),
        latencyMs: nowMs() - began,
        stageMs: r.stageMs,
        ...(linkBytes !== undefined ? { linkBytes } : {}),
      };
    }
    const logits = (await (this.backend as Backend).run(input, dims)).slice(0, this.classes);
    const latencyMs = nowMs() - began;
    return {
      label: argmaxAt(logits, 0, this.classes),
      logits,
      exit: 0,
      entropy: softmaxEntropy(logits, 0, this.classes),
      latencyMs,
      stageMs: [latencyMs],
      ...(linkBytes !== undefined ? { linkBytes } : {}),
    };
  }

  async dispose(): Promise<void> {
    await Promise.all([this.link?.dispose(), this.staged?.dispose(), this.backend?.dispose()]);
  }

  private normalized(pixels: Float32Array): { input: Float32Array; dims: number[] } {
    // Files whose graph normalizes take the pixels as they are; older cmp files and --input-range ones are normalized
    // here.
    const { mean, std } = callerNormalization(this.file);
    const input = standardize(pixels, { mean, std });
    const known = this.file.inputDims.filter((d) => d > 0).reduce((a, b) => a * b, 1);
    return { input, dims: [1, ...this.file.inputDims.map((d) => (d > 0 ? d : this.features / known))] };
  }
}
