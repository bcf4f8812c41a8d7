// What a CLI command is: its declaration (flags, help) and its action, which returns the process exit code.

import type { CommandDef, Parsed } from './args.js';
import type { Progress } from './progress.js';

export interface CliIo {
  out: (text: string) => void;
  progress: Progress;
  json: boolean;
  /** One line on stderr that --quiet does not hide: what failed when a command still prints its results (fleets). */
  warn: (text: string) => void;
}

export interface Command {
  def: CommandDef;
  run(parsed: Parsed, io: CliIo): Promise<number>;
}
