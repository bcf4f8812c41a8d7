// cmp analyze: work and memory per layer of a cmp export and of a foreign ONNX file, the cost table's fit, and the
// command's output and one-line errors.

import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { encodeModel, floatTensor, node, valueInfo } from '../../src/core/onnx.js';
import { convertToMcuModel } from '../../src/core/mcu-model.js';
import { analyzeModel, hostUnits } from '../../src/profile/analyze.js';
import { costTablePath, fitCosts, fitTotals, readCostTable, recordCosts } from '../../src/profile/cost-table.js';
import { readModelFile } from '../../src/runtime/model-file.js';
import { DAB_MLP, fixtures } from '../fixtures.js';
import { runCli, tempDir } from '../helpers.js';

const dir = tempDir('cmp-analyze-');

test('the cost fit recovers a linear kernel cost and falls back to the ratio for one size', () => {
  const fit = fitCosts([
    { kernel: 'dense/float32/none', units: 1000, ms: 0.5 + 1000 * 0.002 },
    { kernel: 'dense/float32/none', units: 4000, ms: 0.5 + 4000 * 0.002 },
    { kernel: 'dense/float32/none', units: 2000, ms: 0.5 + 2000 * 0.002 },
    { kernel: 'dense/binary/dab', units: 100, ms: 0.3 },
    { kernel: 'dense/binary/dab', units: 100, ms: 0.5 },
    { kernel: 'flatten', units: 0, ms: 0.001 },
  ]);
  assert.ok(Math.abs(fit['dense/float32/none'].msPerUnit - 0.002) < 1e-12);
  assert.ok(Math.abs(fit['dense/float32/none'].fixedMs - 0.5) < 1e-9);
  assert.deepEqual(fit['dense/binary/dab'], { msPerUnit: 0.004, fixedMs: 0, samples: 2 });
  assert.equal(fit.flatten, undefined, 'flatten does no work');
});

test('whole-model times (a host backend) give back the overhead and per-kernel costs they were made of', () => {
  const truth = { overhead: 0.01, 'dense/float32/none': 2e-6, 'dense/binary/dab': 5e-6 };
  const models = [
    [1000, 100],
    [50000, 0],
    [20000, 3000],
    [0, 8000],
    [80000, 500],
  ].map(([f, b], i) => ({
    model: `m${i}`,
    units: { 'dense/float32/none': f, 'dense/binary/dab': b, flatten: 0 },
    ms: truth.overhead + f * truth['dense/float32/none'] + b * truth['dense/binary/dab'],
  }));
  const fit = fitTotals(models);
  assert.ok(Math.abs(fit.overheadMs - truth.overhead) / truth.overhead < 1e-3, `overhead ${fit.overheadMs}`);
  for (const k of ['dense/float32/none', 'dense/binary/dab'] as const) {
    assert.ok(Math.abs(fit.kernels[k].msPerUnit - truth[k]) / truth[k] < 1e-3, `${k}: ${fit.kernels[k].msPerUnit}`);
  }
  assert.equal(fit.kernels.flatten, undefined);
});

test('a cmp export: MACs and binary ops per layer, and the arena and model bytes deploy computes', async () => {
  const path = await fixtures.onnx(DAB_MLP, join(dir, 'dab.onnx'));
  const file = readModelFile(path);
  const mcu = convertToMcuModel(file);
  const a = analyzeModel(file, { target: 'mcu', board: 'mps2-an385' });
  const byName = Object.fromEntries(a.layers.map((l) => [l.name, l]));
  // 784-64-64-10: fc1 reads float pixels (binary weights x float inputs: MACs), fc2 binarized inputs (popcount words)
  assert.equal(byName.fc1.macs, 784 * 64);
  assert.equal(byName.fc2.binaryOps, 64 * Math.ceil(64 / 32));
  assert.equal(byName.fc2.macs, 0);
  assert.equal(a.totals.macs + a.totals.binaryOps, 784 * 64 + 128 + 64 * 10);
  assert.equal(a.mcu?.modelBytes, mcu.blob.length);
  assert.equal(a.mcu?.arenaUploadedBytes, mcu.arenaBytes);
  assert.equal(a.mcu?.arenaInFlashBytes, mcu.workspaceBytes);
  assert.equal(a.mcu?.exact, true);
  assert.equal(a.latency, undefined, 'no cost table, no estimate');
  // Working memory: fc1's float input and output; fc2's also the packed bits of its binarized input.
  assert.equal(byName.fc1.workingBytes, 4 * (784 + 64));
  assert.equal(byName.fc2.workingBytes, 4 * (64 + 64) + 64 / 8);
  assert.equal(a.peakWorkingBytes, Math.max(4 * 784, ...a.layers.map((l) => l.workingBytes)));
  // bitwasm keeps weights 1-bit: fc1's MACs (binary weights, float pixels) are a term apart from float MACs;
  // onnxruntime unpacks them to float, so there every weight cell is a MAC.
  const wasm = hostUnits(a.layers, 'host-bitwasm');
  assert.equal(wasm['binary-weight mac'], 784 * 64 + 64 * 10);
  assert.equal(wasm.mac, 0);
  assert.equal(hostUnits(a.layers, 'host-ort-node').mac, 784 * 64 + 64 * 64 + 64 * 10);
});

