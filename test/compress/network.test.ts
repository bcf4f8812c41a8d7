// The training network's own pieces: the conv backward pass, reproducibility, what binarized layers hold, and the MINT
// paper's recipe (SGD with Nesterov momentum, a step schedule, dropout).

import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { binarizeWeights, convValid } from '../../src/compress/network.js';
import { fitTwoLevel } from '../../src/core/binarize.js';
import { loadTf, type Tf } from '../../src/compress/tf.js';
import { specFor, trainRun } from '../../src/compress/train-run.js';
import { train } from '../../src/compress/train.js';
import { unpackBits } from '../../src/core/bitpack.js';
import type { Dataset } from '../../src/data/datasets.js';
import { fashionMnist } from '../helpers.js';

let tf: Tf;
let data: Dataset;

before(async () => {
  ({ tf } = await loadTf());
  data = await fashionMnist(600, 200);
});

test('the conv backward pass matches its definition (filter gradient) and finite differences', () => {
  const x = tf.randomNormal([2, 7, 6, 3], 0, 1, 'float32', 1);
  const w = tf.randomNormal([3, 3, 3, 4], 0, 1, 'float32', 2);
  const dy = tf.randomNormal([2, 5, 4, 4], 0, 1, 'float32', 3);
  const loss = (a: typeof x, b: typeof w): ReturnType<typeof tf.sum> => tf.sum(tf.mul(convValid(tf, a, b), dy));
  const [gx, gw] = tf.grads((a, b) => loss(a, b))([x, w]);
  // Every element of the filter gradient against its definition: sum over samples and outputs of x under the tap
  // times dy (HWIO, x NHWC).
  const [xv, dyv, gwv] = [x.dataSync(), dy.dataSync(), gw.dataSync()];
  for (let kh = 0; kh < 3; kh++)
    for (let kw = 0; kw < 3; kw++)
      for (let c = 0; c < 3; c++)
        for (let o = 0; o < 4; o++) {
          let sum = 0;
          for (let n = 0; n < 2; n++)
            for (let oy = 0; oy < 5; oy++)
              for (let ox = 0; ox < 4; ox++)
                sum += xv[((n * 7 + oy + kh) * 6 + ox + kw) * 3 + c] * dyv[((n * 5 + oy) * 4 + ox) * 4 + o];
          const got = gwv[((kh * 3 + kw) * 3 + c) * 4 + o];
          assert.ok(
            Math.abs(got - sum) < 1e-4 * Math.max(1, Math.abs(sum)),
            `dw[${kh},${kw},${c},${o}]: ${got} vs ${sum}`,
          );
        }
  const eps = 1e-2;
  for (const [grad, which, index] of [
    [gw, 'w', 7],
    [gw, 'w', 100],
    [gx, 'x', 40],
    [gx, 'x', 200],
  ] as const) {
    const base = (which === 'w' ? w : x).dataSync().slice();
    base[index] += eps;
    const moved = tf.tensor(base, (which === 'w' ? w : x).shape);
    const plus = (which === 'w' ? loss(x, moved) : loss(moved, w)).dataSync()[0];
    const numeric = (plus - loss(x, w).dataSync()[0]) / eps;
    assert.ok(
      Math.abs(numeric - grad.dataSync()[index]) < 0.02 * Math.max(1, Math.abs(numeric)),
      `${which}[${index}]: ${numeric} vs ${grad.dataSync()[index]}`,
    );
  }
});

test('the same seed trains the same model; another seed does not', async () => {
  const run = (seed: number): ReturnType<typeof trainRun> =>
    trainRun(data, {
      arch: 'mlp',
      widths: [32],
      binarizeWeights: 'dab',
      binarizeActivations: 'none',
      epochs: 1,
      batchSize: 50,
      learningRate: 0.002,
      seed,
    });
  const [a, b, c] = [await run(3), await run(3), await run(4)];
  assert.deepEqual([...(a.tensors.get('fc1.weight')?.data ?? [])], [...(b.tensors.get('fc1.weight')?.data ?? [])]);
  assert.notDeepEqual([...(a.tensors.get('fc1.weight')?.data ?? [])], [...(c.tensors.get('fc1.weight')?.data ?? [])]);
  assert.equal(a.testAccuracy, b.testAccuracy);
});

