// The select bench's verdicts: goals count exported rows only and choose among them on validation data, dynamic wins
// only on fewer bytes at equal accuracy, the paper's figure sits beside a row of the same method and a similar kept
// share, and a learned mask's lambda plans for the share whose static frame fits the smallest budget.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { evaluateGoals, keepPlan, paperFigure, type Row } from '../../bench/select.js';

function row(
  method: Row['method'],
  point: string,
  bytes: number,
  accuracy: number,
  kept = bytes / 784,
  validation = method === 'full' ? undefined : accuracy,
): Row {
  return {
    dataset: 'mnist',
    granularity: method === 'full' ? '-' : 'pixel',
    method,
    point,
    keptFraction: kept,
    bytesPerInference: bytes,
    selectionBytes: 0,
    testAccuracy: accuracy,
    ...(validation === undefined ? {} : { validationAccuracy: validation }),
  };
}

test('a checkpoint at the peak rate never meets a goal; a fine-tuned row within the budget does', () => {
  const rows = [row('full', 'trained', 784, 0.99), row('static', 'checkpoint 3', 70, 0.99)];
  const [tenfold] = evaluateGoals(rows, 'lenet5');
  assert.equal(tenfold.met, false);
  rows.push(row('static', 'fine-tuned #03', 70, 0.985));
  const [again, moonshot] = evaluateGoals(rows, 'lenet5');
  assert.equal(again.met, true);
  assert.ok(Math.abs(again.margin - 0.5) < 1e-9, `margin ${again.margin}`);
  // 70 bytes is over the 20x budget (39.2 bytes): the moonshot has no row.
  assert.equal(moonshot.met, false);
  assert.equal(moonshot.value, 0);
});

test('of the points within a budget, the goal takes the one best on validation data and judges its test accuracy', () => {
  const rows = [
    row('full', 'trained', 784, 0.99),
    row('static', 'fine-tuned #05', 70, 0.984, 70 / 784, 0.99),
    row('dynamic', 'fine-tuned #04', 60, 0.986, 60 / 784, 0.98),
  ];
  const [tenfold] = evaluateGoals(rows, 'lenet5');
  assert.equal(tenfold.value, 98.4, 'the static point, better on validation, though worse on test');
  assert.match(tenfold.goal, /static fine-tuned #05, chosen on validation/);
  // A row measured before validation accuracy was kept is no candidate.
  const unvalidated = row('static', 'fine-tuned #05', 70, 0.99);
  delete unvalidated.validationAccuracy;
  const [old] = evaluateGoals([rows[0], unvalidated], 'lenet5');
  assert.equal(old.met, false);
  assert.match(old.goal, /no point within it has a validation accuracy/);
});

test('dynamic beats the learned static mask only with fewer bytes than static needs for its accuracy', () => {
  const base = [row('full', 'trained', 784, 0.99), row('static', 'fine-tuned #05', 60, 0.97)];
  const verdict = (rows: Row[]) => evaluateGoals(rows, 'lenet5').find((g) => g.goal.startsWith('dynamic'));
  const wins = verdict([...base, row('dynamic', 'fine-tuned #04', 50, 0.97)]);
  assert.equal(wins?.met, true);
  assert.ok(Math.abs((wins?.value ?? 0) - 1.2) < 1e-9);
  // No static point reaches 97.5%: static needs more than its largest 60 bytes, so 50 bytes win by at least 1.2x.
  const dominates = verdict([...base, row('dynamic', 'fine-tuned #04', 50, 0.975)]);
  assert.equal(dominates?.met, true);
  assert.ok(Math.abs((dominates?.value ?? 0) - 1.2) < 1e-9);
  // The baselines are not the static mask: a cheap random mask does not count as a rival or a bound.
  const onlyBaseline = verdict([
    row('full', 'trained', 784, 0.99),
    row('random', 'trained', 40, 0.99),
    row('dynamic', 'fine-tuned #04', 50, 0.97),
  ]);
  assert.equal(onlyBaseline?.value, 0);
  const costlier = verdict([...base, row('dynamic', 'fine-tuned #04', 65, 0.96)]);
  assert.equal(costlier?.met, false);
});

test("the paper's figure goes beside rows of its method within a quarter of its kept share", () => {
  assert.equal(paperFigure(row('random', 'trained', 47, 0.7, 0.05)), '78.0% at 5%');
  assert.equal(paperFigure(row('static', 'fine-tuned #02', 80, 0.98, 0.098)), '98.5% at 10%');
  assert.equal(paperFigure(row('static', 'fine-tuned #02', 160, 0.98, 0.2)), '');
  assert.equal(paperFigure(row('importance', 'trained', 47, 0.9, 0.05)), '90.0% at 5%');
});

test('the keep plan aims at the share whose static frame fits the smallest budget, by two thirds of the mask epochs', () => {
  // MNIST: 10x and 20x of 784 bytes. A static frame is an 8-byte header and one byte a pixel: 31 pixels fit 39.2.
  const plan = keepPlan([78.4, 39.2], 784, 30);
  assert.ok(plan);
  assert.equal(plan.keep, 31 / 784);
  assert.deepEqual([plan.from, plan.by, plan.every], [2, 21, 2]);
  assert.equal(keepPlan([156.8], 784, 12)?.keep, 148 / 784);
  assert.equal(keepPlan([156.8], 784, 12)?.by, 9);
  assert.equal(keepPlan([], 784, 30), undefined, 'a data set without goals trains on the calm rule alone');
});
