// import: the third-party LeNet-5 (PyTorch ONNX) as it comes, imported, fine-tuned with DAB binarization, and pruned
// by MINT: MNIST accuracy, ONNX bytes and batch-1 latency on every backend, against the original file.

import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pruneRun } from '../src/compress/prune-run.js';
import { trainRun } from '../src/compress/train-run.js';
import { nowMs, percentile } from '../src/core/clock.js';
import { freeze } from '../src/core/frozen.js';
import { loadRun } from '../src/core/run.js';
import { withBinarization } from '../src/core/spec.js';
import { loadDataset, type Dataset } from '../src/data/datasets.js';
import { CmpError } from '../src/errors.js';
import { exportOnnx } from '../src/export/export-onnx.js';
import { importRun } from '../src/import/import-run.js';
import { createBackend } from '../src/runtime/backends.js';
import { evaluate, inputDimsFor } from '../src/runtime/evaluate.js';
import { callerNormalization, parseModelFile, type ModelFile } from '../src/runtime/model-file.js';
import { formatBytes, formatTable } from '../src/cli/table.js';
import { benchRecord, parseBenchFlags, positiveInt } from './common.js';
import { describeMachine, machineLine } from './machine.js';
import type { Benchmark } from './run.js';

/** The model of issue 9: a PyTorch export nobody here wrote (see ../shared/models/README.md; CMP_SHARED_DIR moves it). */
const DEFAULT_MODEL = process.env.CMP_SHARED_DIR
  ? join(process.env.CMP_SHARED_DIR, 'models', 'lenet5-mnist-pytorch.onnx')
  : fileURLToPath(new URL('../../shared/models/lenet5-mnist-pytorch.onnx', import.meta.url));
const BACKENDS: readonly string[] = Object.freeze(['ort-node', 'ort-web', 'bitwasm']);

interface Latency {
  backend: string;
  /** p50 of batch-1 runs, milliseconds; undefined when the backend refused the model. */
  p50Ms?: number;
  /** Why the backend refused the model: "NAME: reason". */
  refused?: string;
}

interface Row {
  model: string;
  accuracy: number;
  onnxBytes: number;
  latency: Latency[];
}

