// The dashboard renderer: devices, profiling jobs with live progress, profiles side by side (histograms, percentiles,
// exits, link bytes, estimated against measured latency), the model view with its analysis for a chosen device, and
// the report export. Everything it shows comes from the dashboard's messages; every number on screen carries its
// exact value in data-value, beside the text a person reads.

import 'uplot/dist/uPlot.min.css';
import './style.css';
import type uPlot from 'uplot';
import type { DashboardDevice, DashboardState, JobState, ModelView, ProfileEntry } from '../../src/index.js';
import { histogramChart, xyChart } from './charts.js';
import { FORMAT } from './format.js';
import { openLink, type DashboardLink } from './link.js';

const byId = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

/** An element with attributes and children (text nodes for strings: nothing is parsed as HTML). */
function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.append(...children);
  return node;
}

/** A table cell showing `value` formatted, with the exact value and its field name for tests. */
function valueCell(field: string, value: number, format: (v: number) => string): HTMLTableCellElement {
  return el('td', { class: 'number', 'data-field': field, 'data-value': String(value) }, format(value));
}

function table(headings: string[], rows: HTMLTableRowElement[], numeric: boolean[] = []): HTMLTableElement {
  return el(
    'table',
    {},
    el(
      'thead',
      {},
      el(
        'tr',
        {},
        ...headings.map((h, i) => el('th', { scope: 'col', ...(numeric[i] ? { class: 'number' } : {}) }, h)),
      ),
    ),
    el('tbody', {}, ...rows),
  );
}

interface View {
  link: DashboardLink;
  state: DashboardState;
  profiles: ProfileEntry[];
  jobs: Map<number, JobState>;
  charts: uPlot[];
  modelCharts: uPlot[];
}

function showError(message: string | undefined): void {
  const error = byId('error');
  error.textContent = message ?? '';
  error.hidden = !message;
}

/** Runs an action of the page; its failure is shown in one line. */
function attempt(action: () => Promise<unknown>): void {
  showError(undefined);
  action().catch((err: unknown) => showError(String((err as Error)?.message ?? err)));
}

function renderDevices(view: View): void {
  const { devices, notes } = view.state;
  byId('device-rows').replaceChildren(
    ...devices.map((d) =>
      el(
        'tr',
        { 'data-device': d.id },
        el('td', {}, d.kind),
        el('th', { scope: 'row' }, d.name),
        el('td', {}, d.detail),
        el('td', {}, d.model ?? '-'),
      ),
    ),
  );
  byId('notes').replaceChildren(...notes.map((n) => el('li', {}, n)));
  const select = byId<HTMLSelectElement>('profile-device');
  const chosen = select.value;
  select.replaceChildren(
    ...devices.filter((d) => d.profilable).map((d) => el('option', { value: d.id }, `${d.name} (${d.kind})`)),
  );
  if (devices.some((d) => d.id === chosen && d.profilable)) select.value = chosen;
  const models = [...new Set([...view.state.models, ...devices.map((d) => d.model).filter((m): m is string => !!m)])];
  byId('model-list').replaceChildren(...models.map((m) => el('option', { value: m })));
  const analyse = byId<HTMLSelectElement>('model-device');
  const analysed = analyse.value;
  analyse.replaceChildren(...devices.map((d) => el('option', { value: d.id }, `${d.name} (${d.kind})`)));
  if (devices.some((d) => d.id === analysed)) analyse.value = analysed;
  syncModelField(view);
}

/** The model field applies to devices that run a given model; an SSH device runs the release it holds. */
function syncModelField(view: View): void {
  const device = view.state.devices.find((d) => d.id === byId<HTMLSelectElement>('profile-device').value);
  const model = byId<HTMLInputElement>('profile-model');
  model.disabled = device !== undefined && !device.needsModel;
  if (!model.value && view.state.models[0]) model.value = view.state.models[0];
}

function renderJobs(view: View): void {
  byId('jobs').replaceChildren(
    ...[...view.jobs.values()]
      .sort((a, b) => b.job - a.job)
      .map((j) =>
        el(
          'li',
          { 'data-job': String(j.job), 'data-state': j.state },
          el('strong', {}, `#${j.job} ${j.deviceName}`),
          el('progress', { max: String(Math.max(j.total, 1)), value: String(j.done) }),
          el('span', {}, `${j.state}: ${j.message}`),
        ),
      ),
  );
}

