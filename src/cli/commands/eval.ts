// cmp eval: accuracy of any ONNX classifier, or of a run folder as cmp export writes it, on a labelled data set.

import { statSync } from 'node:fs';
import { exportRunInMemory } from '../../export/export-run.js';
import { backendNames, createBackend } from '../../runtime/backends.js';
import { evaluate } from '../../runtime/evaluate.js';
import { datasetConsumer, parseModelFile, readModelFile } from '../../runtime/model-file.js';
import type { Parsed } from '../args.js';
import type { CliIo, Command } from '../command.js';
import { DATA_FLAG, loadDataFlag } from '../data-flag.js';
import { applyInputRangeFlag, foreignInputNote, RUN_INPUT_RANGE_FLAG } from '../input-range-flag.js';
import { formatPercent, formatTable } from '../table.js';

export const evalCommand: Command = {
  def: {
    name: 'eval',
    summary: 'Evaluate an ONNX classifier (cmp-made or not) or a run folder on the test split of a data set.',
    positionals: ['MODEL|RUN'],
    flags: {
      data: DATA_FLAG,
      backend: {
        type: 'string',
        value: 'NAME',
        default: 'ort-node',
        help: `runtime: auto, ${backendNames().join(', ')}`,
      },
      limit: { type: 'int', help: 'evaluate the first N test samples only' },
      'batch-size': { type: 'int', default: '100', help: 'samples per inference call' },
      'input-range': RUN_INPUT_RANGE_FLAG,
    },
    examples: [
      'cmp eval fm-mlp.onnx --data fashion-mnist',
      'cmp eval lenet.onnx --data mnist --backend ort-web',
      'cmp eval runs/lenet --data mnist',
      'cmp eval mnist-tanh.onnx --data mnist --input-range=-1,1',
    ],
  },
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const f = parsed.flags;
    const path = parsed.positionals[0];
    // A run folder is evaluated as cmp export would write it.
    const read = isDirectory(path) ? parseModelFile(exportRunInMemory(path).bytes, path) : readModelFile(path);
    const file = applyInputRangeFlag(read, f['input-range']);
    const data = await loadDataFlag(f.data, io, datasetConsumer(file), {
      limitTest: f.limit as number | undefined,
      limitTrain: 1,
      use: 'test',
    });
    const backend = await createBackend((f.backend as string) ?? 'ort-node', file);
    try {
      const result = await evaluate(backend, file, data, {
        batchSize: f['batch-size'] as number | undefined,
        onProgress: (done, total) => io.progress.update(`eval ${done}/${total}`),
      });
      io.progress.done();
      if (!file.manifest) io.progress.log(foreignInputNote(file));
      else if (file.manifest.labels.join('\n') !== data.labels.join('\n')) {
        io.progress.log(
          `Warning: the model's labels (${file.manifest.labels.slice(0, 3).join(', ')}, ...) are not ${data.name}'s; accuracy compares class indices.`,
        );
      }
      if (io.json) {
        io.out(JSON.stringify({ model: file.path, dataset: data.name, ...result }, null, 2));
      } else {
        io.out(
          formatTable(
            ['model', 'data', 'backend', 'samples', 'accuracy', 'batch p50 ms', 'batch p99 ms'],
            [
              [
                file.path,
                data.name,
                result.backend,
                result.count,
                formatPercent(result.accuracy),
                result.batchLatencyMs.p50.toFixed(2),
                result.batchLatencyMs.p99.toFixed(2),
              ],
            ],
          ),
        );
        const link = result.link;
        if (link) {
          io.out(
            `\nInput selection: ${link.meanFrameBytes.toFixed(1)} bytes per instance on the link (cmp-select/1 frames, ${link.frames} sent), ${link.saving.toFixed(1)}x fewer than the whole input (${(link.fullBytes / Math.max(link.frames, 1)).toFixed(0)} bytes).`,
          );
        }
      }
    } finally {
      await backend.dispose();
    }
    return 0;
  },
};

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
