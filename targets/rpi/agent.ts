// cmp-edge: the program a release runs on the device (bundled by targets/build.ts into releases/<id>/cmp-edge.mjs).
// Each verb prints one JSON line on stdout ({ ok: true, ... } or { ok: false, error }) and exits 0 or 1; the host
// (src/deploy/rpi.ts) runs verbs over SSH with fixed, quoted arguments. See src/core/release.ts for the layout.

import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  linkSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { cpus, homedir, hostname, totalmem } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CMP_VERSION,
  CmpError,
  isCmpError,
  nowMs,
  parseReleaseConfig,
  Predictor,
  profilePredictor,
  readModelFile,
  RELEASE_ID,
  RELEASE_LAYOUT as L,
  summarize,
  type DeviceProfile,
  type ReleaseConfig,
} from '../../src/edge.js';

/** This release's folder (node resolves the `current` link to it) and the base folder above `releases/`. */
const RELEASE_DIR = dirname(fileURLToPath(import.meta.url));
const BASE = resolve(RELEASE_DIR, '..', '..');
const at = (...parts: string[]): string => join(BASE, ...parts);

/** A release.json, checked whole against cmp-release/1 (a damaged one is one line naming the field). */
function readReleaseConfig(path: string): ReleaseConfig {
  return parseReleaseConfig(JSON.parse(readFileSync(path, 'utf8')), path);
}
/**
 * How long start waits for the service's socket to answer, and stop for the supervisor to leave. A service that exits
 * is reported at once; this only bounds one still loading, which on a slow device can take long: the emulated arm64
 * test device, loading onnxruntime-node's 24 MB library on a loaded 2-core machine, took over 30 s.
 */
const START_TIMEOUT_MS = 180_000;
const STOP_TIMEOUT_MS = 10_000;
/** Largest request body the service reads. */
const MAX_BODY_BYTES = 1 << 20;
/** Inferences the health check times through the service. */
const HEALTH_LATENCY_RUNS = 20;
/** Releases kept besides current and previous. */
const KEEP_RELEASES = 3;

type Json = Record<string, unknown>;

const VERBS: Readonly<Record<string, (args: string[]) => Promise<Json>>> = Object.freeze({
  verify: async () => ({ release: verify().id }),
  smoke: async () => smoke(readConfig()),
  activate: async () => locked(`activating release ${basename(RELEASE_DIR)}`, activate),
  start: async () => locked('starting the service', start),
  stop: async () => locked('stopping the service', async () => ({ stopped: await stop() })),
  status: async () => status(),
  health: async () => health(false),
  profile: async (args: string[]) => profile(args),
  serve: async () => serve(),
  supervise: async () => supervise(),
});

async function main(argv: string[]): Promise<number> {
  const [verb, ...args] = argv;
  const action = VERBS[verb ?? ''];
  try {
    if (!action) {
      throw new CmpError('BAD_ARGUMENT', `Unknown verb "${verb ?? ''}". Use one of: ${Object.keys(VERBS).join(', ')}.`);
    }
    const result = await action(args);
    if (verb !== 'serve' && verb !== 'supervise') emit({ ok: true, ...result });
    return 0;
  } catch (err) {
    emit({ ok: false, code: isCmpError(err) ? err.code : 'INTERNAL', error: oneLine(err) });
    return 1;
  }
}

function emit(result: Json): void {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

function oneLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n')[0];
}

/**
 * Runs `action` holding the device's lock (agent.lock under the base folder), so that one deploy, rollback, start or
 * stop at a time changes the links and the service. A lock left by a process that is gone is taken over; a live
 * holder is one line naming it.
 */
async function locked(what: string, action: () => Promise<Json>): Promise<Json> {
  const path = at(L.lock);
  const mine = { pid: process.pid, what, since: new Date().toISOString() };
  const tmp = at(`.${L.lock}.${process.pid}`);
  mkdirSync(BASE, { recursive: true });
  // Written whole beside it, then linked into place: link fails when the lock exists, so taking it is atomic and a
  // reader never sees a half-written lock.
  writeFileSync(tmp, `${JSON.stringify(mine)}\n`);
  try {
    for (let tries = 0; ; tries++) {
      try {
        linkSync(tmp, path);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || tries > 0) throw err;
      }
      const holder = lockHolder(path);
      if (holder) {
        throw new CmpError(
          'IO',
          `The device is busy: pid ${holder.pid} is ${holder.what} since ${holder.since} (${path}). Wait for it to finish, then run the command again.`,
        );
      }
      rmSync(path, { force: true }); // stale: its process is gone
    }
  } finally {
    rmSync(tmp, { force: true });
  }
  try {
    return await action();
  } finally {
    if (lockHolder(path)?.pid === process.pid) rmSync(path, { force: true });
  }
}

