// A small seeded generator shared by training, benchmarks and tests, so every seeded run is reproducible.

/** A seeded generator; `state` is where it stands, and makeRng(state) carries on from there (a resumed training). */
export interface Rng {
  (): number;
  readonly state: number;
}

/** mulberry32: uniform numbers in [0, 1) from a 32-bit seed; the same seed gives the same sequence. */
export function makeRng(seed: number): Rng {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return Object.defineProperty(next, 'state', { get: () => a }) as Rng;
}