test('a dab layer freezes to exactly two levels per output unit, a float layer keeps its weights', async () => {
  const result = await trainRun(data, {
    arch: 'lenet',
    filters: [4, 8],
    widths: [16],
    binarizeWeights: 'dab',
    binarizeActivations: 'none',
    keepFloat: ['first'],
    epochs: 1,
    batchSize: 50,
    learningRate: 0.002,
    seed: 1,
  });
  const conv1 = result.frozen.layers.find((l) => l.name === 'conv1');
  const conv2 = result.frozen.layers.find((l) => l.name === 'conv2');
  assert.equal(conv1?.kind === 'conv' && conv1.weights.kind, 'float');
  assert.ok(conv2?.kind === 'conv' && conv2.weights.kind === 'binary');
  if (conv2?.kind !== 'conv' || conv2.weights.kind !== 'binary') return;
  const { packed, rows, rowLength, upper, lower } = conv2.weights;
  assert.equal(rows, 8);
  assert.equal(rowLength, 4 * 5 * 5);
  const bits = unpackBits(packed, rows, rowLength);
  for (let r = 0; r < rows; r++) {
    const row = bits.subarray(r * rowLength, (r + 1) * rowLength);
    assert.ok(row.includes(1) && row.includes(0), `row ${r} uses both levels`);
    assert.ok(upper[r] > lower[r], `row ${r}: upper ${upper[r]} > lower ${lower[r]}`);
  }
});

test('SGD with Nesterov momentum, a step schedule and dropout learns, and the same seed gives the same weights', async () => {
  const spec = specFor(data, { arch: 'mlp', widths: [32], binarizeWeights: 'none', binarizeActivations: 'none' });
  const options = {
    epochs: 2,
    batchSize: 20,
    learningRate: 0.05,
    seed: 3,
    dropout: 0.2,
    sgd: { momentum: 0.9, weightDecay: 1e-4, milestones: [1], gamma: 0.1 },
  };
  const [a, b] = [await train(spec, data, options), await train(spec, data, options)];
  assert.ok(a.testAccuracy > 0.6, `test accuracy ${a.testAccuracy} (chance 0.1)`);
  assert.deepEqual(a.tensors.get('fc1.weight')?.data, b.tensors.get('fc1.weight')?.data);
  const c = await train(spec, data, { ...options, dropout: 0.5 });
  assert.notDeepEqual(c.tensors.get('fc1.weight')?.data, a.tensors.get('fc1.weight')?.data, 'dropout acts');
});

test('training binarizes a dense layer per output unit as freeze does, and its gradient adds the level means', () => {
  const [inputs, units] = [30, 6];
  let seed = 11;
  const rnd = (): number => ((seed = (seed * 16807) % 2147483647) / 2147483647) * 2 - 1;
  const w = Float32Array.from({ length: inputs * units }, () => rnd() ** 3 * 0.5 + 0.05);
  const dy = Float32Array.from({ length: inputs * units }, rnd);
  // freeze's rows are output units: the columns of the [in, out] weights.
  const rows = new Float32Array(w.length);
  for (let i = 0; i < inputs; i++) for (let u = 0; u < units; u++) rows[u * inputs + i] = w[i * units + u];
  for (const mode of ['dab', 'xnor'] as const) {
    const fit = fitTwoLevel(rows, units, inputs, mode);
    const wt: ReturnType<Tf['tensor']> = tf.tensor(w, [inputs, units]);
    const q = binarizeWeights(tf, wt, 'dense', mode).dataSync();
    const grad = tf
      .grad((x: typeof wt) => tf.sum(tf.mul(binarizeWeights(tf, x, 'dense', mode), tf.tensor2d(dy, [inputs, units]))))(
        wt,
      )
      .dataSync();
    for (let u = 0; u < units; u++) {
      let [upSum, ups, downSum] = [0, 0, 0];
      for (let i = 0; i < inputs; i++) {
        const bit = fit.bits[u * inputs + i];
        const level = bit ? fit.upper[u] : fit.lower[u];
        assert.ok(
          Math.abs(q[i * units + u] - level) < 1e-6,
          `${mode} unit ${u} input ${i}: ${q[i * units + u]} vs ${level}`,
        );
        if (bit) [upSum, ups] = [upSum + dy[i * units + u], ups + 1];
        else downSum += dy[i * units + u];
      }
      for (let i = 0; i < inputs; i++) {
        const mean = fit.bits[u * inputs + i] ? upSum / Math.max(ups, 1) : downSum / Math.max(inputs - ups, 1);
        const expected = dy[i * units + u] + mean;
        assert.ok(Math.abs(grad[i * units + u] - expected) < 1e-5, `${mode} gradient ${u},${i}`);
      }
    }
  }
});