/** Who holds the lock at `path`: undefined when none does, or when its pid is not a live cmp-edge (stale). */
function lockHolder(path: string): { pid: number; what: string; since: string } | undefined {
  let lock: { pid?: unknown; what?: unknown; since?: unknown };
  try {
    lock = JSON.parse(readFileSync(path, 'utf8')) as typeof lock;
  } catch {
    return undefined;
  }
  const pid = Number(lock.pid);
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return undefined;
  if (pid !== process.pid && !isAgent(pid)) return undefined;
  return { pid, what: String(lock.what), since: String(lock.since) };
}

/** Whether `pid` runs a cmp-edge agent (a pid can be reused by another program once its process is gone). */
function isAgent(pid: number, verb?: string): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes(L.agent) && (verb === undefined || cmdline.includes(verb));
  } catch {
    return true; // no /proc (not Linux): trust the pid
  }
}

/** release.json of this release. */
function readConfig(): ReleaseConfig {
  const config = readReleaseConfig(join(RELEASE_DIR, L.config));
  if (config.schema !== 'cmp-release/1' || !RELEASE_ID.test(config.id) || basename(RELEASE_DIR) !== config.id) {
    throw new CmpError('RUN_INVALID', `${RELEASE_DIR} is not release ${config.id}. Deploy again.`);
  }
  return config;
}

/** release.json, with every listed file present and unchanged (SHA-256): before a release is first switched to. */
function verify(): ReleaseConfig {
  const config = readConfig();
  for (const f of config.files) {
    const path = join(RELEASE_DIR, f.path);
    const sum = existsSync(path) ? createHash('sha256').update(readFileSync(path)).digest('hex') : 'missing';
    if (sum !== f.sha256) {
      throw new CmpError(
        'IO',
        `Release ${config.id}: ${f.path} is ${sum === 'missing' ? 'missing' : 'damaged'}. Deploy again.`,
      );
    }
  }
  return config;
}

/**
 * Loads the model in this process and checks the smoke instance against the host's answer. A release activated
 * before (a rollback) loads the backend its first activation chose: racing again would load every runtime once more,
 * which on a 32-bit Pi means compiling onnxruntime-web's WebAssembly for the sake of a race already run there.
 */
async function smoke(config: ReleaseConfig): Promise<Json> {
  const began = nowMs();
  const pinned = pinnedBackend(config);
  const predictor = await Predictor.open(readModelFile(join(RELEASE_DIR, config.model)), { backend: pinned.backend });
  try {
    const loadMs = nowMs() - began;
    const p = await predictor.infer(Float32Array.from(config.smoke.input));
    // The clock starts with the process, so this is the cold start: Node, the bundle, the model, one inference.
    const coldStartMs = nowMs();
    const reason = predictor.backendReason ?? pinned.reason;
    return {
      ...compareSmoke(config, p),
      backend: predictor.backendName,
      ...(reason ? { backendReason: reason } : {}),
      loadMs,
      coldStartMs,
    };
  } finally {
    await predictor.dispose();
  }
}

/** The backend a release's service loads: the one `auto` chose at activation (backend.json), else the config's. */
function pinnedBackend(config: ReleaseConfig, dir = RELEASE_DIR): { backend: string; reason?: string } {
  try {
    const pinned = JSON.parse(readFileSync(join(dir, L.pinned), 'utf8')) as { backend?: unknown; reason?: unknown };
    if (typeof pinned.backend === 'string' && /^[a-z0-9-]+$/.test(pinned.backend)) {
      return { backend: pinned.backend, ...(typeof pinned.reason === 'string' ? { reason: pinned.reason } : {}) };
    }
  } catch {
    // Not pinned (the config names a backend, or activation has not run): the config decides.
  }
  return { backend: config.backend };
}

/**
 * Keeps what `auto` chose in the smoke test, so that the service, which starts right after, loads that backend
 * directly instead of racing again (and cannot pick another one on a close race).
 */
function pinBackend(config: ReleaseConfig, checked: Json): void {
  const c = checked as { backend?: string; backendReason?: string };
  if (config.backend !== 'auto' || !c.backend) return;
  const pinned = { backend: c.backend, ...(c.backendReason ? { reason: c.backendReason } : {}) };
  writeFileSync(join(RELEASE_DIR, L.pinned), `${JSON.stringify(pinned)}\n`);
}

