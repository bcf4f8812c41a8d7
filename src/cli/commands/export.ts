// cmp export: freeze a run folder into a standard ONNX file with bit-packed binary weights.

import { statSync } from 'node:fs';
import { exportRun } from '../../export/export-run.js';
import type { Parsed } from '../args.js';
import type { CliIo, Command } from '../command.js';
import { CmpError } from '../../errors.js';
import { formatBytes, formatTable } from '../table.js';

export const exportCommand: Command = {
  def: {
    name: 'export',
    summary: 'Export a run folder to ONNX (opset 18): binary weights 1 bit each, a cmp manifest in the metadata.',
    positionals: ['RUN'],
    flags: {
      out: { type: 'string', value: 'FILE', help: 'ONNX file to write (required)' },
      keep: {
        type: 'number',
        value: 'F',
        help: 'masked runs: the most accurate checkpoint keeping at most this share of the input',
      },
      'min-accuracy': {
        type: 'number',
        value: 'A',
        help: 'masked runs: the leanest checkpoint at least this accurate on validation data (0..1)',
      },
    },
    examples: ['cmp export runs/fm-mlp --out fm-mlp.onnx', 'cmp export runs/fm-mask --keep 0.05 --out fm-mask.onnx'],
  },
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const out = parsed.flags.out;
    if (typeof out !== 'string') {
      throw new CmpError(
        'BAD_FLAG',
        'cmp export needs --out FILE, the ONNX file to write. Example: cmp export runs/fm-mlp --out fm-mlp.onnx',
      );
    }
    const keep = parsed.flags.keep as number | undefined;
    const minAccuracy = parsed.flags['min-accuracy'] as number | undefined;
    if (keep !== undefined && minAccuracy !== undefined)
      throw new CmpError('BAD_FLAG', 'Give --keep or --min-accuracy, not both.');
    if (keep !== undefined && (keep <= 0 || keep > 1))
      throw new CmpError('BAD_FLAG', `--keep is a share of the input in (0, 1] (got ${keep}). Example: --keep 0.05`);
    if (minAccuracy !== undefined && (minAccuracy <= 0 || minAccuracy > 1))
      throw new CmpError(
        'BAD_FLAG',
        `--min-accuracy is a fraction in (0, 1] (got ${minAccuracy}). Example: --min-accuracy 0.9`,
      );
    const choice = keep !== undefined ? { keep } : minAccuracy !== undefined ? { minAccuracy } : undefined;
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
