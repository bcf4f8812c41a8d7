// The SSH edge, without a server: known_hosts matching as OpenSSH does it, host parsing and shell quoting.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { addHostKey, checkHostKey, keyTypeOf } from '../../src/deploy/known-hosts.js';
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
