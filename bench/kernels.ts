// kernels: one dense (1024x1024) and one conv (3x3, 64->64, 16x16) layer, binary or int8, on bitwasm against
// onnxruntime-node (float, 1 and 2 threads) and onnxruntime-web (wasm): latency, ratio and resident weight bytes.

import { binarizeRows } from '../src/core/binarize.js';
import { quantizeRows } from '../src/core/quantize.js';
import type { FrozenModel, FrozenWeightLayer } from '../src/core/frozen.js';
import { encodeModel, valueInfo } from '../src/core/onnx.js';
import type { BinarizeMode, LayerSpec, ModelSpec, WeightMode } from '../src/core/spec.js';
import { CMP_VERSION } from '../src/core/version.js';
import { CmpError } from '../src/errors.js';
import { EXPORT_OPSET, exportOnnx, INPUT_NAME } from '../src/export/export-onnx.js';
import type { Backend } from '../src/runtime/backend.js';
import { createBitwasmBackend } from '../src/runtime/backend-bitwasm.js';
import { createOrtNodeBackend } from '../src/runtime/backend-ort-node.js';
import { ortWebBackend } from '../src/runtime/backend-ort-web.js';
import { createWasmEngine } from '../src/runtime/bitwasm/engine-wasm.js';
import { planModel, type Plan } from '../src/runtime/bitwasm/plan.js';
import { parseModelFile, type ModelFile } from '../src/runtime/model-file.js';
import { formatBytes, formatTable } from '../src/cli/table.js';
import {
  atLeast,
  atMost,
  benchRecord,
  goalLines,
  parseBenchFlags,
  positiveInt,
  timeInterleaved,
  type Goal,
} from './common.js';
import { describeMachine, machineLine } from './machine.js';
import { makeRng } from '../src/core/rng.js';
import type { Benchmark } from './run.js';

/** The goals of issue 5 for this benchmark. */
const GOALS = Object.freeze({ denseSpeedup: 5, weightMemoryRatio: 25 });

/**
 * The goals of issue 22: the binary dense layer at batch 1 within 10 µs and 10x onnxruntime-node (1 thread); the
 * float-input binary conv at least as fast as onnxruntime-node; int8 layers within 1.5x of onnxruntime-node's faster
 * path (the int8 file or the float layer) with 4x less weight memory. "4x" is read as the binarization issue reads an
 * int8 file's "4x smaller" (>= 3.9x): a float32 scale per row makes int8's ratio 4n / (n + 4 rows) for n weights, under
 * 4 for any layer, so the bar a kernel can miss is whether it keeps anything wider than int8 resident.
 */
const GOALS_22 = Object.freeze({ denseUs: 10, denseSpeedup: 10, convSpeedup: 1, int8Slowdown: 1.5, int8Memory: 3.9 });

interface LayerCase {
  name: string;
  inputs: BinarizeMode;
  /** The layer alone as an ONNX file (what onnxruntime runs). */
  file: ModelFile;
  /** The same layer as a bitwasm plan. */
  plan: Plan;
  inputShape: [number, number, number];
  /**
   * What onnxruntime holds: float32 weights plus scale and shift after constant-folding the bit unpacking; for an int8
   * layer the int8 weights and their scales (its DequantizeLinear is not folded away), plus scale and shift.
   */
  floatWeightBytes: number;
}

interface Row {
  layer: string;
  batch: number;
  backend: string;
  p50Us: number;
  p99Us: number;
  runs: number;
  /** onnxruntime-node 1 thread on the same file divided by this backend (higher is faster). */
  speedupVsOrtNode1: number;
  weightBytes: number;
}

function randomArray(n: number, next: () => number, scale = 1, offset = 0): Float32Array {
  return Float32Array.from({ length: n }, () => offset + (next() * 2 - 1) * scale);
}

