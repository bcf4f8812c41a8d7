// OpenSSH's known_hosts, read the way ssh reads it: plain and hashed (|1|salt|hmac) host names, [host]:port entries,
// comma-separated patterns; @revoked lines refuse a key. New hosts are appended only when the user accepts them.

import { createHmac } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { CmpError } from '../errors.js';

/** What known_hosts says about a host's key. */
export type HostKeyVerdict = 'known' | 'unknown' | 'mismatch' | 'revoked';

/** The name known_hosts uses for a host: `host` on port 22, `[host]:port` otherwise. */
export function knownHostName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** Checks `key` (the raw SSH host key blob) of `host`:`port` against the file at `path`. */
export function checkHostKey(path: string, host: string, port: number, key: Buffer): HostKeyVerdict {
  if (!existsSync(path)) return 'unknown';
  const name = knownHostName(host, port);
  const blob = key.toString('base64');
  let seen = false;
  for (const raw of readFileSync(path, 'utf8').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    const marker = fields[0].startsWith('@') ? fields.shift() : undefined;
    if (fields.length < 3 || marker === '@cert-authority') continue;
    if (!matchesHost(fields[0], name)) continue;
    if (marker === '@revoked' && fields[2] === blob) return 'revoked';
    if (marker) continue;
    if (fields[2] === blob) return 'known';
    seen = true;
  }
  return seen ? 'mismatch' : 'unknown';
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

/** known_hosts wildcards: `*` any run, `?` one character. */
function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );
  return re.test(name);
}
