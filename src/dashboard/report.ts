// The dashboard's exported report: one self-contained HTML file (tables, inline SVG charts, the mask picture as a data
// URL, no script) with the JSON it shows embedded, and that JSON on its own.

import { CMP_VERSION } from '../core/version.js';
import type { DashboardReport, ModelView, ProfileEntry } from './messages.js';
import { escapeHtml, histogramSvg, xySvg } from './svg.js';

export const REPORT_SCHEMA = 'cmp-dashboard-report/1';

/** The report's JSON. */
export interface ReportData {
  schema: typeof REPORT_SCHEMA;
  createdAt: string;
  cmpVersion: string;
  profiles: ProfileEntry[];
  model?: ModelView;
}

/** The policy of the report file itself: nothing loads or runs, styles and images are inline. */
const REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

const STYLE = `body{font:14px/1.45 system-ui,sans-serif;margin:1.5rem auto;max-width:72rem;padding:0 1rem;color:#1a1a1a}
table{border-collapse:collapse;margin:.5rem 0 1rem}th,td{padding:.15rem .6rem;border-bottom:1px solid #ddd;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}.cards{display:flex;flex-wrap:wrap;gap:1rem}
.card{border:1px solid #ccc;border-radius:6px;padding:.5rem 1rem;flex:1 1 34rem}h3{margin:.3rem 0}`;

