// The dashboard's model view of an ONNX file or a run folder: per-layer bits and bytes, exits, the input mask as a
// picture, and from a run's record the mask checkpoints (accuracy against kept share) and the calibrated Pareto set.

import { statSync } from 'node:fs';
import { freeze } from '../core/frozen.js';
import type { LayerManifest, Manifest } from '../core/manifest.js';
import { featureMask, maskLayout, parseGranularity, type MaskGranularity } from '../core/mask.js';
import { loadRun } from '../core/run.js';
import { CmpError, isCmpError } from '../errors.js';
import { exportOnnx } from '../export/export-onnx.js';
import { encodePng, paint, rgbImage } from '../export/png.js';
import { isBinaryMode } from '../core/spec.js';
import { inspectModel } from '../runtime/inspect.js';
import { MaskedInput } from '../runtime/masked-input.js';
import { parseModelFile, readModelFile, type ModelFile } from '../runtime/model-file.js';
import { DEFAULT_ANALYSIS_DEVICE, deviceAnalysis } from './estimates.js';
import type { ModelView } from './messages.js';
import { loadProfileData } from './profile-jobs.js';

/** Test images a dynamic mask's picture averages over (the share of them each pixel is sent for). */
export const DYNAMIC_MASK_EXAMPLES = 50;
/** Screen pixels per input pixel in the mask picture. */
const PICTURE_SCALE = 6;
const PICTURE_GAP = 4;

/**
 * The model view of `path`: a folder is read as a run (cmp train --out), anything else as an ONNX file; with the
 * analysis (cmp analyze) for `device`, an id of the device list (default: this machine on onnxruntime).
 */
export async function modelView(path: string, device = DEFAULT_ANALYSIS_DEVICE): Promise<ModelView> {
  let folder: boolean;
  try {
    folder = statSync(path).isDirectory();
  } catch (err) {
    throw new CmpError('BAD_ARGUMENT', `There is no model or run folder at ${path}. Check the path.`, { cause: err });
  }
  return folder ? runView(path, device) : onnxView(path, device);
}

/** What a run's exported selector file sends for the first `count` instances of `x` (pixels in [0, 1]). */
async function exportedSelections(
  exported: ReturnType<typeof exportOnnx>,
  dir: string,
  x: Float32Array,
  count: number,
): Promise<number[][]> {
  const selector = exported.selector;
  if (!selector) return [];
  const file = parseModelFile(exported.bytes, `${dir}/model.onnx`);
  const masked = await MaskedInput.open(file, 'auto', async (path) => parseModelFile(selector, path));
  if (!masked) return [];
  try {
    const features = exported.manifest.input.shape.reduce((a, b) => a * b, 1);
    return await masked.selections(x.subarray(0, count * features), count);
  } finally {
    await masked.dispose();
  }
}

/** The analysis part of a view, or the one line saying why there is none. */
function analysisPart(file: ModelFile, device: string): Pick<ModelView, 'analysis' | 'analysisNote'> {
  try {
    return { analysis: deviceAnalysis(file, device) };
  } catch (err) {
    const text = isCmpError(err) ? err.message : `Internal error: ${String((err as Error)?.message ?? err)}`;
    return { analysisNote: `No analysis: ${text.split('\n')[0]}` };
  }
}

function onnxView(path: string, device: string): ModelView {
  const file = readModelFile(path);
  const report = inspectModel(file);
  const manifest = file.manifest;
  const mask = manifest?.inputMask;
  let picture: NonNullable<ModelView['mask']>['picture'];
  if (mask?.kind === 'static' && manifest && mask.kept) {
    picture = maskPicture(manifest.input.shape, parseGranularity(mask.granularity), [mask.kept]);
  }
  return {
    path,
    kind: 'onnx',
    fileBytes: report.fileBytes,
    arch: manifest?.arch ?? `ONNX (${report.producer || 'unknown producer'})`,
    ...(manifest?.training?.dataset ? { dataset: manifest.training.dataset } : {}),
    labels: manifest?.labels.length ?? report.output.dims[report.output.dims.length - 1] ?? 0,
    layers: layerRows(report.layers ?? []),
    ...(report.binaryBitsPerWeight !== undefined ? { binaryBitsPerWeight: report.binaryBitsPerWeight } : {}),
    exits: exitRows(manifest),
    ...(mask
      ? {
          mask: {
            kind: mask.kind,
            granularity: mask.granularity,
            values: mask.values,
            units: mask.units,
            ...(mask.kept ? { keptUnits: mask.kept.length } : {}),
            fullInputBytes: mask.fullInputBytes,
            ...(picture ? { picture } : {}),
          },
        }
      : {}),
    checkpoints: [],
    ...analysisPart(file, device),
  };
}

