// The cmp command line: dispatches to commands, prints results and one-line errors, and picks exit codes.

import { CmpError, isCmpError } from '../errors.js';
import { CMP_VERSION } from '../core/version.js';
import { commandHelp, parseCommand } from './args.js';
import type { Command } from './command.js';
import { pasteable } from './invocation.js';
import { createProgress } from './progress.js';
import { nearest } from './suggest.js';
/**
 * The commands by name, each module imported only when its command runs: a command starts without loading every other
 * command's dependencies (onnxruntime, ssh2, serialport, TensorFlow.js...), which took most of a short command's time.
 */
const COMMANDS: readonly { name: string; load: () => Promise<Command> }[] = Object.freeze([
  { name: 'demo', load: async () => (await import('./commands/demo.js')).demoCommand },
  { name: 'train', load: async () => (await import('./commands/train.js')).trainCommand },
  { name: 'import', load: async () => (await import('./commands/import.js')).importCommand },
  { name: 'prune', load: async () => (await import('./commands/prune.js')).pruneCommand },
  { name: 'calibrate', load: async () => (await import('./commands/calibrate.js')).calibrateCommand },
  { name: 'export', load: async () => (await import('./commands/export.js')).exportCommand },
  { name: 'eval', load: async () => (await import('./commands/eval.js')).evalCommand },
  { name: 'inspect', load: async () => (await import('./commands/inspect.js')).inspectCommand },
  { name: 'analyze', load: async () => (await import('./commands/analyze.js')).analyzeCommand },
  { name: 'masks', load: async () => (await import('./commands/masks.js')).masksCommand },
  { name: 'run', load: async () => (await import('./commands/run.js')).runCommand },
  { name: 'firmware', load: async () => (await import('./commands/firmware.js')).firmwareCommand },
  { name: 'deploy', load: async () => (await import('./commands/deploy.js')).deployCommand },
  { name: 'status', load: async () => (await import('./commands/status.js')).statusCommand },
  { name: 'rollback', load: async () => (await import('./commands/rollback.js')).rollbackCommand },
  { name: 'profile', load: async () => (await import('./commands/profile.js')).profileCommand },
  { name: 'serve', load: async () => (await import('./commands/serve.js')).serveCommand },
  { name: 'dashboard', load: async () => (await import('./commands/dashboard.js')).dashboardCommand },
]);

async function loadCommand(entry: (typeof COMMANDS)[number]): Promise<Command> {
  const command = await entry.load();
  if (command.def.name !== entry.name)
    throw new CmpError('INTERNAL', `Command "${entry.name}" declares the name "${command.def.name}".`);
  return command;
}

async function usage(): Promise<string> {
  const defs = (await Promise.all(COMMANDS.map(loadCommand))).map((c) => c.def);
  const width = Math.max(...defs.map((d) => d.name.length));
  return [
    `cmp ${CMP_VERSION}: compress neural networks and take them to edge devices.`,
    '',
    'Usage: cmp <command> [arguments] [flags]',
    '',
    'Commands:',
    ...defs.map((d) => `  ${d.name.padEnd(width)}  ${d.summary}`),
    '',
    'Run cmp <command> --help (or -h) for its flags. Every command takes --json.',
  ].join('\n');
}

/** Runs the CLI with `argv` (without node and script); resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  // Everything printed goes through `paste`: a hint reads `npx cmp ...` where a bare `cmp` would run /usr/bin/cmp.
  const paste = pasteable(COMMANDS.map((c) => c.name));
  const stdout = (text: string): void => void process.stdout.write(`${paste(text)}\n`);
  const stderr = (text: string): void => void process.stderr.write(`${paste(text)}\n`);
  // Like git and npm: asked for, the usage goes to stdout with 0; a bare `cmp` did not ask, so stderr and 1.
  if (!name) {
    stderr(await usage());
    return 1;
  }
  if ((name === 'help' && rest.length === 0) || name === '--help' || name === '-h') {
    stdout(await usage());
    return 0;
  }
  if (name === '--version' || name === 'version') {
    process.stdout.write(`${CMP_VERSION}\n`);
    return 0;
  }
  // `cmp help train` is `cmp train --help`.
  const commandName = name === 'help' ? rest[0] : name;
  const entry = COMMANDS.find((c) => c.name === commandName);
  const json = rest.includes('--json');
  try {
    if (commandName.startsWith('-')) {
      throw new CmpError(
        'BAD_FLAG',
        `Unknown flag "${commandName}" before the command. Usage: cmp <command> [arguments] [flags]; run cmp --help.`,
      );
    }
    if (!entry) {
      const names = COMMANDS.map((c) => c.name);
      const near = nearest(commandName, names);
      throw new CmpError(
        'BAD_ARGUMENT',
        `Unknown command "${commandName}".${near ? ` Did you mean cmp ${near}?` : ''} Use one of: ${names.join(', ')}.`,
      );
    }
    const command = await loadCommand(entry);
    if (name === 'help') {
      stdout(commandHelp(command.def));
      return 0;
    }
    const parsed = parseCommand(command.def, rest);
    if (parsed.flags.help) {
      stdout(commandHelp(command.def));
      return 0;
    }
    const progress = createProgress(process.stderr, { quiet: parsed.flags.quiet === true, rewrite: paste });
    return await command.run(parsed, { out: stdout, progress, json, warn: (text) => stderr(`cmp: ${text}`) });
  } catch (err) {
    const message = isCmpError(err)
      ? err.message
      : `Internal error: ${String((err as Error)?.message ?? err).split('\n')[0]}`;
    const code = isCmpError(err) ? err.code : 'INTERNAL';
    if (json) stdout(JSON.stringify({ error: { code, message } }));
    stderr(`cmp: ${message}`);
    if (!isCmpError(err) && process.env.CMP_DEBUG) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`);
    return isCmpError(err) && (err.code === 'BAD_FLAG' || err.code === 'BAD_ARGUMENT') ? 2 : 1;
  }
}
