// Know before you flash: per layer and in total, the work (MACs, popcount words), the memory (weights, activations,
// the arena the firmware will ask for, flash) and a latency estimate from a per-kernel cost table measured on the
// device, for any ONNX file cmp reads.

import { existsSync } from 'node:fs';
import { packedRowBytes } from '../core/bitpack.js';
import { inferShapes, type ModelSpec } from '../core/spec.js';
import { CmpError } from '../errors.js';
import { importOnnx } from '../import/import-onnx.js';
import { boardMemory, type BoardMemory } from '../link/firmware-build.js';
import {
  convertToMcuModel,
  mcuWorkspaceBytes,
  MCU_MODEL_HEADER_BYTES,
  MCU_MODEL_LAYER_BYTES,
} from '../core/mcu-model.js';
import type { ModelFile } from '../runtime/model-file.js';
import { costKey, costTablePath, estimateMs, readCostTable, type CostTable } from './cost-table.js';

/** Where the analysis is for. */
export const ANALYZE_TARGETS: readonly string[] = Object.freeze(['mcu', 'rpi', 'browser', 'host']);

/** One layer's work and memory. */
export interface LayerAnalysis {
  name: string;
  kind: string;
  weights: 'none' | 'float32' | 'binary' | 'int8';
  inputs: 'none' | 'xnor' | 'dab';
  inputShape: number[];
  outputShape: number[];
  /** Weights plus per-row parameters (bias or shift, scale, binary levels). */
  params: number;
  /** Bytes the layer stores: in the device model for mcu, else the manifest's (or float32) weight bytes. */
  storedBytes: number;
  /** Multiply-accumulates with a float or int8 operand (binary weights times float inputs count here). */
  macs: number;
  /** Binary ops: 32-bit XNOR-popcount words (binary weights and binarized inputs). */
  binaryOps: number;
  /** Weight cells times output positions: the MACs of the layer run in float (as onnxruntime runs binary layers). */
  cellMacs: number;
  /** Bytes of the layer's float32 output. */
  activationBytes: number;
  /**
   * Bytes live while the layer runs: its float input and output, the packed bits of a binarized input and a conv's
   * im2col patch (float and packed). The largest over the layers is the model's peak working memory.
   */
  workingBytes: number;
  /** The cost-table entry this layer's time is looked up under, and its work units there. */
  kernel: string;
  units: number;
  /** Estimated batch-1 time, ms (with a cost table that has this kernel). */
  estimateMs?: number;
}

/** What a model needs on the microcontroller (mcu target). */
export interface McuAnalysis {
  board: BoardMemory;
  /** The device model's bytes: what a built-in model puts in flash, and what HELLO reports as its size. */
  modelBytes: number;
  /** Arena the firmware asks for with the model uploaded into it (blob + workspace; MODEL_INFO "arena used"). */
  arenaUploadedBytes: number;
  /** Arena with the model compiled into flash (the workspace alone; CAPS "arena used" of a built-in model). */
  arenaInFlashBytes: number;
  /** The model fits the default image's arena (upload), and fits in flash with its workspace in RAM. */
  fitsUploaded: boolean;
  fitsInFlash: boolean;
  /** Exact (a cmp model, converted as deploy does) or from the layer shapes (an ONNX file without a manifest). */
  exact: boolean;
}

/** The whole analysis. */
export interface ModelAnalysis {
  path: string;
  target: string;
  layers: LayerAnalysis[];
  totals: { params: number; storedBytes: number; macs: number; binaryOps: number };
  /** The largest layer output, bytes. */
  peakActivationBytes: number;
  /** The largest layer's working memory, bytes (on mcu the arena's workspace, which reuses two buffers, is exact). */
  peakWorkingBytes: number;
  mcu?: McuAnalysis;
  /** Estimated batch-1 latency, ms, and the cost table it came from; `missing`: kernels the table lacks. */
  latency?: { ms: number; device: string; missing: string[] };
  /** What to change when the model does not fit. */
  advice: string[];
}

/** Options of {@link analyzeModel}. */
export interface AnalyzeOptions {
  target: string;
  board?: string;
  costs?: CostTable;
}