function renderProfiles(view: View): void {
  for (const chart of view.charts) chart.destroy();
  view.charts = [];
  byId('comparison-rows').replaceChildren(
    ...view.profiles.map(({ key, title, profile: p }) =>
      el(
        'tr',
        { 'data-profile': key },
        el('th', { scope: 'row' }, title),
        el('td', {}, p.backend),
        valueCell('samples', p.samples, FORMAT.count),
        valueCell('accuracy', p.accuracy, FORMAT.percent),
        valueCell('latency.p50', p.latencyMs.p50, FORMAT.ms),
        valueCell('latency.p90', p.latencyMs.p90, FORMAT.ms),
        valueCell('latency.p99', p.latencyMs.p99, FORMAT.ms),
        valueCell('throughputPerS', p.throughputPerS, FORMAT.rate),
        p.link ? valueCell('link.meanBytes', p.link.meanBytes, FORMAT.bytes) : el('td', { class: 'number' }, '-'),
        p.link ? valueCell('link.saving', p.link.saving, FORMAT.saving) : el('td', { class: 'number' }, '-'),
      ),
    ),
  );
  const cards = byId('cards');
  cards.replaceChildren(...view.profiles.map((entry) => card(view, entry)));
  // Charts measure their container, so they are drawn once the cards are in the page.
  for (const entry of view.profiles) {
    const container = cards.querySelector<HTMLElement>(`[data-profile="${entry.key}"] .chart`);
    if (!container) continue;
    const p = entry.profile.latencyMs;
    view.charts.push(
      histogramChart(container, entry.histogram, [
        { label: 'p50', ms: p.p50 },
        { label: 'p90', ms: p.p90 },
        { label: 'p99', ms: p.p99 },
      ]),
    );
  }
}

