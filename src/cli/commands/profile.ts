// cmp profile: runs a model on a device through its target, as a cmp-profile/1 (the same the dashboard gets):
// mcu over the serial link (split inference, bytes each way), rpi on the device itself over SSH, local on this
// machine; host records this machine's cost table for cmp analyze.

import { writeFileSync } from 'node:fs';
import { forEachDevice } from '../../deploy/fleet.js';
import { recordHostCosts } from '../../deploy/target-local.js';
import { COST_RUNS } from '../../deploy/target-mcu.js';
import { TARGETS } from '../../deploy/targets.js';
import { CmpError } from '../../errors.js';
import { DEFAULT_BAUD_RATE } from '../../link/transport-serial.js';
import type { DeviceProfile } from '../../profile/device-profile.js';
import type { ProfileRequest } from '../../deploy/target.js';
import { datasetConsumer, readModelFile } from '../../runtime/model-file.js';
import type { Parsed } from '../args.js';
import type { CliIo, Command } from '../command.js';
import { DATA_FLAG, dataLoader, loadDataFlag } from '../data-flag.js';
import { finishFleet, named, RPI_DEPLOY_FLAGS, rpiDevicesFrom } from '../rpi-flags.js';
import { formatBytes, formatPercent, formatTable } from '../table.js';

export const profileCommand: Command = {
  def: {
    name: 'profile',
    summary: 'Profile a deployed model on its device: on-device exits, hand-offs, bytes each way, latency.',
    positionals: ['MODEL?'],
    flags: {
      target: {
        type: 'string',
        value: 'NAME',
        choices: ['local', 'mcu', 'rpi', 'host'],
        help: "where the model runs (required); host: record this machine's cost table for cmp analyze",
      },
      port: {
        type: 'string',
        value: 'PATH|N',
        help: 'mcu: serial port of the board (cmp firmware qemu prints it); rpi: SSH port',
      },
      'baud-rate': { type: 'int', default: String(DEFAULT_BAUD_RATE), help: 'mcu: line speed the link time uses' },
      data: DATA_FLAG,
      limit: { type: 'int', default: '500', help: 'test images to run' },
      backend: {
        type: 'string',
        value: 'NAME',
        help: "rpi: backend on the device (default: the release's); local, host: the backend to run (default ort-node)",
      },
      out: {
        type: 'string',
        value: 'FILE',
        help: 'rpi, local: also write the cmp-profile/1 JSON here (the dashboard reads it)',
      },
      ...RPI_DEPLOY_FLAGS,
    },
    examples: [
      'cmp profile fm-exit.onnx --target mcu --port /dev/pts/3 --data fashion-mnist --limit 500',
      'cmp profile --target rpi --host pi@raspberrypi.local --data fashion-mnist --limit 1000',
      'cmp profile fm-mlp.onnx --target local --backend bitwasm --data fashion-mnist --limit 1000',
      'cmp profile fm-mlp.onnx --target host --backend ort-node --data fashion-mnist',
    ],
  },
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const f = parsed.flags;
    // As with deploy, no device is assumed: a board and an SSH host need different flags.
    if (!f.target) {
      throw new CmpError(
        'BAD_FLAG',
        `cmp profile needs --target NAME, where the model runs: ${(['local', 'mcu', 'rpi'] as const).map((k) => `${k} (${TARGETS[k].what})`).join('; ')}. Example: cmp profile --target rpi --host pi@raspberrypi.local`,
      );
    }
    if (f.target === 'rpi') return profileOnRpi(parsed, io);
    if (f.target === 'host') return profileOnHost(parsed, io);
    if (f.target === 'local') return profileOnLocal(parsed, io);
    if (!parsed.positionals[0])
      throw new CmpError('BAD_FLAG', 'cmp profile --target mcu needs the MODEL the board runs.');
    const port = f.port as string | undefined;
    if (!port) {
      throw new CmpError(
        'BAD_FLAG',
        "cmp profile --target mcu needs --port PATH (cmp firmware qemu prints the emulated board's).",
      );
    }
    const file = readModelFile(parsed.positionals[0]);
    const baudRate = (f['baud-rate'] as number | undefined) ?? DEFAULT_BAUD_RATE;
    const { profile, details } = await TARGETS.mcu.profile(
      { port, baudRate, recordCosts: true },
      { ...request(parsed, io), model: file },
    );
    io.progress.done();
    const { report } = details;
    const costs = details.costs as { wholeMs: number; path: string };
    const deviceMs = details.deviceMsMean;
    const result = {
      model: file.path,
      target: 'mcu',
      port,
      board: details.board,
      dataset: profile.dataset,
      ...report,
      deviceMsMean: deviceMs,
      wholeModelDeviceMs: costs.wholeMs,
      costTable: costs.path,
      link: details.link,
      profile,
    };
    if (io.json) io.out(JSON.stringify(result, null, 2));
    else {
      io.out(
        formatTable(
          [
            'samples',
            'accuracy',
            'on device',
            'up B/inf',
            'down B/inf',
            'hand-off B',
            `uplink ms @${baudRate}`,
            'device ms',
            'p50 ms',
            'p90 ms',
            'p99 ms',
          ],
          [
            [
              report.samples,
              formatPercent(report.accuracy),
              formatPercent(report.deviceShare),
              report.meanUpBytes.toFixed(1),
              report.meanDownBytes.toFixed(1),
              report.meanHandoffBytes.toFixed(1),
              report.uplinkMsAtBaud.toFixed(2),
              deviceMs.toFixed(2),
              report.latencyMs.p50.toFixed(1),
              report.latencyMs.p90.toFixed(1),
              report.latencyMs.p99.toFixed(1),
            ],
          ],
        ),
      );
    }
    if (!io.json)
      io.out(
        `A whole inference on the device: ${costs.wholeMs.toFixed(3)} ms (median of ${COST_RUNS}). Layer costs recorded in ${costs.path} (cmp analyze reads them).`,
      );
    return 0;
  },
};

