// exit: early exit on the conv net: the calibrated Pareto set measured on the test split in onnxruntime-node
// (accuracy, mean and p99 batch-1 latency, exit shares) against the full network, with issue 4's goal.

import { observeExits, paretoSet, validationSplit } from '../src/compress/calibrate.js';
import { trainRun } from '../src/compress/train-run.js';
import { nowMs, percentile } from '../src/core/clock.js';
import type { FrozenModel } from '../src/core/frozen.js';
import { loadDataset, type Dataset } from '../src/data/datasets.js';
import { exportOnnx } from '../src/export/export-onnx.js';
import { measureStageLatency } from '../src/runtime/early-exit.js';
import { parseModelFile } from '../src/runtime/model-file.js';
import { formatTable } from '../src/cli/table.js';
import { atLeast, benchRecord, parseBenchFlags, positiveInt } from './common.js';
import { describeMachine, machineLine } from './machine.js';
import type { Benchmark } from './run.js';

interface Row {
  thresholds: number[];
  testAccuracy: number;
  meanMs: number;
  p99Ms: number;
  exitShares: number[];
  validationAccuracy: number;
}

export const exit: Benchmark = {
  name: 'exit',
  summary: 'early exit on the conv net: Pareto set in onnxruntime-node against the full network',
  async run(argv: string[], json: boolean): Promise<number> {
    const values = parseBenchFlags(argv, {
      dataset: { default: 'fashion-mnist' },
      epochs: { default: '5' },
      exits: { default: '1,2' },
      'limit-train': {},
      'limit-test': { default: '2000' },
      save: {},
    });
    const int = positiveInt;
    const epochs = int('epochs', values.epochs) as number;
    const exits = (values.exits as string).split(',').map((e) => int('exits', e) as number);
    const limitTrain = int('limit-train', values['limit-train']);
    const limitTest = int('limit-test', values['limit-test']);
    const data = await loadDataset(values.dataset as string, { limitTrain, limitTest });
    process.stderr.write(`exit: training the conv net with exits ${exits.join(',')} (${epochs} epochs)\n`);
    const trained = await trainRun(data, {
      arch: 'lenet',
      exits,
      binarizeWeights: 'none',
      binarizeActivations: 'none',
      epochs,
      batchSize: 100,
      learningRate: 0.002,
      seed: 1,
    });
    const frozen = trained.frozen;
    const validation = validationSplit(data, trained.training.validationCount ?? 0);
    const features = data.inputShape.reduce((a, b) => a * b, 1);
    const samples = Array.from({ length: 200 }, (_, i) => validation.x.slice(i * features, (i + 1) * features));
    const stageLatencyMs = await measureStageLatency(
      exportOnnx(frozen).stages.map((b, k) => parseModelFile(b, `stage${k + 1}`)),
      samples,
    );
    const { pareto } = paretoSet(await observeExits(frozen, data, validation), stageLatencyMs);
    process.stderr.write(
      `exit: ${pareto.length} Pareto points on ${validation.count} held-out samples; measuring each on the test split\n`,
    );
    const full = await measureOneGraph({ ...frozen, exits: [] }, data);
    const rows: Row[] = [];
    for (const point of pareto) {
      const calibrated = {
        ...frozen,
        exits: (frozen.exits ?? []).map((e, i) => ({ ...e, threshold: point.thresholds[i] })),
      };
      const measured = await measureOneGraph(calibrated, data);
      rows.push({ thresholds: point.thresholds, validationAccuracy: point.accuracy, ...measured });
    }
    const within = rows.filter((r) => r.testAccuracy >= full.testAccuracy - 0.01);
    const best = within.reduce<Row | undefined>((a, r) => (!a || r.meanMs < a.meanMs ? r : a), undefined);
    const speedup = best ? full.meanMs / best.meanMs : 0;
    const goal = atLeast('mean latency reduction within 1 pt of the full network', speedup, 2, 'x');
    const machine = describeMachine();
    const inputs = {
      dataset: data.name,
      arch: 'lenet',
      exits,
      epochs,
      trainCount: trained.training.trainCount,
      validationCount: validation.count,
      testCount: data.test.count,
      stageLatencyMs,
    };
    const record = benchRecord('exit', { inputs, full, rows, best, goal }, values.save);
    if (json) {
      process.stdout.write(`${record}\n`);
      return 0;
    }
    const pct = (v: number): string => `${(v * 100).toFixed(2)}%`;
    const out = [
      `exit: conv net with exits after blocks ${exits.join(',')} on ${data.name}, ${epochs} epochs; thresholds from ${validation.count} held-out samples, measured on ${data.test.count} test images, batch 1, one-graph model in onnxruntime-node`,
      `machine: ${machineLine(machine)}`,
      '',
      formatTable(
        [
          'thresholds (nats)',
          'val. accuracy',
          'test accuracy',
          'mean ms',
          'p99 ms',
          'speed-up',
          'exit shares (..., final)',
        ],
        [
          ...rows.map((r) => [
            r.thresholds.map((t) => (t < 0 ? 'never' : t.toFixed(3))).join(' / '),
            pct(r.validationAccuracy),
            pct(r.testAccuracy),
            r.meanMs.toFixed(3),
            r.p99Ms.toFixed(3),
            `${(full.meanMs / r.meanMs).toFixed(2)}x`,
            r.exitShares.map(pct).join(' / '),
          ]),
          [
            'full network (no exits)',
            '-',
            pct(full.testAccuracy),
            full.meanMs.toFixed(3),
            full.p99Ms.toFixed(3),
            '1.00x',
            '-',
          ],
        ],
      ),
      '',
      `Goal (issue 4): ${goal.met ? 'MET' : 'MISSED'}, ${speedup.toFixed(2)}x mean latency reduction within 1 pt of the full network (${best ? pct(best.testAccuracy) : '-'} vs ${pct(full.testAccuracy)}), target 2x (${goal.met ? 'by' : 'short by'} ${Math.abs(goal.margin).toFixed(2)}x).`,
    ];
    process.stdout.write(`${out.join('\n')}\n`);
    return 0;
  },
};

