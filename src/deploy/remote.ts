// A shell and a file system on another machine: what the rpi target needs from SSH (remote-ssh.ts is the adapter).

import { userInfo } from 'node:os';
import { CmpError } from '../errors.js';

/** user@host:port. */
export interface RemoteAddress {
  user: string;
  host: string;
  port: number;
}

/** A finished remote command. */
export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** One open session on a device. Paths are relative to the user's home unless absolute. */
export interface Remote {
  readonly address: RemoteAddress;
  /** Runs `argv` (each argument quoted for the remote shell, never pasted raw). */
  exec(argv: string[], options?: { timeoutMs?: number; onStderrLine?: (line: string) => void }): Promise<ExecResult>;
  /** Runs a fixed POSIX sh script held in cmp's own source (never built from user input). */
  script(source: string, timeoutMs?: number): Promise<ExecResult>;
  putFile(localPath: string, remotePath: string, onBytes?: (sent: number) => void): Promise<void>;
  putData(data: Uint8Array, remotePath: string): Promise<void>;
  /** A file's bytes, or undefined when nothing is there. */
  readData(remotePath: string): Promise<Uint8Array | undefined>;
  /** Hard-links `existing` at `remotePath`: false when the device's SFTP server cannot (then upload instead). */
  link(existing: string, remotePath: string): Promise<boolean>;
  mkdirp(remotePath: string): Promise<void>;
  /** Makes one folder whose parent exists (one request, where mkdirp asks about every folder on the path). */
  mkdir(remotePath: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** The link's target, or undefined when there is no link. */
  readlink(remotePath: string): Promise<string | undefined>;
  /** The size in bytes, or undefined when nothing is there. */
  size(remotePath: string): Promise<number | undefined>;
  /** Removes a file or folder tree; nothing there is fine. */
  remove(remotePath: string): Promise<void>;
  close(): void;
}

/** Host names and users cmp accepts: what DNS and POSIX allow, nothing a shell or ssh would read as an option. */
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])$/;
const USER = /^[A-Za-z_][A-Za-z0-9._-]*$/;

/** Parses `user@host[:port]` (user defaults to the local user, port to `defaultPort`). */
export function parseRemoteAddress(text: string, defaultPort = 22): RemoteAddress {
  const m = /^(?:([^@]+)@)?(\[[^\]]+\]|[^:@]+)(?::(\d+))?$/.exec(text.trim());
  const user = m?.[1] ?? userInfo().username;
  const host = m?.[2] ?? '';
  const port = m?.[3] !== undefined ? Number(m[3]) : defaultPort;
  if (!m || !HOST.test(host) || !USER.test(user) || !(port >= 1 && port <= 65535)) {
    throw new CmpError(
      'BAD_FLAG',
      `--host "${text}" is not user@host[:port]. Use e.g. pi@raspberrypi.local or pi@10.0.0.7:2222.`,
    );
  }
  return { user, host: host.replace(/^\[|\]$/g, ''), port };
}

/** `user@host:port` for messages. */
export function formatAddress(a: RemoteAddress): string {
  return `${a.user}@${a.host}${a.port === 22 ? '' : `:${a.port}`}`;
}

/** Quotes one argument for a POSIX shell: plain words as they are, anything else in single quotes. */
export function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_./=:@%+-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}
