// cmp profile: runs a deployed model on its device: mcu over the serial link (split inference, bytes each way),
// rpi on the device itself over SSH (latency per stage, exits, accuracy, memory), as a cmp-profile/1 JSON.

import { CmpError } from '../../errors.js';
import { McuClient } from '../../link/mcu-client.js';
import { convertToMcuModel } from '../../link/mcu-model.js';
import { DEFAULT_BAUD_RATE, openSerialTransport } from '../../link/transport-serial.js';
import { profileRpi } from '../../deploy/rpi.js';
import type { DeviceProfile } from '../../profile/device-profile.js';
import { runSplit } from '../../profile/split.js';
import { createBackend } from '../../runtime/backends.js';
import { callerNormalization, datasetConsumer, readModelFile, type ModelFile } from '../../runtime/model-file.js';
import type { Parsed } from '../args.js';
import type { CliIo, Command } from '../command.js';
import { DATA_FLAG, loadDataFlag } from '../data-flag.js';
import { formatBytes, formatPercent, formatTable } from '../table.js';
import { finishFleet, named, RPI_DEPLOY_FLAGS, rpiDevicesFrom } from './deploy-rpi.js';
import { forEachDevice } from '../../deploy/fleet.js';
import type { Split } from '../../data/datasets.js';
import { writeFileSync } from 'node:fs';
import { cmpHome } from '../../deploy/devices.js';
import { analyzeModel } from '../../profile/analyze.js';
import { costTablePath, recordCosts, type CostSample } from '../../profile/cost-table.js';
import { measureHostCosts, recordHostCosts } from '../../profile/host-costs.js';
import { nowMs, percentile } from '../../core/clock.js';
import { inputDimsFor } from '../../runtime/evaluate.js';

export const profileCommand: Command = {
  def: {
    name: 'profile',
    summary: 'Profile a deployed model on its device: on-device exits, hand-offs, bytes each way, latency.',
    positionals: ['MODEL?'],
    flags: {
      target: {
        type: 'string',
        value: 'NAME',
        choices: ['mcu', 'rpi', 'host'],
        help: 'where the model runs (required)',
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
        help: "rpi: backend on the device (default: the release's); host: the backend to time (default ort-node)",
      },
      out: {
        type: 'string',
        value: 'FILE',
        help: 'rpi: also write the cmp-profile/1 JSON here (the dashboard reads it)',
      },
      ...RPI_DEPLOY_FLAGS,
    },
    examples: [
      'cmp profile fm-exit.onnx --target mcu --port /dev/pts/3 --data fashion-mnist --limit 500',
      'cmp profile --target rpi --host pi@raspberrypi.local --data fashion-mnist --limit 1000',
      'cmp profile fm-mlp.onnx --target host --backend ort-node --data fashion-mnist',
    ],
  },
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const f = parsed.flags;
    // As with deploy, no device is assumed: a board and an SSH host need different flags.
    if (!f.target) {
      throw new CmpError(
        'BAD_FLAG',
        'cmp profile needs --target NAME, where the model runs: mcu (a microcontroller, with --port PATH); rpi (a Linux device over SSH, with --host USER@HOST). Example: cmp profile --target rpi --host pi@raspberrypi.local',
      );
    }
    if (f.target === 'rpi') return profileOnRpi(parsed, io);
    if (f.target === 'host') return profileOnHost(parsed, io);
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
    const mcu = convertToMcuModel(file);
    const limit = (f.limit as number | undefined) ?? 500;
    const data = await loadDataFlag(f.data, io, datasetConsumer(file), {
      limitTest: limit,
      limitTrain: 1,
      use: 'test',
    });
    const baudRate = (f['baud-rate'] as number | undefined) ?? DEFAULT_BAUD_RATE;
    const transport = await openSerialTransport(port, { baudRate });
    const client = new McuClient(transport);
    const backend = await createBackend('ort-node', file);
    try {
      io.progress.update(`connecting to ${port}`);
      const caps = await client.connect();
      if (caps.model?.crc !== mcu.crc) {
        throw new CmpError(
          'BAD_ARGUMENT',
          `The board on ${port} holds ${caps.model ? `another model (CRC-32 0x${caps.model.crc.toString(16)})` : 'no model'}. Deploy it first: cmp deploy ${file.path} --target mcu --port ${port}`,
        );
      }
      await client.profile(true);
      const { report } = await runSplit(client, file, backend, data.test, limit, {
        baudRate,
        onProgress: (done, total) => io.progress.update(`profile ${done}/${total}`),
      });
      const device = await client.profile();
      io.progress.update('layer costs');
      const costs = await measureLayerCosts(client, file, data.test, caps.board, caps.clockHz);
      io.progress.done();
      const deviceMs = (device.totalCycles / Math.max(device.inferences, 1) / caps.clockHz) * 1000;
      const result = {
        model: file.path,
        target: 'mcu',
        port,
        board: caps.board,
        dataset: data.name,
        ...report,
        deviceMsMean: deviceMs,
        wholeModelDeviceMs: costs.wholeMs,
        costTable: costs.path,
        link: client.stats,
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
    } finally {
      client.dispose();
      await backend.dispose();
      await transport.close();
    }
  },
};

/**
 * Times batch-1 calls of the model on this machine's backend (as cmp run does) and records it in the backend's cost
 * table ($CMP_HOME/costs/host-BACKEND.json): per-layer times where the backend times layers (bitwasm), else the p50
 * with the model's work per kernel, which cmp analyze --target host fits over every model recorded.
 */