function card(view: View, entry: ProfileEntry): HTMLElement {
  const p = entry.profile;
  const d = p.device;
  const remove = el('button', { type: 'button', title: 'Remove from the comparison' }, 'Remove');
  remove.addEventListener('click', () => attempt(() => view.link.request({ type: 'remove-profile', key: entry.key })));
  const summary = table(
    ['instances', 'accuracy', 'mean ms', 'p50 ms', 'p90 ms', 'p99 ms', 'per s'],
    [
      el(
        'tr',
        {},
        valueCell('samples', p.samples, FORMAT.count),
        valueCell('accuracy', p.accuracy, FORMAT.percent),
        valueCell('latency.mean', p.latencyMs.mean, FORMAT.ms),
        valueCell('latency.p50', p.latencyMs.p50, FORMAT.ms),
        valueCell('latency.p90', p.latencyMs.p90, FORMAT.ms),
        valueCell('latency.p99', p.latencyMs.p99, FORMAT.ms),
        valueCell('throughputPerS', p.throughputPerS, FORMAT.rate),
      ),
    ],
    [true, true, true, true, true, true, true],
  );
  const exits = table(
    ['exit', 'share', 'accuracy'],
    p.exits.map((e) =>
      el(
        'tr',
        {},
        el('th', { scope: 'row' }, e.exit),
        valueCell(`exit.${e.exit}.share`, e.share, FORMAT.percent),
        valueCell(`exit.${e.exit}.accuracy`, e.accuracy, FORMAT.percent),
      ),
    ),
    [false, true, true],
  );
  const stages = table(
    ['stage', 'runs', 'p50 ms', 'p90 ms', 'p99 ms'],
    p.stages.map((s) =>
      el(
        'tr',
        {},
        el('th', { scope: 'row' }, s.name),
        valueCell(`stage.${s.name}.runs`, s.runs, FORMAT.count),
        valueCell(`stage.${s.name}.p50`, s.p50, FORMAT.ms),
        valueCell(`stage.${s.name}.p90`, s.p90, FORMAT.ms),
        valueCell(`stage.${s.name}.p99`, s.p99, FORMAT.ms),
      ),
    ),
    [false, true, true, true, true],
  );
  const link = p.link
    ? table(
        ['bytes per inference', 'whole input', 'saving'],
        [
          el(
            'tr',
            {},
            valueCell('link.meanBytes', p.link.meanBytes, FORMAT.bytes),
            valueCell('link.fullBytes', p.link.fullBytes, FORMAT.bytes),
            valueCell('link.saving', p.link.saving, FORMAT.saving),
          ),
        ],
        [true, true, true],
      )
    : el('p', { class: 'facts' }, 'No input mask: the whole input crosses the link.');
  const mcu = entry.mcu
    ? table(
        ['on the device', 'up B/inf', 'down B/inf', 'hand-off B', 'device ms', 'resends'],
        [
          el(
            'tr',
            {},
            valueCell('mcu.deviceShare', entry.mcu.deviceShare, FORMAT.percent),
            valueCell('mcu.meanUpBytes', entry.mcu.meanUpBytes, FORMAT.bytes),
            valueCell('mcu.meanDownBytes', entry.mcu.meanDownBytes, FORMAT.bytes),
            valueCell('mcu.meanHandoffBytes', entry.mcu.meanHandoffBytes, FORMAT.bytes),
            valueCell('mcu.deviceMsMean', entry.mcu.deviceMsMean, FORMAT.ms),
            valueCell('mcu.resends', entry.mcu.resends, FORMAT.count),
          ),
        ],
        [true, true, true, true, true, true],
      )
    : undefined;
  const e = entry.estimate;
  const estimate = table(
    ['cost table', 'estimated ms', 'measured ms', 'error'],
    [
      el(
        'tr',
        {},
        el('td', {}, e.costTable ?? '-'),
        e.estimatedMs !== undefined
          ? valueCell('estimate.estimatedMs', e.estimatedMs, FORMAT.ms)
          : el('td', { class: 'number' }, '-'),
        valueCell('estimate.measuredMs', e.measuredMs, FORMAT.ms),
        e.error !== undefined ? valueCell('estimate.error', e.error, FORMAT.error) : el('td', { class: 'number' }, '-'),
      ),
    ],
    [false, true, true, true],
  );
  const facts = [
    `${d.platform}/${d.arch}`,
    d.cpus ? `${d.cpus} CPU${d.cpus === 1 ? '' : 's'}` : '',
    d.memoryBytes ? FORMAT.mib(d.memoryBytes) : '',
    d.runtime,
    p.rssBytes ? `peak RSS ${FORMAT.mib(p.rssBytes)}` : '',
    entry.mcu ? `${entry.mcu.board}, ${entry.mcu.clockHz / 1e6} MHz, arena ${entry.mcu.arenaBytes} B` : '',
  ].filter(Boolean);
  return el(
    'article',
    { class: 'card', 'data-profile': entry.key, 'data-source': entry.source },
    el('header', {}, el('h3', {}, entry.title), remove),
    el('p', { class: 'facts' }, `${d.name}: ${facts.join(', ')}`),
    el(
      'p',
      { class: 'facts' },
      `${p.model.path}${p.model.release ? ` (release ${p.model.release})` : ''} · ${p.samples} ${p.dataset} instances on ${p.backend}${p.backendReason ? ` (${p.backendReason})` : ''} · ${p.startedAt}`,
    ),
    summary,
    el('div', { class: 'chart', 'data-chart': 'histogram' }),
    el('div', { class: 'pair' }, exits, stages),
    el('h3', {}, 'Link'),
    link,
    ...(mcu ? [el('h3', {}, 'Split inference'), mcu] : []),
    el('h3', {}, 'Estimated against measured'),
    estimate,
    el('p', { class: 'facts', 'data-estimate-note': '' }, `Measured: ${e.measured}.${e.note ? ` ${e.note}` : ''}`),
  );
}

