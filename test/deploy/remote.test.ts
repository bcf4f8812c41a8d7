// The SSH edge, without a server: known_hosts matching as OpenSSH does it, host parsing and shell quoting.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { addHostKey, checkHostKey, GLOBAL_KNOWN_HOSTS, keyTypeOf } from '../../src/deploy/known-hosts.js';
import { parseRemoteAddress, shellQuote } from '../../src/deploy/remote.js';
import { tempDir } from '../helpers.js';

/** A real ed25519 public key blob from ssh-keygen. */
function hostKey(dir: string, name: string): Buffer {
  const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, name)], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const pub = spawnSync('cat', [join(dir, `${name}.pub`)], { encoding: 'utf8' }).stdout.split(' ');
  return Buffer.from(pub[1], 'base64');
}

test('known_hosts: plain, [host]:port, hashed, wildcard, mismatch and revoked entries', () => {
  const dir = tempDir();
  const key = hostKey(dir, 'a');
  const other = hostKey(dir, 'b');
  const b64 = key.toString('base64');
  const salt = randomBytes(20);
  const hashed = (name: string): string =>
    `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
  const file = join(dir, 'known_hosts');
  writeFileSync(
    file,
    [
      '# comment',
      `pi.local,10.0.0.7 ssh-ed25519 ${b64}`,
      `[10.0.0.8]:2222 ssh-ed25519 ${b64}`,
      `${hashed('hidden.example')} ssh-ed25519 ${b64}`,
      `*.farm ssh-ed25519 ${b64}`,
      `@revoked bad.example ssh-ed25519 ${b64}`,
      '',
    ].join('\n'),
  );
  assert.equal(checkHostKey(file, 'pi.local', 22, key), 'known');
  assert.equal(checkHostKey(file, '10.0.0.7', 22, key), 'known');
  assert.equal(checkHostKey(file, '10.0.0.8', 2222, key), 'known');
  assert.equal(checkHostKey(file, '10.0.0.8', 22, key), 'unknown', 'port 22 is a different entry');
  assert.equal(checkHostKey(file, 'hidden.example', 22, key), 'known');
  assert.equal(checkHostKey(file, 'pi3.farm', 22, key), 'known');
  assert.equal(checkHostKey(file, 'pi.local', 22, other), 'mismatch');
  assert.equal(checkHostKey(file, 'bad.example', 22, key), 'revoked');
  assert.equal(checkHostKey(join(dir, 'none'), 'pi.local', 22, key), 'unknown');
  assert.equal(keyTypeOf(key), 'ssh-ed25519');
  addHostKey(file, 'new.local', 2200, 'ssh-ed25519', other);
  assert.equal(checkHostKey(file, 'new.local', 2200, other), 'known');
});

test('known_hosts: host names match in any letter case, as ssh matches them, so case cannot dodge a listed key', () => {
  const dir = tempDir();
  const key = hostKey(dir, 'a');
  const other = hostKey(dir, 'b');
  const salt = randomBytes(20);
  const file = join(dir, 'known_hosts');
  // What ssh writes: lower-case names, plain and hashed (ssh hashes the lower-cased name).
  const hashed = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update('[hidden.example]:2222').digest('base64')}`;
  writeFileSync(
    file,
    `[localhost]:2222 ssh-ed25519 ${other.toString('base64')}\n${hashed} ssh-ed25519 ${other.toString('base64')}\nPI.Farm ssh-ed25519 ${key.toString('base64')}\n`,
  );
  assert.equal(checkHostKey(file, 'LOCALHOST', 2222, key), 'mismatch');
  assert.equal(checkHostKey(file, 'LocalHost', 2222, key), 'mismatch');
  assert.equal(checkHostKey(file, 'Hidden.Example', 2222, key), 'mismatch');
  assert.equal(checkHostKey(file, 'pi.farm', 22, key), 'known');
  // An accepted host is written as ssh writes it, so ssh and cmp read the same entry back.
  addHostKey(file, 'NEW.Local', 2200, 'ssh-ed25519', key);
  assert.match(readFileSync(file, 'utf8'), /^\[new\.local\]:2200 ssh-ed25519 /m);
  assert.equal(checkHostKey(file, 'new.local', 2200, other), 'mismatch');
});

test('known_hosts: the global file counts with the user file, for known, changed and revoked keys', () => {
  const dir = tempDir();
  const key = hostKey(dir, 'a');
  const other = hostKey(dir, 'b');
  const user = join(dir, 'known_hosts');
  const global = join(dir, 'ssh_known_hosts');
  writeFileSync(user, '');
  writeFileSync(
    global,
    `pi.local ssh-ed25519 ${other.toString('base64')}\n@revoked bad.local ssh-ed25519 ${key.toString('base64')}\nok.local ssh-ed25519 ${key.toString('base64')}\n`,
  );
  writeFileSync(user, `bad.local ssh-ed25519 ${key.toString('base64')}\n`);
  assert.equal(checkHostKey([user, global], 'pi.local', 22, key), 'mismatch');
  assert.equal(checkHostKey([user, global], 'bad.local', 22, key), 'revoked');
  assert.equal(checkHostKey([user, global], 'ok.local', 22, key), 'known');
  assert.equal(checkHostKey([user, global], 'new.local', 22, key), 'unknown');
  // Where ssh looks for them (GlobalKnownHostsFile's default).
  assert.deepEqual(GLOBAL_KNOWN_HOSTS, ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2']);
});

test('--host parsing: user@host[:port], IPv6 in brackets; anything else is one clear error', () => {
  assert.deepEqual(parseRemoteAddress('pi@raspberrypi.local'), { user: 'pi', host: 'raspberrypi.local', port: 22 });
  assert.deepEqual(parseRemoteAddress('pi@10.0.0.7:2222'), { user: 'pi', host: '10.0.0.7', port: 2222 });
  assert.deepEqual(parseRemoteAddress('pi@[fe80::1]:22'), { user: 'pi', host: 'fe80::1', port: 22 });
  assert.equal(parseRemoteAddress('pi@host', 2022).port, 2022);
  for (const bad of ['pi@-oProxyCommand=x', 'pi@host;rm', 'pi@host:99999', '@host', 'p i@host', 'pi@']) {
    assert.throws(() => parseRemoteAddress(bad), /is not user@host\[:port\]/, bad);
  }
});

test('shell quoting: plain words stay, everything else is one literal argument', () => {
  assert.equal(shellQuote('.cmp/current/cmp-edge.mjs'), '.cmp/current/cmp-edge.mjs');
  for (const arg of ["it's", '$(reboot)', 'a b', '`x`', '', '; rm -rf ~', '\n']) {
    const r = spawnSync('sh', ['-c', `printf %s ${shellQuote(arg)}`], { encoding: 'utf8' });
    assert.equal(r.stdout, arg);
  }
});
