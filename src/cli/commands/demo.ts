// cmp demo: the main job in one command: train float and DAB-binarized MLPs, export both, evaluate them with
// onnxruntime, and print one comparison table.

import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { trainRun } from '../../compress/train-run.js';
import { exportRun } from '../../export/export-run.js';
import { createBackend } from '../../runtime/backends.js';
import { evaluate } from '../../runtime/evaluate.js';
import { readModelFile } from '../../runtime/model-file.js';
import { inspectModel } from '../../runtime/inspect.js';
import type { BinarizeMode } from '../../core/spec.js';
import type { Parsed } from '../args.js';
import type { CliIo, Command } from '../command.js';
import { DATA_FLAG, loadDataFlag } from '../data-flag.js';
import { formatDuration, plural } from '../progress.js';
import { formatBytes, formatPercent, formatTable } from '../table.js';
import { trainProgress } from '../train-progress.js';

/** The demo's models: a float baseline and the same MLP with DAB binary weights. */
const DEMO_MODELS: readonly { name: string; weights: BinarizeMode }[] = Object.freeze([
  { name: 'float', weights: 'none' },
  { name: 'dab', weights: 'dab' },
]);

export const demoCommand: Command = {
  def: {
    name: 'demo',
    summary: 'Train a float and a DAB-binarized MLP, export both to ONNX, evaluate them with onnxruntime, compare.',
    positionals: [],
    flags: {
      data: DATA_FLAG,
      epochs: { type: 'int', default: '3', help: 'epochs per model' },
      'limit-train': { type: 'int', default: '30000', help: 'training samples per epoch' },
      out: { type: 'string', value: 'DIR', default: 'cmp-demo', help: 'folder for the runs and ONNX files' },
    },
    examples: ['cmp demo', 'cmp demo --data mnist --epochs 5 --json'],
  },
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const f = parsed.flags;
    const out = (f.out as string) ?? 'cmp-demo';
    const epochs = (f.epochs as number) ?? 3;
    // Before any work: the demo writes into the current folder unless told otherwise.
    io.progress.log(`cmp demo writes its runs and ONNX files to ${resolve(out)}/ (--out DIR writes them elsewhere).`);
    const data = await loadDataFlag(f.data, io, undefined, { limitTrain: (f['limit-train'] as number) ?? 30000 });
    io.progress.log(`cmp demo: a float and a DAB MLP, ${plural(epochs, 'epoch')} each.`);
    mkdirSync(out, { recursive: true });
    const rows = [];
    for (const model of DEMO_MODELS) {
      const runDir = join(out, `mlp-${model.name}`);
      const onnxPath = join(out, `mlp-${model.name}.onnx`);
      const trained = await trainRun(data, {
        arch: 'mlp',
        binarizeWeights: model.weights,
        binarizeActivations: 'none',
        epochs,
        batchSize: 100,
        learningRate: 0.002,
        seed: 1,
        out: runDir,
        onProgress: trainProgress(io.progress, model.name),
      });
      exportRun(runDir, onnxPath);
      const file = readModelFile(onnxPath);
      const backend = await createBackend('ort-node', file);
      const result = await evaluate(backend, file, data).finally(() => backend.dispose());
      const report = inspectModel(file);
      const weights = (report.layers ?? []).reduce((a, l) => a + l.weightCount, 0);
      const weightBytes = (report.layers ?? []).reduce((a, l) => a + l.weightBytes, 0);
      rows.push({
        model: `mlp ${model.name}`,
        file: onnxPath,
        accuracy: result.accuracy,
        frameworkAccuracy: trained.testAccuracy,
        fileBytes: file.bytes.length,
        bitsPerWeight: (weightBytes * 8) / weights,
        trainMs: trained.training.durationMs,
      });
    }
    io.progress.done();
    if (io.json) {
      io.out(
        JSON.stringify(
          { dataset: data.name, epochs, trainCount: data.train.count, testCount: data.test.count, models: rows },
          null,
          2,
        ),
      );
      return 0;
    }
    const base = rows[0];
    io.out(
      formatTable(
        ['model', 'test accuracy (onnxruntime)', 'vs float', 'ONNX size', 'vs float', 'bits/weight', 'train time'],
        rows.map((r) => [
          r.model,
          formatPercent(r.accuracy),
          r === base ? 'baseline' : `${((r.accuracy - base.accuracy) * 100).toFixed(2)} pt`,
          formatBytes(r.fileBytes),
          r === base ? 'baseline' : `${(base.fileBytes / r.fileBytes).toFixed(1)}x smaller`,
          r.bitsPerWeight.toFixed(3),
          formatDuration(r.trainMs),
        ]),
      ),
    );
    io.out(
      `\n${data.name}, ${data.test.count} test images. Files in ${out}/. Inspect one: cmp inspect ${rows[rows.length - 1].file}`,
    );
    return 0;
  },
};