/** A layer with random weights (DAB-binarized or int8), batch norm folded into a random scale and shift. */
function binaryLayer(
  kind: 'dense' | 'conv',
  name: string,
  rows: number,
  rowLength: number,
  weightShape: number[],
  inputs: BinarizeMode,
  next: () => number,
  mode: WeightMode = 'dab',
): FrozenWeightLayer {
  const values = randomArray(rows * rowLength, next);
  return {
    kind,
    name,
    weightShape,
    weights:
      mode === 'int8'
        ? { kind: 'int8', ...quantizeRows(values, rows, rowLength) }
        : { kind: 'binary', ...binarizeRows(values, rows, rowLength, 'dab') },
    scale: randomArray(rows, next, 0.5, 1),
    shift: randomArray(rows, next, 0.5),
    activation: 'none',
    inputs,
  };
}

/** How a case names its weights and inputs: 'dab in', 'float in', 'int8 w, float in'. */
function caseInputs(inputs: BinarizeMode, mode: WeightMode): string {
  return `${mode === 'int8' ? 'int8 w, ' : ''}${inputs === 'none' ? 'float' : inputs} in`;
}

export function denseCase(inputs: BinarizeMode, units: number, features: number, mode: WeightMode = 'dab'): LayerCase {
  const next = makeRng(1);
  const dense: LayerSpec = {
    kind: 'dense',
    name: 'fc',
    units,
    batchNorm: true,
    activation: 'none',
    binarize: { weights: mode, inputs },
  };
  const spec: ModelSpec = {
    format: 'cmp-model/1',
    arch: 'bench',
    input: { shape: [features, 1, 1], mean: 0, std: 1 },
    labels: Array.from({ length: units }, (_, i) => String(i)),
    layers: [{ kind: 'flatten', name: 'flatten' }, dense],
  };
  const frozen: FrozenModel = {
    spec,
    layers: [
      { kind: 'flatten', name: 'flatten' },
      binaryLayer('dense', 'fc', units, features, [features, units], inputs, next, mode),
    ],
  };
  const file = parseModelFile(exportOnnx(frozen).bytes, `dense-${mode}-${inputs}.onnx`);
  return {
    name: `dense ${features}x${units}, ${caseInputs(inputs, mode)}`,
    inputs,
    file,
    plan: planModel(file),
    inputShape: [features, 1, 1],
    floatWeightBytes: (mode === 'int8' ? features * units + 4 * units : 4 * features * units) + 8 * units,
  };
}