/** Builds the report of `profiles` (and the model view, when one is open). */
export function buildReport(
  profiles: ProfileEntry[],
  model: ModelView | undefined,
  createdAt = new Date(),
): DashboardReport {
  const data: ReportData = {
    schema: REPORT_SCHEMA,
    createdAt: createdAt.toISOString(),
    cmpVersion: CMP_VERSION,
    profiles,
    ...(model ? { model } : {}),
  };
  const json = JSON.stringify(data, null, 2);
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="${REPORT_CSP}">
<title>cmp dashboard report</title><style>${STYLE}</style></head><body>
<h1>cmp dashboard report</h1>
<p>Written ${escapeHtml(data.createdAt)} by cmp ${escapeHtml(CMP_VERSION)}: ${profiles.length} profile${profiles.length === 1 ? '' : 's'}${model ? `, model ${escapeHtml(model.path)}` : ''}.</p>
${profiles.length ? comparison(profiles) : '<p>No profiles.</p>'}
<div class="cards">${profiles.map(card).join('\n')}</div>
${model ? modelSection(model) : ''}
<h2>Data</h2><p>The JSON behind this report (schema ${REPORT_SCHEMA}) is in the script element <code>cmp-report-data</code>.</p>
<script type="application/json" id="cmp-report-data">${json.replace(/</g, '\\u003c')}</script>
</body></html>
`;
  return { html, json };
}

const ms = (v: number): string => (Number.isFinite(v) ? v.toFixed(3) : '-');
const pct = (v: number): string => (Number.isFinite(v) ? `${(v * 100).toFixed(1)}%` : '-');
const cell = (v: string | number, numeric = typeof v === 'number'): string =>
  `<td${numeric ? ' class="n"' : ''}>${escapeHtml(String(v))}</td>`;
const row = (cells: string[]): string => `<tr>${cells.join('')}</tr>`;
const head = (names: string[]): string => `<tr>${names.map((n) => `<th>${escapeHtml(n)}</th>`).join('')}</tr>`;

function comparison(profiles: ProfileEntry[]): string {
  return `<h2>Devices side by side</h2><table>${head([
    'profile',
    'backend',
    'samples',
    'accuracy',
    'p50 ms',
    'p90 ms',
    'p99 ms',
    'per s',
    'link B/inference',
    'saving',
  ])}${profiles
    .map(({ title, profile: p }) =>
      row([
        cell(title),
        cell(p.backend),
        cell(p.samples),
        cell(pct(p.accuracy), true),
        cell(ms(p.latencyMs.p50), true),
        cell(ms(p.latencyMs.p90), true),
        cell(ms(p.latencyMs.p99), true),
        cell(p.throughputPerS.toFixed(1), true),
        cell(p.link ? p.link.meanBytes.toFixed(1) : '-', true),
        cell(p.link ? `${p.link.saving.toFixed(1)}x` : '-', true),
      ]),
    )
    .join('')}</table>`;
}

function card(entry: ProfileEntry): string {
  const p = entry.profile;
  const d = p.device;
  const marks = [
    { label: 'p50', ms: p.latencyMs.p50 },
    { label: 'p90', ms: p.latencyMs.p90 },
    { label: 'p99', ms: p.latencyMs.p99 },
  ];
  const mcu = entry.mcu;
  return `<section class="card"><h3>${escapeHtml(entry.title)}</h3>
<p>${escapeHtml(`${d.name}: ${d.platform}/${d.arch}, ${d.cpus} CPUs, ${d.runtime}. Model ${p.model.path}, ${p.samples} ${p.dataset} instances on ${p.backend}, ${p.startedAt}.`)}</p>
${histogramSvg(entry.histogram, marks, `${entry.title}: latency histogram`)}
<table>${head(['accuracy', 'mean ms', 'p50 ms', 'p90 ms', 'p99 ms', 'per s'])}${row([
    cell(pct(p.accuracy), true),
    cell(ms(p.latencyMs.mean), true),
    cell(ms(p.latencyMs.p50), true),
    cell(ms(p.latencyMs.p90), true),
    cell(ms(p.latencyMs.p99), true),
    cell(p.throughputPerS.toFixed(1), true),
  ])}</table>
<table>${head(['exit', 'share', 'accuracy'])}${p.exits.map((e) => row([cell(e.exit), cell(pct(e.share), true), cell(pct(e.accuracy), true)])).join('')}</table>
${
  p.link
    ? `<p>Link: ${p.link.meanBytes.toFixed(1)} bytes per inference against ${p.link.fullBytes} for the whole input: ${p.link.saving.toFixed(1)}x fewer.</p>`
    : ''
}${
    mcu
      ? `<p>${escapeHtml(`${mcu.board} on ${mcu.port} (firmware ${mcu.firmwareVersion}): ${pct(mcu.deviceShare)} answered on the device, ${mcu.meanUpBytes.toFixed(1)} bytes up and ${mcu.meanDownBytes.toFixed(1)} down per inference, ${mcu.deviceMsMean.toFixed(2)} ms device time.`)}</p>`
      : ''
  }</section>`;
}

function modelSection(m: ModelView): string {
  const parts = [
    `<h2>Model ${escapeHtml(m.path)}</h2><p>${escapeHtml(`${m.arch}, ${m.labels} classes, ${m.fileBytes} bytes${m.binaryBitsPerWeight !== undefined ? `, ${m.binaryBitsPerWeight.toFixed(3)} bits per binary weight` : ''}.`)}</p>`,
    `<table>${head(['layer', 'kind', 'weights', 'inputs', 'weight count', 'bytes', 'bits/weight'])}${m.layers
      .map((l) =>
        row([
          cell(l.name),
          cell(l.kind),
          cell(l.weights),
          cell(l.inputs),
          cell(l.weightCount),
          cell(l.weightBytes),
          cell(l.bitsPerWeight.toFixed(3), true),
        ]),
      )
      .join('')}</table>`,
  ];
  if (m.mask?.picture) {
    parts.push(
      `<h3>Input mask</h3><p>${escapeHtml(`${m.mask.kind}, ${m.mask.granularity}, ${m.mask.keptUnits ?? '?'} of ${m.mask.units} units; white: sent.`)}</p><img alt="input mask" src="${escapeHtml(m.mask.picture.png)}">`,
    );
  }
  if (m.checkpoints.length) {
    parts.push(
      `<h3>Accuracy against the share of the input kept</h3>${xySvg(
        [
          { label: 'validation', points: m.checkpoints.map((c) => ({ x: c.keptFraction, y: c.validationAccuracy })) },
          { label: 'test', points: m.checkpoints.map((c) => ({ x: c.keptFraction, y: c.testAccuracy })) },
        ],
        'kept fraction',
        'accuracy',
        'mask checkpoints',
      )}`,
    );
  }
  if (m.calibration) {
    const c = m.calibration;
    parts.push(
      `<h3>Exit calibration: accuracy against mean latency</h3>${xySvg(
        [
          { label: 'Pareto set', points: c.pareto.map((p) => ({ x: p.meanLatencyMs, y: p.accuracy })) },
          { label: 'chosen', points: [{ x: c.chosen.meanLatencyMs, y: c.chosen.accuracy }], line: false },
          { label: 'full network', points: [{ x: c.full.meanLatencyMs, y: c.full.accuracy }], line: false },
        ],
        'mean latency (ms)',
        'accuracy',
        'exit calibration',
      )}`,
    );
  }
  return parts.join('\n');
}
