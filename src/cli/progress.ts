// Progress on stderr: a redrawn line on a terminal; elsewhere (a log, a pipe, CI) the lines that stay and the status
// at a steady interval, so a log is never silent for long; nothing with --quiet.

/** Reports progress of long work. */
export interface Progress {
  /** Replaces the current status line (throttled). */
  update(text: string): void;
  /** Prints a line that stays. */
  log(text: string): void;
  done(): void;
}

/** Milliseconds as "1m 05s" or "12s". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '?';
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

/** Off a terminal, the longest stretch without a progress line while work goes on, milliseconds. */
export const STEADY_LINE_MS = 10_000;

/** `n word`, or `n words` unless n is 1. */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** Options of {@link createProgress}. */
export interface ProgressOptions {
  quiet?: boolean;
  /** Applied to every line before it is written (the CLI makes the command lines in it pasteable). */
  rewrite?: (text: string) => string;
  /** Off a terminal, the status line is printed when this long has passed without a line (default STEADY_LINE_MS). */
  steadyMs?: number;
}

export function createProgress(stream: NodeJS.WriteStream, options: ProgressOptions = {}): Progress {
  const { quiet = false, rewrite = (text: string) => text, steadyMs = STEADY_LINE_MS } = options;
  const tty = stream.isTTY === true;
  let last = 0;
  let lastLine = Date.now();
  let shown = false;
  const clear = (): void => {
    if (tty && shown) stream.write('\r\x1b[2K');
    shown = false;
  };
  return {
    update(text: string): void {
      if (quiet) return;
      const now = Date.now();
      if (!tty) {
        if (now - lastLine < steadyMs) return;
        lastLine = now;
        stream.write(`${rewrite(text)}\n`);
        return;
      }
      if (now - last < 100) return;
      last = now;
      stream.write(`\r\x1b[2K${rewrite(text).slice(0, (stream.columns ?? 120) - 1)}`);
      shown = true;
    },
    log(text: string): void {
      if (quiet) return;
      clear();
      lastLine = Date.now();
      stream.write(`${rewrite(text)}\n`);
    },
    done(): void {
      clear();
    },
  };
}