/** Accuracy, exit shares and batch-1 latency of one exported model over the test split in onnxruntime-node. */
async function measureOneGraph(
  frozen: FrozenModel,
  data: Dataset,
): Promise<Omit<Row, 'thresholds' | 'validationAccuracy'>> {
  const file = parseModelFile(exportOnnx(frozen).bytes, 'exit.onnx');
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(file.bytes, { graphOptimizationLevel: 'all' });
  const features = data.inputShape.reduce((a, b) => a * b, 1);
  const exits = (frozen.exits ?? []).length;
  const shares = new Array<number>(exits + 1).fill(0);
  const times: number[] = [];
  let correct = 0;
  try {
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < data.test.count; i++) {
        const x = new ort.Tensor('float32', data.test.x.slice(i * features, (i + 1) * features), [
          1,
          ...data.inputShape,
        ]);
        const began = nowMs();
        const out = await session.run({ input: x });
        const ms = nowMs() - began;
        if (round === 0) continue; // warm-up pass
        times.push(ms);
        const logits = out.logits.data as Float32Array;
        let best = 0;
        for (let c = 1; c < logits.length; c++) if (logits[c] > logits[best]) best = c;
        correct += Number(best === data.test.y[i]);
        const taken = exits ? Number((out.exit_index.data as BigInt64Array)[0]) : 0;
        shares[taken === 0 ? exits : taken - 1]++;
      }
    }
  } finally {
    await session.release();
  }
  const n = data.test.count;
  return {
    testAccuracy: correct / n,
    meanMs: times.reduce((a, b) => a + b, 0) / n,
    p99Ms: percentile(times, 99),
    exitShares: shares.map((s) => s / n),
  };
}