/** The device's answer against the host's; throws when they disagree. */
function compareSmoke(config: ReleaseConfig, p: { label: number; logits: ArrayLike<number> }): Json {
  let diff = 0;
  config.smoke.logits.forEach((v, c) => (diff = Math.max(diff, Math.abs(v - (p.logits[c] ?? NaN)))));
  if (p.label !== config.smoke.label || !(diff <= config.smoke.tolerance)) {
    throw new CmpError(
      'IO',
      `Smoke test failed: the device answered label ${p.label}, the host ${config.smoke.label} (largest logit difference ${diff.toExponential(2)}).`,
    );
  }
  return { label: p.label, maxLogitDiff: diff };
}

function readLink(name: string): string | undefined {
  try {
    return basename(readlinkSync(at(name)));
  } catch {
    return undefined;
  }
}

/** Points `name` at releases/<id> by renaming a fresh link over it, so readers see the old or the new, never none. */
function pointAt(name: string, id: string): void {
  const tmp = at(`.${name}.${process.pid}`);
  rmSync(tmp, { force: true });
  symlinkSync(join(L.releases, id), tmp);
  renameSync(tmp, at(name));
}

/**
 * Makes this release the running one: check it, stop the service, switch `current`, start, health-check with the
 * smoke instance. A failure at any step after the old service stops (the switch included) switches the previous
 * release back and starts it again.
 */
async function activate(): Promise<Json> {
  const config = verify();
  const checked = await smoke(config);
  pinBackend(config, checked);
  const before = readLink(L.current);
  try {
    await stop();
    pointAt(L.current, config.id);
    await start();
    const served = await health(true);
    if (before && before !== config.id) pointAt(L.previous, before);
    return { release: config.id, previous: before ?? null, smoke: checked, health: served, pruned: prune() };
  } catch (err) {
    throw new CmpError(
      'IO',
      `Release ${config.id} failed its health check (${oneLine(err)}); ${await restore(before, config.id)}.`,
      {
        cause: err,
      },
    );
  }
}

/** After a failed activation of `id`: the service of `before` (the release current was on) running again. */
async function restore(before: string | undefined, id: string): Promise<string> {
  await stop().catch(() => undefined);
  if (!before || before === id) {
    rmSync(at(L.current), { force: true });
    return 'nothing to restore';
  }
  try {
    // The switch may have failed, leaving current where it was: then there is nothing to switch back.
    if (readLink(L.current) !== before) pointAt(L.current, before);
    await start();
    return `restored ${before}`;
  } catch (e) {
    return `restoring ${before} failed too: ${oneLine(e)}`;
  }
}

/** Removes releases beyond the newest KEEP_RELEASES, never current or previous, and stale partial uploads. */
function prune(): string[] {
  const keep = new Set([readLink(L.current), readLink(L.previous)]);
  const dir = at(L.releases);
  const ids = readdirSync(dir)
    .filter((n) => RELEASE_ID.test(n) && !keep.has(n))
    .sort((a, b) => statSync(join(dir, b)).mtimeMs - statSync(join(dir, a)).mtimeMs);
  const gone = ids.slice(KEEP_RELEASES);
  for (const id of gone) rmSync(join(dir, id), { recursive: true, force: true });
  for (const n of readdirSync(dir))
    if (n.startsWith(L.partialPrefix)) rmSync(join(dir, n), { recursive: true, force: true });
  return gone;
}

/** systemd's user manager when it runs (a Raspberry Pi OS login); otherwise a supervisor process with a pid file. */
function serviceMode(): 'systemd' | 'process' {
  if (process.env.CMP_EDGE_SERVICE === 'process') return 'process';
  const r = spawnSync('systemctl', ['--user', 'is-system-running'], { encoding: 'utf8', timeout: 5000 });
  return /^(running|degraded)/.test(r.stdout ?? '') ? 'systemd' : 'process';
}

/** The systemd unit of this base folder (one per base, so several bases can coexist). */
function unitName(): string {
  return `cmp-edge-${createHash('sha256').update(BASE).digest('hex').slice(0, 8)}.service`;
}

function systemctl(...args: string[]): void {
  const r = spawnSync('systemctl', ['--user', ...args], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0)
    throw new CmpError('IO', `systemctl --user ${args.join(' ')} failed: ${(r.stderr || r.stdout).trim()}`);
}

