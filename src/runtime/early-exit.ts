// The staged runtime of models with early exits: run stage by stage, stop at the first confident exit, profile each.

import { CmpError } from '../errors.js';
import { nowMs } from '../core/clock.js';
import { argmaxAt, softmaxEntropy } from '../core/entropy.js';
import { stagePath } from '../core/manifest.js';
import type { BackendChoice } from './backend.js';
import { createBackend, type Backend } from './backends.js';
import { readModelFileAsync, type ModelFile, type ModelReader } from './model-file.js';

/**
 * Why a model with exits runs stage by stage (one file per stage, the exit decided between them) rather than as the
 * one-graph file whose `If` holds the rest of the network: a sample that leaves at exit k runs no later stage on
 * every backend (bitwasm and the microcontroller run stage files but no `If`), each stage and exit is timed, and the
 * thresholds stay settable at run time. `npm run bench -- exit` times both.
 */
export const STAGED_REASON =
  'stage by stage: a sample that leaves at an exit runs no later stage file, on every backend (the one-graph If file runs on onnxruntime only)';

/** The outcome of one sample. `exit` is 1..n for an early exit, 0 for the final classifier. */
export interface StagedResult {
  logits: Float32Array;
  label: number;
  exit: number;
  /** Entropy at each exit that was evaluated (nats). */
  entropies: number[];
  /** Wall time of each stage that ran, milliseconds. */
  stageMs: number[];
  /** Bytes of the activation each finished stage handed to the next (float32), as a device would send them. */
  handoffBytes: number[];
}

/** A model with exits, loaded as one backend per stage file. */
export class StagedModel {
  private constructor(
    readonly file: ModelFile,
    private readonly stages: { file: ModelFile; backend: Backend }[],
    /** Thresholds in nats, one per exit; an exit is taken when the entropy is below its threshold. */
    public thresholds: number[],
  ) {}

  /** Loads `path` (exported with exits) and its stage files on `backend`; `read` fetches files (default: disk). */
  static async load(path: string, backend = 'ort-node', read: ModelReader = readModelFileAsync): Promise<StagedModel> {
    const file = await read(path);
    const manifest = file.manifest;
    if (!manifest?.exits?.length || !manifest.stages) {
      throw new CmpError('MODEL_INVALID', `${path} has no early exits. Train with --exits and export it again.`);
    }
    const stages: { file: ModelFile; backend: Backend }[] = [];
    try {
      // With 'auto', stage 1 chooses (bitwasm races the next backend on it) and the later stages follow its choice.
      let name = backend;
      for (let k = 1; k <= manifest.stages; k++) {
        const stage = await read(stagePath(path, k));
        if (stage.manifest?.stage?.index !== k) {
          throw new CmpError('MODEL_INVALID', `${stage.path} is not stage ${k} of ${path}. Export the model again.`);
        }
        const loaded = await createBackend(name, stage);
        name = loaded.name;
        stages.push({ file: stage, backend: loaded });
      }
    } catch (err) {
      await Promise.all(stages.map((s) => s.backend.dispose()));
      throw err;
    }
    const thresholds = manifest.exits.map((e) => e.threshold ?? -1);
    return new StagedModel(file, stages, thresholds);
  }

  /** The backend the stages run on. */
  get backendName(): string {
    return this.stages[0].backend.name;
  }

  /** With 'auto': the race on stage 1 that chose the backend. */
  get backendChoice(): BackendChoice | undefined {
    return this.stages[0].backend.choice;
  }

  get exitCount(): number {
    return this.stages.length - 1;
  }

  /**
   * Runs one sample stage by stage, as stage 1 takes it: pixels / 255 when its graph normalizes (callerNormalization).
   */
  async run(input: Float32Array): Promise<StagedResult> {
    const classes = this.file.manifest?.labels.length ?? 0;
    const entropies: number[] = [];
    const stageMs: number[] = [];
    const handoffBytes: number[] = [];
    let h = input;
    for (let k = 0; k < this.stages.length; k++) {
      const { file, backend } = this.stages[k];
      const began = nowMs();
      const outputs = await runStage(backend, file, h);
      stageMs.push(nowMs() - began);
      if (k === this.stages.length - 1) {
        return {
          logits: outputs.logits,
          label: argmaxAt(outputs.logits, 0, classes),
          exit: 0,
          entropies,
          stageMs,
          handoffBytes,
        };
      }
      const exitLogits = outputs.exit as Float32Array;
      const entropy = softmaxEntropy(exitLogits, 0, classes);
      entropies.push(entropy);
      if (entropy < this.thresholds[k]) {
        return {
          logits: exitLogits,
          label: argmaxAt(exitLogits, 0, classes),
          exit: k + 1,
          entropies,
          stageMs,
          handoffBytes,
        };
      }
      h = outputs.next as Float32Array;
      handoffBytes.push(h.length * 4);
    }
    throw new CmpError('INTERNAL', 'Staged run ended without a classifier. Export the model again.');
  }

  async dispose(): Promise<void> {
    await Promise.all(this.stages.map((s) => s.backend.dispose()));
  }
}

/** Runs one stage on one sample; returns its logits (last stage) or its exit logits and next activation. */
async function runStage(
  backend: Backend,
  file: ModelFile,
  input: Float32Array,
): Promise<{ logits: Float32Array; exit?: Float32Array; next?: Float32Array }> {
  const outputs = file.manifest?.stage?.outputs ?? [];
  const runAll = backend.runAll?.bind(backend);
  if (!runAll) {
    throw new CmpError(
      'BACKEND_UNAVAILABLE',
      `Backend ${backend.name} cannot run early-exit stages. Use --backend ort-node or ort-web.`,
    );
  }
  const result = await runAll(input, [1, ...file.inputDims]);
  if (outputs.length === 1) return { logits: result[outputs[0]] };
  return { logits: result[outputs[1]], exit: result[outputs[1]], next: result[outputs[0]] };
}

/**
 * Mean batch-1 latency of each stage (milliseconds) on `backend`, chaining real activations: stage k runs on what
 * stage k-1 produced for the same sample. `samples` are NCHW float32 inputs of stage 1.
 */
export async function measureStageLatency(
  stages: ModelFile[],
  samples: Float32Array[],
  backend = 'ort-node',
): Promise<number[]> {
  const loaded = await Promise.all(stages.map((s) => createBackend(backend, s)));
  try {
    const totals = new Array<number>(stages.length).fill(0);
    for (let round = 0; round < 2; round++) {
      // Round 0 warms the sessions up; round 1 is measured.
      for (const sample of samples) {
        let h = sample;
        for (let k = 0; k < stages.length; k++) {
          const began = nowMs();
          const out = await runStage(loaded[k], stages[k], h);
          if (round === 1) totals[k] += nowMs() - began;
          if (out.next) h = out.next;
        }
      }
    }
    return totals.map((t) => t / samples.length);
  } finally {
    await Promise.all(loaded.map((b) => b.dispose()));
  }
}
