// The local target: this machine, running a model on one of its backends (the dashboard's "this machine" devices,
// `cmp profile --target local`), and the host cost table `cmp analyze --target host` fits.

import { availableParallelism, totalmem } from 'node:os';
import { nowMs, percentile } from '../core/clock.js';
import type { Dataset } from '../data/datasets.js';
import { CmpError } from '../errors.js';
import { costTablePath } from '../profile/cost-table.js';
import { profilePredictor, type DeviceFacts } from '../profile/device-profile.js';
import { measureHostCosts, recordHostCosts as recordHostTable } from '../profile/host-costs.js';
import { createBackend } from '../runtime/backends.js';
import { inputDimsFor } from '../runtime/evaluate.js';
import { callerNormalization, datasetConsumer, type ModelFile } from '../runtime/model-file.js';
import { Predictor } from '../runtime/predictor.js';
import { standardize } from '../runtime/standardize.js';
import { cmpHome } from './devices.js';
import type { ProfileRequest, Target } from './target.js';

/** The backends this machine is profiled on by default: onnxruntime's native runtime and cmp's 1-bit engine. */
export const LOCAL_BACKENDS: readonly string[] = Object.freeze(['ort-node', 'bitwasm']);

/** This machine, on one backend. */
export interface LocalDevice {
  backend: string;
}

/** What a local deploy checked: the model opens on the backend and answers a test instance. */
export interface LocalDeployReport {
  model: string;
  target: 'local';
  backend: string;
  backendReason?: string;
  smoke: { dataset: string; label: number; expected: number };
}

/** This machine as cmp-profile/1 names it; inside Electron the runtime says so. */
export function localFacts(): DeviceFacts {
  const electron = process.versions.electron;
  return {
    name: 'this machine',
    platform: process.platform,
    arch: process.arch,
    cpus: availableParallelism(),
    memoryBytes: totalmem(),
    runtime: electron ? `electron ${electron} (node ${process.version})` : `node ${process.version}`,
  };
}

export const localTarget: Target<LocalDevice, LocalDeployReport> = {
  kind: 'local',
  what: 'this machine, with --backend NAME',

  /** Nothing is copied: the model is opened where it lies, so a model this machine cannot run is refused now. */
  async deploy(device, model, options) {
    const data = await options.data(datasetConsumer(model), 1);
    options.onProgress?.(`opening ${model.path} on ${device.backend}`);
    const predictor = await Predictor.open(model, { backend: device.backend });
    try {
      checkFeatures(model, predictor.features, data);
      const p = await predictor.infer(data.test.x.subarray(0, predictor.features));
      return {
        model: model.path,
        target: 'local',
        backend: predictor.backendName,
        ...(predictor.backendReason ? { backendReason: predictor.backendReason } : {}),
        smoke: { dataset: data.name, label: p.label, expected: data.test.y[0] },
      };
    } finally {
      await predictor.dispose();
    }
  },

  async profile(device, request) {
    const file = modelOf(request);
    const backend = request.backend ?? device.backend;
    const progress = request.onProgress ?? (() => undefined);
    const data = await request.data(datasetConsumer(file), request.count);
    const count = Math.min(request.count, data.test.count);
    progress(0, count, `opening ${file.path} on ${backend}`);
    const predictor = await Predictor.open(file, { backend });
    try {
      checkFeatures(file, predictor.features, data);
      const measured = await profilePredictor(predictor, data.test.x, data.test.y, count, {
        dataset: data.name,
        onProgress: (done, total) => progress(done, total, `${done}/${total} on ${backend}`),
      });
      return {
        profile: {
          schema: 'cmp-profile/1',
          device: localFacts(),
          model: { path: file.path },
          ...measured,
          rssBytes: process.resourceUsage().maxRSS * 1024,
        },
        details: undefined,
      };
    } finally {
      await predictor.dispose();
    }
  },
};

/** What recordHostCosts measured and where it wrote it. */
export interface HostCostReport {
  model: string;
  target: 'host';
  backend: string;
  samples: number;
  p50Ms: number;
  costTable: string;
}

/**
 * Times batch-1 calls of the model on this machine's backend (as cmp run does: the backend alone, no Predictor) and
 * records it in the backend's cost table ($CMP_HOME/costs/host-BACKEND.json): per-layer times where the backend times
 * layers (bitwasm), else the p50 with the model's work per kernel, which cmp analyze --target host fits over every
 * model recorded.
 */
export async function recordHostCosts(
  file: ModelFile,
  backendName: string,
  data: Dataset,
  onProgress: (message: string) => void = () => undefined,
): Promise<HostCostReport> {
  const backend = await createBackend(backendName, file);
  try {
    const features = data.inputShape.reduce((a, b) => a * b, 1);
    const count = Math.floor(data.test.x.length / features);
    if (count === 0)
      throw new CmpError('BAD_ARGUMENT', `Data set ${data.name} has no test samples. Use another data set.`);
    const dims = inputDimsFor(file, data, 1);
    const normalization = callerNormalization(file);
    const latencies: number[] = [];
    for (let i = 0; i < count; i++) {
      const x = standardize(data.test.x.subarray(i * features, (i + 1) * features), normalization);
      const began = nowMs();
      await backend.run(x, dims);
      latencies.push(nowMs() - began);
      if (i % 50 === 0) onProgress(`latency ${i}/${count}`);
    }
    const p50 = percentile(latencies, 50);
    // A backend that times its layers (bitwasm) also gives per-layer samples: the first image, profiled.
    const first = standardize(data.test.x.subarray(0, features), normalization);
    const path = costTablePath(cmpHome(), `host-${backend.name}`);
    recordHostTable(path, backend.name, file.path, await measureHostCosts(backend, file, first, dims, p50));
    return { model: file.path, target: 'host', backend: backend.name, samples: count, p50Ms: p50, costTable: path };
  } finally {
    await backend.dispose();
  }
}

/** The request's model; local profiles always name one. */
export function modelOf(request: ProfileRequest): ModelFile {
  if (!request.model) {
    throw new CmpError('BAD_ARGUMENT', 'Profiling this device needs a model: give the path of an ONNX file.');
  }
  return request.model;
}

/** Refuses a data set whose instances are not the size the model takes, naming both. */
export function checkFeatures(file: ModelFile, features: number, data: Dataset): void {
  const values = data.inputShape.reduce((a, b) => a * b, 1);
  if (features !== values) {
    throw new CmpError(
      'BAD_ARGUMENT',
      `${file.path} takes ${features} values per instance but ${data.name} images have ${values}. Pick the model's data set.`,
    );
  }
}
