// What cmp import reads: regular files only, a TF.js model's weight files only inside its folder (links resolved),
// and no error quotes a file's content.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { assertOneLineError, CLI, runCli, tempDir } from '../helpers.js';

test('import refuses a device or a FIFO as the model file at once, instead of reading without end', () => {
  const dir = tempDir();
  const fifo = join(dir, 'model.onnx');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  for (const path of ['/dev/zero', fifo]) {
    // A read that never ends is a hang: the guard is far above a normal refusal.
    const r = spawnSync(process.execPath, [CLI, 'import', path, '--format', 'onnx', '--out', join(dir, 'out')], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    assertOneLineError({ code: r.status ?? -1, stderr: r.stderr }, /Cannot read .*: it is not a regular file/);
  }
});

test('a TF.js model names weight files only inside its folder, and its errors never quote the file', () => {
  const dir = tempDir();
  const json = join(dir, 'model.json');
  writeFileSync(
    json,
    JSON.stringify({
      format: 'layers-model',
      modelTopology: { class_name: 'Sequential', config: { layers: [] } },
      weightsManifest: [{ paths: ['passwd-link.bin'], weights: [] }],
    }),
  );
  symlinkSync('/etc/passwd', join(dir, 'passwd-link.bin'));
  const out = join(tempDir(), 'run');
  assertOneLineError(runCli(['import', json, '--out', out]), /weight file "passwd-link\.bin".*outside/);
  writeFileSync(json, 'SECRET-7f3a: not json');
  const r = runCli(['import', json, '--out', out]);
  assertOneLineError(r, /model\.json is not JSON\./);
  assert.doesNotMatch(r.stderr, /SECRET/);
});
