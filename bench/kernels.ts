// kernels: one binary dense (1024x1024) and one binary conv (3x3, 64->64, 16x16) layer on bitwasm against
// onnxruntime-node (float, 1 and 2 threads) and onnxruntime-web (wasm): latency, ratio and resident weight bytes.

import { parseArgs } from 'node:util';
import { binarizeRows } from '../src/core/binarize.js';
import { nowMs, percentile } from '../src/core/clock.js';
import type { FrozenModel, FrozenWeightLayer } from '../src/core/frozen.js';
import { encodeModel, valueInfo } from '../src/core/onnx.js';
import type { BinarizeMode, LayerSpec, ModelSpec } from '../src/core/spec.js';
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
import { describeMachine, machineLine } from './machine.js';
import type { Benchmark } from './run.js';

/** The goals of issue 5 for this benchmark. */
const GOALS = Object.freeze({ denseSpeedup: 5, weightMemoryRatio: 25 });

interface LayerCase {
  name: string;
  inputs: BinarizeMode;
  /** The layer alone as an ONNX file (what onnxruntime runs). */
  file: ModelFile;
  /** The same layer as a bitwasm plan. */
  plan: Plan;
  inputShape: [number, number, number];
  /** float32 weights plus scale and shift: what onnxruntime holds after constant-folding the bit unpacking. */
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

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomArray(n: number, next: () => number, scale = 1, offset = 0): Float32Array {
  return Float32Array.from({ length: n }, () => offset + (next() * 2 - 1) * scale);
}

/** A binary layer with random weights (DAB-binarized), batch norm folded into a random scale and shift. */
function binaryLayer(
  kind: 'dense' | 'conv',
  name: string,
  rows: number,
  rowLength: number,
  weightShape: number[],
  inputs: BinarizeMode,
  next: () => number,
): FrozenWeightLayer {
  return {
    kind,
    name,
    weightShape,
    weights: { kind: 'binary', ...binarizeRows(randomArray(rows * rowLength, next), rows, rowLength, 'dab') },
    scale: randomArray(rows, next, 0.5, 1),
    shift: randomArray(rows, next, 0.5),
    activation: 'none',
    inputs,
  };
}

function denseCase(inputs: BinarizeMode, units: number, features: number): LayerCase {
  const next = rng(1);
  const dense: LayerSpec = {
    kind: 'dense',
    name: 'fc',
    units,
    batchNorm: true,
    activation: 'none',
    binarize: { weights: 'dab', inputs },
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
      binaryLayer('dense', 'fc', units, features, [features, units], inputs, next),
    ],
  };
  const file = parseModelFile(exportOnnx(frozen).bytes, `dense-${inputs}.onnx`);
  return {
    name: `dense ${features}x${units}, ${inputs === 'none' ? 'float' : inputs} in`,
    inputs,
    file,
    plan: planModel(file),
    inputShape: [features, 1, 1],
    floatWeightBytes: 4 * (features * units + 2 * units),
  };
}

/** A 'valid' 3x3 conv alone: exported with a flatten and a small classifier, then cut at the conv's output. */
function convCase(inputs: BinarizeMode, channels: number, filters: number, size: number, kernel: number): LayerCase {
  const next = rng(2);
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
        binarize: { weights: 'dab', inputs },
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
      binaryLayer('conv', 'conv', filters, rowLength, [filters, channels, kernel, kernel], inputs, next),
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
  const whole = parseModelFile(exportOnnx(frozen).bytes, `conv-${inputs}.onnx`);
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
    name: `conv ${kernel}x${kernel} ${channels}->${filters} ${size}x${size}, ${inputs === 'none' ? 'float' : inputs} in`,
    inputs,
    file: parseModelFile(bytes, `conv-${inputs}-layer.onnx`),
    plan: { inputShape: plan.inputShape, classes: filters * out * out, layers: [plan.layers[0]] },
    inputShape: [channels, size, size],
    floatWeightBytes: 4 * (filters * rowLength + 2 * filters),
  };
}

