// The rpi target: any Linux device with Node reachable over SSH. Facts first, then an upload into a partial folder,
// a rename, and the device agent's `activate` (switch + health check + restore on failure). See core/release.ts.

import { nowMs } from '../core/clock.js';
import { parseReleaseConfig, RELEASE_ID, RELEASE_LAYOUT as L, type ReleaseConfig } from '../core/release.js';
import type { Split } from '../data/datasets.js';
import { CmpError } from '../errors.js';
import type { DeviceProfile } from '../profile/device-profile.js';
import type { ModelFile } from '../runtime/model-file.js';
import { buildRelease, type ReleasePlan } from './release.js';
import { formatAddress, shellQuote, type Remote, type RemoteAddress } from './remote.js';
import { openSsh, type SshOptions } from './remote-ssh.js';

/** Oldest Node the agent bundle runs on (ES2022, fetch-free). */
export const MIN_NODE_MAJOR = 18;
/**
 * How long the device may take to verify, load, switch and health-check a release: a guard against a hang, not a
 * speed goal. A slow 32-bit device compiles onnxruntime-web's WebAssembly for auto's race; the emulated armhf test
 * device on a loaded 2-core machine took over 3 minutes for that.
 */
const ACTIVATE_TIMEOUT_MS = 600_000;

/** How to reach a device and where cmp keeps its releases there. */
export interface RpiOptions extends SshOptions {
  address: RemoteAddress;
  /** Base folder on the device, relative to the home folder unless absolute (default .cmp). */
  remoteDir?: string;
  /** Node on the device (default: node on the PATH of a non-interactive SSH login). */
  node?: string;
  onProgress?: (message: string) => void;
}

/** What the device is, read over SSH before anything is uploaded. */
export interface RemoteFacts {
  /** uname -sm */
  uname: string;
  cpus: number;
  memoryBytes: number;
  /** e.g. v20.20.2 */
  nodeVersion: string;
  /** Node's process.platform and process.arch there: what selects the native runtime. */
  os: string;
  arch: string;
}

export interface RpiDeployReport {
  target: 'rpi';
  host: string;
  release: string;
  previous: string | null;
  /** True when the device already ran this release and was healthy: nothing was uploaded or restarted. */
  unchanged: boolean;
  /** The backend the service runs (what `auto` chose on the device). */
  backend: string;
  backendReason: string;
  releaseBytes: number;
  /** Bytes sent over the link: the release's files the device did not have already. */
  uploadedBytes: number;
  /** Bytes of the release hard-linked from the device's current or previous release instead of sent (the runtimes). */
  reusedBytes: number;
  uploadMs: number;
  activateMs: number;
  totalMs: number;
  facts: RemoteFacts;
  health?: Record<string, unknown>;
}

/** Reads the device's facts with a fixed script; a missing or too old Node is one clear error. */
export async function readFacts(remote: Remote, node = 'node'): Promise<RemoteFacts> {
  // The script is cmp's own text; the one outside value, the node command, arrives as $1 and is never re-parsed.
  const result = await remote.script(
    `set -- ${shellQuote(node)}
printf 'uname=%s\\n' "$(uname -sm)"
printf 'cpus=%s\\n' "$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null)"
printf 'mem_kb=%s\\n' "$(sed -n 's/^MemTotal: *\\([0-9]*\\) kB/\\1/p' /proc/meminfo 2>/dev/null)"
if command -v "$1" >/dev/null 2>&1; then "$1" -e 'console.log("node=" + process.version + "\\nos=" + process.platform + "\\narch=" + process.arch)'; fi`,
  );
  const facts = new Map(
    result.stdout
      .split('\n')
      .map((l) => l.split('='))
      .filter((p) => p.length >= 2)
      .map(([k, ...v]) => [k, v.join('=').trim()]),
  );
  const where = formatAddress(remote.address);
  const version = facts.get('node') ?? '';
  if (!version) {
    throw new CmpError(
      'BACKEND_UNAVAILABLE',
      `${where} has no Node.js on the PATH of an SSH login (looked for "${node}"). Install Node ${MIN_NODE_MAJOR} or newer there (e.g. sudo apt install nodejs) or pass --node /path/to/node.`,
    );
  }
  const major = Number(/^v(\d+)/.exec(version)?.[1] ?? 0);
  if (major < MIN_NODE_MAJOR) {
    throw new CmpError(
      'BACKEND_UNAVAILABLE',
      `${where} has Node ${version}; cmp's device runtime needs ${MIN_NODE_MAJOR} or newer. Upgrade Node there or pass --node with a newer one.`,
    );
  }
  return {
    uname: facts.get('uname') ?? '',
    cpus: Number(facts.get('cpus') ?? 0),
    memoryBytes: Number(facts.get('mem_kb') ?? 0) * 1024,
    nodeVersion: version,
    os: facts.get('os') ?? '',
    arch: facts.get('arch') ?? '',
  };
}