/** What every target's profile is asked: the --data flag's instances, --limit of them, with progress. */
function request(parsed: Parsed, io: CliIo): ProfileRequest {
  const f = parsed.flags;
  return {
    data: dataLoader(f.data, io),
    count: (f.limit as number | undefined) ?? 500,
    ...(f.backend !== undefined ? { backend: f.backend as string } : {}),
    onProgress: (_done, _total, message) => io.progress.update(message),
  };
}

/** Profiles the model on this machine, as the dashboard's "this machine" devices do: a cmp-profile/1. */
async function profileOnLocal(parsed: Parsed, io: CliIo): Promise<number> {
  const f = parsed.flags;
  if (!parsed.positionals[0]) throw new CmpError('BAD_FLAG', 'cmp profile --target local needs the MODEL to run.');
  const model = readModelFile(parsed.positionals[0]);
  const { profile } = await TARGETS.local.profile(
    { backend: (f.backend as string | undefined) ?? 'ort-node' },
    { ...request(parsed, io), model },
  );
  io.progress.done();
  if (f.out) writeFileSync(f.out as string, `${JSON.stringify(profile, null, 2)}\n`);
  io.out(io.json ? JSON.stringify(profile, null, 2) : formatDeviceProfile(profile));
  return 0;
}

/**
 * Times batch-1 calls of the model on this machine's backend and records them in its cost table, which cmp analyze
 * --target host fits over every model recorded.
 */
async function profileOnHost(parsed: Parsed, io: CliIo): Promise<number> {
  const f = parsed.flags;
  if (!parsed.positionals[0]) throw new CmpError('BAD_FLAG', 'cmp profile --target host needs the MODEL to time.');
  const file = readModelFile(parsed.positionals[0]);
  const data = await loadDataFlag(f.data, io, datasetConsumer(file), {
    limitTest: (f.limit as number | undefined) ?? 500,
    limitTrain: 1,
    use: 'test',
  });
  const result = await recordHostCosts(file, (f.backend as string | undefined) ?? 'ort-node', data, (message) =>
    io.progress.update(message),
  );
  io.progress.done();
  if (io.json) io.out(JSON.stringify(result, null, 2));
  else
    io.out(
      `${file.path} on ${result.backend}: batch-1 p50 ${result.p50Ms.toFixed(4)} ms over ${result.samples} calls. Recorded in ${result.costTable} (cmp analyze --target host --backend ${result.backend} fits it over every model recorded there).`,
    );
  return 0;
}

