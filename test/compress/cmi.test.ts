// MINT's conditional dependency estimate: a parent its twin duplicates tells the child nothing new; a unique one does.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { conditionalDependencies, crossEdges, type LayerActivations } from '../../src/compress/cmi.js';
import { mutualInformation, quantileBins } from '../../src/compress/prune.js';
import { makeRng } from '../../src/core/rng.js';

/** Parents a, a twin of a, b, and noise; one child, relu(a + b). */
function layers(n: number): { parents: LayerActivations; children: LayerActivations } {
  const rng = makeRng(7);
  const parents = new Float32Array(n * 4);
  const children = new Float32Array(n);
  for (let s = 0; s < n; s++) {
    const a = rng();
    const b = rng();
    parents.set([a, a, b, rng()], s * 4);
    children[s] = Math.max(0, a + b - 0.5);
  }
  return { parents: { count: n, units: 4, values: parents }, children: { count: n, units: 1, values: children } };
}

test('conditioned on the other parents, a duplicated parent scores near 0 and a unique one high', () => {
  const { parents, children } = layers(1500);
  const [a, twin, b, noise] = conditionalDependencies(parents, [[0], [1], [2], [3]], children, [[0]]);
  assert.ok(b > 0.4, `unique parent b: ${b}`);
  for (const [name, v] of Object.entries({ a, twin })) assert.ok(Math.abs(v) < 0.15, `${name}: ${v}`);
  // The noise parent sits above the twins: surrogates that share a neighbour share its Y, a small upward bias.
  assert.ok(noise < b - 0.2, `noise ${noise} vs b ${b}`);
});

test('the pairwise score keeps both twins: each alone tells the child as much as b does', () => {
  const { parents, children } = layers(600);
  const bins = (unit: number, a: LayerActivations): Uint8Array =>
    quantileBins(
      Float64Array.from({ length: a.count }, (_, s) => a.values[s * a.units + unit]),
      8,
    );
  const child = bins(0, children);
  const [a, twin, b, noise] = [0, 1, 2, 3].map((u) => mutualInformation(bins(u, parents), child, 8));
  assert.equal(a, twin);
  assert.ok(a > 0.2 && b > 0.2, `a ${a}, b ${b}`);
  assert.ok(noise < 0.1, `noise ${noise}`);
});

test('the spanning tree joins two far-apart sets by one edge, interleaved ones by many', () => {
  // Points on a line: 0..9 then 100..109 (apart), or alternating between the two sets (interleaved).
  const tree = (position: (u: number) => number): number => {
    const m = 20;
    const d = new Float32Array(m * m);
    for (let u = 0; u < m; u++) for (let v = 0; v < m; v++) d[u * m + v] = (position(u) - position(v)) ** 2;
    return crossEdges(d, new Float32Array(m * m), m, 10);
  };
  assert.equal(
    tree((u) => (u < 10 ? u : 100 + u)),
    1,
  );
  assert.equal(
    tree((u) => (u < 10 ? 2 * u : 2 * (u - 10) + 1)),
    19,
  );
});
