// The browser target's page: opens the deployed model with Predictor, runs the sample inputs, shows each prediction and
// its latency, and reports a cmp-profile/1 profile to `cmp serve`. What it found is on window.cmp for tests.

import {
  CmpError,
  isCmpError,
  parseModelFile,
  parseSiteConfig,
  Predictor,
  profilePredictor,
  SITE_LAYOUT,
  SITE_LOGIT_TOLERANCE,
  SITE_RUNTIMES,
  type DeviceFacts,
  type DeviceProfile,
  type ModelFile,
  type ModelReader,
  type SiteConfig,
} from '../../src/edge.js';

/** One sample as this page answered it, beside the host's answer. */
export interface PageResult {
  index: number;
  truth: number;
  label: number;
  exit: number;
  latencyMs: number;
  logits: number[];
  hostLabel: number;
  /** Largest |page logit - host logit|. */
  maxLogitDiff: number;
  /** Same label and exit as the host, logits within SITE_LOGIT_TOLERANCE. */
  matches: boolean;
}

/** What the page found, for people (rendered) and tests (window.cmp). */
export interface PageState {
  /** Tests wait until this leaves 'running'. */
  state: 'running' | 'done' | 'error';
  crossOriginIsolated: boolean;
  backend?: string;
  results?: PageResult[];
  profile?: DeviceProfile;
  /** Where `cmp serve` stored the profile, relative to the site. */
  profileSaved?: string;
  error?: string;
}

declare global {
  interface Window {
    cmp: PageState;
  }
}

const element = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

const fetched = new Map<string, Promise<ModelFile>>();

/** Reads the model and its stage and selector files from beside the page, each once (Predictor asks twice). */
const fetchModel: ModelReader = (path) => {
  let file = fetched.get(path);
  if (!file) {
    file = fetchBytes(path).then((bytes) => parseModelFile(bytes, path));
    // A failed fetch is tried again on the next run.
    file.catch(() => fetched.delete(path));
    fetched.set(path, file);
  }
  return file;
};

async function fetchBytes(path: string): Promise<Uint8Array> {
  // Exported names may hold characters a URL reserves (#, ?, %): each path segment is sent encoded.
  const response = await fetch(path.split('/').map(encodeURIComponent).join('/'));
  if (!response.ok) {
    throw new CmpError(
      'IO',
      `${path} answered HTTP ${response.status}. Deploy the site again: cmp deploy MODEL --target browser --out DIR.`,
    );
  }
  return new Uint8Array(await response.arrayBuffer());
}

async function loadConfig(): Promise<SiteConfig> {
  const config: unknown = JSON.parse(new TextDecoder().decode(await fetchBytes(SITE_LAYOUT.config)));
  return parseSiteConfig(config, SITE_LAYOUT.config);
}

/** The device as the browser describes it (DeviceFacts of cmp-profile/1). */
function deviceFacts(): DeviceFacts {
  // navigator.deviceMemory: GiB, rounded by the browser, absent outside Chromium.
  const memoryGiB = (navigator as Navigator & { deviceMemory?: number }).deviceMemory;
  return {
    name: 'browser',
    platform: navigator.platform,
    arch: 'wasm',
    cpus: navigator.hardwareConcurrency,
    memoryBytes: memoryGiB ? Math.round(memoryGiB * 2 ** 30) : 0,
    runtime: navigator.userAgent,
  };
}

/** Stores the profile through `cmp serve`; static hosting without it keeps none, which is not an error. */
async function postProfile(profile: DeviceProfile): Promise<{ saved?: string; note: string }> {
  let response: Response;
  try {
    response = await fetch(SITE_LAYOUT.profileEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(profile),
    });
  } catch {
    return { note: 'Profile not stored: no cmp serve answered.' };
  }
  const text = (await response.text()).trim();
  if (!response.ok) return { note: `Profile not stored: ${text || `HTTP ${response.status}`}` };
  const saved = (JSON.parse(text) as { saved: string }).saved;
  return { saved, note: `Profile stored as ${saved}.` };
}

/** A table row whose first cell heads it; numbers are set right-aligned. */
function row(cells: (string | number)[]): HTMLTableRowElement {
  const tr = document.createElement('tr');
  cells.forEach((value, c) => {
    const cell = document.createElement(c === 0 ? 'th' : 'td');
    if (c === 0) cell.setAttribute('scope', 'row');
    if (/^[-+]?[\d.]+$/.test(String(value))) cell.className = 'number';
    cell.textContent = String(value);
    tr.append(cell);
  });
  return tr;
}

function showProfile(profile: DeviceProfile): void {
  const ms = (v: number): string => v.toFixed(3);
  const body = element<HTMLTableSectionElement>('profile-rows');
  body.replaceChildren(
    row([
      'whole instance',
      profile.samples,
      ms(profile.latencyMs.mean),
      ms(profile.latencyMs.p50),
      ms(profile.latencyMs.p90),
      ms(profile.latencyMs.p99),
    ]),
    ...profile.stages.map((s) => row([s.name, s.runs, ms(s.mean), ms(s.p50), ms(s.p90), ms(s.p99)])),
  );
  const exits = profile.exits.map((e) => `${e.exit} ${(e.share * 100).toFixed(1)}%`).join(', ');
  element('profile-summary').textContent =
    `${profile.backend}: accuracy ${(profile.accuracy * 100).toFixed(1)}% on ${profile.samples} ${profile.dataset} ` +
    `samples, ${profile.throughputPerS.toFixed(0)} instances/s; exits: ${exits}.`;
  element('profile-json').textContent = JSON.stringify(profile, null, 2);
  element('profile').hidden = false;
}

