// Building the firmware (firmware-bridge/, make + arm-none-eabi-gcc) and reading its flash/RAM use.

import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CmpError } from '../errors.js';

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
  /** The static arena in bss that holds the model and activations. */
  arenaBytes: number;
}

/** Options of {@link buildFirmware}. */
export interface BuildOptions {
  board: string;
  /** Build folder (default firmware-bridge/build/<board>). */
  outDir?: string;
  /** The model + activation arena, bytes (default: the board's ARENA_BYTES). */
  arenaBytes?: number;
}

/** Runs make for a board and returns the ELF path and its sizes. */
export async function buildFirmware(options: BuildOptions): Promise<FirmwareBuild> {
  checkBoard(options.board);
  for (const tool of ['make', 'arm-none-eabi-gcc', 'arm-none-eabi-size']) requireTool(tool);
  const root = firmwareRoot();
  const outDir = resolve(options.outDir ?? join(root, 'build', options.board));
  const vars = [`BOARD=${options.board}`, `BUILD=${outDir}`];
  if (options.arenaBytes) vars.push(`ARENA_BYTES=${options.arenaBytes}`);
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
  const arena = /ARENA_BYTES \?= (\d+)/.exec(
    (await import('node:fs')).readFileSync(join(root, 'platform', options.board, 'board.mk'), 'utf8'),
  );
  return {
    board: options.board,
    elfPath: join(outDir, 'cmp-fw.elf'),
    flashBytes: text + data,
    ramBytes: data + bss,
    text,
    data,
    bss,
    arenaBytes: options.arenaBytes ?? Number(arena?.[1] ?? 0),
  };
}
