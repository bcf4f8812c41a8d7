// cmp masks: the accuracy/bandwidth checkpoints of a masked run, one line each, and (--png) a picture of the mask.

import { writeFileSync } from 'node:fs';
import { freeze } from '../../core/frozen.js';
import { featureMask, maskLayout } from '../../core/mask.js';
import { chooseMaskCheckpoint, loadRun, type MaskCheckpointRecord, type Run } from '../../core/run.js';
import { selectedUnits } from '../../compress/train.js';
import { encodePng, paint, rgbImage } from '../../export/png.js';
import { CmpError } from '../../errors.js';
import type { Parsed } from '../args.js';
import { checkpointChoice, checkpointFlags } from '../checkpoint-flags.js';
import type { CliIo, Command } from '../command.js';
import { DATA_FLAG, loadDataFlag, runConsumer } from '../data-flag.js';
import { formatPercent, formatTable } from '../table.js';

/** Examples drawn beside the mask in --png. */
const PNG_EXAMPLES = 6;
const PNG_SCALE = 6;
const PNG_GAP = 4;

export const masksCommand: Command = {
  def: {
    name: 'masks',
    summary: 'List the accuracy/kept-fraction checkpoints of a masked run; --png draws the mask and what it sends.',
    positionals: ['RUN'],
    flags: {
      png: { type: 'string', value: 'FILE', help: 'draw the mask (and examples of what is sent) into a PNG' },
      ...checkpointFlags('mark (and with --png draw)'),
      data: { ...DATA_FLAG, help: 'examples for --png (default: the data set the run trained on)' },
    },
    examples: ['cmp masks runs/fm-mask', 'cmp masks runs/mn-dyn --keep 0.1 --png mask.png'],
  },
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const f = parsed.flags;
    const run = loadRun(parsed.positionals[0]);
    const masking = run.record.masking;
    if (!masking) {
      throw new CmpError(
        'BAD_ARGUMENT',
        `Run ${run.dir} has no input mask. Train one with cmp train --mask static|dynamic --out DIR.`,
      );
    }
    const choice = checkpointChoice({
      keep: f.keep as number | undefined,
      maxBytes: f['max-bytes'] as number | undefined,
      minAccuracy: f['min-accuracy'] as number | undefined,
    });
    const chosen = choice ? chooseMaskCheckpoint(run, choice) : undefined;
    if (io.json) io.out(JSON.stringify({ run: run.dir, masking, chosen: chosen?.checkpoint.dir }, null, 2));
    else {
      const row = (name: string, c: Omit<MaskCheckpointRecord, 'dir'>): (string | number)[] => [
        name,
        c.epoch,
        c.keptUnits.toFixed(c.keptUnits % 1 ? 1 : 0),
        formatPercent(c.keptFraction),
        c.frameBytes.toFixed(1),
        `${(masking.fullInputBytes / c.frameBytes).toFixed(1)}x`,
        formatPercent(c.validationAccuracy),
        formatPercent(c.testAccuracy),
        c.lambda.toExponential(2),
      ];
      const history = run.record.training.history;
      const last = history[history.length - 1];
      io.out(
        `${run.dir}: ${masking.kind} mask, ${masking.granularity} (${masking.units} units), ${masking.source}, values ${masking.values}; the whole input is ${masking.fullInputBytes} bytes.`,
      );
      io.out(
        formatTable(
          [
            'checkpoint',
            'epoch',
            'kept units',
            'kept',
            'bytes/instance',
            'fewer bytes',
            'validation',
            'test',
            'lambda',
          ],
          [
            ...masking.checkpoints.map((c) => row(c.dir + (chosen?.checkpoint.dir === c.dir ? ' *' : ''), c)),
            row('(run)', {
              epoch: run.record.training.epochs,
              keptUnits: masking.keptUnits,
              keptFraction: masking.keptFraction,
              frameBytes: masking.frameBytes,
              validationAccuracy: last?.validationAccuracy ?? Number.NaN,
              testAccuracy: run.record.training.testAccuracy,
              lambda: last?.lambda ?? 0,
            }),
          ],
        ),
      );
      if (masking.checkpoints.length) {
        io.out(`\nPick one: cmp export ${run.dir} --keep F (or --max-bytes B, --min-accuracy A) --out model.onnx`);
      }
    }
    if (typeof f.png === 'string') {
      const target = chosen ? loadRun(chosen.dir) : run;
      const data = await loadDataFlag(
        f.data,
        io,
        runConsumer(run.dir, target.record.spec, run.record.training.dataset),
        {
          limitTrain: 1,
          limitTest: PNG_EXAMPLES,
          use: 'test',
        },
      );
      const bytes = await maskPicture(target, data.test.x, Math.min(PNG_EXAMPLES, data.test.count));
      try {
        writeFileSync(f.png, bytes);
      } catch (err) {
        throw new CmpError('IO', `Cannot write ${f.png}: ${(err as Error).message}. Check the path.`, { cause: err });
      }
      if (!io.json)
        io.out(`Wrote ${f.png}: the mask (white: sent), then ${PNG_EXAMPLES} test images as sent (red: not sent).`);
    }
    return 0;
  },
};

/**
 * The mask picture: first the mask on the pixel grid (white where a static mask sends, for a dynamic mask how often
 * each pixel is sent across the examples), then each example with the pixels not sent shown dark red.
 */
async function maskPicture(run: Run, x: Float32Array, examples: number): Promise<Uint8Array> {
  const spec = run.record.spec;
  const mask = spec.inputMask;
  if (!mask) throw new CmpError('BAD_ARGUMENT', `Run ${run.dir} has no input mask.`);
  const [c, h, w] = spec.input.shape;
  const layout = maskLayout(spec.input.shape, mask.granularity);
  const frozen = freeze(spec, run.tensors);
  const split = { x, y: new Uint8Array(examples), count: examples };
  const selections = await selectedUnits(frozen, split, examples);
  const panel = w * PNG_SCALE;
  const image = rgbImage((examples + 1) * (panel + PNG_GAP) + PNG_GAP, c * (h * PNG_SCALE + PNG_GAP) + PNG_GAP, 40);
  const sentShare = new Float32Array(c * h * w);
  for (const units of selections) {
    const m = featureMask(layout, units);
    for (let k = 0; k < m.length; k++) sentShare[k] += m[k] / Math.max(examples, 1);
  }
  for (let ch = 0; ch < c; ch++) {
    const top = PNG_GAP + ch * (h * PNG_SCALE + PNG_GAP);
    for (let y = 0; y < h; y++)
      for (let xx = 0; xx < w; xx++) {
        const v = Math.round(255 * sentShare[(ch * h + y) * w + xx]);
        paint(image, PNG_GAP, top, xx, y, PNG_SCALE, [v, v, v]);
      }
    selections.forEach((units, i) => {
      const m = featureMask(layout, units);
      const left = PNG_GAP + (i + 1) * (panel + PNG_GAP);
      for (let y = 0; y < h; y++)
        for (let xx = 0; xx < w; xx++) {
          const f = (ch * h + y) * w + xx;
          const v = Math.round(255 * Math.min(1, Math.max(0, x[i * c * h * w + f])));
          paint(image, left, top, xx, y, PNG_SCALE, m[f] ? [v, v, v] : [70 + (v >> 2), 10, 10]);
        }
    });
  }
  return encodePng(image);
}
