// The dashboard end to end: `cmp dashboard --http` as a user starts it, opened in headless Chromium, profiling this
// machine (onnxruntime-node and bitwasm) and the microcontroller firmware under QEMU; the numbers on screen equal the
// server's JSON, the charts hold data, the report exports, and the server refuses what it must. The dashboard and
// `cmp profile` profile a device through the same target, so their cmp-profile/1 agree on everything but the timings.

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import WebSocket from 'ws';
import { predictFrozenWithExits } from '../../src/compress/train.js';
import { softmaxEntropy } from '../../src/core/entropy.js';
import { parseGranularity } from '../../src/core/mask.js';
import type {
  DashboardDevice,
  JobState,
  ModelView,
  ProfileEntry,
  ServerMessage,
} from '../../src/dashboard/messages.js';
import { recordDevice } from '../../src/deploy/devices.js';
import type { ModelAnalysis } from '../../src/profile/analyze.js';
import type { DeviceProfile } from '../../src/profile/device-profile.js';
import { requireTool } from '../../src/link/firmware-build.js';
import { startQemu, type QemuBoard } from '../../src/link/qemu.js';
import { FORMAT } from '../../app/renderer/format.js';
import { DAB_MLP, fixtureData, fixtures, type ModelFixture } from '../fixtures.js';
import { CLI, HANG_MS, launchChromium, ROOT, runCli, sleep, tempDir, TEST_CMP_HOME } from '../helpers.js';

const ARTIFACTS = join(ROOT, 'test-artifacts');
const LOCAL_COUNT = 300;
/** Each image crosses the emulated UART: enough for both exits and for progress between start and end. */
const MCU_COUNT = 30;

const dir = tempDir('cmp-dashboard-');
let runDir: string;
let exitModel: string;
let plainModel: string;
let site: string;
let board: QemuBoard;
let dashboard: { child: ChildProcessWithoutNullStreams; url: string; port: number; token: string };
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];
/** What `cmp profile --json` measured in before(), for the devices and models the page profiles after. */
const cliProfiles: { bitwasm?: DeviceProfile; board?: DeviceProfile } = {};

/** A DAB MLP with one exit and a learned static input mask, saved as a run folder with its mask checkpoints. */
const MASK_EXIT_MLP: ModelFixture = {
  data: { dataset: 'fashion-mnist', limitTrain: 2000, limitTest: 200 },
  train: {
    arch: 'mlp',
    widths: [64, 32],
    exits: [1],
    binarizeWeights: 'dab',
    binarizeActivations: 'dab',
    epochs: 6,
    batchSize: 50,
    learningRate: 0.003,
    seed: 4,
    mask: {
      kind: 'static',
      granularity: parseGranularity('pixel'),
      source: 'learned',
      values: 'uint8',
      schedule: { start: 0.002, growth: 1.5, patience: 1, tolerance: 0.05 },
      warmupEpochs: 0,
      checkpointStep: 0.01,
      checkpointKeptRatio: 0.8,
      minKeep: 0.05,
    },
  },
};

before(async () => {
  requireTool('qemu-system-arm');
  const firmware = await fixtures.firmware('mps2-an385');
  const data = await fixtureData(MASK_EXIT_MLP.data);
  // A copy of the cached run: cmp calibrate writes into it.
  runDir = await fixtures.runFolder(MASK_EXIT_MLP, join(dir, 'runs', 'fm-mask-exit'));
  const trained = await fixtures.model(MASK_EXIT_MLP);
  // The exit's median entropy on test images as its threshold: about half leave on the device, half are handed off.
  const probe = await predictFrozenWithExits(trained.frozen, data, data.test, 200);
  const entropies = Array.from({ length: 200 }, (_, i) => softmaxEntropy(probe.exits[0], i * 10, 10)).sort(
    (a, b) => a - b,
  );
  const threshold = (entropies[99] + entropies[100]) / 2;
  const calibrated = runCli(['calibrate', runDir, '--thresholds', threshold.toFixed(6), '--quiet']);
  assert.equal(calibrated.code, 0, calibrated.stderr);
  exitModel = join(dir, 'fm-mask-exit.onnx');
  const exported = runCli(['export', runDir, '--out', exitModel, '--quiet']);
  assert.equal(exported.code, 0, exported.stderr);
  // The bitwasm card profiles a plain DAB MLP (auto keeps stage files on onnxruntime).
  plainModel = await fixtures.onnx(DAB_MLP, join(dir, 'fm-dab.onnx'));

  board = await startQemu({ elfPath: firmware.elfPath });
  const deployed = runCli(['deploy', exitModel, '--target', 'mcu', '--port', board.port, '--data', 'fashion-mnist']);
  assert.equal(deployed.code, 0, deployed.stderr);
  // The cost tables cmp profile records: this machine's backends (ort-node fitted over whole models, bitwasm over
  // its layers) and the board (its layers' cycle counts); the cards and the model view estimate from them.
  // (cmp profile --target host takes whole images: the masked model's table comes from the plain one.) The local and
  // board runs profile what the page profiles later, to compare the two.
  const profiled = (args: string[], count: number): DeviceProfile => {
    const r = runCli(['profile', ...args, '--data', 'fashion-mnist', '--limit', String(count), '--json', '--quiet']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as DeviceProfile & { profile?: DeviceProfile };
    return out.profile ?? out;
  };
  for (const backend of ['ort-node', 'bitwasm']) {
    const common = ['--data', 'fashion-mnist', '--limit', '20', '--quiet'];
    const timed = runCli(['profile', plainModel, '--target', 'host', '--backend', backend, ...common]);
    assert.equal(timed.code, 0, timed.stderr);
  }
  cliProfiles.bitwasm = profiled([plainModel, '--target', 'local', '--backend', 'bitwasm'], LOCAL_COUNT);
  cliProfiles.board = profiled([exitModel, '--target', 'mcu', '--port', board.port], MCU_COUNT);
  site = join(dir, 'site');
  const written = runCli(['deploy', plainModel, '--target', 'browser', '--out', site, '--samples', '5', '--quiet']);
  assert.equal(written.code, 0, written.stderr);

  dashboard = await startDashboard(['--model', exitModel]);
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 }, acceptDownloads: true });
  page.setDefaultTimeout(HANG_MS);
  // A policy violation or a script error shows up here: the page must run clean under its CSP.
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(m.text());
  });
  page.on('pageerror', (err) => pageErrors.push(err.message));
});

