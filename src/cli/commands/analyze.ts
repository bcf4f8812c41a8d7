// cmp analyze: before anything is uploaded, per layer and in total: parameters, bytes, MACs, binary ops, activations,
// the arena the firmware will ask for, flash, an estimated latency from the device's cost table, and whether it fits.

import { cmpHome } from '../../deploy/devices.js';
import { BOARDS } from '../../link/firmware-build.js';
import { analyzeModel, ANALYZE_TARGETS, findCostTable, type ModelAnalysis } from '../../profile/analyze.js';
import { readCostTable, type CostTable } from '../../profile/cost-table.js';
import { readModelFile } from '../../runtime/model-file.js';
import type { Parsed } from '../args.js';
import type { CliIo, Command } from '../command.js';
import { formatBytes, formatTable } from '../table.js';

export const analyzeCommand: Command = {
  def: {
    name: 'analyze',
    summary:
      'Before deploying: work, memory, arena, flash and estimated latency of a model on a target, and whether it fits.',
    positionals: ['MODEL'],
    flags: {
      target: { type: 'string', value: 'NAME', default: 'mcu', choices: ANALYZE_TARGETS, help: 'where it will run' },
      board: { type: 'string', value: 'NAME', default: 'mps2-an385', choices: BOARDS, help: 'mcu: the board' },
      backend: {
        type: 'string',
        value: 'NAME',
        default: 'ort-node',
        help: 'host: the backend whose cost table estimates the latency',
      },
      costs: {
        type: 'string',
        value: 'FILE',
        help: "the device's cost table (default: the one cmp profile recorded for the board)",
      },
    },
    examples: ['cmp analyze fm-mlp.onnx --target mcu --board mps2-an385', 'cmp analyze fm-mlp.onnx --json'],
  },
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const f = parsed.flags;
    const target = (f.target as string | undefined) ?? 'mcu';
    const board = (f.board as string | undefined) ?? 'mps2-an385';
    const file = readModelFile(parsed.positionals[0]);
    let costs: CostTable | undefined;
    let note: string | undefined;
    if (f.costs) costs = readCostTable(f.costs as string);
    else
      ({ costs, note } = findCostTable(cmpHome(), target, {
        board,
        backend: (f.backend as string | undefined) ?? 'ort-node',
      }));
    const analysis = analyzeModel(file, { target, board, costs });
    if (io.json) {
      io.out(JSON.stringify({ ...analysis, ...(note ? { note } : {}) }, null, 2));
      return 0;
    }
    io.out(formatAnalysis(analysis));
    if (note) io.out(note);
    return 0;
  },
};

/** The analysis as a layer table, totals, memory, fit and advice. */
export function formatAnalysis(a: ModelAnalysis): string {
  const lines = [
    formatTable(
      [
        'layer',
        'kind',
        'weights',
        'inputs',
        'params',
        'stored B',
        'MACs',
        'binary ops',
        'output B',
        'working B',
        'est. ms',
      ],
      [
        ...a.layers.map((l) => [
          l.name,
          l.kind,
          l.weights,
          l.inputs,
          l.params,
          l.storedBytes,
          l.macs,
          l.binaryOps,
          l.activationBytes,
          l.workingBytes,
          l.estimateMs !== undefined ? l.estimateMs.toFixed(3) : '-',
        ]),
        [
          'total',
          '',
          '',
          '',
          a.totals.params,
          a.totals.storedBytes,
          a.totals.macs,
          a.totals.binaryOps,
          a.peakActivationBytes,
          a.peakWorkingBytes,
          a.latency ? a.latency.ms.toFixed(3) : '-',
        ],
      ],
    ),
    '',
  ];
  if (a.mcu) {
    const m = a.mcu;
    lines.push(
      `${m.board.board}: flash ${formatBytes(m.board.flashBytes)}, RAM ${formatBytes(m.board.ramBytes)}, default arena ${m.board.arenaBytes} bytes.`,
      `Model ${m.modelBytes} bytes${m.exact ? '' : ' (from the layer shapes: the file has no cmp manifest)'}. Arena uploaded: ${m.arenaUploadedBytes} bytes (${m.fitsUploaded ? 'fits' : 'does not fit'}). In flash: ${m.modelBytes} bytes of flash, arena ${m.arenaInFlashBytes} bytes (${m.fitsInFlash ? 'fits' : 'does not fit'}).`,
    );
  }
  if (a.latency) {
    lines.push(
      `Estimated batch-1 latency on ${a.latency.device}: ${a.latency.ms.toFixed(3)} ms${a.latency.missing.length ? ` without ${a.latency.missing.join(', ')} (not in the cost table: profile a model that has them)` : ''}.`,
    );
  }
  lines.push(...a.advice);
  return lines.join('\n');
}
