// The browser target end to end: a small early-exit model deployed as a site, served by cmp serve, run in headless
// Chromium; its answers equal Node's, its profile comes back, and bad input gets one-line errors.

import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { predictFrozenWithExits } from '../../src/compress/train.js';
import { binarizeRows } from '../../src/core/binarize.js';
import { softmaxEntropy } from '../../src/core/entropy.js';
import type { FrozenModel, FrozenWeightLayer } from '../../src/core/frozen.js';
import { stagePath } from '../../src/core/manifest.js';
import { makeRng } from '../../src/core/rng.js';
import { SITE_LOGIT_TOLERANCE, type SiteConfig } from '../../src/core/site.js';
import type { LayerSpec } from '../../src/core/spec.js';
import { exportOnnx } from '../../src/export/export-onnx.js';
import { checkDeviceProfile } from '../../src/profile/device-profile-check.js';
import { readModelFile } from '../../src/runtime/model-file.js';
import { Predictor } from '../../src/runtime/predictor.js';
import type { PageState } from '../../targets/browser/page.js';
import { binarizedCase, EXIT_MLP, fixtureData, fixtures } from '../fixtures.js';
import { assertOneLineError, CLI, HANG_MS, launchChromium, maxAbsDiff, runCli, tempDir } from '../helpers.js';

const SAMPLES = 40;

let dir: string;
let site: string;
let exitModel: string;
let binaryModel: string;
let server: { child: ChildProcessWithoutNullStreams; url: string; port: number; lines: string[] };
let browser: Browser;
let page: Page;

before(async () => {
  dir = tempDir('cmp-browser-');
  site = join(dir, 'site');
  const data = await fixtureData(EXIT_MLP.data);
  const { frozen } = await fixtures.model(EXIT_MLP);
  // The exit's median entropy on the samples as its threshold, so samples leave at the exit and at the end.
  const exitLogits = (await predictFrozenWithExits(frozen, data, data.test, SAMPLES)).exits[0];
  const entropies = Array.from({ length: SAMPLES }, (_, i) => softmaxEntropy(exitLogits, i * 10, 10)).sort(
    (a, b) => a - b,
  );
  const threshold = (entropies[SAMPLES / 2 - 1] + entropies[SAMPLES / 2]) / 2;
  const training = { dataset: 'fashion-mnist', epochs: 1, testAccuracy: 0 };
  const exported = exportOnnx({ ...frozen, exits: (frozen.exits ?? []).map((e) => ({ ...e, threshold })) }, training);
  exitModel = join(dir, 'fm-exit.onnx');
  writeFileSync(exitModel, exported.bytes);
  exported.stages.forEach((bytes, k) => writeFileSync(stagePath(exitModel, k + 1), bytes));
  binaryModel = join(dir, 'fm-bin.onnx');
  writeFileSync(binaryModel, exportOnnx({ ...frozen, exits: [] }, training).bytes);

  // onnxruntime-web on request: a binary model alone would ship bitwasm only (the last tests).
  const deployed = runCli([
    'deploy',
    exitModel,
    '--target',
    'browser',
    '--out',
    site,
    '--samples',
    String(SAMPLES),
    '--backend',
    'ort-web',
  ]);
  assert.equal(deployed.code, 0, deployed.stderr);
  server = await startServe(site);
  browser = await launchChromium();
  page = await browser.newPage();
  page.setDefaultTimeout(HANG_MS);
});

after(async () => {
  await browser?.close();
  if (server) {
    const { child } = server;
    const exited =
      child.exitCode !== null ? Promise.resolve(child.exitCode) : new Promise((done) => child.once('exit', done));
    child.kill('SIGTERM');
    assert.equal(await exited, 0, 'cmp serve stops cleanly on SIGTERM');
  }
  rmSync(dir, { recursive: true, force: true });
});

