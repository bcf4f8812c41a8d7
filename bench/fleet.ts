// fleet: deploy time against the number of devices (real sshd instances on 127.0.0.1), one at a time against
// several at once, each round onto fresh device folders so every deploy uploads and activates a release.

import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nowMs } from '../src/core/clock.js';
import { RELEASE_LAYOUT } from '../src/core/release.js';
import { loadDataset } from '../src/data/datasets.js';
import { forEachDevice } from '../src/deploy/fleet.js';
import { deployRpi, type ReleasePlans, type RpiOptions } from '../src/deploy/rpi.js';
import { formatTable } from '../src/cli/table.js';
import { readModelFile } from '../src/runtime/model-file.js';
import { startSshd, type Sshd } from '../test/e2e/sshd.js';
import { tempDir } from '../test/helpers.js';
import { benchRecord, parseBenchFlags, positiveInt } from './common.js';
import { trainModel } from './deploy.js';
import { describeMachine, machineLine } from './machine.js';
import type { Benchmark } from './run.js';

interface Row {
  devices: number;
  parallel: number;
  totalMs: number;
  perDeviceMs: number;
  failed: number;
}

export const fleet: Benchmark = {
  name: 'fleet',
  summary: 'deploy time against fleet size (1-8 local sshd devices) at parallelism 1 and 8',
  async run(argv: string[], json: boolean): Promise<number> {
    const values = parseBenchFlags(argv, {
      model: {},
      sizes: { default: '1,2,4,8' },
      parallel: { default: '1,8' },
      save: {},
    });
    const sizes = (values.sizes as string).split(',').map((v) => positiveInt('sizes', v) as number);
    const parallels = (values.parallel as string).split(',').map((v) => positiveInt('parallel', v) as number);
    const work = tempDir('cmp-bench-fleet-');
    const modelPath = values.model ?? trainModel(work);
    const model = readModelFile(modelPath);
    const data = await loadDataset(model.manifest?.training?.dataset ?? 'mnist', { limitTrain: 1, limitTest: 1 });
    const smoke = data.test.x.slice(
      0,
      data.inputShape.reduce((a, b) => a * b, 1),
    );
    const servers: Sshd[] = [];
    const rows: Row[] = [];
    try {
      for (let i = 0; i < Math.max(...sizes); i++) servers.push(await startSshd());
      const knownHosts = join(work, 'known_hosts');
      writeFileSync(knownHosts, servers.map((s) => readFileSync(s.knownHosts, 'utf8')).join(''));
      let round = 0;
      for (const size of sizes) {
        for (const parallel of parallels) {
          round++;
          process.stderr.write(`fleet: ${size} devices, parallel ${parallel}\n`);
          const devices = servers.slice(0, size).map((s, i) => ({
            name: s.host,
            options: {
              address: { user: s.user, host: '127.0.0.1', port: s.port },
              identity: s.identity,
              knownHosts,
              remoteDir: join(work, `round${round}`, `device${i + 1}`),
            } satisfies RpiOptions,
          }));
          // One plan cache per fleet command, as cmp deploy --hosts has: the release is hashed once per platform.
          const plans: ReleasePlans = new Map();
          const began = nowMs();
          const results = await forEachDevice(devices, parallel, (d) => deployRpi(model, smoke, d.options, plans));
          const totalMs = nowMs() - began;
          for (const d of devices) {
            spawnSync(process.execPath, [
              join(d.options.remoteDir, RELEASE_LAYOUT.current, RELEASE_LAYOUT.agent),
              'stop',
            ]);
          }
          rows.push({
            devices: size,
            parallel,
            totalMs,
            perDeviceMs: totalMs / size,
            failed: results.filter((r) => !r.ok).length,
          });
        }
      }
    } finally {
      for (const s of servers) s.kill();
    }
    const record = benchRecord('fleet', { inputs: { model: modelPath, sizes, parallels }, rows }, values.save);
    if (json) {
      process.stdout.write(`${record}\n`);
      return 0;
    }
    const serial = (size: number): Row | undefined => rows.find((r) => r.devices === size && r.parallel === 1);
    process.stdout.write(
      [
        `fleet: ${modelPath} to N sshd devices on 127.0.0.1 (this machine: loopback upload, every device's service on the same 2 cores); fresh device folders each round`,
        `machine: ${machineLine(describeMachine())}`,
        '',
        formatTable(
          ['devices', 'parallel', 'total s', 's per device', 'vs parallel 1', 'failed'],
          rows.map((r) => [
            r.devices,
            r.parallel,
            (r.totalMs / 1000).toFixed(1),
            (r.perDeviceMs / 1000).toFixed(2),
            serial(r.devices) ? `${((serial(r.devices) as Row).totalMs / r.totalMs).toFixed(2)}x` : '-',
            r.failed,
          ]),
        ),
        '',
      ].join('\n'),
    );
    return 0;
  },
};