async function profileOnHost(parsed: Parsed, io: CliIo): Promise<number> {
  const f = parsed.flags;
  if (!parsed.positionals[0]) throw new CmpError('BAD_FLAG', 'cmp profile --target host needs the MODEL to time.');
  const file = readModelFile(parsed.positionals[0]);
  const limit = (f.limit as number | undefined) ?? 500;
  const backend = await createBackend((f.backend as string | undefined) ?? 'ort-node', file);
  try {
    const data = await loadDataFlag(f.data, io, datasetConsumer(file), {
      limitTest: limit,
      limitTrain: 1,
      use: 'test',
    });
    const features = data.inputShape.reduce((a, b) => a * b, 1);
    const count = Math.floor(data.test.x.length / features);
    if (count === 0)
      throw new CmpError('BAD_ARGUMENT', `Data set ${data.name} has no test samples. Use another data set.`);
    const dims = inputDimsFor(file, data, 1);
    const { mean, std } = callerNormalization(file);
    const latencies: number[] = [];
    for (let i = 0; i < count; i++) {
      const x = data.test.x.slice(i * features, (i + 1) * features);
      if (mean !== 0 || std !== 1) for (let k = 0; k < features; k++) x[k] = (x[k] - mean) / std;
      const began = nowMs();
      await backend.run(x, dims);
      latencies.push(nowMs() - began);
      if (i % 50 === 0) io.progress.update(`latency ${i}/${count}`);
    }
    io.progress.done();
    const p50 = percentile(latencies, 50);
    // A backend that times its layers (bitwasm) also gives per-layer samples: the first image, profiled.
    const first = data.test.x.slice(0, features);
    if (mean !== 0 || std !== 1) for (let k = 0; k < features; k++) first[k] = (first[k] - mean) / std;
    const path = costTablePath(cmpHome(), `host-${backend.name}`);
    recordHostCosts(path, backend.name, file.path, await measureHostCosts(backend, file, first, dims, p50));
    const result = {
      model: file.path,
      target: 'host',
      backend: backend.name,
      samples: count,
      p50Ms: p50,
      costTable: path,
    };
    if (io.json) io.out(JSON.stringify(result, null, 2));
    else
      io.out(
        `${file.path} on ${backend.name}: batch-1 p50 ${p50.toFixed(4)} ms over ${count} calls. Recorded in ${path} (cmp analyze --target host --backend ${backend.name} fits it over every model recorded there).`,
      );
    return 0;
  } finally {
    await backend.dispose();
  }
}

/** Whole inferences whose layer times make the cost samples (the median of each layer's over them). */
export const COST_RUNS = 9;

/**
 * Runs the model COST_RUNS times on the board, reading the cycles of each layer after each run, and records every
 * layer's median time with its kernel and work units in the board's cost table ($CMP_HOME/costs/BOARD.json).
 */
async function measureLayerCosts(
  client: McuClient,
  file: ModelFile,
  test: Split,
  board: string,
  clockHz: number,
): Promise<{ path: string; wholeMs: number }> {
  const analysis = analyzeModel(file, { target: 'mcu', board });
  const features = analysis.layers.length ? analysis.layers[0].inputShape.reduce((a, b) => a * b, 1) : 0;
  const runs = Math.min(COST_RUNS, Math.max(1, Math.floor(test.x.length / features)));
  const perLayer: number[][] = analysis.layers.map(() => []);
  const overhead: number[] = [];
  const whole: number[] = [];
  for (let i = 0; i < runs; i++) {
    const pixels = Uint8Array.from(test.x.subarray(i * features, (i + 1) * features), (v) => Math.round(v * 255));
    const r = await client.infer(pixels);
    whole.push((r.cycles / clockHz) * 1000);
    const p = await client.profile();
    p.layerCycles.forEach((c, l) => c > 0 && perLayer[l]?.push((c / clockHz) * 1000));
    overhead.push(((p.lastCycles - p.layerCycles.reduce((a, b) => a + b, 0)) / clockHz) * 1000);
  }
  const samples: CostSample[] = [];
  analysis.layers.forEach((l, i) => {
    if (perLayer[i].length) samples.push({ kernel: l.kernel, units: l.units, ms: median(perLayer[i]) });
  });
  const path = costTablePath(cmpHome(), board);
  recordCosts(
    path,
    board,
    `counter ticks at ${clockHz} Hz (under QEMU: its virtual clock, host time)`,
    file.path,
    samples,
    Math.max(0, median(overhead)),
  );
  return { path, wholeMs: median(whole) };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : 0;
}

/**
 * Profiles the release an rpi device (or each device of a fleet) runs, on the device; prints a table or the
 * cmp-profile/1 JSON (a fleet: one entry per device).
 */
async function profileOnRpi(parsed: Parsed, io: CliIo): Promise<number> {
  const f = parsed.flags;
  const limit = (f.limit as number | undefined) ?? 500;
  const { fleet, parallel, devices } = rpiDevicesFrom(parsed, io, 'profile');
  const loadData = async (
    releaseDataset: string | undefined,
  ): Promise<{ name: string; split: Split; features: number }> => {
    const data = await loadDataFlag(
      f.data,
      io,
      { name: 'the release', recorded: releaseDataset },
      {
        limitTest: limit,
        limitTrain: 1,
        use: 'test',
      },
    );
    return { name: data.name, split: data.test, features: data.inputShape.reduce((a, b) => a * b, 1) };
  };
  const backend = f.backend as string | undefined;
  if (fleet) {
    const results = await forEachDevice(named(devices), parallel, (d) =>
      profileRpi(d.options, loadData, limit, backend),
    );
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
  const profile = await profileRpi(devices[0], loadData, limit, backend);
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
