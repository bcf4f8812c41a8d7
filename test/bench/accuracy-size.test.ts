// The accuracy-size benchmark runs through `npm run bench` and reports its goals with honest margins.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { HANG_MS, ROOT, tempDir } from '../helpers.js';

interface Report {
  machine: { cores: number };
  inputs: { epochs: number };
  rows: { dataset: string; model: string; seed: number; testAccuracy: number; onnxBytes: number }[];
  summaries: { model: string; seeds: number; meanAccuracy: number; minAccuracy: number; maxAccuracy: number }[];
  goals: { goal: string; met: boolean; value: number; target: number; margin: number }[];
}

test('npm run bench -- accuracy-size --json prints every model over its seeds and each goal with its margin', () => {
  const args = [
    'run',
    '--silent',
    'bench',
    '--',
    'accuracy-size',
    '--json',
    '--datasets',
    'fashion-mnist',
    '--epochs',
    '1',
    '--limit-train',
    '400',
    '--limit-test',
    '200',
    '--widths',
    '32,32',
    '--archs',
    'mlp',
    '--seeds',
    '1,2',
    '--models',
    'float,int8 post-training,xnor weights,dab weights,hybrid,hybrid from float',
  ];
  // Finished rows go to a cache of this test's own, so a rerun resumes instead of training again.
  const env = { ...process.env, CMP_BENCH_DIR: tempDir('cmp-bench-rows-') };
  const result = spawnSync('npm', args, { cwd: ROOT, encoding: 'utf8', timeout: HANG_MS, env });
  assert.equal(result.status, 0, result.stderr);
  const report = JSON.parse(result.stdout) as Report;
  const resumed = spawnSync('npm', args, { cwd: ROOT, encoding: 'utf8', timeout: HANG_MS, env });
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, /resuming, 12 rows already in/);
  assert.doesNotMatch(resumed.stderr, /epoch 1\/1/, 'no model is trained again');
  assert.deepEqual((JSON.parse(resumed.stdout) as Report).rows, report.rows);
  assert.equal(report.inputs.epochs, 1);
  assert.ok(report.machine.cores >= 1);
  assert.deepEqual(
    report.summaries.map((r) => r.model),
    ['float', 'int8 post-training', 'xnor weights', 'dab weights', 'hybrid', 'hybrid from float'],
  );
  assert.deepEqual(
    report.rows.map((r) => r.seed),
    [1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2],
  );
  for (const s of report.summaries) {
    const accuracies = report.rows.filter((r) => r.model === s.model).map((r) => r.testAccuracy);
    assert.equal(s.seeds, 2);
    assert.ok(Math.abs(s.meanAccuracy - (accuracies[0] + accuracies[1]) / 2) < 1e-12, `${s.model} mean`);
    assert.equal(s.minAccuracy, Math.min(...accuracies));
  }
  const float = report.rows[0];
  for (const r of report.rows.filter((x) => x.model !== 'float'))
    assert.ok(r.onnxBytes * 3 < float.onnxBytes, `${r.model} is stored in far fewer bytes`);
  // Issue 2's three goals (FM MLP) and issue 18's two per int8 and hybrid row.
  assert.equal(report.goals.length, 9);
  for (const g of report.goals) assert.equal(g.met, g.margin >= 0, g.goal);
});

test('an unknown benchmark is a one-line error listing the benchmarks', () => {
  const result = spawnSync('npm', ['run', '--silent', 'bench', '--', 'speed-of-light'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  assert.notEqual(result.status, 0);
  assert.match(result.stderr, /Unknown benchmark "speed-of-light"\. Use one of: accuracy-size/);
});

test('select and link check their flags before any training, one line each', () => {
  const bench = (...args: string[]): { status: number | null; stderr: string } =>
    spawnSync('npm', ['run', '--silent', 'bench', '--', ...args], { cwd: ROOT, encoding: 'utf8' });
  const keeps = bench('select', '--keeps', '0,2');
  assert.equal(keeps.status, 2);
  assert.match(keeps.stderr.trim(), /^bench: --keeps must be shares in \(0, 1\] \(got "0,2"\)\.$/);
  const granularity = bench('select', '--granularities', 'tile');
  assert.equal(granularity.status, 2);
  assert.match(granularity.stderr, /Unknown granularity "tile"/);
  const images = bench('link', '--images', 'many');
  assert.equal(images.status, 2);
  assert.match(images.stderr.trim(), /^bench: --images must be a positive whole number \(got "many"\)\.$/);
});