/** Median and p99 of one call's wall time, after warm-up, over at least `minMs` and `minRuns`. */
async function time(
  run: () => Promise<unknown>,
  minMs: number,
  minRuns: number,
): Promise<{ p50: number; p99: number; runs: number }> {
  for (let i = 0; i < 5; i++) await run();
  const samples: number[] = [];
  const began = nowMs();
  while ((nowMs() - began < minMs || samples.length < minRuns) && samples.length < 20000) {
    const t = nowMs();
    await run();
    samples.push(nowMs() - t);
  }
  return { p50: percentile(samples, 50) * 1000, p99: percentile(samples, 99) * 1000, runs: samples.length };
}

export const kernels: Benchmark = {
  name: 'kernels',
  summary: 'binary dense and conv layers: bitwasm vs onnxruntime-node (1, 2 threads) and onnxruntime-web',
  async run(argv: string[], json: boolean): Promise<number> {
    let values;
    try {
      ({ values } = parseArgs({
        args: argv,
        strict: true,
        options: {
          'min-ms': { type: 'string', default: '400' },
          batches: { type: 'string', default: '1,64' },
          backends: { type: 'string', default: 'bitwasm,ort-node-1,ort-node-2,ort-web' },
        },
      }));
    } catch (err) {
      throw new CmpError(
        'BAD_FLAG',
        `${String((err as Error).message).split('\n')[0]} Flags: --min-ms N --batches 1,64 --backends LIST --json.`,
      );
    }
    const minMs = Number(values['min-ms']);
    const batches = values.batches.split(',').map(Number);
    if (!Number.isFinite(minMs) || minMs <= 0 || batches.some((b) => !Number.isInteger(b) || b <= 0)) {
      throw new CmpError(
        'BAD_FLAG',
        `--min-ms and --batches take positive numbers (got "${values['min-ms']}", "${values.batches}").`,
      );
    }
    const backendNames = values.backends.split(',');
    const cases = [
      denseCase('dab', 1024, 1024),
      denseCase('none', 1024, 1024),
      convCase('dab', 64, 64, 16, 3),
      convCase('none', 64, 64, 16, 3),
    ];
    const machine = describeMachine();
    const rows: Row[] = [];
    for (const c of cases) {
      const perSample = c.inputShape[0] * c.inputShape[1] * c.inputShape[2];
      const backends: { name: string; backend: Backend; weightBytes: number }[] = [];
      for (const name of backendNames) {
        if (name === 'bitwasm') {
          const engine = await createWasmEngine(c.plan);
          backends.push({
            name,
            weightBytes: engine.weightBytes,
            backend: {
              name,
              run: async (input, dims) => engine.run(input, dims[0]),
              dispose: async () => engine.dispose(),
            },
          });
          // The backend registry path (manifest checks, same kernels) is what users get; the plan is the layer alone.
          if (c.file.manifest) await (await createBitwasmBackend(c.file)).dispose();
        } else if (name.startsWith('ort-node-')) {
          const threads = Number(name.slice('ort-node-'.length));
          backends.push({
            name,
            weightBytes: c.floatWeightBytes,
            backend: await createOrtNodeBackend(c.file, { intraOpNumThreads: threads }),
          });
        } else if (name === 'ort-web') {
          backends.push({ name, weightBytes: c.floatWeightBytes, backend: await ortWebBackend.create(c.file) });
        } else {
          throw new CmpError(
            'BAD_FLAG',
            `Unknown backend "${name}" in --backends. Use bitwasm, ort-node-1, ort-node-2, ort-web.`,
          );
        }
      }
      for (const batch of batches) {
        const input = randomArray(batch * perSample, rng(3));
        const dims = [batch, ...c.inputShape];
        const measured: { name: string; p50: number; p99: number; runs: number; weightBytes: number }[] = [];
        for (const b of backends) {
          const t = await time(() => b.backend.run(input, dims), minMs, 20);
          measured.push({ name: b.name, ...t, weightBytes: b.weightBytes });
          process.stderr.write(`${c.name} batch ${batch} ${b.name}: ${t.p50.toFixed(1)} us\n`);
        }
        const base = measured.find((m) => m.name === 'ort-node-1');
        for (const m of measured) {
          rows.push({
            layer: c.name,
            batch,
            backend: m.name,
            p50Us: m.p50,
            p99Us: m.p99,
            runs: m.runs,
            speedupVsOrtNode1: base ? base.p50 / m.p50 : Number.NaN,
            weightBytes: m.weightBytes,
          });
        }
      }
      for (const b of backends) await b.backend.dispose();
    }
    const goals = evaluateGoals(rows);
    const inputs = {
      minMs,
      batches,
      backends: backendNames,
      weights: 'dab, random, seed 1/2',
      inputs: 'uniform [-1, 1]',
    };
    if (json) {
      process.stdout.write(`${JSON.stringify({ benchmark: 'kernels', machine, inputs, rows, goals }, null, 2)}\n`);
      return 0;
    }
    const out = [
      'kernels: one layer, p50 of one call (µs); ratio = onnxruntime-node 1 thread on the same file / this backend',
      `machine: ${machineLine(machine)}`,
      `inputs: ${JSON.stringify(inputs)}`,
      '',
      formatTable(
        ['layer', 'batch', 'backend', 'p50 µs', 'p99 µs', 'vs ort-node 1t', 'weight bytes'],
        rows.map((r) => [
          r.layer,
          r.batch,
          r.backend,
          r.p50Us.toFixed(1),
          r.p99Us.toFixed(1),
          `${r.speedupVsOrtNode1.toFixed(2)}x`,
          formatBytes(r.weightBytes),
        ]),
      ),
      '',
      'Goals (issue 5):',
      ...goals.map(
        (g) =>
          `  ${g.met ? 'MET   ' : 'MISSED'} ${g.goal}: ${g.value.toFixed(2)}x vs ${g.target}x (${g.met ? 'by' : 'short by'} ${Math.abs(g.value - g.target).toFixed(2)}x)`,
      ),
      '  (weight bytes for onnxruntime: float32 weights plus scale and shift, which it holds after folding the unpacking)',
    ];
    process.stdout.write(`${out.join('\n')}\n`);
    return 0;
  },
};

