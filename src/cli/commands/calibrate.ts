// cmp calibrate: choose early-exit entropy thresholds on held-out data for a target accuracy or a latency budget.

import {
  calibrate,
  checkCalibrationGoal,
  observeExits,
  validationSplit,
  type CalibrationGoal,
} from '../../compress/calibrate.js';
import { freeze } from '../../core/frozen.js';
import { loadRun, saveRun } from '../../core/run.js';
import { tensorShapes } from '../../core/spec.js';
import { CmpError } from '../../errors.js';
import { exportOnnx } from '../../export/export-onnx.js';
import { measureStageLatency } from '../../runtime/early-exit.js';
import { parseModelFile } from '../../runtime/model-file.js';
import type { Parsed } from '../args.js';
import type { CliIo, Command } from '../command.js';
import { DATA_FLAG, loadDataFlag, runConsumer } from '../data-flag.js';
import { formatPercent, formatTable } from '../table.js';

/** Validation samples whose batch-1 stage latency is measured. */
const LATENCY_SAMPLES = 200;

export const calibrateCommand: Command = {
  def: {
    name: 'calibrate',
    summary:
      'Choose early-exit thresholds on held-out data for a target accuracy or a latency budget; prints the Pareto set.',
    positionals: ['RUN'],
    flags: {
      data: DATA_FLAG,
      'target-accuracy': {
        type: 'number',
        value: 'A',
        help: 'fastest thresholds reaching this validation accuracy (0..1]',
      },
      'latency-budget-ms': { type: 'number', value: 'MS', help: 'most accurate thresholds within this mean latency' },
      thresholds: { type: 'list', value: 'T,T', help: 'set the entropy thresholds (nats) by hand' },
    },
    examples: [
      'cmp calibrate runs/fm-exit --data fashion-mnist --target-accuracy 0.88',
      'cmp calibrate runs/fm-exit --latency-budget-ms 0.2',
    ],
  },
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const f = parsed.flags;
    const goals = ['target-accuracy', 'latency-budget-ms', 'thresholds'].filter((k) => f[k] !== undefined);
    if (goals.length !== 1) {
      throw new CmpError(
        'BAD_FLAG',
        'cmp calibrate needs exactly one of --target-accuracy, --latency-budget-ms or --thresholds.',
      );
    }
    const goal: CalibrationGoal =
      f['target-accuracy'] !== undefined
        ? { targetAccuracy: f['target-accuracy'] as number }
        : f['latency-budget-ms'] !== undefined
          ? { latencyBudgetMs: f['latency-budget-ms'] as number }
          : { thresholds: (f.thresholds as string[]).map(Number) };
    const run = loadRun(parsed.positionals[0]);
    const spec = run.record.spec;
    if (!spec.exits?.length)
      throw new CmpError('RUN_INVALID', `Run ${run.dir} has no early exits. Train one with --exits 1,2.`);
    checkCalibrationGoal(goal, spec.exits.length, spec.labels.length);
    const data = await loadDataFlag(f.data, io, runConsumer(run.dir, spec, run.record.training.dataset));
    const split = validationSplit(data, run.record.training.validationCount ?? 0);
    io.progress.update(`calibrate: running ${split.count} validation samples through every exit`);
    const frozen = freeze(spec, run.tensors);
    const observations = await observeExits(frozen, data, split);
    io.progress.update('calibrate: timing each stage in onnxruntime-node');
    const features = data.inputShape.reduce((a, b) => a * b, 1);
    // Stage 1 of a static-mask model takes the compact kept features, as its receiver would.
    const kept = frozen.mask?.features;
    const samples = Array.from({ length: Math.min(LATENCY_SAMPLES, split.count) }, (_, i) => {
      const sample = split.x.subarray(i * features, (i + 1) * features);
      return kept ? Float32Array.from(kept, (f) => sample[f]) : sample.slice();
    });
    const stageFiles = exportOnnx(frozen).stages.map((bytes, k) => parseModelFile(bytes, `stage${k + 1}`));
    const stageLatencyMs = await measureStageLatency(stageFiles, samples);
    const result = calibrate(observations, stageLatencyMs, goal, spec.labels.length);
    spec.exits = spec.exits.map((e, i) => ({ ...e, threshold: result.chosen.thresholds[i] }));
    const shapes = tensorShapes(spec);
    const tensors = new Map(
      [...run.tensors].map(([name, data]) => [name, { shape: shapes.get(name) ?? [data.length], data }]),
    );
    saveRun(
      run.dir,
      { ...run.record, spec, calibration: { validationCount: split.count, stageLatencyMs, ...result } },
      tensors,
    );
    io.progress.done();
    if (io.json) {
      io.out(JSON.stringify({ run: run.dir, stageLatencyMs, ...result }, null, 2));
      return 0;
    }
    const row = (p: typeof result.chosen, mark: string): (string | number)[] => [
      mark,
      p.thresholds.map((t) => (t < 0 ? 'never' : t.toFixed(3))).join(' / '),
      formatPercent(p.accuracy),
      p.meanLatencyMs.toFixed(3),
      p.exitShares.map((s) => formatPercent(s)).join(' / '),
    ];
    io.out(
      formatTable(
        ['', 'thresholds (nats)', 'accuracy', 'mean ms', 'exit shares (..., final)'],
        [...result.pareto.map((p) => row(p, p === result.chosen ? '*' : '')), row(result.full, 'full')],
      ),
    );
    io.out(
      `\nChosen (*): ${formatPercent(result.chosen.accuracy)} at ${result.chosen.meanLatencyMs.toFixed(3)} ms mean, ` +
        `${(result.full.meanLatencyMs / result.chosen.meanLatencyMs).toFixed(2)}x faster than the full network ` +
        `(${formatPercent(result.full.accuracy)}), on ${split.count} held-out samples. Saved in ${run.dir}; export it again.`,
    );
    return 0;
  },
};