after(async () => {
  await browser?.close();
  if (dashboard) {
    const { child } = dashboard;
    const exited =
      child.exitCode !== null ? Promise.resolve(child.exitCode) : new Promise((done) => child.once('exit', done));
    child.kill('SIGTERM');
    assert.equal(await exited, 0, 'cmp dashboard stops cleanly on SIGTERM');
  }
  await board?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Starts `cmp dashboard --http --port 0 --json` and reads the address (with its token) from the first line. */
async function startDashboard(extra: string[]): Promise<typeof dashboard> {
  const child = spawn(process.execPath, [CLI, 'dashboard', '--http', '--port', '0', '--json', ...extra], {
    env: { ...process.env, CMP_HOME: TEST_CMP_HOME },
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const first = await new Promise<string>((done, fail) => {
    let buffered = '';
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      if (buffered.includes('\n')) done(buffered.split('\n')[0]);
    });
    child.once('exit', (code) => fail(new Error(`cmp dashboard exited with ${code}: ${stderr}`)));
  });
  const { url, port } = JSON.parse(first) as { url: string; port: number };
  return { child, url, port, token: new URL(url).searchParams.get('token') ?? '' };
}

/**
 * A profile without what varies from run to run: latencies, throughput, times, memory, and the bytes on the wire (a
 * frame QEMU's PTY dropped is sent again and counted).
 */
function measuredOnce(p: DeviceProfile | undefined): unknown {
  assert.ok(p, 'a profile');
  return {
    schema: p.schema,
    device: p.device,
    model: p.model,
    backend: p.backend,
    dataset: p.dataset,
    samples: p.samples,
    accuracy: p.accuracy,
    exits: p.exits,
    stages: p.stages.map((s) => [s.name, s.runs]),
    fullBytes: p.link?.fullBytes,
    latencies: p.latenciesMs.length,
  };
}

/** One HTTP exchange with the dashboard, headers as given. */
function exchange(
  path: string,
  headers: Record<string, string> = {},
  method = 'GET',
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((done, fail) => {
    const req = request({ host: '127.0.0.1', port: dashboard.port, path, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        done({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
      );
    });
    req.on('error', fail);
    req.end();
  });
}

const origin = (): string => `http://127.0.0.1:${dashboard.port}`;
const wsUrl = (): string => `ws://127.0.0.1:${dashboard.port}/ws`;

/** The status a refused WebSocket upgrade answers with (fails if the upgrade succeeds). */
function refusedUpgrade(options: WebSocket.ClientOptions): Promise<number> {
  return new Promise((done, fail) => {
    const ws = new WebSocket(wsUrl(), options);
    ws.on('unexpected-response', (_req, res) => {
      done(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on('open', () => {
      ws.close();
      fail(new Error('the upgrade was accepted'));
    });
    ws.on('error', () => undefined);
  });
}

/** A client of the dashboard's WebSocket, as the page is: the token and the page's origin. */
class Client {
  readonly messages: ServerMessage[] = [];
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => this.messages.push(JSON.parse((data as Buffer).toString('utf8')) as ServerMessage));
  }

  static async open(): Promise<Client> {
    const ws = new WebSocket(wsUrl(), { origin: origin(), headers: { authorization: `Bearer ${dashboard.token}` } });
    await new Promise<void>((done, fail) => {
      ws.once('open', () => done());
      ws.once('error', fail);
    });
    return new Client(ws);
  }

  /** Sends `text` and resolves with the next reply or error whose id is `id`. */
  async exchange(text: string, id: number | null): Promise<ServerMessage> {
    const seen = this.messages.length;
    this.ws.send(text);
    for (const deadline = Date.now() + HANG_MS; Date.now() < deadline; await sleep(20)) {
      const answer = this.messages.slice(seen).find((m) => (m.type === 'reply' || m.type === 'error') && m.id === id);
      if (answer) return answer;
    }
    throw new Error(`no answer to ${text.slice(0, 80)}`);
  }

  async request<T>(message: Record<string, unknown>): Promise<T> {
    const answer = await this.exchange(JSON.stringify(message), message.id as number);
    if (answer.type !== 'reply') throw new Error(JSON.stringify(answer));
    return answer.result as T;
  }

  close(): void {
    this.ws.close();
  }
}

test('HTTP: no token is 401, a wrong one 403, the right one becomes a cookie; the page carries the CSP', async () => {
  assert.equal((await exchange('/')).status, 401);
  assert.match((await exchange('/')).body, /^No token\. Open the address cmp dashboard printed/);
  assert.equal((await exchange('/?token=wrong')).status, 403);
  assert.equal((await exchange('/', { cookie: `cmp-dashboard-${dashboard.port}=wrong` })).status, 403);
  assert.equal((await exchange('/dashboard.js', { authorization: 'Bearer wrong' })).status, 403);
  assert.equal((await exchange('/', { host: 'evil.example' })).status, 403, 'another host name (DNS rebinding)');
  const login = await exchange(`/?token=${dashboard.token}`);
  assert.equal(login.status, 303);
  assert.equal(login.headers.location, '/');
  const cookie = String(login.headers['set-cookie']);
  assert.match(cookie, new RegExp(`^cmp-dashboard-${dashboard.port}=${dashboard.token}; HttpOnly; SameSite=Strict`));
  const page = await exchange('/', { cookie: cookie.split(';')[0] });
  assert.equal(page.status, 200);
  const csp = String(page.headers['content-security-policy']);
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.match(csp, new RegExp(`connect-src ws://127\\.0\\.0\\.1:${dashboard.port} ws://localhost:${dashboard.port}`));
  assert.match(csp, /frame-ancestors 'none'/);
  assert.match(page.body, /<meta\s+http-equiv="Content-Security-Policy"/);
  assert.doesNotMatch(page.body, /<script>|<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
  assert.equal((await exchange('/', { 'x-cmp-token': dashboard.token }, 'POST')).status, 405);
  assert.equal((await exchange('/../package.json', { 'x-cmp-token': dashboard.token })).status, 404);
});

test('the server listens on 127.0.0.1 only', async () => {
  // Another loopback address reaches any socket bound to all interfaces; one bound to 127.0.0.1 refuses it.
  const code = await new Promise<string>((done) => {
    const socket = connect({ host: '127.0.0.2', port: dashboard.port });
    socket.on('connect', () => {
      socket.destroy();
      done('connected');
    });
    socket.on('error', (err: NodeJS.ErrnoException) => done(err.code ?? 'error'));
  });
  assert.equal(code, 'ECONNREFUSED');
  const listening = readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[3] === '0A' && Number.parseInt(f[1]?.split(':')[1] ?? '', 16) === dashboard.port);
  assert.deepEqual(
    listening.map((f) => f[1].split(':')[0]),
    ['0100007F'],
    'one listening socket, on 127.0.0.1',
  );
});

test('WebSocket: no token is 401, a wrong token or origin is refused, bad messages get one-line errors', async () => {
  const token = { authorization: `Bearer ${dashboard.token}` };
  assert.equal(await refusedUpgrade({ origin: origin() }), 401);
  assert.equal(await refusedUpgrade({ origin: origin(), headers: { authorization: 'Bearer wrong' } }), 403);
  assert.equal(await refusedUpgrade({ origin: 'http://evil.example', headers: token }), 403);
  assert.equal(await refusedUpgrade({ origin: `http://127.0.0.1:${dashboard.port + 1}`, headers: token }), 403);
  assert.equal(await refusedUpgrade({ headers: token }), 403, 'no Origin at all');

  const client = await Client.open();
  const cases: [string, number | null, RegExp][] = [
    ['not json', null, /^Dashboard message is not JSON \(.+\)\. Send one JSON object\.$/],
    ['[1,2]', null, /^Dashboard message has a top level that is a list, expected an object\./],
    ['{"type":"hello"}', null, /"hello" has no id/],
    ['{"id":1,"type":"shutdown"}', 1, /has type "shutdown", expected \("hello" \| "devices" \| "profile"/],
    ['{"id":2,"type":"hello","extra":true}', 2, /"hello" has unknown field "extra"/],
    ['{"id":3,"type":"hello","__proto__":{"x":1}}', 3, /unknown field "__proto__"/],
    ['{"id":4,"type":"profile","device":"local:ort-node","dataset":"auto","count":0}', 4, /count 0, expected >=1/],
    ['{"id":5,"type":"profile","device":"local:ort-node","dataset":"cifar","count":5}', 5, /dataset "cifar"/],
    ['{"id":6,"type":"model","path":"a\\nb"}', 6, /"model" has path "a\\nb", expected one line/],
    [
      '{"id":7,"type":"profile","device":"nope","model":"x.onnx","dataset":"auto","count":5}',
      7,
      /Unknown device "nope"\. Use one of: local:ort-node, local:bitwasm/,
    ],
    ['{"id":8,"type":"profile","device":"local:ort-node","dataset":"auto","count":5}', 8, /needs a model/],
    [
      '{"id":9,"type":"load-profile","path":"/nonexistent.json"}',
      9,
      /^Cannot read \/nonexistent\.json: .*Check the path\.$/,
    ],
    ['{"id":10,"type":"remove-profile","key":"p999"}', 10, /^There is no profile "p999"/],
  ];
  for (const [text, id, pattern] of cases) {
    const answer = await client.exchange(text, id);
    assert.equal(answer.type, 'error', text);
    if (answer.type !== 'error') continue;
    assert.equal(answer.message.split('\n').length, 1, answer.message);
    assert.match(answer.message, pattern, text);
  }
  // Larger than a message may be: the server closes with 1009 (message too big) and keeps serving others.
  const closed = new Promise<number>((done) => client.ws.once('close', (code) => done(code)));
  client.ws.send(JSON.stringify({ id: 11, type: 'model', path: 'x'.repeat(70_000) }));
  assert.equal(await closed, 1009);
  const again = await Client.open();
  assert.equal((await again.request<{ protocol: string }>({ id: 1, type: 'hello' })).protocol, 'cmp-dashboard/1');
  again.close();
});

/** Starts a profile from the page's form. */
async function profileFromPage(device: string, model: string, count: number): Promise<void> {
  await page.selectOption('#profile-device', device);
  if (model) await page.fill('#profile-model', model);
  await page.selectOption('#profile-dataset', 'fashion-mnist');
  await page.fill('#profile-count', String(count));
  await page.click('#profile-start');
}

test('the page profiles this machine on ort-node and bitwasm and the board under QEMU, with live progress', async () => {
  const watcher = await Client.open();
  await page.goto(dashboard.url);
  await page.waitForSelector('body[data-ready="true"]');
  assert.doesNotMatch(page.url(), /token=/, 'the token left the address bar');
  const devices = await page.$$eval('#device-rows tr', (rows) => rows.map((r) => r.getAttribute('data-device')));
  assert.deepEqual(devices.slice(0, 2), ['local:ort-node', 'local:bitwasm']);
  assert.ok(devices.includes(`mcu:${board.port}`), 'the board cmp deploy recorded');
  assert.ok(devices.includes(`browser:${resolve(site)}`), 'the site cmp deploy recorded');
  // A port named by hand joins the list once (pseudo-terminals are never listed by the system).
  await page.fill('#serial-path', board.port);
  await page.click('#serial-form button');
  await page.waitForFunction(
    (id) => document.querySelector<HTMLSelectElement>('#profile-device')?.value === id,
    `mcu:${board.port}`,
  );
  assert.equal(await page.locator(`#device-rows tr[data-device="mcu:${board.port}"]`).count(), 1);
  assert.equal(await page.inputValue('#profile-model'), exitModel, 'the --model of cmp dashboard is offered');

  await profileFromPage('local:ort-node', exitModel, LOCAL_COUNT);
  await profileFromPage('local:bitwasm', plainModel, LOCAL_COUNT);
  await profileFromPage(`mcu:${board.port}`, exitModel, MCU_COUNT);
  await page.waitForFunction(
    () => {
      const jobs = [...document.querySelectorAll('#jobs li')];
      return jobs.length === 3 && jobs.every((j) => ['done', 'failed'].includes(j.getAttribute('data-state') ?? ''));
    },
    undefined,
    { timeout: HANG_MS },
  );
  const failed = await page.$$eval('#jobs li[data-state="failed"]', (l) => l.map((j) => j.textContent));
  assert.deepEqual(failed, []);
  const jobEvents = watcher.messages.filter((m) => m.type === 'job').map((m) => m.job);
  watcher.close();
  for (const job of [1, 2, 3]) {
    const states = jobEvents.filter((j) => j.job === job);
    assert.ok(
      states.some((j) => j.state === 'running' && j.done > 0 && j.done < j.total),
      `job ${job} reported progress`,
    );
    assert.equal(states[states.length - 1].state, 'done');
  }
  assert.equal(await page.locator('#cards .card').count(), 3);
});

/** The server's profiles, as a second client sees them. */
async function serverProfiles(): Promise<ProfileEntry[]> {
  const client = await Client.open();
  const state = await client.request<{ profiles: ProfileEntry[] }>({ id: 1, type: 'hello' });
  client.close();
  return state.profiles;
}

/** The JSON value and screen format of a data-field of a profile card. */
function expected(entry: ProfileEntry, field: string): [number, (v: number) => string] {
  const p = entry.profile;
  const [head, ...rest] = field.split('.');
  const last = rest[rest.length - 1];
  switch (head) {
    case 'samples':
      return [p.samples, FORMAT.count];
    case 'accuracy':
      return [p.accuracy, FORMAT.percent];
    case 'throughputPerS':
      return [p.throughputPerS, FORMAT.rate];
    case 'latency':
      return [p.latencyMs[last as 'p50'], FORMAT.ms];
    case 'exit': {
      const exit = p.exits.find((e) => e.exit === rest[0]);
      return [exit?.[last as 'share'] ?? NaN, FORMAT.percent];
    }
    case 'stage': {
      const stage = p.stages.find((s) => s.name === rest.slice(0, -1).join('.'));
      return [stage?.[last as 'p50'] ?? NaN, last === 'runs' ? FORMAT.count : FORMAT.ms];
    }
    case 'link':
      return [p.link?.[last as 'meanBytes'] ?? NaN, last === 'saving' ? FORMAT.saving : FORMAT.bytes];
    case 'estimate': {
      const value = (entry.estimate as unknown as Record<string, number>)[last];
      return [value, last === 'error' ? FORMAT.error : FORMAT.ms];
    }
    case 'mcu': {
      const value = (entry.mcu as unknown as Record<string, number>)[last];
      const format = { deviceShare: FORMAT.percent, deviceMsMean: FORMAT.ms, resends: FORMAT.count }[last];
      return [value, format ?? FORMAT.bytes];
    }
    default:
      throw new Error(`unknown field ${field}`);
  }
}

test('the model view draws the mask checkpoints, the mask, the calibrated Pareto set and per-layer bits', async () => {
  await page.fill('#model-path', runDir);
  await page.click('#model-form button');
  await page.waitForSelector('#model-view [data-chart="pareto"] canvas');
  const client = await Client.open();
  const view = await client.request<ModelView>({ id: 1, type: 'model', path: runDir });
  client.close();
  assert.ok(view.checkpoints.length >= 2, `${view.checkpoints.length} mask checkpoints`);
  assert.ok(view.calibration && view.calibration.pareto.length >= 1);
  assert.equal(view.mask?.kind, 'static');
  const onScreen = await page.evaluate(() => ({
    checkpoints: document.querySelector<HTMLElement>('[data-chart="checkpoints"]')?.dataset.points,
    pareto: document.querySelector<HTMLElement>('[data-chart="pareto"]')?.dataset.points,
    mask: document.querySelector<HTMLImageElement>('img[data-chart="mask"]')?.naturalWidth ?? 0,
    layers: [...document.querySelectorAll('#model-view tr[data-layer]')].map((r) => [
      r.getAttribute('data-layer'),
      r.querySelector('[data-field="weightBytes"]')?.getAttribute('data-value'),
      r.querySelector('[data-field="bitsPerWeight"]')?.textContent,
    ]),
  }));
  assert.equal(
    onScreen.checkpoints,
    String(2 * view.checkpoints.length),
    'validation and test accuracy per checkpoint',
  );
  assert.equal(onScreen.pareto, String(view.calibration.pareto.length + 2), 'the Pareto set, chosen and full');
  assert.ok(onScreen.mask > 28, `mask picture ${onScreen.mask} px wide`);
  assert.deepEqual(
    onScreen.layers,
    view.layers.map((l) => [l.name, String(l.weightBytes), FORMAT.bits(l.bitsPerWeight)]),
  );
  const kept = view.mask?.picture?.sent.filter((v) => v > 0).length;
  assert.equal(kept, view.mask?.keptUnits, 'the picture sends exactly the kept pixels');
});

test('the numbers on screen equal the JSON profiles the server holds; the histograms hold every instance', async () => {
  const profiles = await serverProfiles();
  const measured = profiles.filter((p) => p.source === 'measured');
  assert.deepEqual(
    measured.map((p) => [p.origin, p.profile.backend, p.profile.samples]),
    [
      ['local:ort-node', 'ort-node', LOCAL_COUNT],
      ['local:bitwasm', 'bitwasm', LOCAL_COUNT],
      [`mcu:${board.port}`, 'mcu-split', MCU_COUNT],
    ],
  );
  for (const entry of measured) {
    const fields = await page.$$eval(`#cards [data-profile="${entry.key}"] [data-field]`, (cells) =>
      cells.map((c) => [c.getAttribute('data-field') ?? '', c.getAttribute('data-value') ?? '', c.textContent ?? '']),
    );
    const names = fields.map((f) => f[0]);
    const link = entry.profile.link ? ['link.meanBytes', 'link.fullBytes', 'link.saving'] : [];
    for (const required of ['samples', 'accuracy', 'latency.p50', 'latency.p90', 'latency.p99', ...link]) {
      assert.ok(names.includes(required), `${entry.title}: ${required} on screen`);
    }
    for (const [field, value, text] of fields) {
      const [json, format] = expected(entry, field);
      assert.equal(Number(value), json, `${entry.title}: ${field}`);
      assert.equal(text, format(json), `${entry.title}: ${field} as text`);
    }
    const row = await page.$$eval(`#comparison-rows [data-profile="${entry.key}"] [data-field]`, (cells) =>
      cells.map((c) => [c.getAttribute('data-field'), c.getAttribute('data-value')]),
    );
    assert.ok(row.length >= 6, 'the comparison row');
    for (const [field, value] of row) assert.equal(Number(value), expected(entry, field ?? '')[0], `row ${field}`);
    const chart = await page.$eval(`#cards [data-profile="${entry.key}"] [data-chart="histogram"]`, (c) => {
      const canvas = c.querySelector('canvas') as HTMLCanvasElement;
      const pixels = canvas.getContext('2d')?.getImageData(0, 0, canvas.width, canvas.height).data ?? [];
      let drawn = 0;
      for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) drawn++;
      return { width: canvas.width, height: canvas.height, drawn, instances: (c as HTMLElement).dataset.instances };
    });
    assert.ok(chart.width > 200 && chart.height > 100, `${entry.title}: canvas ${chart.width}x${chart.height}`);
    assert.ok(chart.drawn > 1000, `${entry.title}: ${chart.drawn} pixels drawn`);
    assert.equal(chart.instances, String(entry.profile.samples), `${entry.title}: every instance in a bin`);
  }
  // Split inference: part answered on the board, and the link carries the kept pixels, not the whole image.
  const mcu = measured[2];
  assert.ok(mcu.mcu && mcu.mcu.deviceShare > 0 && mcu.mcu.deviceShare < 1, `device share ${mcu.mcu?.deviceShare}`);
  assert.ok((mcu.profile.link?.saving ?? 0) > 1, `saving ${mcu.profile.link?.saving}`);
  assert.deepEqual(
    mcu.profile.exits.map((e) => e.exit),
    ['exit1', 'final'],
  );
  // Estimated against measured: the device's cost table through cmp analyze, beside the profile's own figure.
  for (const [entry, table, measuredMs, analyze] of [
    [measured[0], 'host-ort-node', measured[0].profile.latencyMs.p50, ['--target', 'host', '--backend', 'ort-node']],
    [measured[1], 'host-bitwasm', measured[1].profile.latencyMs.p50, ['--target', 'host', '--backend', 'bitwasm']],
    [mcu, 'mps2-an385', mcu.mcu?.deviceMsMean, ['--target', 'mcu']],
  ] as const) {
    const e = entry.estimate;
    assert.equal(e.costTable, table, entry.title);
    assert.equal(e.measuredMs, measuredMs, entry.title);
    assert.ok(e.estimatedMs !== undefined && e.estimatedMs > 0, `${entry.title}: estimate ${e.estimatedMs}`);
    assert.ok(Math.abs((e.error ?? NaN) - (e.estimatedMs - e.measuredMs) / e.measuredMs) < 1e-12);
    const cli = runCli(['analyze', entry.profile.model.path, ...analyze, '--json']);
    assert.equal(cli.code, 0, cli.stderr);
    const a = JSON.parse(cli.stdout) as ModelAnalysis;
    if (entry === mcu) {
      // The board runs the layers up to its exit (and the exit's head): less than the whole model.
      assert.ok(e.estimatedMs < (a.latency?.ms ?? 0), `device share ${e.estimatedMs} of ${a.latency?.ms} ms`);
    } else assert.equal(e.estimatedMs, a.latency?.ms, `${entry.title}: the estimate cmp analyze gives`);
  }
  // The CLI and the dashboard measured the same: a profile is the target's, whoever asks.
  assert.deepEqual(measuredOnce(measured[1].profile), measuredOnce(cliProfiles.bitwasm));
  assert.deepEqual(measuredOnce(mcu.profile), measuredOnce(cliProfiles.board));
  assert.ok(measured[0].profile.link && measured[0].profile.link.saving > 1, 'the masked model on this machine');
  assert.equal(measured[1].profile.link, undefined, 'no mask, no link');
  assert.deepEqual(pageErrors, [], 'no errors or policy violations in the page');
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });
});

test('report export: one self-contained HTML file with its charts, and the JSON the server holds', async () => {
  await page.click('#export');
  await page.waitForFunction(() => document.querySelectorAll('#report-links a').length === 2);
  const save = async (nth: number): Promise<string> => {
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.locator('#report-links a').nth(nth).click(),
    ]);
    const path = await download.path();
    return readFileSync(path, 'utf8');
  };
  const html = await save(0);
  const json = await save(1);
  mkdirSync(ARTIFACTS, { recursive: true });
  writeFileSync(join(ARTIFACTS, 'dashboard-report.html'), html);
  const data = JSON.parse(json) as { schema: string; profiles: ProfileEntry[]; model?: ModelView };
  assert.equal(data.schema, 'cmp-dashboard-report/1');
  assert.deepEqual(data.profiles, await serverProfiles());
  assert.equal(data.model?.path, runDir);
  const embedded = /<script type="application\/json" id="cmp-report-data">([^]*?)<\/script>/.exec(html)?.[1] ?? '';
  assert.deepEqual(JSON.parse(embedded), data, 'the HTML embeds the same JSON');
  assert.match(
    html,
    /<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">/,
  );
  const svgs = html.match(/<svg /g)?.length ?? 0;
  assert.equal(svgs, data.profiles.length + 2, 'a histogram per profile, the mask curve and the Pareto set');
  assert.match(html, /<img alt="input mask" src="data:image\/png;base64,/);
  assert.doesNotMatch(html, /<script(?! type="application\/json")/, 'no script runs in the report');
  assert.doesNotMatch(html, /(src|href)="(?!data:)/, 'nothing is loaded from outside the file');
});

test('the model view analyses the model for the chosen device: per-layer work and memory, fit, estimate', async () => {
  await page.fill('#model-path', exitModel);
  await page.selectOption('#model-device', `mcu:${board.port}`);
  await page.click('#model-form button');
  await page.waitForSelector('#model-view [data-analysis="mcu"]');
  const client = await Client.open();
  const view = await client.request<ModelView>({
    id: 1,
    type: 'model',
    path: exitModel,
    device: `mcu:${board.port}`,
  });
  const cli = runCli(['analyze', exitModel, '--target', 'mcu', '--json']);
  assert.equal(cli.code, 0, cli.stderr);
  const expectedAnalysis = JSON.parse(cli.stdout) as ModelAnalysis;
  const a = view.analysis;
  assert.ok(a, view.analysisNote);
  assert.equal(a.target, 'mcu');
  assert.equal(a.costTable, 'mps2-an385');
  assert.deepEqual(a.mcu, expectedAnalysis.mcu, 'the arena and flash cmp analyze gives');
  assert.deepEqual(a.layers, expectedAnalysis.layers);
  const onScreen = await page.$$eval('#model-view tr[data-analysis-layer]', (rows) =>
    rows.map((r): [string, Record<string, string>] => [
      r.getAttribute('data-analysis-layer') ?? '',
      Object.fromEntries(
        [...r.querySelectorAll('[data-field]')].map((c) => [
          c.getAttribute('data-field') ?? '',
          c.getAttribute('data-value') ?? '',
        ]),
      ),
    ]),
  );
  const fields = (l: Omit<ModelAnalysis['layers'][number], 'name' | 'kind'>): Record<string, string> => ({
    params: String(l.params),
    storedBytes: String(l.storedBytes),
    macs: String(l.macs),
    binaryOps: String(l.binaryOps),
    activationBytes: String(l.activationBytes),
    workingBytes: String(l.workingBytes),
    ...(l.estimateMs !== undefined ? { estimateMs: String(l.estimateMs) } : {}),
  });
  const totals = a.layers[0] && {
    ...a.layers[0],
    ...a.totals,
    activationBytes: a.peakActivationBytes,
    workingBytes: a.peakWorkingBytes,
    estimateMs: a.latency?.ms,
  };
  assert.ok(a.latency && a.latency.ms > 0, 'an estimate from the board table');
  assert.deepEqual(onScreen, [...a.layers.map((l) => [l.name, fields(l)]), ['total', fields(totals)]]);
  const fits = await page.$$eval('#model-view [data-fits]', (l) => l.map((f) => f.getAttribute('data-fits')));
  assert.deepEqual(fits, [String(a.mcu?.fitsUploaded), String(a.mcu?.fitsInFlash)]);
  // Another device: the same model for this machine's bitwasm, priced by its table.
  await page.selectOption('#model-device', 'local:bitwasm');
  await page.waitForFunction(() => !document.querySelector('#model-view [data-analysis="mcu"]'));
  const host = await client.request<ModelView>({ id: 2, type: 'model', path: exitModel, device: 'local:bitwasm' });
  client.close();
  assert.equal(host.analysis?.target, 'host');
  assert.equal(host.analysis?.costTable, 'host-bitwasm');
  const bitwasm = runCli(['analyze', exitModel, '--target', 'host', '--backend', 'bitwasm', '--json']);
  const hostMs = (JSON.parse(bitwasm.stdout) as ModelAnalysis).latency?.ms;
  assert.equal(host.analysis?.latency?.ms, hostMs);
  assert.equal(
    await page.getAttribute('#model-view tr[data-analysis-layer="total"] [data-field="estimateMs"]', 'data-value'),
    String(hostMs),
  );
  assert.deepEqual(pageErrors, [], 'no errors or policy violations in the page');
});

test('saved profile files and browser sites join the comparison; a bad file is a one-line error', async () => {
  const [local] = await serverProfiles();
  const saved = join(dir, 'pi.json');
  writeFileSync(saved, `${JSON.stringify(local.profile, null, 2)}\n`);
  await page.fill('#load-path', saved);
  await page.click('#load-form button');
  await page.waitForSelector('#cards [data-source="file"]');
  // What cmp serve stores when a page posts its profile: the site's profiles/ folder, read when devices are listed.
  mkdirSync(join(site, 'profiles'), { recursive: true });
  writeFileSync(join(site, 'profiles', '2030-01-01T00-00-00-000Z-bitwasm.json'), JSON.stringify(local.profile));
  writeFileSync(join(site, 'profiles', '2030-01-01T00-00-01-000Z-bad.json'), '{"schema":"cmp-profile/1"}');
  await page.reload();
  await page.waitForSelector('#cards [data-source="browser"]');
  const notes = await page.$$eval('#notes li', (l) => l.map((n) => n.textContent ?? ''));
  assert.ok(
    notes.some((n) => /^Profile from .*-bad\.json has no device\./.test(n)),
    notes.join('\n'),
  );
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, 'not json');
  await page.fill('#load-path', bad);
  await page.click('#load-form button');
  await page.waitForSelector('#error:not([hidden])');
  const error = await page.textContent('#error');
  assert.match(error ?? '', /bad\.json is not JSON\. Load a cmp-profile\/1 file/);
  assert.equal((error ?? '').split('\n').length, 1);
});

test('SSH devices from earlier deploys are listed; a profile of one that does not answer fails in one line', async () => {
  const key = join(dir, 'id_ed25519');
  const keygen = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key], { encoding: 'utf8' });
  if (keygen.error) throw new Error('ssh-keygen is missing: run apt-get install openssh-client');
  // What cmp deploy --target rpi records, for a device at a port where nothing listens.
  recordDevice(
    {
      kind: 'rpi',
      name: 'pi@127.0.0.1:1',
      ssh: { user: 'pi', host: '127.0.0.1', port: 1, identity: key, knownHosts: join(dir, 'known_hosts') },
      model: join(dir, 'fm-exit.onnx'),
      release: '0123456789ab',
      deployedAt: new Date().toISOString(),
    },
    join(TEST_CMP_HOME, 'devices.json'),
  );
  const client = await Client.open();
  const { devices } = await client.request<{ devices: DashboardDevice[] }>({ id: 1, type: 'devices' });
  const pi = devices.find((d) => d.id === 'rpi:pi@127.0.0.1:1');
  assert.deepEqual(pi && { kind: pi.kind, profilable: pi.profilable, needsModel: pi.needsModel, model: pi.model }, {
    kind: 'rpi',
    profilable: true,
    needsModel: false,
    model: join(dir, 'fm-exit.onnx'),
  });
  const { job } = await client.request<{ job: number }>({
    id: 2,
    type: 'profile',
    device: 'rpi:pi@127.0.0.1:1',
    dataset: 'fashion-mnist',
    count: 10,
  });
  let last: JobState | undefined;
  for (
    const deadline = Date.now() + HANG_MS;
    Date.now() < deadline && !['done', 'failed'].includes(last?.state ?? '');
  ) {
    await sleep(50);
    last = client.messages
      .filter((m) => m.type === 'job' && m.job.job === job)
      .map((m) => (m.type === 'job' ? m.job : undefined))
      .pop();
  }
  client.close();
  assert.equal(last?.state, 'failed');
  assert.match(last?.message ?? '', /^Cannot connect to 127\.0\.0\.1:1: connection refused\. Check the host, --port/);
  assert.equal(last?.message.split('\n').length, 1);
});

test('cmp dashboard refuses bad flags with one line', () => {
  const port = runCli(['dashboard', '--http', '--port', '70000']);
  assert.equal(port.code, 2);
  assert.match(port.stderr.trim(), /^cmp: --port 70000 is not a TCP port\./);
  const model = runCli(['dashboard', '--http', '--model', join(dir, 'missing.onnx')]);
  assert.equal(model.code, 2);
  assert.equal(model.stderr.trim().split('\n').length, 1);
  assert.match(model.stderr, /--model .*missing\.onnx does not exist/);
});
