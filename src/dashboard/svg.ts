// Charts as inline SVG text for the dashboard's exported report: a histogram with percentile marks and x/y plots.
// No script runs in the report, so its charts are drawn here once, as markup.

import type { LatencyHistogram } from './messages.js';

const WIDTH = 520;
const HEIGHT = 220;
const MARGIN = { left: 52, right: 30, top: 14, bottom: 40 };
/** One colour per series, in order: the same as the renderer's (app/renderer/charts.ts COLOURS). */
export const SERIES_COLOURS: readonly string[] = Object.freeze(['#2b6cb0', '#c05621', '#2f855a', '#6b46c1', '#b83280']);

/** Escapes text for HTML and SVG content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A number as an axis label: up to 4 significant digits, no exponent for everyday values. */
function tick(v: number): string {
  return Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(1) : String(Number(v.toPrecision(4)));
}

interface Frame {
  x: (v: number) => number;
  y: (v: number) => number;
  axes: string;
}

function frame(xMin: number, xMax: number, yMin: number, yMax: number, xLabel: string, yLabel: string): Frame {
  const xSpan = xMax - xMin || Math.abs(xMax) || 1;
  const ySpan = yMax - yMin || Math.abs(yMax) || 1;
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (v: number): number => MARGIN.left + ((v - xMin) / xSpan) * plotW;
  const y = (v: number): number => MARGIN.top + plotH - ((v - yMin) / ySpan) * plotH;
  const ticks = (min: number, span: number): number[] => Array.from({ length: 5 }, (_, i) => min + (i * span) / 4);
  const axes = [
    `<line x1="${MARGIN.left}" y1="${MARGIN.top + plotH}" x2="${WIDTH - MARGIN.right}" y2="${MARGIN.top + plotH}" stroke="#555"/>`,
    `<line x1="${MARGIN.left}" y1="${MARGIN.top}" x2="${MARGIN.left}" y2="${MARGIN.top + plotH}" stroke="#555"/>`,
    ...ticks(xMin, xSpan).map(
      (v) =>
        `<text x="${x(v).toFixed(1)}" y="${MARGIN.top + plotH + 14}" text-anchor="middle">${escapeHtml(tick(v))}</text>`,
    ),
    ...ticks(yMin, ySpan).map(
      (v) =>
        `<text x="${MARGIN.left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${escapeHtml(tick(v))}</text>`,
    ),
    `<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 6}" text-anchor="middle">${escapeHtml(xLabel)}</text>`,
    `<text x="12" y="${MARGIN.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 12 ${MARGIN.top + plotH / 2})">${escapeHtml(yLabel)}</text>`,
  ].join('');
  return { x, y, axes };
}

function svg(body: string, title: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" role="img" font-family="sans-serif" font-size="11"><title>${escapeHtml(title)}</title>${body}</svg>`;
}

/** A latency histogram with a vertical line at each mark (p50, p90, p99). */
export function histogramSvg(h: LatencyHistogram, marks: { label: string; ms: number }[], title: string): string {
  if (h.counts.length === 0) return svg('', title);
  const top = Math.max(...h.counts);
  const f = frame(h.edgesMs[0], h.edgesMs[h.edgesMs.length - 1], 0, top, 'latency (ms)', 'instances');
  const bars = h.counts
    .map((c, i) => {
      const x0 = f.x(h.edgesMs[i]);
      const x1 = f.x(h.edgesMs[i + 1]);
      return `<rect x="${x0.toFixed(1)}" y="${f.y(c).toFixed(1)}" width="${Math.max(0.5, x1 - x0 - 1).toFixed(1)}" height="${(f.y(0) - f.y(c)).toFixed(1)}" fill="${SERIES_COLOURS[0]}"/>`;
    })
    .join('');
  const lines = marks
    .map(
      (m, i) =>
        `<line x1="${f.x(m.ms).toFixed(1)}" y1="${MARGIN.top}" x2="${f.x(m.ms).toFixed(1)}" y2="${f.y(0).toFixed(1)}" stroke="${SERIES_COLOURS[i + 1]}" stroke-dasharray="4 3"/><text x="${(f.x(m.ms) + 3).toFixed(1)}" y="${MARGIN.top + 10 + i * 12}" fill="${SERIES_COLOURS[i + 1]}">${escapeHtml(m.label)}</text>`,
    )
    .join('');
  return svg(f.axes + bars + lines, title);
}

/** Series of points joined by lines (each sorted by x), with a legend. */
export function xySvg(
  series: { label: string; points: { x: number; y: number }[]; line?: boolean }[],
  xLabel: string,
  yLabel: string,
  title: string,
): string {
  const all = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  if (all.length === 0) return svg('', title);
  const xs = all.map((p) => p.x);
  const ys = all.map((p) => p.y);
  const f = frame(Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys), xLabel, yLabel);
  const body = series
    .map((s, i) => {
      const colour = SERIES_COLOURS[i % SERIES_COLOURS.length];
      const points = [...s.points]
        .filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y))
        .sort((a, b) => a.x - b.x);
      const path =
        s.line !== false && points.length > 1
          ? `<polyline fill="none" stroke="${colour}" stroke-width="1.5" points="${points.map((p) => `${f.x(p.x).toFixed(1)},${f.y(p.y).toFixed(1)}`).join(' ')}"/>`
          : '';
      const dots = points
        .map((p) => `<circle cx="${f.x(p.x).toFixed(1)}" cy="${f.y(p.y).toFixed(1)}" r="3" fill="${colour}"/>`)
        .join('');
      const legend = `<text x="${WIDTH - MARGIN.right}" y="${MARGIN.top + 10 + i * 12}" text-anchor="end" fill="${colour}">${escapeHtml(s.label)}</text>`;
      return path + dots + legend;
    })
    .join('');
  return svg(f.axes + body, title);
}
