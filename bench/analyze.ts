// analyze: cmp analyze against what the emulated board reports (issue 24). Each model is uploaded to the firmware in
// QEMU: the arena and model bytes cmp analyze predicts are compared with MODEL_INFO's, and its latency estimate with
// the device's measured time of a whole inference, the cost table fitted on the *other* models' layers (leave one
// model out), so no model is estimated from its own measurements.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trainRun, type TrainRunOptions } from '../src/compress/train-run.js';
import { loadDataset } from '../src/data/datasets.js';
import { exportRun } from '../src/export/export-run.js';
import { buildFirmware, requireTool } from '../src/link/firmware-build.js';
import { convertToMcuModel } from '../src/core/mcu-model.js';
import { bootQemu } from '../src/link/qemu.js';
import { analyzeModel } from '../src/profile/analyze.js';
import { COST_TABLE_FORMAT, fitCosts, fitTotals, type CostSample, type CostTable } from '../src/profile/cost-table.js';
import { LAYER_COST_RUNS, measureHostCosts, type HostCostMeasure } from '../src/profile/host-costs.js';
import { createBackend } from '../src/runtime/backends.js';
import { inputDimsFor } from '../src/runtime/evaluate.js';
import { readModelFile } from '../src/runtime/model-file.js';
import { CmpError } from '../src/errors.js';
import { formatTable } from '../src/cli/table.js';
import {
  atMost,
  benchRecord,
  goalLines,
  parseBenchFlags,
  positiveInt,
  RowCache,
  timeInterleaved,
  type Goal,
} from './common.js';
import { describeMachine, machineLine } from './machine.js';
import type { Benchmark } from './run.js';

/** The models: binary and float MLPs of several widths, so every kernel appears in at least two of them. */
const MODELS: readonly { name: string; train: Partial<TrainRunOptions> }[] = Object.freeze([
  { name: 'dab-784-64-64-10', train: { widths: [64, 64], binarizeWeights: 'dab', binarizeActivations: 'dab' } },
  { name: 'dab-784-128-64-10', train: { widths: [128, 64], binarizeWeights: 'dab', binarizeActivations: 'dab' } },
  { name: 'dab-784-32-32-10', train: { widths: [32, 32], binarizeWeights: 'dab', binarizeActivations: 'dab' } },
  { name: 'float-784-16-10', train: { widths: [16], binarizeWeights: 'none', binarizeActivations: 'none' } },
  { name: 'float-784-32-10', train: { widths: [32], binarizeWeights: 'none', binarizeActivations: 'none' } },
  { name: 'dab-784-256-10', train: { widths: [256], binarizeWeights: 'dab', binarizeActivations: 'dab' } },
  { name: 'float-784-8-10', train: { widths: [8], binarizeWeights: 'none', binarizeActivations: 'none' } },
  { name: 'dab-784-96-96-10', train: { widths: [96, 96], binarizeWeights: 'dab', binarizeActivations: 'dab' } },
]);

/**
 * More models for the host backends only (the float ones do not fit the board's 128 KiB arena): every structure
 * (float or binary, one or two hidden layers, binarized inputs or not) at three or more sizes, so a model left out
 * is estimated from models around it, not extrapolated from smaller ones.
 */
const HOST_EXTRA_MODELS: readonly { name: string; train: Partial<TrainRunOptions> }[] = Object.freeze([
  { name: 'float-784-64-10', train: { widths: [64], binarizeWeights: 'none', binarizeActivations: 'none' } },
  { name: 'float-784-128-10', train: { widths: [128], binarizeWeights: 'none', binarizeActivations: 'none' } },
  { name: 'float-784-256-10', train: { widths: [256], binarizeWeights: 'none', binarizeActivations: 'none' } },
  { name: 'float-784-32-32-10', train: { widths: [32, 32], binarizeWeights: 'none', binarizeActivations: 'none' } },
  { name: 'float-784-64-64-10', train: { widths: [64, 64], binarizeWeights: 'none', binarizeActivations: 'none' } },
  { name: 'float-784-128-64-10', train: { widths: [128, 64], binarizeWeights: 'none', binarizeActivations: 'none' } },
  { name: 'dab-784-64-10', train: { widths: [64], binarizeWeights: 'dab', binarizeActivations: 'dab' } },
  { name: 'dab-784-128-10', train: { widths: [128], binarizeWeights: 'dab', binarizeActivations: 'dab' } },
  { name: 'dab-784-512-10', train: { widths: [512], binarizeWeights: 'dab', binarizeActivations: 'dab' } },
  { name: 'dab-784-16-16-10', train: { widths: [16, 16], binarizeWeights: 'dab', binarizeActivations: 'dab' } },
  { name: 'dab-784-384-128-10', train: { widths: [384, 128], binarizeWeights: 'dab', binarizeActivations: 'dab' } },
]);