/** Analyses a model file cmp can read: a cmp export (its manifest), or any ONNX file cmp import understands. */
export function analyzeModel(file: ModelFile, options: AnalyzeOptions): ModelAnalysis {
  if (!ANALYZE_TARGETS.includes(options.target)) {
    throw new CmpError('BAD_FLAG', `Unknown target "${options.target}". Use one of: ${ANALYZE_TARGETS.join(', ')}.`);
  }
  const manifest = file.manifest;
  const spec: ModelSpec = manifest?.spec ?? importOnnx(file.path, { mean: 0, std: 1 }).network.spec;
  const shapes = inferShapes(spec);
  const mcuModel = options.target === 'mcu' && manifest ? convertToMcuModel(file) : undefined;
  const layers: LayerAnalysis[] = spec.layers.map((layer, i) => {
    const { inputShape, outputShape, rowLength } = shapes[i];
    const outputs = count(outputShape);
    const lm = manifest?.layers.find((l) => l.name === layer.name);
    const weights: LayerAnalysis['weights'] =
      layer.kind !== 'dense' && layer.kind !== 'conv'
        ? 'none'
        : !lm || lm.weights === 'none'
          ? 'float32'
          : lm.weights === 'int8'
            ? 'int8'
            : 'binary';
    const inputs = lm?.inputs ?? 'none';
    const rows = layer.kind === 'dense' ? layer.units : layer.kind === 'conv' ? layer.filters : 0;
    const positions = layer.kind === 'conv' ? outputShape[1] * outputShape[2] : 1;
    const cells = rows * rowLength;
    const binary = weights === 'binary' && inputs !== 'none';
    const macs = weights === 'none' ? 0 : binary ? 0 : cells * positions;
    const binaryOps = binary ? rows * positions * Math.ceil(rowLength / 32) : 0;
    const params = weights === 'none' ? 0 : cells + rows * (weights === 'binary' ? 3 : lm?.initializers.scale ? 2 : 1);
    const storedBytes =
      mcuModel?.layers[i].bytes ?? (weights === 'none' ? 0 : lm ? lm.weightBytes : cells * 4 + rows * 4);
    const window = layer.kind === 'maxpool' || layer.kind === 'avgpool' ? layer.size * layer.size : 0;
    const inputCount = count(inputShape);
    const workingBytes =
      layer.kind === 'flatten'
        ? 4 * inputCount
        : 4 * (inputCount + outputs) +
          (inputs !== 'none' ? packedRowBytes(inputCount) : 0) +
          (layer.kind === 'conv' ? 4 * rowLength + packedRowBytes(rowLength) : 0);
    const kernel = costKey(layer.kind, weights, inputs);
    const units = weights === 'none' ? (window ? outputs * window : 0) : binary ? binaryOps : macs;
    return {
      name: layer.name,
      kind: layer.kind,
      weights,
      inputs,
      inputShape: [...inputShape],
      outputShape: [...outputShape],
      params,
      storedBytes,
      macs,
      binaryOps,
      cellMacs: cells * positions,
      activationBytes: 4 * outputs,
      workingBytes,
      kernel,
      units,
    };
  });
  const totals = {
    params: sum(layers.map((l) => l.params)),
    storedBytes: sum(layers.map((l) => l.storedBytes)),
    macs: sum(layers.map((l) => l.macs)),
    binaryOps: sum(layers.map((l) => l.binaryOps)),
  };
  const analysis: ModelAnalysis = {
    path: file.path,
    target: options.target,
    layers,
    totals,
    peakActivationBytes: Math.max(4 * count(spec.input.shape), ...layers.map((l) => l.activationBytes)),
    peakWorkingBytes: Math.max(4 * count(spec.input.shape), ...layers.map((l) => l.workingBytes)),
    advice: [],
  };
  if (options.target === 'mcu') {
    const board = boardMemory(options.board ?? 'mps2-an385');
    const workspace =
      mcuModel?.workspaceBytes ??
      mcuWorkspaceBytes(
        layers.map((l, i) => ({
          kind: l.kind,
          inputs: count(l.inputShape),
          outputs: count(l.outputShape),
          rowLength: shapes[i].rowLength,
          binarizes: l.inputs !== 'none',
        })),
        count(spec.input.shape),
        { classes: spec.labels.length, exits: 0, maskKept: 0 },
      );
    // Without a manifest: the blob a float model would be (header, layer records, float rows and shifts, CRC).
    const modelBytes =
      mcuModel?.blob.length ??
      MCU_MODEL_HEADER_BYTES +
        MCU_MODEL_LAYER_BYTES * layers.length +
        sum(layers.map((l) => align4(l.storedBytes))) +
        4;
    const mcu: McuAnalysis = {
      board,
      modelBytes,
      arenaUploadedBytes: align4(modelBytes) + workspace,
      arenaInFlashBytes: workspace,
      fitsUploaded: align4(modelBytes) + workspace <= board.arenaBytes,
      // The image's code and link buffers take some flash and RAM too: 64 KiB of flash, 16 KiB of RAM are kept back.
      fitsInFlash: modelBytes + 64 * 1024 <= board.flashBytes && workspace + 16 * 1024 <= board.ramBytes,
      exact: mcuModel !== undefined,
    };
    analysis.mcu = mcu;
    if (!mcu.fitsUploaded && mcu.fitsInFlash) {
      analysis.advice.push(
        `Uploaded, it needs ${mcu.arenaUploadedBytes} bytes of arena and the board's image has ${board.arenaBytes}: build it into flash instead (cmp firmware build --board ${board.board} --model ${file.path}), where it needs ${workspace} bytes of RAM.`,
      );
    }
    if (!mcu.fitsInFlash) {
      const floatLayers = layers.filter((l) => l.weights === 'float32').map((l) => l.name);
      analysis.advice.push(
        `It does not fit the ${board.board} even in flash (model ${modelBytes} bytes of ${board.flashBytes}, workspace ${workspace} bytes of ${board.ramBytes} RAM). ${floatLayers.length ? `Binarize or int8-quantize its float layers (${floatLayers.join(', ')}) with cmp train --binarize-weights dab, or narrow them.` : 'Use narrower layers.'}`,
      );
    }
  }
  if (options.costs?.models) {
    // A host table is fitted over whole models: the same work terms, summed over the model, priced by the table.
    const units = hostUnits(layers, options.costs.device);
    const missing = Object.keys(units).filter((k) => units[k] > 0 && !options.costs?.kernels[k]);
    const ms =
      (options.costs.overheadMs ?? 0) +
      Object.entries(units).reduce((a, [k, u]) => a + (options.costs?.kernels[k]?.msPerUnit ?? 0) * u, 0);
    analysis.latency = { ms, device: options.costs.device, missing };
  } else if (options.costs) {
    const missing = new Set<string>();
    let ms = 0;
    for (const layer of layers) {
      const estimate = estimateMs(options.costs, layer.kernel, layer.units);
      if (estimate === undefined) missing.add(layer.kernel);
      else {
        layer.estimateMs = estimate;
        ms += estimate;
      }
    }
    ms += options.costs.overheadMs ?? 0;
    analysis.latency = { ms, device: options.costs.device, missing: [...missing] };
  }
  return analysis;
}