/** Starts `cmp serve DIR --port 0 --json` and reads the address from its first line. */
async function startServe(root: string): Promise<typeof server> {
  const child = spawn(process.execPath, [CLI, 'serve', root, '--port', '0', '--json']);
  const lines: string[] = [];
  let buffered = '';
  const first = new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      lines.push(...parts);
      if (lines.length) resolve(lines[0]);
    });
    child.once('exit', (code) => reject(new Error(`cmp serve exited with ${code}`)));
  });
  const url = (JSON.parse(await first) as { url: string }).url;
  return { child, url, port: Number(new URL(url).port), lines };
}

/** Opens the page (with `query`) and waits until it has answered every sample or failed. */
async function openPage(query = ''): Promise<PageState> {
  await page.goto(`${server.url}${query}`);
  await page.waitForFunction(() => window.cmp !== undefined && window.cmp.state !== 'running');
  return page.evaluate(() => window.cmp);
}

/** What onnxruntime-node (or another backend) answers in Node for the site's samples. */
async function nodeAnswers(
  model: string,
  config: SiteConfig,
  backend: 'ort-node' | 'bitwasm' = 'ort-node',
): Promise<{ label: number; exit: number; logits: Float32Array }[]> {
  const bytes = readFileSync(join(site, config.samples.file));
  const pixels = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const predictor = await Predictor.open(readModelFile(model), { backend });
  const answers = [];
  for (let i = 0; i < config.samples.count; i++) {
    const f = config.samples.features;
    answers.push(await predictor.infer(pixels.subarray(i * f, (i + 1) * f)));
  }
  await predictor.dispose();
  return answers;
}