test('any ONNX file cmp reads: a foreign Gemm MLP without a cmp manifest', () => {
  const w1 = Array.from({ length: 784 * 32 }, (_, i) => ((i % 7) - 3) / 100);
  const w2 = Array.from({ length: 32 * 10 }, (_, i) => ((i % 5) - 2) / 10);
  const bytes = encodeModel({
    name: 'foreign',
    nodes: [
      node('Flatten', ['input'], ['flat']),
      node('Gemm', ['flat', 'w1', 'b1'], ['h'], { transB: 1 }),
      node('Relu', ['h'], ['r']),
      node('Gemm', ['r', 'w2', 'b2'], ['logits'], { transB: 1 }),
    ],
    initializers: [
      floatTensor('w1', [32, 784], w1),
      floatTensor('b1', [32], new Array(32).fill(0.1)),
      floatTensor('w2', [10, 32], w2),
      floatTensor('b2', [10], new Array(10).fill(0)),
    ],
    inputs: [valueInfo('input', ['batch', 1, 28, 28])],
    outputs: [valueInfo('logits', ['batch', 10])],
    opset: 13,
    producerVersion: 'test',
    metadata: {},
  });
  const path = join(dir, 'foreign.onnx');
  writeFileSync(path, bytes);
  const a = analyzeModel(readModelFile(path), { target: 'mcu', board: 'mps2-an385' });
  assert.equal(a.totals.macs, 784 * 32 + 32 * 10);
  assert.equal(a.totals.params, 784 * 32 + 32 + 32 * 10 + 10);
  assert.equal(a.mcu?.exact, false);
  // float32 rows and shifts, header, records and CRC: what convertToMcuModel would write for these layers
  const records = 48 + 64 * a.layers.length;
  assert.equal(a.mcu?.modelBytes, records + (784 * 32 + 32) * 4 + (32 * 10 + 10) * 4 + 4);
});

test('cmp analyze prints the table, estimates from a recorded cost table, and refuses bad input in one line', async () => {
  const path = await fixtures.onnx(DAB_MLP, join(dir, 'dab-cli.onnx'));
  const home = join(dir, 'home');
  const plain = runCli(['analyze', path, '--target', 'mcu'], undefined, { CMP_HOME: home });
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(plain.stdout, /Arena uploaded: \d+ bytes \(fits\)/);
  assert.match(plain.stdout, /No latency estimate: no cost table for mps2-an385/);
  const file = readModelFile(path);
  const layers = analyzeModel(file, { target: 'mcu' }).layers;
  recordCosts(
    costTablePath(home, 'mps2-an385'),
    'mps2-an385',
    'test',
    path,
    layers.map((l) => ({ kernel: l.kernel, units: l.units, ms: l.units / 1000 })),
    0.25,
  );
  const json = runCli(['analyze', path, '--json'], undefined, { CMP_HOME: home });
  assert.equal(json.code, 0, json.stderr);
  const a = JSON.parse(json.stdout) as { latency: { ms: number; missing: string[] } };
  const expected = layers.reduce((s, l) => s + l.units / 1000, 0.25);
  assert.ok(Math.abs(a.latency.ms - expected) < 1e-9, `estimate ${a.latency.ms}, expected ${expected}`);
  assert.deepEqual(a.latency.missing, []);
  const hostTable = costTablePath(home, 'host-ort-node');
  const timed = runCli(
    ['profile', path, '--target', 'host', '--backend', 'ort-node', '--data', 'fashion-mnist', '--limit', '20'],
    undefined,
    { CMP_HOME: home },
  );
  assert.equal(timed.code, 0, timed.stderr);
  assert.match(timed.stdout, /batch-1 p50 [\d.]+ ms over 20 calls/);
  assert.ok(existsSync(hostTable), 'cmp profile --target host records the backend table');
  // bitwasm times its layers: its table holds each layer's median with its kernel, fitted per kernel as the board's.
  const wasm = runCli(
    ['profile', path, '--target', 'host', '--backend', 'bitwasm', '--data', 'fashion-mnist', '--limit', '20'],
    undefined,
    { CMP_HOME: home },
  );
  assert.equal(wasm.code, 0, wasm.stderr);
  const wasmTable = readCostTable(costTablePath(home, 'host-bitwasm'));
  assert.equal(wasmTable.models, undefined, 'per layer, not over whole models');
  assert.deepEqual(
    wasmTable.samples.map((s) => [s.kernel, s.units]),
    layers.filter((l) => l.units > 0).map((l) => [l.kernel, l.units]),
  );
  assert.ok(wasmTable.samples.every((s) => s.ms > 0));
  const byLayer = runCli(['analyze', path, '--target', 'host', '--backend', 'bitwasm', '--json'], undefined, {
    CMP_HOME: home,
  });
  const w = JSON.parse(byLayer.stdout) as { latency: { ms: number }; layers: { estimateMs?: number }[] };
  const inLayers = w.layers.reduce((sum, l) => sum + (l.estimateMs ?? 0), 0);
  assert.ok(Math.abs(w.latency.ms - inLayers - (wasmTable.overheadMs ?? 0)) < 1e-12, 'layers plus the overhead');
  const host = runCli(['analyze', path, '--target', 'host', '--json'], undefined, { CMP_HOME: home });
  assert.equal(host.code, 0, host.stderr);
  const h = JSON.parse(host.stdout) as { latency: { ms: number; device: string } };
  assert.equal(h.latency.device, 'host-ort-node');
  assert.ok(h.latency.ms > 0);
  const target = runCli(['analyze', path, '--target', 'phone']);
  assert.equal(target.code, 2);
  assert.match(target.stderr, /--target must be one of: mcu, rpi, browser, host/);
  const costs = runCli(['analyze', path, '--costs', join(dir, 'none.json')]);
  assert.equal(costs.code, 2);
  assert.match(costs.stderr, /No cost table at .*none\.json\. Measure one with (npx )?cmp profile/);
  assert.equal(costs.stderr.trim().split('\n').length, 1);
});
