// MINT's dependency score: the conditional geometric mutual information between a child group and a parent group
// given the layer's other parents, estimated as the authors do (nearest-neighbour bootstrap, minimum spanning tree).

import { CmpError } from '../errors.js';

/** A layer's activations on `count` samples, row-major [count, units]. */
export interface LayerActivations {
  count: number;
  units: number;
  values: Float32Array;
}

/**
 * I(X; Y | Z) for every child group X and parent group Y, Z being the parents outside Y: a [children x parents]
 * matrix, row-major. 0 when the child learns nothing from Y that the other parents do not already tell it; towards 1
 * as it learns more.
 *
 * The estimator is the one in the authors' code (`mlp/utils/mi_estimation.py`, after Yasaei Sekeh): the samples, in
 * the order given, are cut in thirds A, B and R. Each sample of A takes the Y of the sample of B nearest to it in Z
 * (Euclidean): these surrogates (X, Y', Z) follow p(x|z) p(y|z) p(z), the law under which X and Y are independent given
 * Z, while R keeps the true joint law. The Friedman-Rafsky statistic, the number r of edges of the Euclidean minimum
 * spanning tree over both sets that join a true sample to a surrogate, estimates the Henze-Penrose divergence between
 * the two laws, 1 - r (m + s) / (2 m s) for m true and s surrogate samples: about 0 when they are one law (r is then
 * about 2ms / (m + s)), near 1 when the sets lie apart. Two departures from the authors' code, both to follow the
 * estimator their code describes: the neighbour is looked up by Z from A into B (their indexing crosses the two sets),
 * and distances reuse per-group tables (||(x, y, z)||^2 sums over parts) instead of recomputing whole vectors.
 */
export function conditionalDependencies(
  parents: LayerActivations,
  parentGroups: number[][],
  children: LayerActivations,
  childGroups: number[][],
): Float64Array {
  const n = parents.count;
  if (children.count !== n) throw new CmpError('INTERNAL', `${n} parent samples but ${children.count} child samples.`);
  const third = Math.floor(n / 3);
  if (third < 4) {
    throw new CmpError(
      'BAD_ARGUMENT',
      `MINT needs at least 12 samples to estimate conditional dependencies, got ${n}. Raise --samples-per-class.`,
    );
  }
  // Points of the spanning tree: the true samples R first, then one surrogate per sample of A.
  const real = n - 2 * third;
  const m = real + third;
  const xz = Int32Array.from({ length: m }, (_, u) => (u < real ? 2 * third + u : u - real));
  const allParents = Array.from({ length: parents.units }, (_, i) => i);
  const whole = distances(parents, allParents, n);
  const childTables = childGroups.map((g) => pointDistances(children, g, xz));
  const out = new Float64Array(childGroups.length * parentGroups.length);
  const parentPart = new Float32Array(m * m);
  const y = new Int32Array(m);
  parentGroups.forEach((group, g) => {
    const own = distances(parents, group, n);
    // Nearest neighbour in Z (all parents but this group) of each A sample among the B samples.
    for (let u = 0; u < m; u++) {
      if (u < real) {
        y[u] = xz[u];
        continue;
      }
      const a = xz[u];
      let best = Infinity;
      for (let b = third; b < 2 * third; b++) {
        const d = whole[a * n + b] - own[a * n + b];
        if (d < best) {
          best = d;
          y[u] = b;
        }
      }
    }
    for (let u = 0; u < m; u++) {
      for (let v = 0; v < m; v++) {
        const zu = xz[u] * n;
        parentPart[u * m + v] = own[y[u] * n + y[v]] + whole[zu + xz[v]] - own[zu + xz[v]];
      }
    }
    childTables.forEach((table, c) => {
      const r = crossEdges(parentPart, table, m, real);
      out[c * parentGroups.length + g] = 1 - (r * m) / (2 * real * third);
    });
  });
  return out;
}

/** Squared Euclidean distances over `units` between every pair of the first `n` samples, [n, n]. */
function distances(a: LayerActivations, units: number[], n: number): Float32Array {
  return pointDistances(
    a,
    units,
    Int32Array.from({ length: n }, (_, i) => i),
  );
}

/** Squared Euclidean distances over `units` between the samples `at`, [at.length, at.length]. */
function pointDistances(a: LayerActivations, units: number[], at: Int32Array): Float32Array {
  const k = at.length;
  const rows = new Float32Array(k * units.length);
  for (let i = 0; i < k; i++)
    units.forEach((unit, j) => (rows[i * units.length + j] = a.values[at[i] * a.units + unit]));
  const out = new Float32Array(k * k);
  const width = units.length;
  for (let i = 0; i < k; i++) {
    for (let j = i + 1; j < k; j++) {
      let d = 0;
      for (let t = 0; t < width; t++) {
        const diff = rows[i * width + t] - rows[j * width + t];
        d += diff * diff;
      }
      out[i * k + j] = d;
      out[j * k + i] = d;
    }
  }
  return out;
}

/**
 * Edges of the minimum spanning tree (Prim, dense) over m points whose squared distances are `a + b` that join one of
 * the first `split` points to one of the others. Squared distances give the same tree as distances.
 */
export function crossEdges(a: Float32Array, b: Float32Array, m: number, split: number): number {
  const best = new Float64Array(m).fill(Infinity);
  const from = new Int32Array(m).fill(-1);
  const done = new Uint8Array(m);
  let cross = 0;
  let u = 0;
  for (let added = 1; added < m; added++) {
    done[u] = 1;
    let next = -1;
    let nextDistance = Infinity;
    for (let v = 0; v < m; v++) {
      if (done[v]) continue;
      const d = a[u * m + v] + b[u * m + v];
      if (d < best[v]) {
        best[v] = d;
        from[v] = u;
      }
      if (best[v] < nextDistance) {
        nextDistance = best[v];
        next = v;
      }
    }
    if (from[next] < split !== next < split) cross++;
    u = next;
  }
  return cross;
}