/** The analysis of the model view: per layer work and memory, totals, the board's memory and fit, and advice. */
function analysisPart(a: NonNullable<ModelView['analysis']>): HTMLElement[] {
  const ms = (v: number | undefined): HTMLTableCellElement =>
    v === undefined ? el('td', { class: 'number' }, '-') : valueCell('estimateMs', v, FORMAT.ms);
  const rows = a.layers.map((l) =>
    el(
      'tr',
      { 'data-analysis-layer': l.name },
      el('th', { scope: 'row' }, l.name),
      el('td', {}, `${l.kind} ${l.weights}/${l.inputs}`),
      valueCell('params', l.params, FORMAT.count),
      valueCell('storedBytes', l.storedBytes, FORMAT.count),
      valueCell('macs', l.macs, FORMAT.count),
      valueCell('binaryOps', l.binaryOps, FORMAT.count),
      valueCell('activationBytes', l.activationBytes, FORMAT.count),
      valueCell('workingBytes', l.workingBytes, FORMAT.count),
      ms(l.estimateMs),
    ),
  );
  rows.push(
    el(
      'tr',
      { 'data-analysis-layer': 'total' },
      el('th', { scope: 'row' }, 'total'),
      el('td', {}, 'largest output, peak working'),
      valueCell('params', a.totals.params, FORMAT.count),
      valueCell('storedBytes', a.totals.storedBytes, FORMAT.count),
      valueCell('macs', a.totals.macs, FORMAT.count),
      valueCell('binaryOps', a.totals.binaryOps, FORMAT.count),
      valueCell('activationBytes', a.peakActivationBytes, FORMAT.count),
      valueCell('workingBytes', a.peakWorkingBytes, FORMAT.count),
      ms(a.latency?.ms),
    ),
  );
  const parts: HTMLElement[] = [
    el('h3', {}, `Analysis for ${a.device} (${a.target})`),
    table(
      [
        'layer',
        'kind',
        'params',
        a.mcu ? 'flash B' : 'stored B',
        'MACs',
        'binary ops',
        'output B',
        'working B',
        'est. ms',
      ],
      rows,
      [false, false, true, true, true, true, true, true, true],
    ),
  ];
  if (a.mcu) {
    const m = a.mcu;
    const fit = (fits: boolean): HTMLElement =>
      el('strong', { class: fits ? 'fits' : 'misfit', 'data-fits': String(fits) }, fits ? 'fits' : 'does not fit');
    parts.push(
      el(
        'p',
        { 'data-analysis': 'mcu' },
        `${m.board.board}: flash ${m.board.flashBytes} B, RAM ${m.board.ramBytes} B, default arena ${m.board.arenaBytes} B. Model ${m.modelBytes} B${m.exact ? '' : ' (from the layer shapes)'}. Uploaded: arena ${m.arenaUploadedBytes} B, `,
        fit(m.fitsUploaded),
        `. In flash: ${m.modelBytes} B of flash, arena ${m.arenaInFlashBytes} B, `,
        fit(m.fitsInFlash),
        '.',
      ),
    );
  }
  if (a.latency) {
    parts.push(
      el(
        'p',
        { 'data-analysis': 'latency' },
        `Estimated batch-1 latency from ${a.costTable ?? a.latency.device}'s cost table: ${FORMAT.ms(a.latency.ms)} ms${a.latency.missing.length ? `, without ${a.latency.missing.join(', ')} (not in the table: profile a model that has them)` : ''}.`,
      ),
    );
  }
  if (a.note) parts.push(el('p', { class: 'facts', 'data-analysis': 'note' }, a.note));
  if (a.advice.length) parts.push(el('ul', { 'data-analysis': 'advice' }, ...a.advice.map((t) => el('li', {}, t))));
  return parts;
}

