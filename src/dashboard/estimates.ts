// Know before you deploy, in the dashboard: cmp analyze of a model for a device of the list, and each profile's
// estimated latency (its device's recorded cost table) beside the latency the profile measured.

import { existsSync } from 'node:fs';
import { cmpHome } from '../deploy/devices.js';
import { isCmpError } from '../errors.js';
import { analyzeModel, findCostTable } from '../profile/analyze.js';
import { estimateMs, type CostTable } from '../profile/cost-table.js';
import type { DeviceProfile } from '../profile/device-profile.js';
import { readModelFile, type ModelFile } from '../runtime/model-file.js';
import type { LatencyEstimate, McuDetails, ModelView } from './messages.js';

/** The device a model view is analysed for when the request names none: this machine on onnxruntime. */
export const DEFAULT_ANALYSIS_DEVICE = 'local:ort-node';

/** The analysis target, and for mcu and host the board or backend, of a device id (`<kind>:<name>`). */
export function analysisTarget(device: string): { target: string; board?: string; backend?: string } {
  const [kind, ...rest] = device.split(':');
  const name = rest.join(':');
  if (kind === 'local') return { target: 'host', backend: name };
  // A board is the one cmp builds firmware for (its name comes only from its HELLO).
  if (kind === 'mcu') return { target: 'mcu', board: 'mps2-an385' };
  if (kind === 'rpi') return { target: 'rpi' };
  return { target: 'browser' };
}

/** cmp analyze of `file` for `device`, with the device's cost table where cmp profile recorded one. */
export function deviceAnalysis(file: ModelFile, device: string): NonNullable<ModelView['analysis']> {
  const { target, board, backend } = analysisTarget(device);
  const table = findCostTable(cmpHome(), target, { board, backend });
  const analysis = analyzeModel(file, { target, board, costs: table.costs });
  return {
    ...analysis,
    device,
    ...(table.costs ? { costTable: table.costs.device } : {}),
    ...(table.note ? { note: table.note } : {}),
  };
}

/**
 * A profile's estimated against measured latency. This machine's backends: the whole model's estimate from the
 * backend's table against the profile's p50. A board in split inference: the layers it runs (up to its last exit,
 * whose heads are priced when the table has their kernel) against its mean compute time per inference.
 */
export function profileEstimate(profile: DeviceProfile, origin: string, mcu?: McuDetails): LatencyEstimate {
  const measured = mcu
    ? { measuredMs: mcu.deviceMsMean, measured: 'the device computing, mean per inference (its cycle counter)' }
    : { measuredMs: profile.latencyMs.p50, measured: 'p50 of whole instances' };
  const none = (note: string, costTable?: string): LatencyEstimate => ({
    ...measured,
    ...(costTable ? { costTable } : {}),
    note,
  });
  let table: { costs?: CostTable; note?: string };
  if (mcu) table = findCostTable(cmpHome(), 'mcu', { board: mcu.board });
  else if (origin.startsWith('local:')) table = findCostTable(cmpHome(), 'host', { backend: profile.backend });
  else return none("No estimate: cost tables are recorded for boards and this machine's backends (cmp profile).");
  if (!table.costs) return none(table.note ?? 'No estimate: no cost table.');
  const costs = table.costs;
  if (!existsSync(profile.model.path))
    return none(`No estimate: the model ${profile.model.path} is not on this machine.`, costs.device);
  let file: ModelFile;
  try {
    file = readModelFile(profile.model.path);
  } catch (err) {
    return none(`No estimate: ${isCmpError(err) ? err.message : String(err)}`, costs.device);
  }
  const analysis = analyzeModel(file, { target: mcu ? 'mcu' : 'host', costs });
  let estimatedMs = analysis.latency?.ms ?? Number.NaN;
  const missing = [...(analysis.latency?.missing ?? [])];
  const notes: string[] = [];
  if (mcu) {
    const exits = file.manifest?.spec.exits ?? [];
    if (!exits.length) {
      return none('No estimate: in split inference the device runs no layer of a model without exits.', costs.device);
    }
    // The device runs the layers up to its last exit, and each exit's head (flatten, dense on float inputs).
    const last = Math.max(...exits.map((e) => analysis.layers.findIndex((l) => l.name === e.after)));
    const run = analysis.layers.slice(0, last + 1);
    estimatedMs = (costs.overheadMs ?? 0) + run.reduce((a, l) => a + (l.estimateMs ?? 0), 0);
    missing.length = 0;
    missing.push(
      ...new Set(run.filter((l) => l.estimateMs === undefined && l.kind !== 'flatten').map((l) => l.kernel)),
    );
    const classes = file.manifest?.spec.labels.length ?? 0;
    for (const exit of exits) {
      const after = analysis.layers.find((l) => l.name === exit.after);
      const units = ((after?.activationBytes ?? 0) / 4) * classes;
      const head = estimateMs(costs, 'dense/float32/none', units);
      if (head === undefined) notes.push(`Exit head ${exit.name} not priced (the table has no dense/float32/none)`);
      else estimatedMs += head;
    }
  } else if (file.manifest?.spec.exits?.length) {
    notes.push('The estimate runs the whole network; the p50 counts instances that left at an exit');
  }
  if (missing.length) notes.push(`Estimated without ${missing.join(', ')} (not in the table)`);
  return {
    ...measured,
    costTable: costs.device,
    estimatedMs,
    ...(measured.measuredMs > 0 ? { error: (estimatedMs - measured.measuredMs) / measured.measuredMs } : {}),
    ...(notes.length ? { note: `${notes.join('. ')}.` } : {}),
  };
}