/**
 * The backend to open the model on: `wanted`, where the site ships its runtime. With one runtime shipped, auto is
 * that runtime (auto would otherwise look for the other one and fetch files that are not there).
 */
function backendFor(wanted: string, config: SiteConfig): string {
  const runtimes: string[] = config.runtimes ?? ['bitwasm', 'ort-web'];
  for (const option of element<HTMLSelectElement>('backend').options) {
    option.disabled = option.value === 'auto' ? runtimes.length < 2 : !runtimes.includes(option.value);
  }
  if (wanted === 'auto' && runtimes.length === 1) return runtimes[0];
  if (Object.hasOwn(SITE_RUNTIMES, wanted) && !runtimes.includes(wanted)) {
    throw new CmpError(
      'BAD_ARGUMENT',
      `This site ships ${runtimes.join(' and ')} only, not ${wanted}. Deploy it again with --backend ${wanted}.`,
    );
  }
  return wanted;
}

let current: Predictor | undefined;

/** Opens the model on `asked` (default: the site's backend), answers every sample, profiles them, posts the profile. */
async function run(asked: string | null): Promise<void> {
  const state: PageState = { state: 'running', crossOriginIsolated: globalThis.crossOriginIsolated === true };
  window.cmp = state;
  const status = element('status');
  const error = element('error');
  const button = element<HTMLButtonElement>('run');
  button.disabled = true;
  error.hidden = true;
  element('profile').hidden = true;
  element<HTMLTableSectionElement>('result-rows').replaceChildren();
  try {
    await current?.dispose();
    current = undefined;
    status.textContent = 'Loading the site…';
    const config = await loadConfig();
    const backend = backendFor(asked ?? config.backend, config);
    const select = element<HTMLSelectElement>('backend');
    if ([...select.options].some((o) => o.value === backend)) select.value = backend;
    const { count, features, labels, classes, host } = config.samples;
    const pixels = new Float32Array((await fetchBytes(config.samples.file)).buffer);
    if (pixels.length !== count * features) {
      throw new CmpError(
        'IO',
        `${config.samples.file} holds ${pixels.length} values, not ${count} x ${features}. Deploy the site again.`,
      );
    }
    element('model').textContent = config.model;
    status.textContent = `Opening ${config.model} on ${backend}…`;
    const predictor = await Predictor.open(await fetchModel(config.model), { backend, read: fetchModel });
    current = predictor;
    state.backend = predictor.backendName;
    status.textContent = `Answering ${count} samples on ${predictor.backendName}…`;
    const results: PageResult[] = [];
    const rows = element<HTMLTableSectionElement>('result-rows');
    for (let i = 0; i < count; i++) {
      const p = await predictor.infer(pixels.subarray(i * features, (i + 1) * features));
      const expected = host.predictions[i];
      let maxLogitDiff = 0;
      p.logits.forEach((v, c) => (maxLogitDiff = Math.max(maxLogitDiff, Math.abs(v - expected.logits[c]))));
      const matches = p.label === expected.label && p.exit === expected.exit && maxLogitDiff <= SITE_LOGIT_TOLERANCE;
      results.push({
        index: i,
        truth: labels[i],
        label: p.label,
        exit: p.exit,
        latencyMs: p.latencyMs,
        logits: Array.from(p.logits),
        hostLabel: expected.label,
        maxLogitDiff,
        matches,
      });
      rows.append(
        row([
          i,
          classes[labels[i]] ?? labels[i],
          classes[p.label] ?? p.label,
          p.exit === 0 ? 'final' : `exit${p.exit}`,
          p.latencyMs.toFixed(3),
          matches ? 'yes' : `no (host: ${classes[expected.label] ?? expected.label})`,
        ]),
      );
    }
    state.results = results;
    status.textContent = `Profiling ${count} samples on ${predictor.backendName}…`;
    const measurement = await profilePredictor(predictor, pixels, labels, count, { dataset: config.samples.dataset });
    const profile: DeviceProfile = {
      schema: 'cmp-profile/1',
      device: deviceFacts(),
      model: { path: config.model },
      ...measurement,
    };
    state.profile = profile;
    showProfile(profile);
    const posted = await postProfile(profile);
    state.profileSaved = posted.saved;
    const mismatches = results.filter((r) => !r.matches).length;
    status.textContent =
      `${count} samples on ${predictor.backendName}: ` +
      `${mismatches ? `${mismatches} differ from` : 'all match'} the host's answers. ${posted.note}`;
    state.state = 'done';
  } catch (err) {
    state.error = isCmpError(err) ? err.message : String((err as Error)?.message ?? err).split('\n')[0];
    error.textContent = state.error;
    error.hidden = false;
    status.textContent = 'Stopped.';
    state.state = 'error';
  } finally {
    button.disabled = false;
  }
}

function start(): void {
  element('isolation').textContent = globalThis.crossOriginIsolated
    ? 'Cross-origin isolated: SharedArrayBuffer (WebAssembly threads) is available and timings have full resolution.'
    : 'Not cross-origin isolated (serve the site with cmp serve): timings are coarsened.';
  element<HTMLFormElement>('controls').addEventListener('submit', (event) => {
    event.preventDefault();
    const backend = element<HTMLSelectElement>('backend').value;
    const url = new URL(location.href);
    url.searchParams.set('backend', backend);
    history.replaceState(null, '', url);
    void run(backend);
  });
  void run(new URLSearchParams(location.search).get('backend'));
}

start();