function renderModel(view: View, m: ModelView): void {
  for (const chart of view.modelCharts) chart.destroy();
  view.modelCharts = [];
  const container = byId('model-view');
  const parts: HTMLElement[] = [
    el(
      'p',
      {},
      `${m.path}: ${m.arch}, ${m.labels} classes, ${m.fileBytes} bytes${m.binaryBitsPerWeight !== undefined ? `, ${m.binaryBitsPerWeight.toFixed(3)} bits per binary weight` : ''}${m.dataset ? `, trained on ${m.dataset}` : ''}.`,
    ),
    table(
      ['layer', 'kind', 'weights', 'inputs', 'weight count', 'bytes', 'bits/weight'],
      m.layers.map((l) =>
        el(
          'tr',
          { 'data-layer': l.name },
          el('th', { scope: 'row' }, l.name),
          el('td', {}, l.kind),
          el('td', {}, l.weights),
          el('td', {}, l.inputs),
          valueCell('weightCount', l.weightCount, FORMAT.count),
          valueCell('weightBytes', l.weightBytes, FORMAT.count),
          valueCell('bitsPerWeight', l.bitsPerWeight, FORMAT.bits),
        ),
      ),
      [false, false, false, false, true, true, true],
    ),
  ];
  if (m.exits.length) {
    parts.push(
      table(
        ['exit', 'after', 'threshold (nats)'],
        m.exits.map((e) =>
          el(
            'tr',
            {},
            el('th', { scope: 'row' }, e.name),
            el('td', {}, e.after),
            el('td', { class: 'number' }, e.threshold === null ? 'not calibrated' : e.threshold.toFixed(4)),
          ),
        ),
      ),
    );
  }
  if (m.analysis) parts.push(...analysisPart(m.analysis));
  else if (m.analysisNote) parts.push(el('p', { class: 'facts', 'data-analysis': 'note' }, m.analysisNote));
  const charts: { name: string; title: string; draw: (holder: HTMLElement) => uPlot }[] = [];
  if (m.mask) {
    const mask = m.mask;
    parts.push(el('h3', {}, 'Input mask'));
    parts.push(
      el(
        'p',
        {},
        `${mask.kind} mask, ${mask.granularity}, ${mask.keptUnits !== undefined ? `${Number.isInteger(mask.keptUnits) ? mask.keptUnits : FORMAT.rate(mask.keptUnits)} of ` : ''}${mask.units} units kept, values ${mask.values}; the whole input is ${mask.fullInputBytes} bytes.`,
      ),
    );
    if (mask.note) parts.push(el('p', { class: 'facts' }, mask.note));
    if (mask.picture) {
      parts.push(
        el(
          'figure',
          { class: 'mask' },
          el('img', { src: mask.picture.png, alt: 'input mask: white pixels are sent', 'data-chart': 'mask' }),
          el(
            'figcaption',
            {},
            mask.kind === 'static' ? 'White: sent.' : 'Brightness: share of test images that send the pixel.',
          ),
        ),
      );
    }
  }
  if (m.checkpoints.length) {
    charts.push({
      name: 'checkpoints',
      title: 'Accuracy against the share of the input kept (mask checkpoints)',
      draw: (holder) =>
        xyChart(
          holder,
          [
            { label: 'validation', points: m.checkpoints.map((k) => ({ x: k.keptFraction, y: k.validationAccuracy })) },
            { label: 'test', points: m.checkpoints.map((k) => ({ x: k.keptFraction, y: k.testAccuracy })) },
          ],
          'kept fraction',
          'accuracy',
        ),
    });
  }
  if (m.calibration) {
    const c = m.calibration;
    charts.push({
      name: 'pareto',
      title: 'Exit calibration: accuracy against mean latency (Pareto set)',
      draw: (holder) =>
        xyChart(
          holder,
          [
            { label: 'Pareto set', points: c.pareto.map((p) => ({ x: p.meanLatencyMs, y: p.accuracy })) },
            { label: 'chosen', points: [{ x: c.chosen.meanLatencyMs, y: c.chosen.accuracy }], line: false },
            { label: 'full network', points: [{ x: c.full.meanLatencyMs, y: c.full.accuracy }], line: false },
          ],
          'mean latency (ms)',
          'accuracy',
        ),
    });
  }
  const holders = charts.map((c) => el('div', { class: 'chart', 'data-chart': c.name }));
  charts.forEach((c, i) => parts.push(el('h3', {}, c.title), holders[i]));
  container.replaceChildren(...parts);
  charts.forEach((c, i) => view.modelCharts.push(c.draw(holders[i])));
}