/** One HTTP exchange with the server, byte for byte as given (no URL normalising). */
function exchange(
  method: string,
  path: string,
  options: { body?: string | Buffer; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, method, path, headers: options.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
      );
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

const siteConfig = (): SiteConfig => JSON.parse(readFileSync(join(site, 'site.json'), 'utf8')) as SiteConfig;

test(`the page answers ${SAMPLES} samples as Node does (same labels and exits, logits within ${SITE_LOGIT_TOLERANCE}), cross-origin isolated`, async (t) => {
  const config = siteConfig();
  const expected = await nodeAnswers(exitModel, config);
  const state = await openPage();
  assert.equal(state.state, 'done', state.error);
  assert.equal(state.crossOriginIsolated, true);
  assert.equal(await page.evaluate(() => crossOriginIsolated), true);
  // The site ships what --backend ort-web asked for, and nothing of bitwasm.
  assert.equal(state.backend, 'ort-web');
  assert.deepEqual(config.runtimes, ['ort-web']);
  assert.equal(existsSync(join(site, 'bitwasm.wasm')), false);
  const results = state.results ?? [];
  assert.equal(results.length, SAMPLES);
  let largest = 0;
  for (const [i, r] of results.entries()) {
    assert.equal(r.label, expected[i].label, `sample ${i} label`);
    assert.equal(r.exit, expected[i].exit, `sample ${i} exit`);
    const diff = maxAbsDiff(r.logits, expected[i].logits);
    assert.ok(diff <= SITE_LOGIT_TOLERANCE, `sample ${i}: logits differ by ${diff}`);
    assert.equal(r.label, config.samples.host.predictions[i].label, `sample ${i}: site.json's host label`);
    largest = Math.max(largest, diff);
  }
  t.diagnostic(`${state.backend} in Chromium against ort-node: largest logit difference ${largest}`);
  assert.deepEqual(new Set(results.map((r) => r.exit)), new Set([0, 1]), 'samples leave at the exit and at the end');
});

test('the page posts a cmp-profile/1 profile that cmp serve stores and announces', async () => {
  const state = await openPage();
  assert.equal(state.state, 'done', state.error);
  const saved = state.profileSaved ?? '';
  assert.match(saved, new RegExp(`^profiles/.+-${state.profile?.backend ?? '?'}\\.json$`));
  assert.match(state.profile?.backend ?? '', /^(bitwasm|ort-web)$/);
  const stored = checkDeviceProfile(JSON.parse(readFileSync(join(site, saved), 'utf8')), saved);
  assert.deepEqual(stored, state.profile);
  assert.equal(stored.device.name, 'browser');
  assert.equal(stored.device.arch, 'wasm');
  assert.equal(stored.samples, SAMPLES);
  assert.equal(stored.latenciesMs.length, SAMPLES);
  assert.deepEqual(
    stored.stages.map((s) => s.name),
    ['stage1', 'stage2'],
  );
  assert.ok(Math.abs(stored.exits.reduce((a, e) => a + e.share, 0) - 1) < 1e-9);
  assert.ok(
    server.lines.some((l) => (JSON.parse(l) as { profile?: string }).profile === join(site, saved)),
    server.lines.join('\n'),
  );
});

test('served files carry COOP/COEP and their MIME types; paths outside the site are not served', async () => {
  for (const [path, type] of [
    ['/', 'text/html; charset=utf-8'],
    ['/cmp-page.js', 'text/javascript; charset=utf-8'],
    ['/ort-web.js', 'text/javascript; charset=utf-8'],
    ['/ort-wasm-simd-threaded.mjs', 'text/javascript; charset=utf-8'],
    ['/ort-wasm-simd-threaded.wasm', 'application/wasm'],
  ]) {
    const res = await exchange('HEAD', path);
    assert.equal(res.status, 200, path);
    assert.equal(res.headers['content-type'], type, path);
    assert.equal(res.headers['cross-origin-opener-policy'], 'same-origin', path);
    assert.equal(res.headers['cross-origin-embedder-policy'], 'require-corp', path);
  }
  for (const path of ['/../fm-exit.onnx', '/model/..%2F..%2Ffm-exit.onnx', '/%2e%2e/fm-exit.onnx', '/model/']) {
    assert.equal((await exchange('GET', path)).status, 404, path);
  }
});

test('bad profile posts get one-line refusals: not JSON, wrong shape, too large, another origin', async () => {
  const json = { 'content-type': 'application/json' };
  const cases: [number, RegExp, Parameters<typeof exchange>[2]][] = [
    [400, /^Profile is not JSON \(.+\)\. Send one cmp-profile\/1 object\.$/, { body: '{"schema":', headers: json }],
    [
      400,
      /^Profile from the page has schema "x", expected "cmp-profile\/1"\. /,
      { body: '{"schema":"x"}', headers: json },
    ],
    [413, /^Profile is larger than \d+ bytes\./, { body: Buffer.alloc(9 * 1024 * 1024, 32), headers: json }],
    [
      403,
      /^Profiles from http:\/\/evil\.example are refused/,
      { body: '{}', headers: { ...json, origin: 'http://evil.example' } },
    ],
  ];
  for (const [status, pattern, options] of cases) {
    const res = await exchange('POST', '/profiles', options);
    assert.equal(res.status, status, res.body);
    assert.equal(res.body.trimEnd().split('\n').length, 1, res.body);
    assert.match(res.body.trim(), pattern);
  }
  assert.equal((await exchange('HEAD', '/')).status, 200, 'the server still serves');
});

test('a redeploy of an all-binary model ships bitwasm alone, under 1 MiB besides the model, and runs as Node does', async (t) => {
  const profiles = readdirSync(join(site, 'profiles'));
  const deployed = runCli(['deploy', binaryModel, '--target', 'browser', '--out', site, '--json']);
  assert.equal(deployed.code, 0, deployed.stderr);
  assert.equal(existsSync(join(site, 'model', 'fm-exit.stage1.onnx')), false, 'the earlier model is gone');
  assert.deepEqual(readdirSync(join(site, 'profiles')), profiles, 'profiles stay');
  const report = JSON.parse(deployed.stdout) as { bytes: number; runtimes: string[]; parts: Record<string, number> };
  assert.deepEqual(report.runtimes, ['bitwasm']);
  assert.deepEqual(Object.keys(report.parts), ['page', 'bitwasm', 'model', 'samples', 'site.json']);
  assert.equal(
    Object.values(report.parts).reduce((a, b) => a + b, 0),
    report.bytes,
  );
  assert.ok(
    report.bytes - report.parts.model < 2 ** 20,
    `site without the model: ${report.bytes - report.parts.model} B`,
  );
  const onDisk = readdirSync(site).filter((name) => name !== 'profiles' && name !== 'model');
  assert.deepEqual(onDisk.sort(), ['bitwasm.wasm', 'cmp-page.js', 'index.html', 'samples.f32', 'site.json']);
  t.diagnostic(`site: ${JSON.stringify(report.parts)}`);
  const config = siteConfig();
  const expected = await nodeAnswers(binaryModel, config);
  for (const query of ['', '?backend=auto', '?backend=bitwasm']) {
    const state = await openPage(query);
    assert.equal(state.state, 'done', state.error);
    assert.equal(state.backend, 'bitwasm', query);
    assert.equal(state.results?.length, config.samples.count);
    let largest = 0;
    for (const [i, r] of (state.results ?? []).entries()) {
      assert.equal(r.label, expected[i].label, `sample ${i} label`);
      const diff = maxAbsDiff(r.logits, expected[i].logits);
      assert.ok(diff <= SITE_LOGIT_TOLERANCE, `sample ${i}: logits differ by ${diff}`);
      largest = Math.max(largest, diff);
    }
    t.diagnostic(
      `bitwasm in Chromium against ort-node (${query || 'site backend'}): largest logit difference ${largest}`,
    );
  }
  const missing = await openPage('?backend=ort-web');
  assert.equal(missing.state, 'error');
  assert.equal(missing.error, 'This site ships bitwasm only, not ort-web. Deploy it again with --backend ort-web.');
  const refused = await openPage('?backend=ort-node');
  assert.equal(refused.state, 'error');
  assert.equal(refused.error, 'Unknown backend "ort-node". Use one of: auto, bitwasm, ort-web.');
});

test('a LeNet with DAB weights and float activations (direct and per-pixel-table convs) runs in Chromium as Node does', async (t) => {
  // conv1 (1 channel) runs the direct kernel, conv2 the per-pixel subset-sum tables (engine-wasm.ts maskedConvPlan).
  const { frozen } = await fixtures.model(binarizedCase('lenet', 'dab', 'none'));
  const model = join(dir, 'lenet-dab.onnx');
  writeFileSync(model, exportOnnx(frozen, { dataset: 'fashion-mnist', epochs: 1, testAccuracy: 0 }).bytes);
  const deployed = runCli(['deploy', model, '--target', 'browser', '--out', site, '--json']);
  assert.equal(deployed.code, 0, deployed.stderr);
  const config = siteConfig();
  const expected = await nodeAnswers(model, config);
  const state = await openPage('?backend=bitwasm');
  assert.equal(state.state, 'done', state.error);
  assert.equal(state.backend, 'bitwasm');
  assert.equal(state.results?.length, config.samples.count);
  let largest = 0;
  for (const [i, r] of (state.results ?? []).entries()) {
    assert.equal(r.label, expected[i].label, `sample ${i} label`);
    largest = Math.max(largest, maxAbsDiff(r.logits, expected[i].logits));
  }
  assert.ok(largest <= SITE_LOGIT_TOLERANCE, `logits differ by up to ${largest}`);
  t.diagnostic(`bitwasm in Chromium against ort-node, DAB-weight LeNet: largest logit difference ${largest}`);
});

test('a dense layer of 256 rows on binarized inputs (popcount columns) runs in Chromium as Node does', async (t) => {
  // bitwasm runs binarized-input dense layers of 128 rows or more from weight columns (kernels.as.ts popColumns). Random
  // DAB weights on the trained MLP fixture's input: 784 -> 256 -> 10, both layers on DAB-binarized inputs.
  const { frozen: mlp } = await fixtures.model(binarizedCase('mlp', 'dab', 'dab'));
  const next = makeRng(23);
  const random = (n: number, scale = 1, offset = 0): Float32Array =>
    Float32Array.from({ length: n }, () => offset + (next() * 2 - 1) * scale);
  const layer = (name: string, features: number, units: number): FrozenWeightLayer => ({
    kind: 'dense',
    name,
    weightShape: [features, units],
    weights: { kind: 'binary', ...binarizeRows(random(units * features), units, features, 'dab') },
    scale: random(units, 0.5, 1),
    shift: random(units, 0.5),
    activation: 'none',
    inputs: 'dab',
  });
  const spec = (name: string, units: number): LayerSpec => ({
    kind: 'dense',
    name,
    units,
    batchNorm: true,
    activation: 'none',
    binarize: { weights: 'dab', inputs: 'dab' },
  });
  const features = mlp.spec.input.shape.reduce((a, b) => a * b, 1);
  const frozen: FrozenModel = {
    spec: {
      ...mlp.spec,
      layers: [{ kind: 'flatten', name: 'flatten' }, spec('fc1', 256), spec('logits', mlp.spec.labels.length)],
    },
    layers: [
      { kind: 'flatten', name: 'flatten' },
      layer('fc1', features, 256),
      layer('logits', 256, mlp.spec.labels.length),
    ],
  };
  const model = join(dir, 'dense-256.onnx');
  writeFileSync(model, exportOnnx(frozen, { dataset: 'fashion-mnist', epochs: 0, testAccuracy: 0 }).bytes);
  const deployed = runCli(['deploy', model, '--target', 'browser', '--out', site, '--json']);
  assert.equal(deployed.code, 0, deployed.stderr);
  const config = siteConfig();
  // Integer counts: Chromium's answers equal Node's bitwasm to the bit. Against onnxruntime (float32 sums, logits
  // near 100 here) the labels are equal and the logits agree to float32 rounding.
  const ort = await nodeAnswers(model, config);
  const node = await nodeAnswers(model, config, 'bitwasm');
  const state = await openPage('?backend=bitwasm');
  assert.equal(state.state, 'done', state.error);
  assert.equal(state.backend, 'bitwasm');
  assert.equal(state.results?.length, config.samples.count);
  let relative = 0;
  for (const [i, r] of (state.results ?? []).entries()) {
    assert.equal(r.label, ort[i].label, `sample ${i} label`);
    assert.equal(maxAbsDiff(r.logits, node[i].logits), 0, `sample ${i}: Chromium's logits equal Node's bitwasm`);
    const scale = Math.max(1, ...Array.from(ort[i].logits, Math.abs));
    relative = Math.max(relative, maxAbsDiff(r.logits, ort[i].logits) / scale);
  }
  assert.ok(relative <= SITE_LOGIT_TOLERANCE, `logits differ from onnxruntime's by up to ${relative} (relative)`);
  t.diagnostic(`784 -> 256 -> 10 on DAB inputs: Chromium = Node bitwasm; relative difference to ort-node ${relative}`);
});

test('deploy and serve refuse bad input with one line: no --out, a foreign folder, a missing site, a busy port', () => {
  assertOneLineError(runCli(['deploy', exitModel, '--target', 'browser']), /needs --out DIR/);
  const foreign = join(dir, 'foreign');
  mkdirSync(foreign);
  writeFileSync(join(foreign, 'notes.txt'), 'mine');
  assertOneLineError(
    runCli(['deploy', exitModel, '--target', 'browser', '--out', foreign]),
    /--out .*foreign holds files and is not a cmp site \(no site\.json\)/,
  );
  assert.equal(readFileSync(join(foreign, 'notes.txt'), 'utf8'), 'mine', 'nothing of the folder was touched');
  assertOneLineError(
    runCli(['serve', join(dir, 'missing')]),
    /There is no folder .*missing to serve\. Write the site first: npx cmp deploy MODEL/,
  );
  assertOneLineError(runCli(['serve', dir]), /is not a cmp site \(no site\.json\)/);
  assertOneLineError(runCli(['serve', site, '--port', String(server.port)]), /Port \d+ on 127\.0\.0\.1 is in use/);
});