/** Release plans by platform, shared by the devices of one fleet deploy (each plan hashes the whole release). */
export type ReleasePlans = Map<string, Promise<ReleasePlan>>;

/**
 * Deploys `model`: upload (unless the device has the release), then the device switches and health-checks it.
 * `plans` lets several devices of the same platform share one release plan.
 */
export async function deployRpi(
  model: ModelFile,
  smokePixels: Float32Array,
  options: RpiOptions,
  plans: ReleasePlans = new Map(),
): Promise<RpiDeployReport> {
  const began = nowMs();
  const progress = options.onProgress ?? (() => undefined);
  const base = remoteBase(options.remoteDir);
  progress(`connecting to ${formatAddress(options.address)}`);
  const remote = await openSsh(options.address, options);
  try {
    const facts = await readFacts(remote, options.node);
    const key = `${facts.os}/${facts.arch}`;
    if (!plans.has(key)) plans.set(key, buildRelease(model, { os: facts.os, arch: facts.arch }, smokePixels));
    const plan = await (plans.get(key) as Promise<ReleasePlan>);
    const id = plan.config.id;
    const current = await currentRelease(remote, base);
    const report = {
      target: 'rpi' as const,
      host: formatAddress(options.address),
      release: id,
      backend: plan.config.backend,
      backendReason: plan.config.backendReason,
      releaseBytes: plan.bytes,
      facts,
    };
    if (current === id) {
      const status = await agent(remote, options, `${base}/${L.current}`, ['health']).catch(() => undefined);
      if (status?.ok === true) {
        return {
          ...report,
          backend: typeof status.backend === 'string' ? status.backend : report.backend,
          previous: null,
          unchanged: true,
          uploadedBytes: 0,
          reusedBytes: 0,
          uploadMs: 0,
          activateMs: 0,
          totalMs: nowMs() - began,
          health: status,
        };
      }
    }
    const uploadBegan = nowMs();
    const sent = await upload(remote, base, plan.config, plan.sources, options.node ?? 'node', progress);
    const uploadMs = nowMs() - uploadBegan;
    progress(`activating ${id} (smoke test, switch, health check)`);
    const activateBegan = nowMs();
    const result = await agent(remote, options, `${base}/${L.releases}/${id}`, ['activate'], ACTIVATE_TIMEOUT_MS);
    if (result.ok !== true) {
      throw new CmpError('IO', `Deploy to ${report.host} failed: ${String(result.error)}`);
    }
    const health = result.health as Record<string, unknown>;
    return {
      ...report,
      backend: typeof health.backend === 'string' ? health.backend : report.backend,
      previous: (result.previous as string | null) ?? null,
      unchanged: false,
      uploadedBytes: sent.uploaded,
      reusedBytes: sent.reused,
      uploadMs,
      activateMs: nowMs() - activateBegan,
      totalMs: nowMs() - began,
      health,
    };
  } finally {
    remote.close();
  }
}

/** What the device agent's status says, with the device's address. */
export interface RpiStatus {
  host: string;
  current: string | null;
  previous?: string | null;
  /** Why the release runs the backend it does. */
  backendReason?: string | null;
  releases?: { id: string; createdAt: string; model: string; backend: string }[];
  service?: { mode: 'systemd' | 'process'; pid?: number | null; unit?: string };
  health?: { ok?: boolean; release?: string; backend?: string; inferences?: number; error?: string };
  device?: DeviceProfile['device'];
  note?: string;
}

/** The device's releases, links, service and health (the agent's status), or a note that nothing is deployed. */
export async function rpiStatus(options: RpiOptions): Promise<RpiStatus> {
  const base = remoteBase(options.remoteDir);
  const remote = await openSsh(options.address, options);
  try {
    if (!(await currentRelease(remote, base))) {
      return { host: formatAddress(options.address), current: null, note: 'no release deployed' };
    }
    const status = await agent(remote, options, `${base}/${L.current}`, ['status']);
    if (status.ok !== true)
      throw new CmpError('IO', `Status of ${formatAddress(options.address)} failed: ${String(status.error)}`);
    return { ...(status as unknown as Omit<RpiStatus, 'host'>), host: formatAddress(options.address) };
  } finally {
    remote.close();
  }
}

