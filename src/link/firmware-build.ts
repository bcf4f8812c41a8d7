// Building the firmware (firmware-bridge/, make + arm-none-eabi-gcc) and reading its flash/RAM use.

import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CmpError } from '../errors.js';
import type { McuModel } from '../core/mcu-model.js';

const run = promisify(execFile);

/** Boards with a folder under firmware-bridge/platform/. */
export const BOARDS: readonly string[] = Object.freeze(['mps2-an385']);

/** The Debian packages each external tool comes from. */
export const TOOL_PACKAGES: Readonly<Record<string, string>> = Object.freeze({
  'arm-none-eabi-gcc': 'gcc-arm-none-eabi libnewlib-arm-none-eabi',
  'arm-none-eabi-size': 'binutils-arm-none-eabi',
  'qemu-system-arm': 'qemu-system-arm',
  make: 'make',
  gcc: 'gcc',
});

/** firmware-bridge/ beside src/ (and beside dist/ in a built package). */
export function firmwareRoot(): string {
  return resolve(fileURLToPath(new URL('../../firmware-bridge', import.meta.url)));
}

/** Throws one line with the apt-get command when `tool` is not on PATH. */
export function requireTool(tool: string): void {
  const probe = spawnSync(tool, ['--version'], { stdio: 'ignore' });
  if (probe.error) {
    throw new CmpError('IO', `${tool} is not installed. Run: apt-get install -y ${TOOL_PACKAGES[tool] ?? tool}`, {
      cause: probe.error,
    });
  }
}

/** Checks a board name against the boards cmp has support for. */
export function checkBoard(board: string): void {
  if (!BOARDS.includes(board) || !existsSync(join(firmwareRoot(), 'platform', board, 'board.mk'))) {
    throw new CmpError('BAD_ARGUMENT', `Unknown board "${board}". Use one of: ${BOARDS.join(', ')}.`);
  }
}

/** A board's memory as its board.mk declares it (the linker enforces flash and RAM). */
export interface BoardMemory {
  board: string;
  flashBytes: number;
  ramBytes: number;
  /** The default arena of an image without a built-in model. */
  arenaBytes: number;
}

/** Reads FLASH_BYTES, RAM_BYTES and ARENA_BYTES from platform/<board>/board.mk. */
export function boardMemory(board: string): BoardMemory {
  checkBoard(board);
  const mk = readFileSync(join(firmwareRoot(), 'platform', board, 'board.mk'), 'utf8');
  const value = (name: string): number => {
    const m = new RegExp(`^${name} \\?= (\\d+)`, 'm').exec(mk);
    if (!m) throw new CmpError('INTERNAL', `platform/${board}/board.mk does not set ${name}.`);
    return Number(m[1]);
  };
  return { board, flashBytes: value('FLASH_BYTES'), ramBytes: value('RAM_BYTES'), arenaBytes: value('ARENA_BYTES') };
}

/** A built firmware image and its memory use (arm-none-eabi-size, Berkeley format). */
export interface FirmwareBuild {
  board: string;
  elfPath: string;
  /** Bytes of flash: text + data (the initial values of data live in flash). */
  flashBytes: number;
  /** Bytes of RAM: data + bss (the static arena and the stack are in bss). */
  ramBytes: number;
  text: number;
  data: number;
  bss: number;
  /** The static arena in bss that holds the model and activations (a built-in model: its workspace only). */
  arenaBytes: number;
  /** The model compiled into flash, if any: its CRC-32 (what HELLO reports) and bytes. */
  model?: { crc: number; bytes: number };
}

/** Options of {@link buildFirmware}. */
export interface BuildOptions {
  board: string;
  /** Build folder (default firmware-bridge/build/<board>). */
  outDir?: string;
  /** The model + activation arena, bytes (default: the board's ARENA_BYTES, or a built-in model's workspace). */
  arenaBytes?: number;
  /** A model to compile into flash as constant data (a generated C array); RAM then holds its workspace only. */
  model?: McuModel;
}

/** Runs make for a board and returns the ELF path and its sizes. */
export async function buildFirmware(options: BuildOptions): Promise<FirmwareBuild> {
  checkBoard(options.board);
  for (const tool of ['make', 'arm-none-eabi-gcc', 'arm-none-eabi-size']) requireTool(tool);
  const root = firmwareRoot();
  const model = options.model;
  const crcHex = model ? model.crc.toString(16).padStart(8, '0') : '';
  const outDir = resolve(
    options.outDir ?? join(root, 'build', model ? `${options.board}-model-${crcHex}` : options.board),
  );
  const vars = [`BOARD=${options.board}`, `BUILD=${outDir}`];
  const arenaBytes = options.arenaBytes ?? (model ? Math.max(4, model.workspaceBytes) : undefined);
  if (arenaBytes) vars.push(`ARENA_BYTES=${arenaBytes}`);
  if (model) {
    if (arenaBytes !== undefined && arenaBytes < model.workspaceBytes) {
      throw new CmpError(
        'BAD_FLAG',
        `--arena-bytes ${arenaBytes} is below the ${model.workspaceBytes} bytes of workspace the model needs. Leave it out to get exactly that.`,
      );
    }
    mkdirSync(outDir, { recursive: true });
    const source = join(outDir, 'builtin-model.c');
    writeFileSync(source, builtinModelSource(model));
    vars.push(`MODEL_SRC=${source}`);
  }
  let stdout: string;
  try {
    ({ stdout } = await run('make', ['-C', root, '--no-print-directory', ...vars, 'all'], { maxBuffer: 16 << 20 }));
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string };
    const detail = `${e.stderr ?? ''}${e.stdout ?? ''}`.split('\n').find((l) => /error/i.test(l)) ?? String(err);
    throw new CmpError('IO', `The firmware build for ${options.board} failed: ${detail.trim()}`, { cause: err });
  }
  // "   text    data     bss     dec     hex filename" then the numbers.
  const line = stdout
    .split('\n')
    .reverse()
    .find((l) => /^\s*\d+\s+\d+\s+\d+\s+\d+/.test(l));
  if (!line) throw new CmpError('INTERNAL', `arm-none-eabi-size printed no sizes for ${options.board}.`);
  const [text, data, bss] = line.trim().split(/\s+/).map(Number);
  return {
    board: options.board,
    elfPath: join(outDir, 'cmp-fw.elf'),
    flashBytes: text + data,
    ramBytes: data + bss,
    text,
    data,
    bss,
    arenaBytes: arenaBytes ?? boardMemory(options.board).arenaBytes,
    ...(model ? { model: { crc: model.crc, bytes: model.blob.length } } : {}),
  };
}

/** The C source of a built-in model: the blob as a 4-byte aligned constant array (flash), and its length. */
export function builtinModelSource(model: McuModel): string {
  const rows: string[] = [];
  for (let i = 0; i < model.blob.length; i += 16)
    rows.push(
      `  ${Array.from(model.blob.subarray(i, i + 16), (b) => `0x${b.toString(16).padStart(2, '0')}`).join(', ')},`,
    );
  const crc = model.crc.toString(16).padStart(8, '0');
  return [
    `/* builtin-model.c: written by cmp firmware build --model; the device model (MODEL.md), CRC-32 0x${crc}. */`,
    '#include <stdint.h>',
    '',
    `const uint32_t cmp_builtin_model_bytes = ${model.blob.length}u;`,
    `const uint8_t cmp_builtin_model[${model.blob.length}] __attribute__((aligned(4))) = {`,
    ...rows,
    '};',
    '',
  ].join('\n');
}
