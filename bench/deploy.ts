// deploy: cmp deploy --target rpi against a real sshd on 127.0.0.1: release size against copying the project's
// node_modules, deploy time (fresh and unchanged), and cold start on the device to the first inference against
// loading the same model through the installed library. A second version of the model (a new exit threshold) shows
// what a model update sends: only the model's files, the runtimes are linked from the release already there.

import { spawnSync } from 'node:child_process';
import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { percentile } from '../src/core/clock.js';
import { RELEASE_LAYOUT } from '../src/core/release.js';
import { loadDataset } from '../src/data/datasets.js';
import { deployRpi, type RpiOptions } from '../src/deploy/rpi.js';
import { formatBytes, formatTable } from '../src/cli/table.js';
import { readModelFile } from '../src/runtime/model-file.js';
import { startSshd } from '../test/e2e/sshd.js';
import { tempDir } from '../test/helpers.js';
import { benchRecord, parseBenchFlags, positiveInt } from './common.js';
import { describeMachine, machineLine } from './machine.js';
import type { Benchmark } from './run.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export const deploy: Benchmark = {
  name: 'deploy',
  summary: 'cmp deploy --target rpi to a local sshd: release size vs node_modules, deploy time, cold start',
  async run(argv: string[], json: boolean): Promise<number> {
    const values = parseBenchFlags(argv, { model: {}, repeats: { default: '5' }, save: {} });
    const repeats = positiveInt('repeats', values.repeats) as number;
    const work = tempDir('cmp-bench-deploy-');
    const modelPath = values.model ?? trainModel(work);
    const updatePath = values.model ? undefined : recalibrated(work);
    const model = readModelFile(modelPath);
    const data = await loadDataset(model.manifest?.training?.dataset ?? 'mnist', { limitTrain: 1, limitTest: 1 });
    const features = data.inputShape.reduce((a, b) => a * b, 1);
    const sshd = await startSshd();
    const base = join(work, 'device');
    const options: RpiOptions = {
      address: { user: sshd.user, host: '127.0.0.1', port: sshd.port },
      identity: sshd.identity,
      knownHosts: sshd.knownHosts,
      remoteDir: base,
    };
    try {
      process.stderr.write(`deploy: deploying ${modelPath} to ${sshd.host}\n`);
      const fresh = await deployRpi(model, data.test.x.slice(0, features), options);
      const unchanged = await deployRpi(model, data.test.x.slice(0, features), options);
      const update = updatePath
        ? await deployRpi(readModelFile(updatePath), data.test.x.slice(0, features), options)
        : undefined;
      process.stderr.write(`deploy: cold starts (${repeats} each side)\n`);
      const agent = join(base, RELEASE_LAYOUT.current, RELEASE_LAYOUT.agent);
      const release = coldStarts(repeats, process.execPath, [agent, 'smoke'], (out) => {
        const r = JSON.parse(out.trim().split('\n').pop() as string) as {
          ok: boolean;
          coldStartMs: number;
          error?: string;
        };
        if (!r.ok) throw new Error(`smoke on the device failed: ${r.error}`);
        return r.coldStartMs;
      });
      const library = coldStarts(
        repeats,
        process.execPath,
        ['--input-type=module', '-e', libraryColdStart(modelPath, data.test.x.slice(0, features))],
        Number,
      );
      const nodeModulesBytes = treeBytes(join(ROOT, 'node_modules'));
      spawnSync(process.execPath, [agent, 'stop']);
      const inputs = { model: modelPath, device: `${sshd.host} (this machine)`, repeats };
      const results = {
        releaseBytes: fresh.releaseBytes,
        nodeModulesBytes,
        sizeRatio: nodeModulesBytes / fresh.releaseBytes,
        backend: fresh.backend,
        deployMs: {
          fresh: fresh.totalMs,
          upload: fresh.uploadMs,
          activate: fresh.activateMs,
          unchanged: unchanged.totalMs,
          ...(update
            ? { update: update.totalMs, updateUpload: update.uploadMs, updateActivate: update.activateMs }
            : {}),
        },
        ...(update ? { update: { uploadedBytes: update.uploadedBytes, reusedBytes: update.reusedBytes } } : {}),
        coldStartMs: { release: summary(release), library: summary(library) },
      };
      const record = benchRecord('deploy', { inputs, ...results }, values.save);
      if (json) {
        process.stdout.write(`${record}\n`);
        return 0;
      }
      const ms = (v: number): string => v.toFixed(0);
      process.stdout.write(
        [
          `deploy: ${modelPath} to ${inputs.device} over SSH (sshd ${sshd.port}), backend ${fresh.backend}; cold starts: median of ${repeats}`,
          `machine: ${machineLine(describeMachine())}`,
          '',
          formatTable(
            ['what', 'release (cmp)', "copying the project's node_modules", 'ratio'],
            [
              [
                'bytes on the device',
                formatBytes(results.releaseBytes),
                formatBytes(nodeModulesBytes),
                `${results.sizeRatio.toFixed(1)}x smaller`,
              ],
            ],
          ),
          '',
          formatTable(
            ['deploy', 'total ms', 'upload ms', 'activate ms', 'bytes sent', 'linked on the device'],
            [
              [
                'fresh release',
                ms(fresh.totalMs),
                ms(fresh.uploadMs),
                ms(fresh.activateMs),
                formatBytes(fresh.uploadedBytes),
                formatBytes(fresh.reusedBytes),
              ],
              ['same release again (no-op)', ms(unchanged.totalMs), '0', '0', '0 B', '0 B'],
              ...(update
                ? [
                    [
                      'model update (new exit threshold)',
                      ms(update.totalMs),
                      ms(update.uploadMs),
                      ms(update.activateMs),
                      formatBytes(update.uploadedBytes),
                      formatBytes(update.reusedBytes),
                    ],
                  ]
                : []),
            ],
          ),
          '',
          formatTable(
            ['cold start to first inference', 'median ms', 'min ms', 'max ms', 'ratio'],
            [
              [
                'release bundle (cmp-edge.mjs)',
                ms(results.coldStartMs.release.median),
                ms(results.coldStartMs.release.min),
                ms(results.coldStartMs.release.max),
                '1.00x',
              ],
              [
                'installed library (dist/index.js)',
                ms(results.coldStartMs.library.median),
                ms(results.coldStartMs.library.min),
                ms(results.coldStartMs.library.max),
                `${(results.coldStartMs.library.median / results.coldStartMs.release.median).toFixed(2)}x slower`,
              ],
            ],
          ),
          '',
        ].join('\n'),
      );
      return 0;
    } finally {
      sshd.kill();
    }
  },
};