/** Switches the device back to its previous release (health-checked like a deploy; on failure it stays put). */
export async function rollbackRpi(options: RpiOptions): Promise<Record<string, unknown>> {
  const base = remoteBase(options.remoteDir);
  const remote = await openSsh(options.address, options);
  try {
    const previous = await remote.readlink(`${base}/${L.previous}`);
    if (!previous) {
      throw new CmpError('BAD_ARGUMENT', `${formatAddress(options.address)} has no previous release to roll back to.`);
    }
    const result = await agent(remote, options, `${base}/${L.previous}`, ['activate'], ACTIVATE_TIMEOUT_MS);
    if (result.ok !== true)
      throw new CmpError('IO', `Rollback of ${formatAddress(options.address)} failed: ${String(result.error)}`);
    return { host: formatAddress(options.address), ...result };
  } finally {
    remote.close();
  }
}

/** Reads the running release's config (its data set and model), for profiling without naming the model. */
export async function currentConfig(remote: Remote, base: string): Promise<ReleaseConfig | undefined> {
  const id = await currentRelease(remote, base);
  if (!id) return undefined;
  const path = `${base}/${L.releases}/${id}/${L.config}`;
  const r = await remote.exec(['cat', '--', path]);
  return r.code === 0 ? parseReleaseConfig(JSON.parse(r.stdout), `${path} on the device`) : undefined;
}

/**
 * Profiles the running release on the device: uploads `count` instances of `split` (once), runs them one at a time
 * there, and brings back the device's cmp-profile/1.
 */
export async function profileRpi(
  options: RpiOptions,
  /** Loads the instances, given the data set the running release was trained on (when its manifest says). */
  loadData: (releaseDataset: string | undefined) => Promise<{ name: string; split: Split; features: number }>,
  count: number,
  backend?: string,
): Promise<DeviceProfile> {
  const base = remoteBase(options.remoteDir);
  const progress = options.onProgress ?? (() => undefined);
  const remote = await openSsh(options.address, options);
  try {
    const config = await currentConfig(remote, base);
    if (!config) {
      throw new CmpError(
        'BAD_ARGUMENT',
        `${formatAddress(options.address)} runs no release. Deploy one first: cmp deploy MODEL --target rpi --host ${formatAddress(options.address)}`,
      );
    }
    const data = await loadData(config.dataset);
    const n = Math.min(count, data.split.count);
    const name = `${data.name.replace(/[^A-Za-z0-9._-]/g, '_')}-${n}`;
    const dir = `${base}/${L.data}`;
    if ((await remote.size(`${dir}/${name}.u8`)) !== n * data.features) {
      progress(`uploading ${n} instances of ${data.name}`);
      await remote.mkdirp(dir);
      const pixels = Uint8Array.from(data.split.x.subarray(0, n * data.features), (v) => Math.round(v * 255));
      await remote.putData(Uint8Array.from(data.split.y.subarray(0, n)), `${dir}/${name}.labels`);
      await remote.putData(
        new TextEncoder().encode(JSON.stringify({ dataset: data.name, count: n, features: data.features })),
        `${dir}/${name}.json`,
      );
      await remote.putData(pixels, `${dir}/${name}.u8`);
    }
    const args = ['profile', '--data', name, '--limit', String(n), ...(backend ? ['--backend', backend] : [])];
    const result = await agent(remote, options, `${base}/${L.current}`, args, 30 * 60_000, (line) => {
      const m = /^progress (\d+)\/(\d+)$/.exec(line);
      if (m) progress(`profile ${m[1]}/${m[2]} on the device`);
    });
    if (result.ok !== true)
      throw new CmpError('IO', `Profile on ${formatAddress(options.address)} failed: ${String(result.error)}`);
    const profile = result.profile as DeviceProfile;
    return { ...profile, device: { ...profile.device, name: formatAddress(options.address) } };
  } finally {
    remote.close();
  }
}

/** The base folder, checked: relative to home or absolute, plain path characters, no `..`. */
export function remoteBase(dir = '.cmp'): string {
  const clean = dir.replace(/\/+$/, '');
  if (!/^[A-Za-z0-9._/-]+$/.test(clean) || clean.split('/').includes('..') || clean === '') {
    throw new CmpError(
      'BAD_FLAG',
      `--remote-dir "${dir}" must be a plain path (letters, digits, . _ - /) without "..".`,
    );
  }
  return clean;
}

async function currentRelease(remote: Remote, base: string): Promise<string | undefined> {
  const target = await remote.readlink(`${base}/${L.current}`);
  const id = target?.split('/').pop();
  return id && RELEASE_ID.test(id) ? id : undefined;
}

/**
 * Uploads into releases/.partial-<id>, then renames it into place; a release already there and intact is kept. A
 * file the current or previous release holds with the same SHA-256 (onnxruntime's libraries, the agent) is hard-linked
 * from there instead of sent: a new model costs the link its own bytes. Releases are never changed in place, and the
 * agent checks every file's SHA-256 before it switches to a release, so a shared file that was damaged is caught.
 */