/** Starts the service of the `current` release and waits until it answers on its socket. */
async function start(): Promise<Json> {
  const mode = serviceMode();
  const script = at(L.current, L.agent);
  if (!existsSync(script)) throw new CmpError('IO', `No current release under ${BASE}. Deploy one first.`);
  if (mode === 'systemd') {
    const unitDir = join(homedir(), '.config', 'systemd', 'user');
    mkdirSync(unitDir, { recursive: true });
    writeFileSync(
      join(unitDir, unitName()),
      [
        '[Unit]',
        `Description=cmp edge runtime (${BASE})`,
        '[Service]',
        `ExecStart=${[process.execPath, ...process.execArgv, script, 'serve'].map((a) => `"${a}"`).join(' ')}`,
        'Restart=on-failure',
        'RestartSec=1',
        '[Install]',
        'WantedBy=default.target',
        '',
      ].join('\n'),
    );
    systemctl('daemon-reload');
    systemctl('enable', unitName());
    systemctl('restart', unitName());
  } else {
    if (supervisorPid() !== undefined) throw new CmpError('IO', `The service under ${BASE} is already running.`);
    const log = openSync(at(L.log), 'a');
    const child = spawn(process.execPath, [...process.execArgv, script, 'supervise'], {
      detached: true,
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    writeFileSync(at(L.pidFile), `${child.pid}\n`);
    child.unref();
  }
  const deadline = nowMs() + START_TIMEOUT_MS;
  for (;;) {
    try {
      return { mode, ...(await call('GET', '/health')) };
    } catch (err) {
      if (mode === 'process' && supervisorPid() === undefined) {
        throw new CmpError('IO', `The service exited at start: ${logTail()}`);
      }
      if (nowMs() > deadline)
        throw new CmpError('IO', `The service did not answer within ${START_TIMEOUT_MS / 1000} s (${oneLine(err)}).`);
      await sleep(100);
    }
  }
}

/** Stops the service; true when one was running. */
async function stop(): Promise<boolean> {
  if (serviceMode() === 'systemd') {
    const was =
      spawnSync('systemctl', ['--user', 'is-active', unitName()], { encoding: 'utf8' }).stdout?.trim() === 'active';
    if (was) systemctl('stop', unitName());
    return was;
  }
  const pid = supervisorPid();
  if (pid === undefined) {
    rmSync(at(L.pidFile), { force: true });
    return false;
  }
  process.kill(pid, 'SIGTERM');
  const deadline = nowMs() + STOP_TIMEOUT_MS;
  while (alive(pid) && nowMs() < deadline) await sleep(50);
  if (alive(pid)) process.kill(pid, 'SIGKILL');
  rmSync(at(L.pidFile), { force: true });
  return true;
}

/** The supervisor's pid when the pid file names a live cmp-edge supervisor (not a recycled pid). */
function supervisorPid(): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(at(L.pidFile), 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return undefined;
  return isAgent(pid, 'supervise') ? pid : undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function logTail(): string {
  try {
    const lines = readFileSync(at(L.log), 'utf8').trim().split('\n');
    return lines.slice(-1)[0] ?? 'no log';
  } catch {
    return 'no log';
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Runs `serve` and starts it again when it crashes (at most 5 times a minute); SIGTERM stops both. */
async function supervise(): Promise<Json> {
  const restarts: number[] = [];
  let stopping = false;
  let child: ReturnType<typeof spawn> | undefined;
  const shutdown = (): void => {
    stopping = true;
    child?.kill('SIGTERM');
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  for (;;) {
    child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), 'serve'], {
      stdio: 'inherit',
    });
    const code = await new Promise<number | null>((r) => child?.on('exit', (c) => r(c)));
    if (stopping) return {};
    const now = Date.now();
    restarts.push(now);
    while (restarts.length && restarts[0] < now - 60_000) restarts.shift();
    log(
      `service exited with ${code}; ${restarts.length > 5 ? 'giving up after 5 restarts in a minute' : 'restarting'}`,
    );
    if (restarts.length > 5) process.exit(1);
    await sleep(1000);
  }
}

function log(line: string): void {
  process.stderr.write(`${new Date().toISOString()} ${line}\n`);
}

/** The service: HTTP on the base folder's Unix socket, answering one instance at a time. */
async function serve(): Promise<Json> {
  const config = readConfig();
  const predictor = await Predictor.open(readModelFile(join(RELEASE_DIR, config.model)), {
    backend: pinnedBackend(config).backend,
  });
  const startedAt = new Date().toISOString();
  const latencies: number[] = [];
  let queue = Promise.resolve();
  const answer = (res: ServerResponse, status: number, body: Json): void => {
    res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
  };
  const server = createServer((req, res) => {
    const route = `${req.method} ${req.url}`;
    if (route === 'GET /health') {
      answer(res, 200, {
        ok: true,
        release: config.id,
        model: config.model,
        backend: predictor.backendName,
        pid: process.pid,
        startedAt,
        inferences: latencies.length,
        version: CMP_VERSION,
      });
    } else if (route === 'GET /stats') {
      answer(res, 200, { ok: true, inferences: latencies.length, latencyMs: summarize(latencies.slice(-10_000)) });
    } else if (route === 'POST /infer') {
      readBody(req)
        .then((body) => pixelsOf(req, body, predictor.features))
        .then((pixels) => {
          // One instance at a time: the backends' sessions are not re-entrant.
          const next = queue.then(() => predictor.infer(pixels));
          queue = next.then(
            () => undefined,
            () => undefined,
          );
          return next;
        })
        .then((p) => {
          latencies.push(p.latencyMs);
          answer(res, 200, {
            ok: true,
            label: p.label,
            logits: [...p.logits],
            exit: p.exit,
            entropy: p.entropy,
            latencyMs: p.latencyMs,
          });
        })
        .catch((err: unknown) => answer(res, isCmpError(err) ? 400 : 500, { ok: false, error: oneLine(err) }));
    } else answer(res, 404, { ok: false, error: `No route ${route}. Use GET /health, GET /stats or POST /infer.` });
  });
  const socket = at(L.socket);
  rmSync(socket, { force: true });
  await new Promise<void>((r, reject) => server.once('error', reject).listen(socket, r));
  log(`release ${config.id} serving ${config.model} on ${socket} (${predictor.backendName})`);
  const close = (): void => {
    server.close();
    rmSync(socket, { force: true });
    process.exit(0);
  };
  process.on('SIGTERM', close);
  process.on('SIGINT', close);
  return new Promise<Json>(() => undefined);
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolveBody, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(new CmpError('BAD_ARGUMENT', `Request body over ${MAX_BODY_BYTES} bytes. Send one instance.`));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolveBody(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** An instance from a request: JSON {"input": [values in 0..1]}, or raw bytes (uint8 pixels, or float32 LE). */
function pixelsOf(req: IncomingMessage, body: Buffer, features: number): Float32Array {
  if ((req.headers['content-type'] ?? '').startsWith('application/json')) {
    let input: unknown;
    try {
      input = (JSON.parse(body.toString('utf8')) as { input?: unknown }).input;
    } catch {
      throw new CmpError('BAD_ARGUMENT', 'Request body is not JSON. Send {"input": [...]}.');
    }
    if (
      !Array.isArray(input) ||
      input.length !== features ||
      !input.every((v) => typeof v === 'number' && Number.isFinite(v))
    ) {
      throw new CmpError('BAD_ARGUMENT', `"input" must be an array of ${features} finite numbers in [0, 1].`);
    }
    return Float32Array.from(input as number[]);
  }
  if (body.length === features) return Float32Array.from(body, (v) => v / 255);
  if (body.length === features * 4)
    return new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.length));
  throw new CmpError(
    'BAD_ARGUMENT',
    `Body of ${body.length} bytes: send ${features} uint8 pixels, ${features * 4} bytes of float32, or JSON {"input": [...]}.`,
  );
}

/** One request to the running service over its socket. */
function call(method: string, path: string, body?: Json): Promise<Json> {
  return new Promise((resolveCall, reject) => {
    const req = request(
      {
        socketPath: at(L.socket),
        method,
        path,
        agent: false,
        headers: { 'content-type': 'application/json' },
        timeout: 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            const json = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Json;
            if (json.ok === true) resolveCall(json);
            else reject(new CmpError('IO', `The service answered ${res.statusCode}: ${String(json.error)}`));
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(body ? JSON.stringify(body) : undefined);
  });
}

/** The running service's health; with `smokeCheck` it also answers the smoke instance of the current release. */
async function health(smokeCheck: boolean): Promise<Json> {
  const served = await call('GET', '/health');
  if (!smokeCheck) return served;
  const config = readReleaseConfig(at(L.current, L.config));
  if (served.release !== config.id)
    throw new CmpError('IO', `The service runs release ${String(served.release)}, not ${config.id}.`);
  const p = await call('POST', '/infer', { input: config.smoke.input });
  const smoke = compareSmoke(config, { label: p.label as number, logits: p.logits as number[] });
  // A short latency sample through the service, what a client on the device sees for one instance.
  const latencies: number[] = [];
  for (let i = 0; i < HEALTH_LATENCY_RUNS; i++) {
    latencies.push((await call('POST', '/infer', { input: config.smoke.input })).latencyMs as number);
  }
  const { p50, p99 } = summarize(latencies);
  return { ...served, smoke, latencyMs: { p50, p99, runs: latencies.length } };
}

/** Releases, links, service state and health, for cmp status. */
async function status(): Promise<Json> {
  const dir = at(L.releases);
  const releases = (existsSync(dir) ? readdirSync(dir) : [])
    .filter((n) => RELEASE_ID.test(n))
    .map((id) => {
      try {
        const c = readReleaseConfig(join(dir, id, L.config));
        return { id, createdAt: c.createdAt, model: c.model, backend: c.backend };
      } catch {
        return { id, createdAt: '', model: '?', backend: '?' };
      }
    })
    .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  const mode = serviceMode();
  let served: Json | { error: string };
  try {
    served = await health(true);
  } catch (err) {
    served = { error: oneLine(err) };
  }
  return {
    base: BASE,
    current: readLink(L.current) ?? null,
    backendReason: currentReason(),
    previous: readLink(L.previous) ?? null,
    releases,
    service: { mode, ...(mode === 'process' ? { pid: supervisorPid() ?? null } : { unit: unitName() }) },
    health: served,
    device: facts(),
  };
}

/** Why the current release runs the backend it does (release.json). */
function currentReason(): string | null {
  try {
    const config = readReleaseConfig(at(L.current, L.config));
    const pinned = pinnedBackend(config, at(L.current)).reason;
    return pinned ? `${config.backendReason}; ${pinned}` : config.backendReason;
  } catch {
    return null;
  }
}

/** What this device is, read here. */
function facts(): DeviceProfile['device'] {
  return {
    name: hostname(),
    platform: process.platform,
    arch: process.arch,
    cpus: cpus().length,
    memoryBytes: totalmem(),
    runtime: `node ${process.version}`,
  };
}

/** `profile --data data/NAME [--limit N] [--backend B]`: runs the uploaded instances one at a time, in this process. */
async function profile(args: string[]): Promise<Json> {
  const flags = new Map<string, string>();
  for (let i = 0; i < args.length; i += 2) {
    if (!['--data', '--limit', '--backend'].includes(args[i]) || args[i + 1] === undefined) {
      throw new CmpError('BAD_FLAG', `profile takes --data NAME, --limit N and --backend B, not "${args[i]}".`);
    }
    flags.set(args[i], args[i + 1]);
  }
  const name = flags.get('--data') ?? '';
  if (!/^[A-Za-z0-9._-]+$/.test(name))
    throw new CmpError('BAD_FLAG', `--data "${name}" is not an uploaded data file name.`);
  const meta = JSON.parse(readFileSync(at(L.data, `${name}.json`), 'utf8')) as {
    dataset: string;
    count: number;
    features: number;
  };
  const pixels = readFileSync(at(L.data, `${name}.u8`));
  const labels = readFileSync(at(L.data, `${name}.labels`));
  const limit = Math.min(Number(flags.get('--limit') ?? meta.count), meta.count);
  const config = readConfig();
  const predictor = await Predictor.open(readModelFile(join(RELEASE_DIR, config.model)), {
    backend: flags.get('--backend') ?? pinnedBackend(config).backend,
  });
  try {
    if (predictor.features !== meta.features) {
      throw new CmpError(
        'BAD_ARGUMENT',
        `Data ${name} has ${meta.features} values per instance; the model takes ${predictor.features}.`,
      );
    }
    const x = Float32Array.from(pixels.subarray(0, limit * meta.features), (v) => v / 255);
    const measured = await profilePredictor(predictor, x, labels, limit, {
      dataset: meta.dataset,
      onProgress: (done, total) => process.stderr.write(`progress ${done}/${total}\n`),
    });
    const result: DeviceProfile = {
      schema: 'cmp-profile/1',
      device: facts(),
      model: { path: config.model, release: config.id },
      ...measured,
      backendReason: [config.backendReason, measured.backendReason ?? pinnedBackend(config).reason]
        .filter(Boolean)
        .join('; '),
      rssBytes: process.resourceUsage().maxRSS * 1024,
    };
    return { profile: result };
  } finally {
    await predictor.dispose();
  }
}

process.exitCode = await main(process.argv.slice(2));