/** Trains and exports the small binarized MLP with one exit that the bench deploys when --model is not given. */
export function trainModel(work: string): string {
  const cli = join(ROOT, 'bin', 'cmp.js');
  const run = join(work, 'run');
  const out = join(work, 'fm-exit.onnx');
  process.stderr.write('deploy: training a binarized MLP with one exit (1 epoch, 5000 images)\n');
  for (const args of [
    [
      'train',
      '--arch',
      'mlp',
      '--widths',
      '256,128',
      '--exits',
      '1',
      '--binarize',
      'dab',
      '--epochs',
      '1',
      '--limit-train',
      '5000',
      '--out',
      run,
      '--quiet',
    ],
    ['export', run, '--out', out, '--quiet'],
  ]) {
    const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`cmp ${args[0]} failed: ${r.stderr.trim()}`);
  }
  return out;
}

/** A second version of trainModel's model: its exit threshold recalibrated, exported beside it. */
function recalibrated(work: string): string {
  const cli = join(ROOT, 'bin', 'cmp.js');
  const out = join(work, 'fm-exit-2.onnx');
  for (const args of [
    ['calibrate', join(work, 'run'), '--thresholds', '0.25', '--quiet'],
    ['export', join(work, 'run'), '--out', out, '--quiet'],
  ]) {
    const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`cmp ${args[0]} failed: ${r.stderr.trim()}`);
  }
  return out;
}

/** Runs a fresh Node process `repeats` times; `read` turns its stdout into milliseconds since it started. */
function coldStarts(repeats: number, node: string, args: string[], read: (stdout: string) => number): number[] {
  return Array.from({ length: repeats }, () => {
    const r = spawnSync(node, args, { encoding: 'utf8', cwd: ROOT });
    if (r.status !== 0) throw new Error(`cold start failed: ${r.stderr.trim().split('\n').pop()}`);
    return read(r.stdout);
  });
}

/** A program that loads the model through the installed library and prints ms since its start at the first answer. */
function libraryColdStart(modelPath: string, pixels: Float32Array): string {
  return [
    `import { Predictor, readModelFile } from ${JSON.stringify(join(ROOT, 'dist', 'index.js'))};`,
    `const p = await Predictor.open(readModelFile(${JSON.stringify(modelPath)}));`,
    `await p.infer(Float32Array.from(${JSON.stringify([...pixels])}));`,
    'console.log(performance.now());',
    'await p.dispose();',
  ].join('\n');
}

function summary(values: number[]): { median: number; min: number; max: number } {
  return { median: percentile(values, 50), min: Math.min(...values), max: Math.max(...values) };
}

/** Bytes of every file under `dir` (links not followed), what copying the folder would send. */
function treeBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += treeBytes(path);
    else if (entry.isFile()) total += lstatSync(path).size;
  }
  return total;
}