interface Goal {
  goal: string;
  met: boolean;
  value: number;
  target: number;
}

function evaluateGoals(rows: Row[]): Goal[] {
  const find = (layer: string, backend: string): Row | undefined =>
    rows.find((r) => r.batch === 1 && r.layer.startsWith(layer) && r.backend === backend);
  const goals: Goal[] = [];
  const bit = find('dense 1024x1024, dab in', 'bitwasm');
  const ortFloat = find('dense 1024x1024, float in', 'ort-node-1');
  const ortSame = find('dense 1024x1024, dab in', 'ort-node-1');
  if (bit && ortFloat) {
    const v = ortFloat.p50Us / bit.p50Us;
    goals.push({
      goal: 'batch 1 dense 1024x1024: bitwasm (dab in, popcount) >= 5x faster than ort-node 1 thread float MatMul (float in)',
      met: v >= GOALS.denseSpeedup,
      value: v,
      target: GOALS.denseSpeedup,
    });
  }
  if (bit && ortSame) {
    const v = ortSame.p50Us / bit.p50Us;
    goals.push({
      goal: 'same, against ort-node 1 thread on the same file (its DAB subgraph included)',
      met: v >= GOALS.denseSpeedup,
      value: v,
      target: GOALS.denseSpeedup,
    });
  }
  if (bit && ortSame) {
    const v = ortSame.weightBytes / bit.weightBytes;
    goals.push({
      goal: 'dense 1024x1024 resident weight memory >= 25x smaller',
      met: v >= GOALS.weightMemoryRatio,
      value: v,
      target: GOALS.weightMemoryRatio,
    });
  }
  return goals;
}
