// Progress on stderr: a redrawn line on a terminal, a line per step elsewhere; nothing with --quiet.

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

export function createProgress(stream: NodeJS.WriteStream, quiet: boolean): Progress {
  const tty = stream.isTTY === true;
  let last = 0;
  let shown = false;
  const clear = (): void => {
    if (tty && shown) stream.write('\r\x1b[2K');
    shown = false;
  };
  return {
    update(text: string): void {
      if (quiet || !tty) return;
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      stream.write(`\r\x1b[2K${text.slice(0, (stream.columns ?? 120) - 1)}`);
      shown = true;
    },
    log(text: string): void {
      if (quiet) return;
      clear();
      stream.write(`${text}\n`);
    },
    done(): void {
      clear();
    },
  };
}