/**
 * Profiles the release an rpi device (or each device of a fleet) runs, on the device; prints a table or the
 * cmp-profile/1 JSON (a fleet: one entry per device).
 */
async function profileOnRpi(parsed: Parsed, io: CliIo): Promise<number> {
  const f = parsed.flags;
  const { fleet, parallel, devices } = rpiDevicesFrom(parsed, io, 'profile');
  const asked = request(parsed, io);
  if (fleet) {
    // Each device reports its own progress line (rpiDevicesFrom names it); the request's would hide which.
    const results = await forEachDevice(named(devices), parallel, async (d) => {
      const { profile } = await TARGETS.rpi.profile(d.options, { ...asked, onProgress: undefined });
      return profile;
    });
    if (f.out) {
      const ok = results.flatMap((r) => (r.ok ? [r.value] : []));
      writeFileSync(f.out as string, `${JSON.stringify(ok, null, 2)}\n`);
    }
    return finishFleet(
      io,
      results,
      'Profile',
      {
        headers: ['backend', 'samples', 'accuracy', 'p50 ms', 'p99 ms', 'per s', 'peak RSS'],
        row: (p) => [
          p.backend,
          p.samples,
          formatPercent(p.accuracy),
          p.latencyMs.p50.toFixed(3),
          p.latencyMs.p99.toFixed(3),
          p.throughputPerS.toFixed(1),
          p.rssBytes ? formatBytes(p.rssBytes) : '-',
        ],
      },
      (p) => p,
    );
  }
  const { profile } = await TARGETS.rpi.profile(devices[0], asked);
  io.progress.done();
  if (f.out) writeFileSync(f.out as string, `${JSON.stringify(profile, null, 2)}\n`);
  io.out(io.json ? JSON.stringify(profile, null, 2) : formatDeviceProfile(profile));
  return 0;
}

/** A device profile as tables: latency, stages, exits, device. */
export function formatDeviceProfile(p: DeviceProfile): string {
  const ms = (v: number): string => v.toFixed(3);
  return [
    formatTable(
      ['device', 'release', 'backend', 'samples', 'accuracy', 'p50 ms', 'p90 ms', 'p99 ms', 'per s', 'peak RSS'],
      [
        [
          p.device.name,
          p.model.release ?? '-',
          p.backend,
          p.samples,
          formatPercent(p.accuracy),
          ms(p.latencyMs.p50),
          ms(p.latencyMs.p90),
          ms(p.latencyMs.p99),
          p.throughputPerS.toFixed(1),
          p.rssBytes ? formatBytes(p.rssBytes) : '-',
        ],
      ],
    ),
    '',
    formatTable(
      ['stage', 'runs', 'p50 ms', 'p90 ms', 'p99 ms'],
      p.stages.map((s) => [s.name, s.runs, ms(s.p50), ms(s.p90), ms(s.p99)]),
    ),
    '',
    formatTable(
      ['exit', 'share', 'accuracy'],
      p.exits.map((e) => [e.exit, formatPercent(e.share), formatPercent(e.accuracy)]),
    ),
    ...(p.link
      ? [
          '',
          `Link: ${p.link.meanBytes.toFixed(1)} bytes per instance, ${p.link.saving.toFixed(1)}x fewer than the whole input.`,
        ]
      : []),
    '',
    `Device: ${p.device.platform}/${p.device.arch}, ${p.device.cpus} CPUs, ${formatBytes(p.device.memoryBytes)}, ${p.device.runtime}. Backend: ${p.backend}${p.backendReason ? ` (${p.backendReason})` : ''}.`,
    ...(p.exitsReason ? [`Exits: ${p.exitsReason}.`] : []),
  ].join('\n');
}
