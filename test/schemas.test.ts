// The JSON Schema files in schemas/: current with the valibot schemas, shipped in the package, and saying what the
// readers say about real documents.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Ajv } from 'ajv';
import { FORMATS, jsonSchemaText, SCHEMA_DIR, schemaPath } from '../schemas/build.js';
import { parseManifest } from '../src/core/manifest.js';
import { buildSpec, parseSpec } from '../src/core/spec.js';
import { checkClientMessage } from '../src/dashboard/messages.js';
import { checkDeviceProfile } from '../src/profile/device-profile-check.js';
import { readModelFile } from '../src/runtime/model-file.js';
import { EXIT_MASKED_MLP, fixtures } from './fixtures.js';
import { ROOT, tempDir } from './helpers.js';

test('every format has a schema file, and each file is what schemas/build.ts writes now', () => {
  const files = readdirSync(SCHEMA_DIR).filter((f) => f.endsWith('.schema.json'));
  assert.deepEqual(
    files.sort(),
    Object.keys(FORMATS)
      .map((name) => `${name}.schema.json`)
      .sort(),
  );
  for (const name of Object.keys(FORMATS)) {
    assert.equal(
      readFileSync(schemaPath(name), 'utf8'),
      jsonSchemaText(name),
      `schemas/${name}.schema.json is out of date: run npm run build:schemas`,
    );
  }
});

test('the package ships the schema files and exports them by path', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    files: string[];
    exports: Record<string, unknown>;
  };
  assert.ok(pkg.files.includes('schemas/*.schema.json'), 'package.json files lists schemas/*.schema.json');
  assert.equal(pkg.exports['./schemas/*.schema.json'], './schemas/*.schema.json');
});

/** A JSON Schema validator over the files (date-time is a format ajv leaves to a plugin: accept any string there). */
function validator(name: string): (value: unknown) => boolean {
  const ajv = new Ajv({ strict: false, formats: { 'date-time': true } });
  return ajv.compile(JSON.parse(readFileSync(schemaPath(name), 'utf8')) as object);
}

test('a real manifest (exits and an input mask) and spec pass the reader and the schema file; damage fails both', async () => {
  const path = join(tempDir(), 'exit-masked.onnx');
  await fixtures.onnx(EXIT_MASKED_MLP, path);
  const manifest = readModelFile(path).manifest!;
  assert.ok(manifest.exits?.length && manifest.inputMask, 'the fixture has exits and a mask');
  const manifestOk = validator('cmp-manifest');
  assert.ok(manifestOk(manifest));
  const damaged = { ...manifest, inputMask: { ...manifest.inputMask, kept: ['7'] } };
  assert.equal(manifestOk(damaged), false);
  assert.throws(
    () => parseManifest(JSON.stringify(damaged), 'm.onnx'),
    /has inputMask\.kept\[0\] "7", expected number/,
  );
  const specOk = validator('cmp-model');
  const spec = buildSpec('lenet', {
    inputShape: [1, 28, 28],
    labels: ['a', 'b'],
    binarizeWeights: 'dab',
    binarizeInputs: 'none',
    keepFloatWeights: [],
    keepFloatInputs: [],
    exits: [1],
  });
  assert.ok(specOk(spec) && specOk(manifest.spec));
  const noKernel = { ...spec, layers: spec.layers.map((l) => (l.kind === 'conv' ? { ...l, kernel: 0 } : l)) };
  assert.equal(specOk(noKernel), false);
  assert.throws(() => parseSpec(noKernel, 'model.json'), /has layers\[0\]\.kernel 0, expected >=1/);
});

test('a profile and a dashboard request pass the reader and the schema file; damage fails both', () => {
  const profile = {
    schema: 'cmp-profile/1',
    device: { name: 'this machine', platform: 'linux', arch: 'x64', cpus: 2, memoryBytes: 8e9, runtime: 'node v20' },
    model: { path: 'fm.onnx' },
    backend: 'ort-node',
    dataset: 'fashion-mnist',
    samples: 2,
    accuracy: 0.5,
    latencyMs: { mean: 0.2, p50: 0.2, p90: 0.3, p99: 0.3, min: 0.1, max: 0.3 },
    latenciesMs: [0.1, 0.3],
    stages: [{ name: 'model', runs: 2, mean: 0.2, p50: 0.2, p90: 0.3, p99: 0.3, min: 0.1, max: 0.3 }],
    exits: [{ exit: 'final', share: 1, accuracy: 0.5 }],
    throughputPerS: 5000,
    startedAt: '2026-12-04T23:00:00.000Z',
    durationMs: 0.4,
  };
  const profileOk = validator('cmp-profile');
  assert.ok(profileOk(profile));
  assert.equal(checkDeviceProfile(profile, 'test'), profile);
  for (const [damaged, pattern] of [
    [{ ...profile, accuracy: 1.5 }, /has accuracy 1\.5, expected <=1/],
    [{ ...profile, device: { ...profile.device, gpu: 'none' } }, /has unknown field "device\.gpu"/],
  ] as const) {
    assert.equal(profileOk(damaged), false);
    assert.throws(() => checkDeviceProfile(damaged, 'test'), pattern);
  }
  const messageOk = validator('cmp-dashboard');
  const request = { id: 1, type: 'profile', device: 'local:ort-node', model: 'fm.onnx', dataset: 'auto', count: 5 };
  assert.ok(messageOk(request));
  assert.equal(checkClientMessage(request), request);
  const extra = { ...request, shell: 'rm -rf' };
  assert.equal(messageOk(extra), false);
  assert.throws(() => checkClientMessage(extra), /"profile" has unknown field "shell"/);
});