/** What the board reported for one model. */
interface Measured {
  modelBytes: number;
  arenaUsed: number;
  /** Median time of a whole inference (RESULT cycles), ms. */
  deviceMs: number;
  /** Per layer: kernel, units, median ms. */
  samples: CostSample[];
  /** Median time outside the layers, ms. */
  overheadMs: number;
}

/** Host backends whose batch-1 p50 the estimate is checked against (what cmp run times). */
const HOST_BACKENDS: readonly string[] = Object.freeze(['ort-node', 'bitwasm']);

interface HostRow {
  backend: string;
  model: string;
  p50Ms: number;
  estimateMs: number;
  errorPct: number;
}

interface Row extends Measured {
  model: string;
  predictedModelBytes: number;
  predictedArena: number;
  estimateMs: number;
  errorPct: number;
}

export const analyze: Benchmark = {
  name: 'analyze',
  summary: 'cmp analyze vs the QEMU board: arena and model bytes exact, latency estimate (leave one model out)',
  async run(argv: string[], json: boolean): Promise<number> {
    const values = parseBenchFlags(argv, {
      runs: { default: '15' },
      'limit-train': { default: '2000' },
      'host-budget-ms': { default: '3000' },
      clock: { default: 'instructions' },
      save: {},
    });
    positiveInt('host-budget-ms', values['host-budget-ms']);
    if (values.clock !== 'instructions' && values.clock !== 'host')
      throw new CmpError('BAD_FLAG', `--clock must be instructions or host (got "${values.clock}").`);
    const runs = positiveInt('runs', values.runs) as number;
    const limitTrain = positiveInt('limit-train', values['limit-train']) as number;
    requireTool('qemu-system-arm');
    const log = (text: string): boolean => process.stderr.write(`analyze: ${text}\n`);
    const began = Date.now();
    // Latency does not depend on what the weights learned: one epoch on a slice trains each model (seed 1).
    const data = await loadDataset('fashion-mnist', { limitTrain, limitTest: runs });
    const cache = new RowCache<Measured>('analyze', { runs, limitTrain, models: MODELS, clock: values.clock, v: 1 });
    const dir = mkdtempSync(join(tmpdir(), 'cmp-bench-analyze-'));
    const firmware = await buildFirmware({ board: 'mps2-an385', outDir: join(dir, 'fw') });
    // Instruction counting: under host time the board's counter follows whatever else the host runs (a loaded 2-core
    // machine gave one kernel 39 to 157 ns per MAC within one run), which no cost table can predict.
    const icountShift = values.clock === 'instructions' ? 5 : undefined;
    const session = await bootQemu({ elfPath: firmware.elfPath, icountShift, client: { timeoutMs: 5000 } });
    const files = new Map<string, string>();
    const measured = new Map<string, Measured>();
    try {
      for (const m of [...MODELS, ...HOST_EXTRA_MODELS]) {
        log(`training ${m.name}`);
        const run = join(dir, m.name);
        await trainRun(data, {
          arch: 'mlp',
          epochs: 1,
          batchSize: 50,
          learningRate: 0.002,
          seed: 1,
          ...m.train,
          out: run,
        } as TrainRunOptions);
        const path = join(dir, `${m.name}.onnx`);
        exportRun(run, path);
        files.set(m.name, path);
        if (!MODELS.includes(m)) continue;
        const cached = cache.get(m.name);
        if (cached) {
          measured.set(m.name, cached);
          continue;
        }
        log(`measuring ${m.name} on the board`);
        const file = readModelFile(path);
        const mcu = convertToMcuModel(file);
        const info = await session.client.uploadModel(mcu.blob);
        const clockHz = session.capabilities.clockHz;
        const layers = analyzeModel(file, { target: 'mcu' }).layers;
        const perLayer: number[][] = layers.map(() => []);
        const whole: number[] = [];
        const outside: number[] = [];
        const features = 784;
        for (let i = 0; i < runs; i++) {
          const x = Uint8Array.from(data.test.x.subarray(i * features, (i + 1) * features), (v) => Math.round(v * 255));
          const r = await session.client.infer(x);
          const p = await session.client.profile();
          p.layerCycles.forEach((c, l) => c > 0 && perLayer[l].push((c / clockHz) * 1000));
          whole.push((r.cycles / clockHz) * 1000);
          outside.push(((r.cycles - p.layerCycles.reduce((a, b) => a + b, 0)) / clockHz) * 1000);
        }
        const row: Measured = {
          modelBytes: info.bytes,
          arenaUsed: info.arenaUsed,
          deviceMs: median(whole),
          samples: layers.flatMap((l, i) =>
            perLayer[i].length ? [{ kernel: l.kernel, units: l.units, ms: median(perLayer[i]), model: m.name }] : [],
          ),
          overheadMs: Math.max(0, median(outside)),
        };
        cache.put(m.name, row);
        measured.set(m.name, row);
      }
    } finally {
      await session.close();
    }
    const rows: Row[] = MODELS.map((m) => {
      const own = measured.get(m.name) as Measured;
      const others = MODELS.filter((o) => o.name !== m.name).map((o) => measured.get(o.name) as Measured);
      const costs: CostTable = {
        format: COST_TABLE_FORMAT,
        device: 'mps2-an385 (QEMU)',
        clock: 'SysTick at 25 MHz, QEMU virtual clock',
        updatedAt: new Date().toISOString(),
        kernels: fitCosts(others.flatMap((o) => o.samples)),
        overheadMs: median(others.map((o) => o.overheadMs)),
        samples: [],
      };
      const a = analyzeModel(readModelFile(files.get(m.name) as string), { target: 'mcu', costs });
      const estimateMs = a.latency?.ms ?? Number.NaN;
      return {
        model: m.name,
        ...own,
        predictedModelBytes: a.mcu?.modelBytes ?? 0,
        predictedArena: a.mcu?.arenaUploadedBytes ?? 0,
        estimateMs,
        errorPct: (100 * (estimateMs - own.deviceMs)) / own.deviceMs,
      };
    });
    // The host: each backend's batch-1 p50 per model (interleaved, as cmp run calls it), and the estimate from the
    // table fitted on the other models: bitwasm times its layers, so as on the board over their layers (and the
    // median time outside them); onnxruntime times no single layer, so over their whole-model p50s.
    const hostRows: HostRow[] = [];
    const hostModels = [...MODELS, ...HOST_EXTRA_MODELS];
    for (const backendName of HOST_BACKENDS) {
      log(`timing ${backendName}`);
      const entries = [];
      const x = data.test.x.slice(0, 784);
      for (const m of hostModels) {
        const file = readModelFile(files.get(m.name) as string);
        const backend = await createBackend(backendName, file);
        const dims = inputDimsFor(file, data, 1);
        entries.push({ name: m.name, file, backend, dims, call: () => backend.run(x, dims) });
      }
      const timings = await timeInterleaved(
        entries.map((e) => e.call),
        Number(values['host-budget-ms']),
      );
      const measures: HostCostMeasure[] = [];
      for (const [i, e] of entries.entries()) {
        measures.push(await measureHostCosts(e.backend, e.file, x, e.dims, timings[i].p50Ms));
        await e.backend.dispose();
      }
      entries.forEach((e, i) => {
        const others = measures.filter((_, j) => j !== i);
        const base = {
          format: COST_TABLE_FORMAT,
          device: `host-${backendName}`,
          clock: 'performance.now()',
          updatedAt: new Date().toISOString(),
        } as const;
        let costs: CostTable;
        if (measures[i].samples) {
          costs = {
            ...base,
            kernels: fitCosts(others.flatMap((o, j) => (o.samples ?? []).map((s) => ({ ...s, model: String(j) })))),
            overheadMs: median(others.map((o) => o.overheadMs ?? 0)),
            samples: [],
          };
        } else {
          const fit = fitTotals(others.map((o, j) => ({ model: String(j), units: o.units, ms: o.p50Ms })));
          costs = { ...base, kernels: fit.kernels, overheadMs: fit.overheadMs, samples: [], models: [] };
        }
        const estimateMs = analyzeModel(e.file, { target: 'host', costs }).latency?.ms ?? Number.NaN;
        const p50Ms = measures[i].p50Ms;
        hostRows.push({
          backend: backendName,
          model: e.name,
          p50Ms,
          estimateMs,
          errorPct: (100 * (estimateMs - p50Ms)) / p50Ms,
        });
      });
    }
    const worst = Math.max(...rows.map((r) => Math.abs(r.errorPct)));
    const boardModels = new Set(MODELS.map((m) => m.name));
    const mismatches = rows.filter((r) => r.predictedArena !== r.arenaUsed || r.predictedModelBytes !== r.modelBytes);
    const goals: Goal[] = [
      atMost('cmp analyze arena and model bytes differ from the firmware (models)', mismatches.length, 0, 'models'),
      atMost('largest |estimate - measured device time| (leave one model out)', worst, 25, '%'),
      // The issue's goal is on the models deployed to the board; the host-only ones are more calibration.
      ...HOST_BACKENDS.map((b) =>
        atMost(
          `largest |estimate - ${b} batch-1 p50| on this machine, the ${MODELS.length} board models (leave one out)`,
          worstHost(hostRows, b, boardModels),
          25,
          '%',
        ),
      ),
    ];
    const elapsedS = (Date.now() - began) / 1000;
    if (json) {
      process.stdout.write(
        `${benchRecord('analyze', { inputs: { runs, limitTrain, models: MODELS, hostModels: HOST_EXTRA_MODELS }, rows, hostRows, goals, elapsedS }, values.save)}\n`,
      );
      return 0;
    }
    const lines = [
      formatTable(
        ['model', 'model B (analyze/device)', 'arena B (analyze/device)', 'est. ms', 'device ms', 'error'],
        rows.map((r) => [
          r.model,
          `${r.predictedModelBytes}/${r.modelBytes}`,
          `${r.predictedArena}/${r.arenaUsed}`,
          r.estimateMs.toFixed(3),
          r.deviceMs.toFixed(3),
          `${r.errorPct >= 0 ? '+' : ''}${r.errorPct.toFixed(1)}%`,
        ]),
      ),
      '',
      formatTable(
        ['host backend', 'model', 'est. ms', 'p50 ms', 'error'],
        hostRows.map((r) => [
          r.backend,
          r.model,
          r.estimateMs.toFixed(4),
          r.p50Ms.toFixed(4),
          `${r.errorPct >= 0 ? '+' : ''}${r.errorPct.toFixed(1)}%`,
        ]),
      ),
      '',
      `Inputs: QEMU mps2-an385, SysTick at 25 MHz on QEMU's virtual clock, ${values.clock === 'instructions' ? 'which -icount shift=5 advances 32 ns per instruction (a Cortex-M3 at 31.25 MHz and 1 instruction per cycle; not a real Cortex-M3 timing)' : 'which follows host time (the emulator on this host, not a Cortex-M3)'};`,
      `Also: ${runs} Fashion-MNIST test images per model (medians), models trained 1 epoch on ${limitTrain} images; each estimate uses the cost table fitted on the other models (the board: the other ${MODELS.length - 1}, over their layers; a host backend: the other ${hostModels.length - 1}, ${HOST_EXTRA_MODELS.length} of them host-only, bitwasm over their layers' medians (${LAYER_COST_RUNS} profiled calls) and ort-node over their batch-1 p50s; ${values['host-budget-ms']} ms of interleaved calls per model).`,
      `Paper/vendor figure: none (ST Edge AI and Edge Impulse publish no estimate error to compare).`,
      machineLine(describeMachine()),
      `Over all ${hostModels.length} host models (the host-only ones left out in turn too): ${HOST_BACKENDS.map((b) => `${b} worst ${worstHost(hostRows, b).toFixed(1)}%`).join(', ')}.`,
      `Took ${elapsedS.toFixed(0)} s.`,
      ...goalLines(goals, 1),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    if (values.save)
      benchRecord('analyze', { inputs: { runs, limitTrain }, rows, hostRows, goals, elapsedS }, values.save);
    return 0;
  },
};

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : 0;
}

/** The largest |error| of `backend`'s rows, over `models` (default: every row), %. */
function worstHost(rows: readonly HostRow[], backend: string, models?: ReadonlySet<string>): number {
  return Math.max(
    ...rows.filter((r) => r.backend === backend && (!models || models.has(r.model))).map((r) => Math.abs(r.errorPct)),
  );
}