/** The cost table cmp profile recorded for a target in `home` ($CMP_HOME), or one line saying how to record it. */
export function findCostTable(
  home: string,
  target: string,
  options: { board?: string; backend?: string } = {},
): { costs?: CostTable; path?: string; note?: string } {
  let device: string;
  let how: string;
  if (target === 'mcu') {
    device = options.board ?? 'mps2-an385';
    how = `no cost table for ${device} yet. Measure one: cmp profile MODEL --target mcu --port PORT (any model; it records`;
  } else if (target === 'host') {
    const backend = options.backend ?? 'ort-node';
    device = `host-${backend}`;
    how = `no cost table for ${backend} on this machine yet. Measure one: cmp profile MODEL --target host --backend ${backend} (on two or more models; it records`;
  } else return { note: `No latency estimate: pass --costs FILE, a ${target} cost table.` };
  const path = costTablePath(home, device);
  if (!existsSync(path)) return { path, note: `No latency estimate: ${how} ${path}).` };
  return { costs: readCostTable(path), path };
}

/**
 * A model's work as a host backend does it, summed over layers: weight layers (each a few operator calls), layers
 * that binarize their input and the elements they binarize, multiply-accumulates and popcount words. onnxruntime
 * unpacks binary weights into float at session start (constant folding), so there every weight cell is a MAC; bitwasm
 * keeps them 1-bit, and its MACs of binary weights with float inputs are a term of their own.
 */
export function hostUnits(layers: readonly LayerAnalysis[], device: string): Record<string, number> {
  const onnxruntime = /ort-/.test(device);
  const units: Record<string, number> = {
    layer: 0,
    'binarized layer': 0,
    'binarized input': 0,
    mac: 0,
    ...(onnxruntime ? {} : { 'binary-weight mac': 0 }),
    word: 0,
  };
  for (const l of layers) {
    if (l.weights === 'none') continue;
    units.layer++;
    if (l.inputs !== 'none') {
      units['binarized layer']++;
      units['binarized input'] += count(l.inputShape);
    }
    if (onnxruntime) units.mac += l.cellMacs;
    else {
      // bitwasm adds or subtracts a float input per binary weight: far cheaper than a float MAC, so a term apart.
      units[l.weights === 'binary' ? 'binary-weight mac' : 'mac'] += l.macs;
      units.word += l.binaryOps;
    }
  }
  return units;
}

function count(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

function align4(n: number): number {
  return (n + 3) & ~3;
}