export const importBench: Benchmark = {
  name: 'import',
  summary:
    'the PyTorch LeNet-5 imported, DAB-binarized and MINT-pruned: accuracy, ONNX bytes, batch-1 latency per backend',
  async run(argv: string[], json: boolean): Promise<number> {
    const values = parseBenchFlags(argv, {
      model: { default: DEFAULT_MODEL },
      epochs: { default: '2' },
      retrain: { default: '2' },
      sparsity: { default: '0.8' },
      'limit-train': {},
      'limit-test': {},
      samples: { default: '300' },
      backends: { default: BACKENDS.join(',') },
      save: {},
    });
    const epochs = positiveInt('epochs', values.epochs) as number;
    const retrain = positiveInt('retrain', values.retrain) as number;
    const samples = positiveInt('samples', values.samples) as number;
    const limitTrain = positiveInt('limit-train', values['limit-train']);
    const limitTest = positiveInt('limit-test', values['limit-test']);
    const sparsity = Number(values.sparsity);
    if (!(sparsity > 0 && sparsity < 1))
      throw new CmpError('BAD_FLAG', `--sparsity must be a number in (0, 1) (got "${values.sparsity}").`);
    const backends = (values.backends as string).split(',');
    const model = values.model as string;
    const log = (text: string): boolean => process.stderr.write(`${text}\n`);
    const data = await loadDataset('mnist', { limitTrain, limitTest });
    const dir = mkdtempSync(join(tmpdir(), 'cmp-bench-import-'));
    const rows: Row[] = [];
    const started = nowMs();

    const originalBytes = readFileSync(model);
    rows.push(await measure('original (PyTorch ONNX)', parseModelFile(originalBytes, model), data, backends, samples));
    log(`original: ${(rows[0].accuracy * 100).toFixed(2)}%`);

    const run = join(dir, 'lenet');
    const imported = await importRun(model, { mean: 0, std: 1, data, out: run });
    const importedRun = loadRun(run);
    rows.push(
      await measure(
        'imported (float)',
        parseOnnx(freeze(importedRun.record.spec, importedRun.tensors)),
        data,
        backends,
        samples,
      ),
    );
    log(`imported: ${(rows[1].accuracy * 100).toFixed(2)}%, max abs diff ${imported.summary.check?.maxAbsDiff}`);

    log(`fine-tuning with dab weights (${epochs} epochs on ${data.train.count} images)`);
    const tuned = await trainRun(data, {
      arch: importedRun.record.spec.arch,
      binarizeWeights: 'dab',
      binarizeActivations: 'none',
      epochs,
      batchSize: 100,
      learningRate: 0.002,
      seed: 1,
      from: {
        dir: run,
        spec: withBinarization(importedRun.record.spec, {
          binarizeWeights: 'dab',
          keepFloatWeights: [],
          keepFloatInputs: [],
        }),
        tensors: importedRun.tensors,
      },
    });
    rows.push(await measure(`dab weights, ${epochs} epochs`, parseOnnx(tuned.frozen), data, backends, samples));
    log(`dab: ${(rows[2].accuracy * 100).toFixed(2)}%`);

    log(`MINT pruning to ${sparsity} sparsity, ${retrain} fine-tuning epochs`);
    const pruned = await pruneRun(importedRun, data, {
      method: 'mint',
      sparsity,
      scope: 'per-layer',
      groupSize: 1,
      samplesPerClass: 250,
      bins: 8,
      retrain,
      batchSize: 100,
      learningRate: 0.001,
      seed: 1,
    });
    const removed = 1 - pruned.pruning.weightsAfter / pruned.pruning.weightsBefore;
    rows.push(
      await measure(
        `MINT ${(removed * 100).toFixed(1)}% pruned, ${retrain} epochs`,
        parseOnnx(pruned.frozen),
        data,
        backends,
        samples,
      ),
    );
    log(`mint: ${(rows[3].accuracy * 100).toFixed(2)}%`);

    const durationMs = nowMs() - started;
    const machine = describeMachine();
    const inputs = {
      model,
      dataset: 'mnist',
      trainCount: data.train.count,
      testCount: data.test.count,
      epochs,
      retrain,
      sparsity,
      samplesPerClass: 250,
      latencySamples: samples,
      backends,
    };
    const record = benchRecord('import', { inputs, check: imported.summary.check, rows, durationMs }, values.save);
    if (json) {
      process.stdout.write(`${record}\n`);
      return 0;
    }
    const base = rows[0];
    const refusals = rows.flatMap((r) => r.latency.filter((l) => l.refused).map((l) => `  ${r.model}, ${l.refused}`));
    const check = imported.summary.check;
    const out = [
      `import: ${model}`,
      `  accuracy on ${data.test.count} MNIST test images (onnxruntime-node); fine-tuning on ${data.train.count}; latency: p50 of ${samples} batch-1 runs after warm-up, one process`,
      `machine: ${machineLine(machine)}; the whole benchmark took ${(durationMs / 1000).toFixed(0)} s`,
      check
        ? `import check: source ${(check.sourceAccuracy * 100).toFixed(2)}%, imported ${(check.importedAccuracy * 100).toFixed(2)}%, largest output difference ${check.maxAbsDiff.toExponential(2)}`
        : '',
      '',
      formatTable(
        ['model', 'accuracy', 'vs original', 'ONNX bytes', 'bytes / original', ...backends.map((b) => `${b} p50 ms`)],
        rows.map((r) => [
          r.model,
          `${(r.accuracy * 100).toFixed(2)}%`,
          `${((r.accuracy - base.accuracy) * 100).toFixed(2)} pt`,
          formatBytes(r.onnxBytes),
          (r.onnxBytes / base.onnxBytes).toFixed(3),
          ...r.latency.map((l) => (l.p50Ms === undefined ? '-' : l.p50Ms.toFixed(3))),
        ]),
      ),
      ...(refusals.length ? ['', 'Refused (auto falls back to onnxruntime):', ...refusals] : []),
    ];
    process.stdout.write(`${out.join('\n')}\n`);
    return 0;
  },
};

function parseOnnx(frozen: Parameters<typeof exportOnnx>[0]): ModelFile {
  return parseModelFile(exportOnnx(frozen).bytes, 'bench.onnx');
}

/** Test accuracy (onnxruntime-node), file size, and batch-1 p50 latency on each backend that loads the model. */
async function measure(
  name: string,
  file: ModelFile,
  data: Dataset,
  backends: string[],
  samples: number,
): Promise<Row> {
  const reference = await createBackend('ort-node', file);
  const { accuracy } = await evaluate(reference, file, data);
  await reference.dispose();
  const features = data.inputShape.reduce((a, b) => a * b, 1);
  const dims = inputDimsFor(file, data, 1);
  const { mean, std } = callerNormalization(file);
  const latency: Latency[] = [];
  for (const backendName of backends) {
    let backend;
    try {
      backend = await createBackend(backendName, file);
    } catch (err) {
      // createBackend's "No backend could load FILE (NAME: reason)." down to "NAME: reason".
      const reason = (err as Error).message.replace(/^No backend could load [^(]*\(/, '').replace(/\)\.?$/, '');
      latency.push({ backend: backendName, refused: reason });
      continue;
    }
    const times: number[] = [];
    for (let i = 0; i < samples + 30; i++) {
      const k = i % data.test.count;
      const input = data.test.x.slice(k * features, (k + 1) * features).map((v) => (v - mean) / std);
      const start = nowMs();
      await backend.run(input, dims);
      if (i >= 30) times.push(nowMs() - start);
    }
    await backend.dispose();
    latency.push({ backend: backendName, p50Ms: percentile(times, 50) });
  }
  return { model: name, accuracy, onnxBytes: file.bytes.length, latency };
}
