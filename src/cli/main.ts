// The cmp command line: dispatches to commands, prints results and one-line errors, and picks exit codes.

import { CmpError, isCmpError } from '../errors.js';
import { CMP_VERSION } from '../core/version.js';
import { commandHelp, parseCommand } from './args.js';
import type { Command } from './command.js';
import { createProgress } from './progress.js';
import { calibrateCommand } from './commands/calibrate.js';
import { dashboardCommand } from './commands/dashboard.js';
import { demoCommand } from './commands/demo.js';
import { deployCommand } from './commands/deploy.js';
import { evalCommand } from './commands/eval.js';
import { exportCommand } from './commands/export.js';
import { firmwareCommand } from './commands/firmware.js';
import { importCommand } from './commands/import.js';
import { inspectCommand } from './commands/inspect.js';
import { masksCommand } from './commands/masks.js';
import { runCommand } from './commands/run.js';
import { serveCommand } from './commands/serve.js';
import { profileCommand } from './commands/profile.js';
import { pruneCommand } from './commands/prune.js';
import { rollbackCommand } from './commands/rollback.js';
import { statusCommand } from './commands/status.js';
import { trainCommand } from './commands/train.js';

const COMMANDS: readonly Command[] = Object.freeze([
  demoCommand,
  trainCommand,
  importCommand,
  pruneCommand,
  calibrateCommand,
  exportCommand,
  evalCommand,
  inspectCommand,
  masksCommand,
  runCommand,
  firmwareCommand,
  deployCommand,
  statusCommand,
  rollbackCommand,
  profileCommand,
  serveCommand,
  dashboardCommand,
]);

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.def.name.length));
  return [
    `cmp ${CMP_VERSION}: compress neural networks and take them to edge devices.`,
    '',
    'Usage: cmp <command> [arguments] [flags]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.def.name.padEnd(width)}  ${c.def.summary}`),
    '',
    'Run cmp <command> --help (or -h) for its flags. Every command takes --json.',
  ].join('\n');
}

/** Runs the CLI with `argv` (without node and script); resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  // Like git and npm: asked for, the usage goes to stdout with 0; a bare `cmp` did not ask, so stderr and 1.
  if (!name) {
    process.stderr.write(`${usage()}\n`);
    return 1;
  }
  if ((name === 'help' && rest.length === 0) || name === '--help' || name === '-h') {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  if (name === '--version' || name === 'version') {
    process.stdout.write(`${CMP_VERSION}\n`);
    return 0;
  }
  // `cmp help train` is `cmp train --help`.
  const commandName = name === 'help' ? rest[0] : name;
  const command = COMMANDS.find((c) => c.def.name === commandName);
  const json = rest.includes('--json');
  try {
    if (commandName.startsWith('-')) {
      throw new CmpError(
        'BAD_FLAG',
        `Unknown flag "${commandName}" before the command. Usage: cmp <command> [arguments] [flags]; run cmp --help.`,
      );
    }
    if (!command) {
      throw new CmpError(
        'BAD_ARGUMENT',
        `Unknown command "${commandName}". Use one of: ${COMMANDS.map((c) => c.def.name).join(', ')}.`,
      );
    }
    if (name === 'help') {
      process.stdout.write(`${commandHelp(command.def)}\n`);
      return 0;
    }
    const parsed = parseCommand(command.def, rest);
    if (parsed.flags.help) {
      process.stdout.write(`${commandHelp(command.def)}\n`);
      return 0;
    }
    const progress = createProgress(process.stderr, parsed.flags.quiet === true);
    return await command.run(parsed, {
      out: (text) => process.stdout.write(`${text}\n`),
      progress,
      json,
      warn: (text) => process.stderr.write(`cmp: ${text}\n`),
    });
  } catch (err) {
    const message = isCmpError(err)
      ? err.message
      : `Internal error: ${String((err as Error)?.message ?? err).split('\n')[0]}`;
    const code = isCmpError(err) ? err.code : 'INTERNAL';
    if (json) process.stdout.write(`${JSON.stringify({ error: { code, message } })}\n`);
    process.stderr.write(`cmp: ${message}\n`);
    if (!isCmpError(err) && process.env.CMP_DEBUG) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`);
    return isCmpError(err) && (err.code === 'BAD_FLAG' || err.code === 'BAD_ARGUMENT') ? 2 : 1;
  }
}
