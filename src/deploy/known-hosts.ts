// OpenSSH's known_hosts, read the way ssh reads it: plain and hashed (|1|salt|hmac) host names, [host]:port entries,
// comma-separated patterns, host names in any letter case; the user's file and the global ones together; @revoked
// lines refuse a key. New hosts are appended (to the user's file) only when the user accepts them.

import { createHmac } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { CmpError } from '../errors.js';

/** What known_hosts says about a host's key. */
export type HostKeyVerdict = 'known' | 'unknown' | 'mismatch' | 'revoked';

/** The system-wide known_hosts files ssh reads after the user's (GlobalKnownHostsFile's default). */
export const GLOBAL_KNOWN_HOSTS: readonly string[] = Object.freeze([
  '/etc/ssh/ssh_known_hosts',
  '/etc/ssh/ssh_known_hosts2',
]);

/**
 * The name known_hosts uses for a host: `host` on port 22, `[host]:port` otherwise, in lower case (ssh lowercases the
 * host name before it looks it up or writes it, so `PI.local` and `pi.local` are one host).
 */
export function knownHostName(host: string, port: number): string {
  const name = host.toLowerCase();
  return port === 22 ? name : `[${name}]:${port}`;
}

/**
 * Checks `key` (the raw SSH host key blob) of `host`:`port` against the known_hosts files at `paths` (the user's,
 * then the global ones), as ssh does: a @revoked key in any file is refused, a key listed in any file is known, and
 * another key listed for the host in any file is a mismatch.
 */
export function checkHostKey(
  paths: string | readonly string[],
  host: string,
  port: number,
  key: Buffer,
): HostKeyVerdict {
  const name = knownHostName(host, port);
  const blob = key.toString('base64');
  let known = false;
  let seen = false;
  for (const path of typeof paths === 'string' ? [paths] : paths) {
    if (!existsSync(path)) continue;
    for (const raw of readFileSync(path, 'utf8').split('\n')) {
      const line = raw.trim();
      if (!line || line.startsWith('#')) continue;
      const fields = line.split(/\s+/);
      const marker = fields[0].startsWith('@') ? fields.shift() : undefined;
      if (fields.length < 3 || marker === '@cert-authority') continue;
      if (!matchesHost(fields[0], name)) continue;
      if (marker === '@revoked' && fields[2] === blob) return 'revoked';
      if (marker) continue;
      if (fields[2] === blob) known = true;
      else seen = true;
    }
  }
  return known ? 'known' : seen ? 'mismatch' : 'unknown';
}

/** Appends `host`'s key as a plain entry (what `ssh -o StrictHostKeyChecking=accept-new` does). */
export function addHostKey(path: string, host: string, port: number, keyType: string, key: Buffer): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  appendFileSync(path, `${knownHostName(host, port)} ${keyType} ${key.toString('base64')}\n`, { mode: 0o600 });
}

/** The key type name inside an SSH key blob (its first length-prefixed string), e.g. ssh-ed25519. */
export function keyTypeOf(key: Buffer): string {
  if (key.length < 4) throw new CmpError('IO', 'The SSH host key is malformed.');
  const length = key.readUInt32BE(0);
  return key.subarray(4, 4 + length).toString('ascii');
}

function matchesHost(patterns: string, name: string): boolean {
  if (patterns.startsWith('|1|')) {
    const [, , salt, hash] = patterns.split('|');
    if (!salt || !hash) return false;
    return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash;
  }
  let match = false;
  for (const pattern of patterns.split(',')) {
    const negated = pattern.startsWith('!');
    if (!globMatch(negated ? pattern.slice(1) : pattern, name)) continue;
    if (negated) return false;
    match = true;
  }
  return match;
}

/** known_hosts wildcards: `*` any run, `?` one character; letters match in either case, as in ssh's match.c. */
function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
    'i',
  );
  return re.test(name);
}