/** A 'valid' 3x3 conv alone: exported with a flatten and a small classifier, then cut at the conv's output. */
export function convCase(
  inputs: BinarizeMode,
  channels: number,
  filters: number,
  size: number,
  kernel: number,
  mode: WeightMode = 'dab',
): LayerCase {
  const next = makeRng(2);
  const out = size - kernel + 1;
  const spec: ModelSpec = {
    format: 'cmp-model/1',
    arch: 'bench',
    input: { shape: [channels, size, size], mean: 0, std: 1 },
    labels: ['a', 'b'],
    layers: [
      {
        kind: 'conv',
        name: 'conv',
        filters,
        kernel,
        batchNorm: true,
        activation: 'none',
        binarize: { weights: mode, inputs },
      },
      { kind: 'flatten', name: 'flatten' },
      {
        kind: 'dense',
        name: 'logits',
        units: 2,
        batchNorm: false,
        activation: 'none',
        binarize: { weights: 'none', inputs: 'none' },
      },
    ],
  };
  const rowLength = channels * kernel * kernel;
  const frozen: FrozenModel = {
    spec,
    layers: [
      binaryLayer('conv', 'conv', filters, rowLength, [filters, channels, kernel, kernel], inputs, next, mode),
      { kind: 'flatten', name: 'flatten' },
      {
        kind: 'dense',
        name: 'logits',
        weightShape: [filters * out * out, 2],
        weights: { kind: 'float', data: randomArray(filters * out * out * 2, next) },
        scale: new Float32Array(2).fill(1),
        shift: new Float32Array(2),
        activation: 'none',
        inputs: 'none',
      },
    ],
  };
  const whole = parseModelFile(exportOnnx(frozen).bytes, `conv-${mode}-${inputs}.onnx`);
  const graph = whole.model.graph as NonNullable<ModelFile['model']['graph']>;
  const nodes = graph.node ?? [];
  const last = nodes.findIndex((n) => (n.output ?? []).includes('conv.shifted'));
  const kept = nodes.slice(0, last + 1);
  const used = new Set(kept.flatMap((n) => n.input ?? []));
  const bytes = encodeModel({
    name: 'bench-conv',
    nodes: kept,
    initializers: (graph.initializer ?? []).filter((t) => used.has(t.name ?? '')),
    inputs: [valueInfo(INPUT_NAME, ['batch', channels, size, size])],
    outputs: [valueInfo('conv.shifted', ['batch', filters, out, out])],
    opset: EXPORT_OPSET,
    producerVersion: CMP_VERSION,
    metadata: {},
  });
  const plan = planModel(whole);
  return {
    name: `conv ${kernel}x${kernel} ${channels}->${filters} ${size}x${size}, ${caseInputs(inputs, mode)}`,
    inputs,
    file: parseModelFile(bytes, `conv-${mode}-${inputs}-layer.onnx`),
    plan: { inputShape: plan.inputShape, classes: filters * out * out, layers: [plan.layers[0]] },
    inputShape: [channels, size, size],
    floatWeightBytes: (mode === 'int8' ? filters * rowLength + 4 * filters : 4 * filters * rowLength) + 8 * filters,
  };
}

export const kernels: Benchmark = {
  name: 'kernels',
  summary: 'binary dense and conv layers: bitwasm vs onnxruntime-node (1, 2 threads) and onnxruntime-web',
  async run(argv: string[], json: boolean): Promise<number> {
    const flags = parseBenchFlags(argv, {
      'min-ms': { default: '400' },
      batches: { default: '1,64' },
      backends: { default: 'bitwasm,ort-node-1,ort-node-2,ort-web' },
      save: {},
    });
    const minMs = positiveInt('min-ms', flags['min-ms']) ?? 400;
    const batches = (flags.batches ?? '').split(',').map((b) => positiveInt('batches', b) ?? 0);
    const backendNames = (flags.backends ?? '').split(',');
    // Layers that are compared with each other are timed in one interleaved group (goal 1 sets the dense layer with
    // binarized inputs on bitwasm against the float-input layer on onnxruntime).
    const groups = [
      [denseCase('dab', 1024, 1024), denseCase('none', 1024, 1024), denseCase('none', 1024, 1024, 'int8')],
      [convCase('dab', 64, 64, 16, 3), convCase('none', 64, 64, 16, 3), convCase('none', 64, 64, 16, 3, 'int8')],
    ];
    const rows: Row[] = [];
    for (const group of groups) {
      const contenders: { layer: LayerCase; name: string; backend: Backend; weightBytes: number }[] = [];
      for (const c of group) {
        for (const name of backendNames) contenders.push({ layer: c, name, ...(await createContender(name, c)) });
      }
      for (const batch of batches) {
        const inputs = new Map(group.map((c) => [c, randomArray(batch * features(c), makeRng(3))]));
        const timings = await timeInterleaved(
          contenders.map(
            (k) => () => k.backend.run(inputs.get(k.layer) as Float32Array, [batch, ...k.layer.inputShape]),
          ),
          minMs,
        );
        const us = (ms: number): number => ms * 1000;
        for (const c of group) {
          const base = contenders.findIndex((k) => k.layer === c && k.name === 'ort-node-1');
          contenders.forEach((k, i) => {
            if (k.layer !== c) return;
            const t = timings[i];
            process.stderr.write(`${c.name} batch ${batch} ${k.name}: ${us(t.p50Ms).toFixed(1)} us\n`);
            rows.push({
              layer: c.name,
              batch,
              backend: k.name,
              p50Us: us(t.p50Ms),
              p99Us: us(t.p99Ms),
              runs: t.runs,
              speedupVsOrtNode1: base >= 0 ? timings[base].p50Ms / t.p50Ms : Number.NaN,
              weightBytes: k.weightBytes,
            });
          });
        }
      }
      for (const k of contenders) await k.backend.dispose();
    }
    const goals = evaluateGoals(rows);
    const goals22 = evaluateGoals22(rows);
    const inputs = {
      minMs,
      batches,
      backends: backendNames,
      timing: 'both layers of a group on every backend take turns: 8 rounds of warm blocks',
      weights: 'dab or int8 per row, random, seed 1/2',
      inputs: 'uniform [-1, 1]',
    };
    const record = benchRecord('kernels', { inputs, rows, goals: [...goals, ...goals22] }, flags.save);
    if (json) {
      process.stdout.write(`${record}\n`);
      return 0;
    }
    const out = [
      'kernels: one layer, p50 of one call (µs); ratio = onnxruntime-node 1 thread on the same file / this backend',
      `machine: ${machineLine(describeMachine())}`,
      `inputs: ${JSON.stringify(inputs)}`,
      '',
      formatTable(
        ['layer', 'batch', 'backend', 'p50 µs', 'p99 µs', 'runs', 'vs ort-node 1t', 'weight bytes'],
        rows.map((r) => [
          r.layer,
          r.batch,
          r.backend,
          r.p50Us.toFixed(1),
          r.p99Us.toFixed(1),
          r.runs,
          `${r.speedupVsOrtNode1.toFixed(2)}x`,
          formatBytes(r.weightBytes),
        ]),
      ),
      '',
      'Goals (issue 5):',
      ...goalLines(goals),
      'Goals (issue 22):',
      ...goalLines(goals22),
      '  (weight bytes for onnxruntime: float32 weights plus scale and shift, which it holds after folding the unpacking;',
      '   for the int8 files the int8 weights and their scales, which its DequantizeLinear reads)',
    ];
    process.stdout.write(`${out.join('\n')}\n`);
    return 0;
  },
};

