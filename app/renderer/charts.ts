// The dashboard's charts, drawn by uPlot on canvas: latency histograms with percentile marks, and x/y plots (mask
// checkpoints, the calibration Pareto set). Each chart's container says how many points it drew (data-points).

import uPlot from 'uplot';
import type { LatencyHistogram } from '../../src/index.js';

/** One colour per series, in order: the report's SVG charts use the same. */
export const COLOURS: readonly string[] = Object.freeze(['#2b6cb0', '#c05621', '#2f855a', '#6b46c1', '#b83280']);
const HEIGHT = 220;

function widthOf(container: HTMLElement): number {
  return Math.max(280, Math.min(640, Math.floor(container.getBoundingClientRect().width) || 480));
}

/** A histogram of `h` with a dashed line at each mark (p50, p90, p99). */
export function histogramChart(
  container: HTMLElement,
  h: LatencyHistogram,
  marks: { label: string; ms: number }[],
): uPlot {
  const centres = h.counts.map((_, i) => (h.edgesMs[i] + h.edgesMs[i + 1]) / 2);
  container.dataset.points = String(h.counts.length);
  container.dataset.instances = String(h.counts.reduce((a, b) => a + b, 0));
  const first = h.edgesMs[0] ?? 0;
  const last = h.edgesMs[h.edgesMs.length - 1] ?? 1;
  return new uPlot(
    {
      width: widthOf(container),
      height: HEIGHT,
      legend: { show: false },
      cursor: { show: false },
      scales: {
        x: { time: false, range: () => [first, last] },
        y: { range: (_u, _min, max) => [0, Math.max(1, max) * 1.1] },
      },
      axes: [{ label: 'latency (ms)' }, { label: 'instances' }],
      series: [
        {},
        {
          label: 'instances',
          fill: `${COLOURS[0]}cc`,
          stroke: COLOURS[0],
          paths: uPlot.paths.bars?.({ size: [0.92, Infinity] }),
          points: { show: false },
        },
      ],
      hooks: {
        draw: [
          (u) => {
            const ctx = u.ctx;
            ctx.save();
            ctx.font = `${Math.round(11 * uPlot.pxRatio)}px sans-serif`;
            marks.forEach((m, i) => {
              const x = u.valToPos(m.ms, 'x', true);
              ctx.strokeStyle = COLOURS[i + 1];
              ctx.fillStyle = COLOURS[i + 1];
              ctx.setLineDash([4 * uPlot.pxRatio, 3 * uPlot.pxRatio]);
              ctx.beginPath();
              ctx.moveTo(x, u.bbox.top);
              ctx.lineTo(x, u.bbox.top + u.bbox.height);
              ctx.stroke();
              ctx.fillText(m.label, x + 3 * uPlot.pxRatio, u.bbox.top + (12 + 12 * i) * uPlot.pxRatio);
            });
            ctx.restore();
          },
        ],
      },
    },
    [centres, h.counts],
    container,
  );
}

/** Series of points over one x axis; a series without a line shows its points only. */
export function xyChart(
  container: HTMLElement,
  series: { label: string; points: { x: number; y: number }[]; line?: boolean }[],
  xLabel: string,
  yLabel: string,
): uPlot {
  // uPlot wants one ascending x array shared by all series: the union of their x values, null where a series has none.
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p.x)))].sort((a, b) => a - b);
  const ys = series.map((s) => {
    const at = new Map(s.points.map((p) => [p.x, p.y]));
    return xs.map((x) => at.get(x) ?? null);
  });
  container.dataset.points = String(ys.reduce((a, y) => a + y.filter((v) => v !== null).length, 0));
  return new uPlot(
    {
      width: widthOf(container),
      height: HEIGHT,
      cursor: { show: true, drag: { x: false, y: false } },
      // The legend names the series; values under the cursor would read "--" whenever it is away.
      legend: { live: false },
      scales: { x: { time: false } },
      axes: [{ label: xLabel }, { label: yLabel }],
      series: [
        { label: xLabel },
        ...series.map((s, i) => ({
          label: s.label,
          stroke: COLOURS[i % COLOURS.length],
          width: s.line === false ? 0 : 1.5,
          spanGaps: true,
          points: { show: true, size: 7, fill: COLOURS[i % COLOURS.length] },
        })),
      ],
    },
    [xs, ...ys],
    container,
  );
}
