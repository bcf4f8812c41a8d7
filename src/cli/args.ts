// Command-line parsing: each command declares its flags once; unknown or malformed flags are one-line errors.

import { parseArgs } from 'node:util';
import { CmpError } from '../errors.js';
import { nearest } from './suggest.js';

export type FlagType = 'string' | 'boolean' | 'int' | 'count' | 'number' | 'list' | 'ints';

export interface FlagDef {
  type: FlagType;
  help: string;
  /** Shown in help; parse results leave undefined when the flag is absent. */
  default?: string;
  choices?: readonly string[];
  /** Placeholder in help, e.g. DIR. */
  value?: string;
  /** One-letter alias, e.g. 'h' for -h. */
  short?: string;
}

export interface CommandDef {
  name: string;
  summary: string;
  /** Positional arguments, e.g. ['RUN']; a trailing '?' marks an optional one. */
  positionals: string[];
  flags: Record<string, FlagDef>;
  examples: string[];
}

export type FlagValue = string | boolean | number | string[] | number[] | undefined;

export interface Parsed {
  positionals: string[];
  flags: Record<string, FlagValue>;
}

/** Flags every command takes. */
export const COMMON_FLAGS: Record<string, FlagDef> = {
  json: { type: 'boolean', help: 'print the result as JSON on stdout' },
  quiet: { type: 'boolean', help: 'no progress on stderr' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

/** Parses `argv` (after the command name) against `def`. */
export function parseCommand(def: CommandDef, argv: string[]): Parsed {
  const all = { ...def.flags, ...COMMON_FLAGS };
  const options = Object.fromEntries(
    Object.entries(all).map(([name, f]) => [
      name,
      {
        type: f.type === 'boolean' ? ('boolean' as const) : ('string' as const),
        ...(f.short ? { short: f.short } : {}),
      },
    ]),
  );
  const args = joinDashValues(def.name, all, argv);
  let raw: ReturnType<typeof parseArgs>;
  try {
    raw = parseArgs({ args, options, strict: true, allowPositionals: true });
  } catch (err) {
    throw new CmpError(
      'BAD_FLAG',
      `${flagProblem(err, Object.keys(all))} for "cmp ${def.name}". Run cmp ${def.name} --help for its flags.`,
    );
  }
  const flags: Record<string, FlagValue> = {};
  for (const [name, value] of Object.entries(raw.values)) {
    flags[name] = convert(def.name, name, all[name], value as string | boolean);
  }
  if (flags.help) return { positionals: raw.positionals, flags };
  const required = def.positionals.filter((p) => !p.endsWith('?'));
  if (raw.positionals.length < required.length) {
    throw new CmpError(
      'BAD_ARGUMENT',
      `cmp ${def.name} needs ${required.join(' and ')}. Usage: cmp ${def.name} ${def.positionals.join(' ')}`.trimEnd() +
        '.',
    );
  }
  if (raw.positionals.length > def.positionals.length) {
    throw new CmpError(
      'BAD_ARGUMENT',
      `Unexpected argument "${raw.positionals[def.positionals.length]}" for cmp ${def.name}. Run cmp ${def.name} --help.`,
    );
  }
  return { positionals: raw.positionals, flags };
}

/** A negative number or a comma-separated list that starts with one: `-1`, `-0.5`, `-1,1`, `-1e-3,2`. */
const NEGATIVE_VALUE = /^-(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?(?:,\s*-?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)*$/i;

/**
 * Rewrites `--flag -1,1` as `--flag=-1,1` for flags that take a value: parseArgs refuses any value starting with '-'
 * as ambiguous, but a negative number cannot be a flag. Any other such value is refused here with the way to pass it.
 */
function joinDashValues(command: string, all: Record<string, FlagDef>, argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') return [...out, ...argv.slice(i)];
    const name = arg.startsWith('--') ? arg.slice(2) : '';
    const def = Object.hasOwn(all, name) ? all[name] : undefined;
    const next = argv[i + 1];
    if (!def || def.type === 'boolean' || next === undefined || next.length < 2 || !next.startsWith('-')) {
      out.push(arg);
    } else if (NEGATIVE_VALUE.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      throw new CmpError(
        'BAD_FLAG',
        `Flag ${arg} is followed by "${next}", not a value: give ${arg} a value, or write ${arg}=${next} if that is its value. Run cmp ${command} --help.`,
      );
    }
  }
  return out;
}

function flagProblem(err: unknown, flags: readonly string[]): string {
  const message = String((err as Error).message ?? err).split('\n')[0];
  const unknown = /Unknown option '([^']+)'/.exec(message);
  if (unknown) {
    const near = unknown[1].startsWith('--') ? nearest(unknown[1].slice(2), flags) : undefined;
    return `Unknown flag "${unknown[1]}"${near ? ` (did you mean --${near}?)` : ''}`;
  }
  const missing = /Option '([^']+)' argument missing/.exec(message);
  if (missing) return `Flag "${missing[1].split(',').pop()?.trim().split(' ')[0]}" needs a value`;
  // parseArgs' hint on the following lines names the long form: "use '--out=-XYZ'".
  const ambiguous = /Option '([^']+)' argument is ambiguous[\s\S]*?'(--[^=']+)=/.exec(String((err as Error).message));
  if (ambiguous) return `Flag "${ambiguous[1]}" needs a value; for one starting with "-", write ${ambiguous[2]}=VALUE`;
  return message.replace(/\.$/, '');
}

function convert(command: string, name: string, def: FlagDef, value: string | boolean): FlagValue {
  const bad = (what: string): CmpError =>
    new CmpError('BAD_FLAG', `Flag --${name} ${what} (got "${String(value)}"). Run cmp ${command} --help.`);
  if (def.type === 'boolean') return value;
  const text = String(value);
  switch (def.type) {
    case 'string':
      if (def.choices && !def.choices.includes(text)) throw bad(`must be one of: ${def.choices.join(', ')}`);
      return text;
    case 'int': {
      const n = Number(text);
      if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n <= 0) throw bad('must be a positive whole number');
      return n;
    }
    case 'count': {
      const n = Number(text);
      if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) throw bad('must be a whole number >= 0');
      return n;
    }
    case 'number': {
      const n = Number(text);
      if (text.trim() === '' || !Number.isFinite(n) || n <= 0) throw bad('must be a positive number');
      return n;
    }
    case 'list': {
      const items = text
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      if (def.choices && items.some((i) => !(def.choices as readonly string[]).includes(i))) {
        throw bad(`takes a comma-separated list of: ${def.choices.join(', ')}`);
      }
      return items;
    }
    case 'ints': {
      const items = text.split(',').map((s) => s.trim());
      if (items.some((i) => !/^\d+$/.test(i) || Number(i) <= 0))
        throw bad('must be comma-separated positive whole numbers');
      return items.map(Number);
    }
  }
}

/** Help text of a command. */
export function commandHelp(def: CommandDef): string {
  const lines = [`cmp ${def.name} ${def.positionals.join(' ')}`.trimEnd(), '', `  ${def.summary}`, '', 'Flags:'];
  const all = { ...def.flags, ...COMMON_FLAGS };
  const width = Math.max(...Object.entries(all).map(([n, f]) => flagLabel(n, f).length));
  for (const [name, f] of Object.entries(all)) {
    const extra = [f.choices ? `one of ${f.choices.join('|')}` : '', f.default ? `default ${f.default}` : '']
      .filter(Boolean)
      .join('; ');
    lines.push(`  ${flagLabel(name, f).padEnd(width)}  ${f.help}${extra ? ` (${extra})` : ''}`);
  }
  if (def.examples.length) lines.push('', 'Examples:', ...def.examples.map((e) => `  ${e}`));
  return lines.join('\n');
}

function flagLabel(name: string, f: FlagDef): string {
  const flag = f.short ? `-${f.short}, --${name}` : `--${name}`;
  return f.type === 'boolean'
    ? flag
    : `${flag} ${f.value ?? (f.type === 'int' || f.type === 'count' || f.type === 'number' ? 'N' : 'VALUE')}`;
}
