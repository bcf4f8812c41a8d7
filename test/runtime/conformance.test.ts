// One conformance suite for every backend: the same exported models and inputs, answers judged by one tolerance rule.

import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { nowMs } from '../../src/core/clock.js';
import { binarizedCase, EXIT_MASKED_MLP, EXIT_MLP, MASKED_MLP, type ModelFixture } from '../fixtures.js';
import { ROOT, tempDir } from '../helpers.js';
import {
  ALLOWANCES,
  allowanceFor,
  chromiumRunners,
  conformanceModel,
  firmwareHostRunner,
  frozenConformanceModel,
  int8ConvNet,
  judge,
  oneGraphRunner,
  predictorRunner,
  TWO_EXIT_LENET,
  worstRelativeDiff,
  type ConformanceModel,
  type Runner,
} from './conformance.js';

/** The fixtures' Fashion-MNIST slice, for the model made without training. */
const FM_300 = { dataset: 'fashion-mnist', limitTrain: 1000, limitTest: 300 } as const;

/** Inputs per model: the first test images of the fixture's data slice. */
const COUNT = 60;

/** Every kind of model cmp exports, trained once for all the files that share them (test/fixtures.ts). */
const MODELS: Readonly<Record<string, ModelFixture>> = Object.freeze({
  'float-mlp': binarizedCase('mlp', 'none', 'none'),
  'dab-weights-mlp': binarizedCase('mlp', 'dab', 'none'),
  'xnor-weights-mlp': binarizedCase('mlp', 'xnor', 'none'),
  'dab-float-ends-mlp': binarizedCase('mlp', 'dab', 'none', ['first', 'last']),
  'dab-mlp': binarizedCase('mlp', 'dab', 'dab'),
  'xnor-mlp': binarizedCase('mlp', 'xnor', 'xnor'),
  'int8-hybrid-mlp': binarizedCase('mlp', 'dab', 'none', undefined, ['first', 'last']),
  'dab-lenet': binarizedCase('lenet', 'dab', 'dab'),
  'int8-hybrid-lenet': binarizedCase('lenet', 'dab', 'none', undefined, ['first', 'last']),
  'masked-mlp': MASKED_MLP,
  'exit-mlp': EXIT_MLP,
  'exit-masked-mlp': EXIT_MASKED_MLP,
  'two-exit-lenet': TWO_EXIT_LENET,
});

const dir = tempDir('cmp-conformance-');
const chromium = chromiumRunners(dir);

/** Every backend cmp runs a model on. */
const BACKENDS: Readonly<Record<string, Runner>> = Object.freeze({
  'ort-node': predictorRunner('ort-node'),
  'ort-web': predictorRunner('ort-web'),
  bitwasm: predictorRunner('bitwasm'),
  'firmware-host': firmwareHostRunner(join(dir, 'host-build')),
  ...chromium.runners,
  'ort-node:one-graph': oneGraphRunner('onnxruntime-node'),
  'ort-web:one-graph': oneGraphRunner('onnxruntime-web'),
});

/** The one-graph runners answer models with exits only: without exits, their file is the one the others run. */
const EXITS_ONLY = new Set(['ort-node:one-graph', 'ort-web:one-graph']);

const models: ConformanceModel[] = [];

before(async () => {
  for (const [name, fixture] of Object.entries(MODELS)) models.push(await conformanceModel(dir, name, fixture, COUNT));
  // 3x3 int8 convs (Winograd in bitwasm), which no trained fixture has: random weights, judged all the same.
  models.push(await frozenConformanceModel(dir, 'int8-convnet', int8ConvNet(), FM_300, COUNT));
});

after(async () => {
  await chromium.close();
  rmSync(dir, { recursive: true, force: true });
});

test('the reference learned something and sends inputs out at every exit and the end, so backends take each branch', () => {
  for (const model of models) {
    // A broken export of an untrained net could conform too: chance is 0.1. One epoch on 1,000 images leaves the
    // int8 hybrid LeNet at chance (7 of 60); what it computes is compared all the same.
    const correct = model.reference.filter((a, i) => a.label === model.truth[i]).length;
    if (model.name !== 'int8-hybrid-lenet' && model.name !== 'int8-convnet')
      assert.ok(correct / model.count > 0.3, `${model.name}: ${correct} of ${model.count} right`);
    const exits = new Set(model.reference.map((a) => a.exit));
    const expected = (model.file.manifest?.exits?.length ?? 0) + 1;
    assert.equal(exits.size, expected, `${model.name}: exits taken ${[...exits].join(', ')}`);
  }
});

for (const [backend, run] of Object.entries(BACKENDS)) {
  test(`${backend}: labels, exits and logits of every model conform to the trained model`, async (t) => {
    const failures: string[] = [];
    for (const model of models.filter((m) => !EXITS_ONLY.has(backend) || m.file.manifest?.exits?.length)) {
      const began = nowMs();
      const answers = await run(model);
      const allowance = allowanceFor(backend, model);
      const problems = judge(answers, model, allowance.relative);
      t.diagnostic(
        `${model.name}: worst logit difference ${worstRelativeDiff(answers, model).toExponential(2)} of scale ` +
          `(${allowance.name}: ${allowance.relative}), ${model.knifeEdge.size} inputs on a knife edge, ` +
          `${(nowMs() - began).toFixed(0)} ms`,
      );
      // A knife edge excuses an input, so it must stay rare: a model whose activations sit on their thresholds is
      // not one this suite can judge.
      if (model.knifeEdge.size > model.count / 20)
        failures.push(`${model.name}: ${model.knifeEdge.size} of ${model.count} inputs on a knife edge`);
      if (problems.length)
        failures.push(`${model.name}: ${problems.length} inputs, ${problems.slice(0, 3).join('; ')}`);
    }
    assert.deepEqual(failures, []);
  });
}

test('the rule fails logits past the allowance, another exit, and another label unless the reference ties', () => {
  const model = models.find((m) => m.name === 'exit-mlp') as ConformanceModel;
  const relative = allowanceFor('bitwasm', model).relative;
  const copy = () => model.reference.map((a) => ({ ...a, logits: a.logits.slice() }));
  assert.deepEqual(judge(copy(), model, relative), []);
  const scale = (l: Float32Array) => Math.max(1, ...Array.from(l, Math.abs));
  const within = copy();
  within[0].logits[0] += 0.9 * relative * scale(within[0].logits);
  assert.deepEqual(judge(within, model, relative), []);
  const past = copy();
  past[1].logits[3] -= 1.1 * relative * scale(past[1].logits);
  assert.match(judge(past, model, relative).join('\n'), /^input 1: .*logits off by/);
  const exit = copy();
  exit[2].exit = exit[2].exit === 0 ? 1 : 0;
  assert.match(judge(exit, model, relative).join('\n'), /^input 2: /);
  const label = copy();
  label[4].label = (label[4].label + 1) % model.classes;
  assert.equal(judge(label, model, relative).length, 1, 'a label off with logits within the allowance is no tie here');
  assert.match(judge(copy().slice(1), model, relative)[0], /answers for 60 inputs/);
});

test("the README's allowance table is ALLOWANCES, row for row", () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Conformance');
  assert.ok(start >= 0, 'README has a Conformance section');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
  const rows = section.split('\n').filter((l) => ALLOWANCES.some((a) => l.startsWith(`| ${a.name} `)));
  assert.deepEqual(
    rows.map((l) =>
      l
        .split('|')
        .slice(1, 3)
        .map((c) => c.trim()),
    ),
    ALLOWANCES.map((a) => [a.name, String(a.relative)]),
  );
});
