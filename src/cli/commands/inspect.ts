// cmp inspect: layers, bits per weight, bytes and manifest of an ONNX file.

import { PIXEL_FEED, type Manifest } from '../../core/manifest.js';
import { inspectTfjs } from '../../import/inspect-tfjs.js';
import { inspectModel } from '../../runtime/inspect.js';
import { readModelFile } from '../../runtime/model-file.js';
import type { Parsed } from '../args.js';
import type { CliIo, Command } from '../command.js';
import { plural } from '../progress.js';
import { formatBytes, formatTable } from '../table.js';

export const inspectCommand: Command = {
  def: {
    name: 'inspect',
    summary:
      'Show what an ONNX file or TF.js model.json holds: input, output, layers or operators, weights, and cmp compression per layer.',
    positionals: ['MODEL'],
    flags: {},
    examples: ['cmp inspect fm-mlp.onnx', 'cmp inspect fm-mlp.onnx --json', 'cmp inspect tfjs_model/model.json'],
  },
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const path = parsed.positionals[0];
    if (path.toLowerCase().endsWith('.json')) return inspectTfjsCommand(path, io);
    const report = inspectModel(readModelFile(path));
    if (io.json) {
      io.out(JSON.stringify(report, null, 2));
      return 0;
    }
    const m = report.manifest;
    const external = (report.externalData ?? []).map((e) => ` + ${formatBytes(e.bytes)} in ${e.path}`).join('');
    io.out(
      `${report.path}: ${formatBytes(report.fileBytes)}${external}, opset ${report.opset}, producer ${report.producer || 'unknown'}`,
    );
    io.out(`input  ${report.input.name} [batch, ${report.input.dims.join(', ')}]${m ? `, ${feedOf(m)}` : ''}`);
    io.out(
      `output ${report.output.name} [batch, ${report.output.dims.join(', ')}]${m ? `, labels: ${m.labels.join(', ')}` : ''}`,
    );
    io.out(opsLine(report.ops));
    io.out('');
    if (report.layers) {
      io.out(
        formatTable(
          ['layer', 'kind', 'weight shape', 'weights', 'activations', 'count', 'bytes', 'bits/weight'],
          report.layers.map((l) => [
            l.name,
            l.kind,
            l.weightShape.join('x'),
            l.weights,
            l.inputs,
            l.weightCount,
            l.weightBytes,
            l.bitsPerWeight.toFixed(3),
          ]),
        ),
      );
      if (report.binaryBitsPerWeight !== undefined) {
        io.out(
          `\nBinarized layers: ${report.binaryBitsPerWeight.toFixed(3)} bits per weight (packed bits, float16 levels, row padding).`,
        );
      }
      if (report.int8BitsPerWeight !== undefined) {
        io.out(
          `\nint8 layers: ${report.int8BitsPerWeight.toFixed(3)} bits per weight (int8 values, a float32 scale per output channel).`,
        );
      }
      if (m?.exits?.length && !m.stage) {
        const exits = m.exits.map(
          (e) =>
            `${e.name} after ${e.after} (${e.threshold === null ? 'uncalibrated' : e.threshold < 0 ? 'never taken' : `entropy < ${e.threshold.toFixed(3)} nats`})`,
        );
        io.out(
          `Early exits: ${exits.join('; ')}; ${m.stages} stages, also in ${m.stages} stage files beside this one.`,
        );
      }
      const mask = m?.inputMask;
      if (mask) {
        const what =
          mask.kind === 'static'
            ? `keeps ${mask.kept?.length ?? 0} of ${mask.units} ${mask.granularity} units (${mask.features} values: the model input)`
            : `chosen per instance by ${m?.selector ? 'this selector' : 'the selector file beside this one'} from ${mask.units} ${mask.granularity} units`;
        io.out(
          `Input mask (${mask.kind}): ${what}; values travel as ${mask.values} in cmp-select/1 frames, mask id 0x${mask.maskId.toString(16).padStart(8, '0')}.`,
        );
      }
      if (m?.stage)
        io.out(
          `Stage ${m.stage.index} of ${m.stage.of}: input ${m.stage.input}, outputs ${m.stage.outputs.join(', ')}.`,
        );
      if (m?.training) {
        io.out(
          `Trained by cmp ${m.cmpVersion} on ${m.training.dataset}, ${plural(m.training.epochs, 'epoch')}, test accuracy ${(m.training.testAccuracy * 100).toFixed(2)}%.`,
        );
      }
    } else {
      io.out(
        formatTable(
          ['initializer', 'type', 'dims', 'bytes'],
          report.initializers.map((t) => [t.name, t.type, t.dims.join('x') || 'scalar', t.bytes]),
        ),
      );
      io.out(`\nNo cmp manifest: ${formatBytes(report.weightBytes)} of stored tensors.`);
    }
    return 0;
  },
};

/** What a cmp file's input takes, and who normalizes it. */
function feedOf(m: Manifest): string {
  const { mean, std } = m.input;
  // No normalization is the identity, said as such rather than as (pixel/255 - 0) / 1.
  if (mean === 0 && std === 1) return 'takes pixel/255';
  if (m.input.feed !== PIXEL_FEED)
    return `takes (pixel/255 - ${mean}) / ${std} (the caller normalizes; an older cmp file)`;
  return `takes pixel/255; the graph applies (x - ${mean}) / ${std}`;
}

/** cmp inspect of a TF.js model.json. */
async function inspectTfjsCommand(path: string, io: CliIo): Promise<number> {
  const report = await inspectTfjs(path);
  if (io.json) {
    io.out(JSON.stringify(report, null, 2));
    return 0;
  }
  const shards = report.weightFiles.length;
  const dims = (d: (number | null)[]): string => `[${d.map((v) => v ?? 'batch').join(', ')}]`;
  io.out(
    `${report.path}: TF.js ${report.format}, ${formatBytes(report.fileBytes)} + ${formatBytes(report.weightFiles.reduce((a, f) => a + f.bytes, 0))} in ${shards} weight file${shards === 1 ? '' : 's'}, producer ${report.producer}`,
  );
  for (const t of report.inputs) io.out(`input  ${t.name} ${dims(t.dims)}`);
  for (const t of report.outputs) io.out(`output ${t.name} ${t.dims.length ? dims(t.dims) : '(shape not recorded)'}`);
  if (report.ops) {
    io.out(opsLine(report.ops));
  }
  io.out('');
  if (report.layers) {
    io.out(
      formatTable(
        ['layer', 'class', 'output shape', 'activation', 'params', 'bytes'],
        report.layers.map((l) => [l.name, l.className, dims(l.outputShape), l.activation ?? '', l.params, l.bytes]),
      ),
    );
  } else {
    io.out(
      formatTable(
        ['weight', 'dtype', 'dims', 'bytes'],
        report.weights.map((w) => [w.name, w.dtype, w.dims.join('x') || 'scalar', w.bytes]),
      ),
    );
  }
  const dtypes = [...new Set(report.weights.map((w) => w.dtype))].join(', ');
  io.out(
    `\n${report.params.toLocaleString('en-US')} parameters, ${formatBytes(report.weightBytes)} of weights${dtypes ? ` (${dtypes})` : ''}.`,
  );
  io.out(
    report.importable === true
      ? `Importable: cmp import ${path} --out DIR`
      : `Not importable as it is: ${report.importable}`,
  );
  return 0;
}

/** The ops line: each op with how often the graph uses it. */
function opsLine(ops: Record<string, number>): string {
  return `ops    ${Object.entries(ops)
    .map(([op, n]) => `${op} x${n}`)
    .join(', ')}`;
}
