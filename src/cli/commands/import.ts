// cmp import: an ONNX (PyTorch, tf2onnx ...) or TF.js classifier becomes a run folder to fine-tune, compress and deploy.

import { prepareRunOut } from '../../core/run.js';
import { inferShapes } from '../../core/spec.js';
import { CmpError } from '../../errors.js';
import { IMPORT_FORMATS, importRun, parseInputRange, type ImportFormat } from '../../import/import-run.js';
import type { Parsed } from '../args.js';
import type { CliIo, Command } from '../command.js';
import { loadDataFlag } from '../data-flag.js';
import { INPUT_RANGE_FLAG } from '../input-range-flag.js';
import { formatDuration } from '../progress.js';
import { formatPercent, formatTable } from '../table.js';

export const importCommand: Command = {
  def: {
    name: 'import',
    summary: 'Import an ONNX or TF.js classifier as a run folder (then train --from, prune, export, eval it).',
    positionals: ['MODEL'],
    flags: {
      out: { type: 'string', value: 'DIR', help: 'run folder to write (required)' },
      force: { type: 'boolean', help: 'replace the run already in --out' },
      format: {
        type: 'string',
        choices: IMPORT_FORMATS,
        help: 'model format (default: tfjs for a .json file, else onnx)',
      },
      'input-range': INPUT_RANGE_FLAG,
      'input-shape': { type: 'ints', value: 'C,H,W', help: 'the image shape of a model with a flat or open input' },
      labels: {
        type: 'list',
        value: 'LIST',
        help: "class names in output order (default: the data set's, else 0..N-1)",
      },
      data: {
        type: 'string',
        value: 'NAME|DIR',
        help: 'compare the source and the imported model on its test split; later commands use it by default',
      },
      limit: { type: 'int', help: 'compare on the first N test images only' },
    },
    examples: [
      'cmp import lenet.onnx --out runs/lenet --input-range 0,1 --data mnist',
      'cmp import tfjs_model/model.json --out runs/tf --labels 0,1,2,3,4,5,6,7,8,9',
      'cmp train --from runs/lenet --data mnist --binarize dab --epochs 5 --out runs/lenet-bin',
    ],
  },
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const f = parsed.flags;
    const path = parsed.positionals[0];
    if (typeof f.out !== 'string') {
      throw new CmpError(
        'BAD_FLAG',
        `cmp import needs --out DIR, the run folder to write. Example: cmp import ${path} --out runs/imported`,
      );
    }
    const shape = f['input-shape'] as number[] | undefined;
    if (shape && shape.length !== 3)
      throw new CmpError(
        'BAD_FLAG',
        `--input-shape takes C,H,W (got ${shape.join(',')}). Example: --input-shape 1,28,28`,
      );
    prepareRunOut(f.out, f.force === true);
    const data =
      typeof f.data === 'string'
        ? await loadDataFlag(f.data, io, undefined, { limitTrain: 1, use: 'test' })
        : undefined;
    io.progress.update(`import ${path}`);
    const result = await importRun(path, {
      ...parseInputRange((f['input-range'] as string | undefined) ?? '0,1'),
      ...(shape ? { inputShape: shape as [number, number, number] } : {}),
      ...(f.labels ? { labels: f.labels as string[] } : {}),
      ...(f.format ? { format: f.format as ImportFormat } : {}),
      ...(data ? { data } : {}),
      ...(f.limit ? { limit: f.limit as number } : {}),
      out: f.out,
    });
    io.progress.done();
    const { network, summary } = result;
    if (io.json) {
      io.out(JSON.stringify({ out: f.out, spec: network.spec, imported: summary, training: result.training }, null, 2));
      return 0;
    }
    const shapes = inferShapes(network.spec);
    io.out(
      formatTable(
        ['layer', 'kind', 'output', 'weights', 'from'],
        network.spec.layers.map((l, i) => {
          const out = shapes[i].outputShape;
          const kind =
            l.kind === 'conv' ? `conv ${l.kernel}x${l.kernel}${l.padding ? ` pad ${l.padding}` : ''}` : l.kind;
          const activation = 'activation' in l && l.activation !== 'none' ? ` ${l.activation}` : '';
          return [
            l.name,
            `${kind}${activation}`,
            out[1] === 1 && out[2] === 1 ? `[${out[0]}]` : `[${out.join(', ')}]`,
            shapes[i].weightCount,
            (network.sources[l.name] ?? []).join(', '),
          ];
        }),
      ),
    );
    // The range the network takes pixels in: (0 - mean) / std for black, (1 - mean) / std for white.
    const { mean, std } = network.spec.input;
    const range = [-mean / std, (1 - mean) / std].map((v) => +v.toPrecision(6));
    const opset = summary.opset !== undefined ? `, opset ${summary.opset}` : '';
    io.out(
      `\nImported ${summary.format} (${summary.producer}${opset}): ${summary.nodes} nodes, ${network.spec.layers.length} cmp layers, input [${network.spec.input.shape.join(', ')}] of pixels in [${range.join(', ')}], ${network.spec.labels.length} classes (${formatDuration(result.training.durationMs)}).`,
    );
    for (const note of summary.notes) io.out(note);
    const check = summary.check;
    if (check) {
      io.out(
        `On ${check.samples} ${check.dataset} test images: source ${formatPercent(check.sourceAccuracy)} (${check.sourceRuntime}), imported ${formatPercent(check.importedAccuracy)}; largest output difference ${check.maxAbsDiff.toExponential(2)}.`,
      );
    }
    const dataFlag = data ? '' : ' --data NAME';
    io.out(
      `\nNext: cmp eval ${f.out}${dataFlag} | cmp train --from ${f.out}${dataFlag} --binarize dab --out DIR | cmp prune ${f.out}${dataFlag} --sparsity 0.8 --out DIR`,
    );
    return 0;
  },
};
