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
    flags: { out: { type: 'string', value: 'FILE', help: 'ONNX file to write (required)' } },
    examples: ['cmp export runs/fm-mlp --out fm-mlp.onnx'],
  },
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const out = parsed.flags.out;
    if (typeof out !== 'string') {
      throw new CmpError(
        'BAD_FLAG',
        'cmp export needs --out FILE, the ONNX file to write. Example: cmp export runs/fm-mlp --out fm-mlp.onnx',
      );
    }
    const { manifest, bytes } = exportRun(parsed.positionals[0], out);
    if (io.json) {
      io.out(JSON.stringify({ out, bytes: bytes.length, manifest }, null, 2));
      return 0;
    }
    io.out(
      formatTable(
        ['layer', 'kind', 'weights', 'activations', 'weight bytes', 'bits/weight'],
        manifest.layers.map((l) => [l.name, l.kind, l.weights, l.inputs, l.weightBytes, l.bitsPerWeight.toFixed(3)]),
      ),
    );
    io.out(
      `\nWrote ${out} (${formatBytes(statSync(out).size)}). Next: cmp eval ${out} --data ${manifest.training?.dataset ?? 'fashion-mnist'}`,
    );
    return 0;
  },
};