async function runView(dir: string, device: string): Promise<ModelView> {
  const run = loadRun(dir);
  const { record } = run;
  const frozen = freeze(record.spec, run.tensors);
  // The layers as cmp export would write them: the same packing, so the same bits and bytes.
  const exported = exportOnnx(frozen, {
    dataset: record.training.dataset,
    epochs: record.training.epochs,
    testAccuracy: record.training.testAccuracy,
  });
  const layers = exported.manifest.layers;
  const binary = layers.filter((l) => isBinaryMode(l.weights));
  const binaryWeights = binary.reduce((a, l) => a + l.weightCount, 0);
  const spec = record.spec.inputMask;
  const masking = record.masking;
  let mask: ModelView['mask'];
  if (spec && masking) {
    let selections: number[][] | undefined;
    let note: string | undefined;
    if (spec.kind === 'static') selections = [spec.kept];
    else {
      // The exported selector file runs on the runtime (as on a sender), not on the trainer: the viewer carries no
      // TensorFlow.js.
      try {
        const data = await loadProfileData(
          'auto',
          {
            name: 'the run',
            recorded: record.training.dataset,
            inputShape: record.spec.input.shape,
            classes: record.spec.labels.length,
          },
          DYNAMIC_MASK_EXAMPLES,
        );
        selections = await exportedSelections(
          exported,
          dir,
          data.test.x,
          Math.min(DYNAMIC_MASK_EXAMPLES, data.test.count),
        );
      } catch (err) {
        note = `No picture of the dynamic mask: ${String((err as Error)?.message ?? err).split('\n')[0]}`;
      }
    }
    mask = {
      kind: masking.kind,
      granularity: masking.granularity,
      values: masking.values,
      units: masking.units,
      keptUnits: masking.keptUnits,
      fullInputBytes: masking.fullInputBytes,
      ...(selections ? { picture: maskPicture(record.spec.input.shape, spec.granularity, selections) } : {}),
      ...(note ? { note } : {}),
    };
  }
  const calibration = record.calibration;
  return {
    path: dir,
    kind: 'run',
    fileBytes: exported.bytes.length,
    arch: exported.manifest.arch,
    dataset: record.training.dataset,
    labels: record.spec.labels.length,
    layers: layerRows(layers),
    ...(binaryWeights
      ? { binaryBitsPerWeight: (binary.reduce((a, l) => a + l.weightBytes, 0) * 8) / binaryWeights }
      : {}),
    exits: exitRows(exported.manifest),
    ...(mask ? { mask } : {}),
    checkpoints: (masking?.checkpoints ?? []).map((c) => ({
      dir: c.dir,
      epoch: c.epoch,
      keptFraction: c.keptFraction,
      frameBytes: c.frameBytes,
      validationAccuracy: c.validationAccuracy,
      testAccuracy: c.testAccuracy,
    })),
    ...(calibration
      ? { calibration: { pareto: calibration.pareto, chosen: calibration.chosen, full: calibration.full } }
      : {}),
    ...analysisPart(parseModelFile(exported.bytes, dir), device),
  };
}

function layerRows(layers: LayerManifest[]): ModelView['layers'] {
  return layers.map((l) => ({
    name: l.name,
    kind: l.kind,
    weights: l.weights,
    inputs: l.inputs,
    weightCount: l.weightCount,
    weightBytes: l.weightBytes,
    bitsPerWeight: l.bitsPerWeight,
  }));
}

function exitRows(manifest: Manifest | undefined): ModelView['exits'] {
  return (manifest?.exits ?? []).map((e) => ({ name: e.name, after: e.after, threshold: e.threshold }));
}

/**
 * The share of `selections` (kept units per instance) that sends each input feature, and its picture: one panel per
 * channel, white where every instance sends the pixel, black where none does.
 */
function maskPicture(
  shape: [number, number, number],
  granularity: MaskGranularity,
  selections: number[][],
): NonNullable<NonNullable<ModelView['mask']>['picture']> {
  const [c, h, w] = shape;
  const layout = maskLayout(shape, granularity);
  const sent = new Array<number>(c * h * w).fill(0);
  for (const units of selections) {
    const m = featureMask(layout, units);
    for (let f = 0; f < m.length; f++) sent[f] += m[f] / Math.max(selections.length, 1);
  }
  const image = rgbImage(c * (w * PICTURE_SCALE + PICTURE_GAP) + PICTURE_GAP, h * PICTURE_SCALE + 2 * PICTURE_GAP, 40);
  for (let ch = 0; ch < c; ch++) {
    const left = PICTURE_GAP + ch * (w * PICTURE_SCALE + PICTURE_GAP);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const v = Math.round(255 * sent[(ch * h + y) * w + x]);
        paint(image, left, PICTURE_GAP, x, y, PICTURE_SCALE, [v, v, v]);
      }
  }
  return {
    shape,
    sent: sent.map((v) => Math.round(v * 1e4) / 1e4),
    png: `data:image/png;base64,${Buffer.from(encodePng(image)).toString('base64')}`,
  };
}