function features(c: LayerCase): number {
  return c.inputShape[0] * c.inputShape[1] * c.inputShape[2];
}

/** One backend on one layer, as the benchmark times it. */
async function createContender(name: string, c: LayerCase): Promise<{ backend: Backend; weightBytes: number }> {
  if (name === 'bitwasm') {
    const engine = await createWasmEngine(c.plan);
    // The backend registry path (manifest checks, same kernels) is what users get; the plan is the layer alone.
    if (c.file.manifest) await (await createBitwasmBackend(c.file)).dispose();
    return {
      weightBytes: engine.weightBytes,
      backend: { name, run: async (input, dims) => engine.run(input, dims[0]), dispose: async () => engine.dispose() },
    };
  }
  if (name.startsWith('ort-node-')) {
    const threads = Number(name.slice('ort-node-'.length));
    return {
      weightBytes: c.floatWeightBytes,
      backend: await createOrtNodeBackend(c.file, { intraOpNumThreads: threads }),
    };
  }
  if (name === 'ort-web') return { weightBytes: c.floatWeightBytes, backend: await ortWebBackend.create(c.file) };
  throw new CmpError(
    'BAD_FLAG',
    `Unknown backend "${name}" in --backends. Use bitwasm, ort-node-1, ort-node-2, ort-web.`,
  );
}

