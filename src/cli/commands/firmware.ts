// cmp firmware: builds the microcontroller firmware for a board, or runs it on the emulated board under QEMU.

import { BOARDS, buildFirmware, type FirmwareBuild } from '../../link/firmware-build.js';
import { McuClient } from '../../link/mcu-client.js';
import { convertToMcuModel } from '../../core/mcu-model.js';
import { readModelFile } from '../../runtime/model-file.js';
import { startQemu } from '../../link/qemu.js';
import { openSerialTransport } from '../../link/transport-serial.js';
import { CmpError } from '../../errors.js';
import type { Parsed } from '../args.js';
import type { CliIo, Command } from '../command.js';
import { formatTable } from '../table.js';

const ACTIONS: readonly string[] = Object.freeze(['build', 'qemu']);

export const firmwareCommand: Command = {
  def: {
    name: 'firmware',
    summary: 'Build the microcontroller firmware (build) or run it on an emulated board (qemu).',
    positionals: ['ACTION'],
    flags: {
      board: { type: 'string', value: 'NAME', default: 'mps2-an385', choices: BOARDS, help: 'the board to build for' },
      out: { type: 'string', value: 'DIR', help: 'build folder (default firmware-bridge/build/BOARD)' },
      'arena-bytes': { type: 'int', help: "bytes of the model + activation arena (default: the board's)" },
      elf: { type: 'string', value: 'FILE', help: 'qemu: run this firmware image instead of building one' },
      clock: {
        type: 'string',
        value: 'KIND',
        default: 'host',
        choices: ['host', 'instructions'],
        help: "qemu: the board's counter follows host time, or counts instructions (-icount, 32 ns each)",
      },
      model: {
        type: 'string',
        value: 'FILE',
        help: 'compile this exported model into flash (RAM then holds only its activations)',
      },
    },
    examples: [
      'cmp firmware build --board mps2-an385',
      'cmp firmware build --board mps2-an385 --model fm-mlp.onnx',
      'cmp firmware qemu --board mps2-an385',
    ],
  },
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const f = parsed.flags;
    const action = parsed.positionals[0];
    if (!ACTIONS.includes(action)) {
      throw new CmpError('BAD_ARGUMENT', `Unknown firmware action "${action}". Use one of: ${ACTIONS.join(', ')}.`);
    }
    const board = (f.board as string | undefined) ?? 'mps2-an385';
    let elfPath = f.elf as string | undefined;
    let build: FirmwareBuild | undefined;
    if (action === 'build' || !elfPath) {
      const model = f.model ? convertToMcuModel(readModelFile(f.model as string)) : undefined;
      io.progress.update(`building firmware for ${board}${model ? ' with the model in flash' : ''}`);
      build = await buildFirmware({
        board,
        outDir: f.out as string | undefined,
        arenaBytes: f['arena-bytes'] as number | undefined,
        model,
      });
      io.progress.done();
      elfPath = build.elfPath;
    }
    if (action === 'build') {
      const b = build as FirmwareBuild;
      if (io.json) io.out(JSON.stringify(b, null, 2));
      else {
        io.out(
          formatTable(
            ['board', 'flash bytes', 'of which model', 'RAM bytes', 'of which arena', 'text', 'data', 'bss', 'image'],
            [
              [
                b.board,
                b.flashBytes,
                b.model ? b.model.bytes : '-',
                b.ramBytes,
                b.arenaBytes,
                b.text,
                b.data,
                b.bss,
                b.elfPath,
              ],
            ],
          ),
        );
        if (b.model)
          io.out(
            `Model CRC-32 0x${b.model.crc.toString(16).padStart(8, '0')} is built in: HELLO reports it, no upload needed.`,
          );
      }
      return 0;
    }
    return runQemu(board, elfPath, io, f.clock === 'instructions' ? 5 : undefined);
  },
};

/** Boots the board, checks the firmware answers, prints the port and waits for Ctrl-C. */
async function runQemu(board: string, elfPath: string, io: CliIo, icountShift?: number): Promise<number> {
  io.progress.update(`starting QEMU (${board})`);
  const qemu = await startQemu({ elfPath, board, icountShift });
  try {
    const transport = await openSerialTransport(qemu.port);
    const client = new McuClient(transport);
    try {
      const caps = await client.connect();
      io.progress.done();
      if (io.json) io.out(JSON.stringify({ board, port: qemu.port, elf: elfPath, capabilities: caps }));
      else {
        io.out(
          `${board} runs under QEMU on serial port ${qemu.port} (firmware ${caps.firmwareVersion}, protocol ${caps.protocolVersion}, arena ${caps.arenaBytes} bytes, ${caps.clockHz / 1e6} MHz ${caps.counter}${caps.model?.builtIn ? `, model CRC-32 0x${caps.model.crc.toString(16).padStart(8, '0')} built in` : ''}).`,
        );
        io.out(`Deploy with: cmp deploy MODEL --target mcu --port ${qemu.port}    Stop with Ctrl-C.`);
      }
    } finally {
      client.dispose();
      await transport.close();
    }
    const ended = await new Promise<string>((resolve) => {
      process.once('SIGINT', () => resolve('stopped'));
      process.once('SIGTERM', () => resolve('stopped'));
      void qemu.exited.then((code) => resolve(`QEMU exited with code ${code}`));
    });
    if (ended !== 'stopped') throw new CmpError('IO', `${ended}: ${qemu.log().trim().split('\n').pop() ?? ''}`);
    return 0;
  } finally {
    await qemu.stop();
  }
}
