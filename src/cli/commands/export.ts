// cmp export: freeze a run folder into a standard ONNX file with bit-packed binary weights.

import { statSync } from 'node:fs';
import { exportRun } from '../../export/export-run.js';
import type { Parsed } from '../args.js';
import type { CliIo, Command } from '../command.js';
import { CmpError } from '../../errors.js';
import { checkpointChoice, checkpointFlags } from '../checkpoint-flags.js';
import { formatBytes, formatTable } from '../table.js';

export const exportCommand: Command = {
  def: {
    name: 'export',
    summary: 'Export a run folder to ONNX (opset 18): binary weights 1 bit each, a cmp manifest in the metadata.',
    positionals: ['RUN'],
    flags: {
      out: { type: 'string', value: 'FILE', help: 'ONNX file to write (required)' },
      ...checkpointFlags('masked runs:'),
    },
    examples: [
      'cmp export runs/fm-mlp --out fm-mlp.onnx',
      'cmp export runs/fm-mask --keep 0.05 --out fm-mask.onnx',
      'cmp export runs/mn-mask --max-bytes 78 --out mn-mask.onnx',
    ],
  },
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const out = parsed.flags.out;
    if (typeof out !== 'string') {
      throw new CmpError(
        'BAD_FLAG',
        'cmp export needs --out FILE, the ONNX file to write. Example: cmp export runs/fm-mlp --out fm-mlp.onnx',
      );
    }
    const choice = checkpointChoice({
      keep: parsed.flags.keep as number | undefined,
      maxBytes: parsed.flags['max-bytes'] as number | undefined,
      minAccuracy: parsed.flags['min-accuracy'] as number | undefined,
    });
    const { manifest, bytes, checkpoint } = exportRun(parsed.positionals[0], out, choice);
    if (io.json) {
      io.out(JSON.stringify({ out, bytes: bytes.length, checkpoint, manifest }, null, 2));
      return 0;
    }
    if (checkpoint) {
      io.out(
        `Checkpoint ${checkpoint.path} (epoch ${checkpoint.epoch}): ${(checkpoint.keptFraction * 100).toFixed(1)}% of the input kept, ${checkpoint.frameBytes.toFixed(1)} bytes per instance, validation ${(checkpoint.validationAccuracy * 100).toFixed(2)}%.\n`,
      );
    }
    io.out(
      formatTable(
        ['layer', 'kind', 'weights', 'activations', 'weight bytes', 'bits/weight'],
        manifest.layers.map((l) => [l.name, l.kind, l.weights, l.inputs, l.weightBytes, l.bitsPerWeight.toFixed(3)]),
      ),
    );
    io.out(
      // The file records its data set, so eval needs --data only when it records none (an import without --data).
      `\nWrote ${out} (${formatBytes(statSync(out).size)}). Next: cmp eval ${out}${manifest.training?.dataset ? '' : ' --data NAME'}`,
    );
    return 0;
  },
};