async function upload(
  remote: Remote,
  base: string,
  config: ReleaseConfig,
  sources: Map<string, string>,
  node: string,
  progress: (message: string) => void,
): Promise<{ uploaded: number; reused: number }> {
  const final = `${base}/${L.releases}/${config.id}`;
  if ((await remote.size(`${final}/${L.config}`)) !== undefined) {
    const verified = await remote.exec([node, `${final}/${L.agent}`, 'verify']).catch(() => undefined);
    if (verified?.code === 0) return { uploaded: 0, reused: 0 };
    await remote.remove(final);
  }
  const partial = `${base}/${L.releases}/${L.partialPrefix}${config.id}`;
  // A partial folder is left only by a cut upload: a question over SFTP, where rm costs a remote shell each time.
  if ((await remote.size(partial)) !== undefined) await remote.remove(partial);
  const onDevice = await deviceFiles(remote, base);
  // The partial folder is new, so its folders are made without asking what exists: parents first, each level's
  // folders and the links at once (SFTP answers requests in flight in order; a slow link pays its round trip once).
  await remote.mkdirp(partial);
  const folders = new Set<string>();
  for (const f of config.files) {
    const parts = f.path.split('/').slice(0, -1);
    parts.forEach((_, k) => folders.add(parts.slice(0, k + 1).join('/')));
  }
  const depth = (dir: string): number => dir.split('/').length;
  for (let d = 1; d <= Math.max(0, ...[...folders].map(depth)); d++) {
    await Promise.all([...folders].filter((dir) => depth(dir) === d).map((dir) => remote.mkdir(`${partial}/${dir}`)));
  }
  const sent = { uploaded: 0, reused: 0 };
  const linked = await Promise.all(
    config.files.map(async (f) => {
      const there = onDevice.get(`${f.sha256}:${f.bytes}`);
      return there !== undefined && (await remote.link(there, `${partial}/${f.path}`));
    }),
  );
  const toSend = config.files.filter((f, i) => {
    if (linked[i]) sent.reused += f.bytes;
    return !linked[i];
  });
  const total = toSend.reduce((a, f) => a + f.bytes, 0);
  for (const f of toSend) {
    await remote.putFile(sources.get(f.path) as string, `${partial}/${f.path}`, (bytes) =>
      progress(`upload ${Math.round(((sent.uploaded + bytes) / total) * 100)}% (${f.path})`),
    );
    sent.uploaded += f.bytes;
  }
  // release.json goes last: a folder without it is never taken for a release.
  await remote.putData(new TextEncoder().encode(`${JSON.stringify(config, null, 2)}\n`), `${partial}/${L.config}`);
  await remote.rename(partial, final);
  return sent;
}

/**
 * The files of the device's current and previous releases by `sha256:bytes`, as paths on the device. A release whose
 * release.json is missing or unreadable offers nothing (its files are uploaded again).
 */
async function deviceFiles(remote: Remote, base: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const name of [L.current, L.previous]) {
    const id = (await remote.readlink(`${base}/${name}`))?.split('/').pop();
    if (!id || !RELEASE_ID.test(id)) continue;
    const dir = `${base}/${L.releases}/${id}`;
    const text = await remote.readData(`${dir}/${L.config}`);
    if (!text) continue;
    let config: ReleaseConfig;
    try {
      config = parseReleaseConfig(JSON.parse(new TextDecoder().decode(text)), `${dir}/${L.config}`);
    } catch {
      continue;
    }
    for (const f of config.files) files.set(`${f.sha256}:${f.bytes}`, `${dir}/${f.path}`);
  }
  return files;
}

/** Runs an agent verb of the release at `releaseDir` and parses its one JSON line. */
async function agent(
  remote: Remote,
  options: RpiOptions,
  releaseDir: string,
  args: string[],
  timeoutMs?: number,
  onStderrLine?: (line: string) => void,
): Promise<Record<string, unknown>> {
  const r = await remote.exec([options.node ?? 'node', `${releaseDir}/${L.agent}`, ...args], {
    timeoutMs,
    onStderrLine,
  });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last) as Record<string, unknown>;
  } catch {
    const why = (
      r.stderr
        .trim()
        .split('\n')
        .find((l) => /Error|error/.test(l)) ??
      r.stderr.trim().split('\n').pop() ??
      ''
    ).trim();
    throw new CmpError(
      'IO',
      `The device agent (${args[0]}) on ${formatAddress(remote.address)} exited ${r.code}: ${why || 'no output'}`,
    );
  }
}