async function exportReport(view: View): Promise<void> {
  const report = await view.link.request({ type: 'report' });
  const links = byId('report-links');
  for (const a of links.querySelectorAll('a')) URL.revokeObjectURL(a.href);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const anchor = (text: string, body: string, type: string, name: string): HTMLAnchorElement =>
    el('a', { href: URL.createObjectURL(new Blob([body], { type })), download: name }, text);
  links.replaceChildren(
    anchor('report (HTML)', report.html, 'text/html', `cmp-report-${stamp}.html`),
    ' ',
    anchor('data (JSON)', report.json, 'application/json', `cmp-report-${stamp}.json`),
  );
}

function bindForms(view: View): void {
  const submit = (id: string, action: () => Promise<unknown>): void =>
    byId<HTMLFormElement>(id).addEventListener('submit', (event) => {
      event.preventDefault();
      attempt(action);
    });
  submit('serial-form', async () => {
    const path = byId<HTMLInputElement>('serial-path').value.trim();
    const result = await view.link.request({ type: 'devices', serialPath: path });
    view.state = { ...view.state, devices: result.devices, notes: result.notes };
    renderDevices(view);
    byId<HTMLSelectElement>('profile-device').value = `mcu:${path}`;
    syncModelField(view);
  });
  byId<HTMLSelectElement>('profile-device').addEventListener('change', () => syncModelField(view));
  submit('profile-form', async () => {
    const device = byId<HTMLSelectElement>('profile-device').value;
    const needsModel = view.state.devices.find((d: DashboardDevice) => d.id === device)?.needsModel ?? true;
    const model = byId<HTMLInputElement>('profile-model').value.trim();
    await view.link.request({
      type: 'profile',
      device,
      ...(needsModel && model ? { model } : {}),
      dataset: byId<HTMLSelectElement>('profile-dataset').value as DashboardState['dataset'],
      count: Number(byId<HTMLInputElement>('profile-count').value),
    });
  });
  submit('load-form', () =>
    view.link.request({ type: 'load-profile', path: byId<HTMLInputElement>('load-path').value.trim() }),
  );
  const openModel = async (): Promise<void> => {
    const device = byId<HTMLSelectElement>('model-device').value;
    const m = await view.link.request({
      type: 'model',
      path: byId<HTMLInputElement>('model-path').value.trim(),
      ...(device ? { device } : {}),
    });
    renderModel(view, m);
  };
  submit('model-form', openModel);
  // Another device: the same model analysed for it (its target and cost table), once a model is open.
  byId<HTMLSelectElement>('model-device').addEventListener('change', () => {
    if (byId('model-view').childElementCount && byId<HTMLInputElement>('model-path').value.trim()) attempt(openModel);
  });
  byId('export').addEventListener('click', () => attempt(() => exportReport(view)));
}

async function start(): Promise<void> {
  const connection = byId('connection');
  let link: DashboardLink;
  try {
    link = await openLink();
  } catch (err) {
    connection.textContent = 'not connected';
    showError(String((err as Error)?.message ?? err));
    return;
  }
  const state = await link.request({ type: 'hello' });
  const view: View = {
    link,
    state,
    profiles: state.profiles,
    jobs: new Map(state.jobs.map((j) => [j.job, j])),
    charts: [],
    modelCharts: [],
  };
  connection.textContent = `cmp ${state.cmpVersion}, ${link.mode === 'electron' ? 'desktop app' : 'browser'} · ${state.devices.length} devices`;
  link.onClose((reason) => {
    connection.textContent = `disconnected: ${reason}`;
  });
  link.onEvent((message) => {
    if (message.type === 'job') {
      view.jobs.set(message.job.job, message.job);
      renderJobs(view);
    } else if (message.type === 'profiles') {
      view.profiles = message.profiles;
      renderProfiles(view);
    } else if (message.type === 'error') showError(message.message);
  });
  byId<HTMLSelectElement>('profile-dataset').replaceChildren(
    ...state.datasets.map((d) => el('option', { value: d }, d === 'auto' ? "the model's own" : d)),
  );
  byId<HTMLSelectElement>('profile-dataset').value = state.dataset;
  if (state.models[0]) byId<HTMLInputElement>('model-path').value = state.models[0];
  renderDevices(view);
  renderJobs(view);
  renderProfiles(view);
  bindForms(view);
  document.body.dataset.ready = 'true';
}

start().catch((err: unknown) => showError(String((err as Error)?.message ?? err)));
