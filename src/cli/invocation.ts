// How the user started cmp, so that every command line cmp prints (hints, "Next:", usage) runs when pasted back.

import { basename, dirname, sep } from 'node:path';

/**
 * The words that start cmp again where the user is. A bare `cmp` pasted into a shell runs POSIX /usr/bin/cmp unless
 * a global install put this one first on the PATH, so only then is it printed bare:
 * - `npx cmp` (or `npx cmp-edge`) under npx or npm exec, from a project's node_modules/.bin, or as `node bin/cmp.js`;
 * - the bin name the user typed (`cmp` or `cmp-edge`) after a global install.
 */
export function invocation(argv1: string = process.argv[1] ?? '', env: NodeJS.ProcessEnv = process.env): string {
  const name = basename(argv1);
  const bin = name === 'cmp-edge' ? 'cmp-edge' : 'cmp';
  const viaNpx = env.npm_command === 'exec' || env.npm_lifecycle_event === 'npx';
  const projectBin = dirname(argv1).endsWith(`${sep}node_modules${sep}.bin`);
  // Anything else (bin/cmp.js run by node, a script's own name) is this checkout or a project's copy: npx finds it.
  if (viaNpx || projectBin || name !== bin) return `npx ${bin}`;
  return bin;
}

/**
 * A function that returns its text with each command line that starts `cmp <command>` (one of `commands`, or
 * `<command>`, `--help`, `--version`) started the way this cmp was (see {@link invocation}). Library messages name
 * commands as `cmp export ...` without knowing how the CLI was started; the CLI, which does all the printing, passes
 * everything it prints through this, so no hint can be printed unpasteable.
 */
export function pasteable(commands: readonly string[], name: string = invocation()): (text: string) => string {
  const words = [...commands, 'help', '<command>', 'COMMAND', '--help', '--version'].map((w) =>
    w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'),
  );
  // "cmp export ..." at the start of a line or after a space, quote or bracket; not "cmp demo:" (a progress label).
  const hint = new RegExp(`(^|[\\s\`'"(])cmp(?= (?:${words.join('|')})(?:$|[\\s.,;?)'"\`]))`, 'gm');
  return (text) => (name === 'cmp' ? text : text.replace(hint, `$1${name}`));
}
