// What a CLI command is: its declaration (flags, help) and its action, which returns the process exit code.

import type { CommandDef, Parsed } from './args.js';
import type { Progress } from './progress.js';

export interface CliIo {
  out: (text: string) => void;
  progress: Progress;
  json: boolean;
}

export interface Command {
  def: CommandDef;
  run(parsed: Parsed, io: CliIo): Promise<number>;
}