function evaluateGoals(rows: Row[]): Goal[] {
  const find = (layer: string, backend: string): Row | undefined =>
    rows.find((r) => r.batch === 1 && r.layer.startsWith(layer) && r.backend === backend);
  const goals: Goal[] = [];
  const bit = find('dense 1024x1024, dab in', 'bitwasm');
  const ortFloat = find('dense 1024x1024, float in', 'ort-node-1');
  const ortSame = find('dense 1024x1024, dab in', 'ort-node-1');
  if (bit && ortFloat) {
    goals.push(
      atLeast(
        'batch 1 dense 1024x1024: bitwasm (dab in, popcount) >= 5x faster than ort-node 1 thread float MatMul (float in)',
        ortFloat.p50Us / bit.p50Us,
        GOALS.denseSpeedup,
        'x',
      ),
    );
  }
  if (bit && ortSame) {
    goals.push(
      atLeast(
        'same, against ort-node 1 thread on the same file (its DAB subgraph included)',
        ortSame.p50Us / bit.p50Us,
        GOALS.denseSpeedup,
        'x',
      ),
      atLeast(
        'dense 1024x1024 resident weight memory >= 25x smaller',
        ortSame.weightBytes / bit.weightBytes,
        GOALS.weightMemoryRatio,
        'x',
      ),
    );
  }
  return goals;
}

/** Issue 22's goals, from the batch-1 rows. */
function evaluateGoals22(rows: Row[]): Goal[] {
  const find = (layer: string, backend: string): Row | undefined =>
    rows.find((r) => r.batch === 1 && r.layer === layer && r.backend === backend);
  const goals: Goal[] = [];
  const bit = find('dense 1024x1024, dab in', 'bitwasm');
  const ortFloat = find('dense 1024x1024, float in', 'ort-node-1');
  if (bit)
    goals.push(atMost('batch 1 dense 1024x1024 binary (dab in): bitwasm p50', bit.p50Us, GOALS_22.denseUs, 'µs'));
  if (bit && ortFloat) {
    goals.push(
      atLeast(
        'same, >= 10x ort-node 1 thread float MatMul (float in) in this run',
        ortFloat.p50Us / bit.p50Us,
        GOALS_22.denseSpeedup,
        'x',
      ),
    );
  }
  const ortSame = find('dense 1024x1024, dab in', 'ort-node-1');
  if (bit && ortSame) {
    goals.push(
      atLeast(
        'same, >= 10x ort-node 1 thread on the same file (its DAB subgraph included) in this run',
        ortSame.p50Us / bit.p50Us,
        GOALS_22.denseSpeedup,
        'x',
      ),
    );
  }
  const conv = 'conv 3x3 64->64 16x16, float in';
  const convBit = find(conv, 'bitwasm');
  const convOrt = find(conv, 'ort-node-1');
  if (convBit && convOrt) {
    goals.push(
      atLeast(
        'batch 1 conv 3x3 64->64 16x16 binary w, float in: bitwasm at least as fast as ort-node 1 thread',
        convOrt.p50Us / convBit.p50Us,
        GOALS_22.convSpeedup,
        'x',
      ),
    );
  }
  for (const [int8, float] of [
    ['dense 1024x1024, int8 w, float in', 'dense 1024x1024, float in'],
    ['conv 3x3 64->64 16x16, int8 w, float in', 'conv 3x3 64->64 16x16, float in'],
  ]) {
    const mine = find(int8, 'bitwasm');
    const ortInt8 = find(int8, 'ort-node-1');
    const ortF = find(float, 'ort-node-1');
    if (!mine || !ortInt8 || !ortF) continue;
    goals.push(
      atMost(
        `batch 1 ${int8}: bitwasm p50 / ort-node 1 thread's faster path (int8 file or float layer)`,
        mine.p50Us / Math.min(ortInt8.p50Us, ortF.p50Us),
        GOALS_22.int8Slowdown,
        'x',
      ),
      atLeast(
        `${int8.split(',')[0]} int8: float32 weight bytes / bitwasm's (4x: >= 3.9x, int8 plus a scale per row)`,
        ortF.weightBytes / mine.weightBytes,
        GOALS_22.int8Memory,
        'x',
      ),
    );
  }
  return goals;
}
