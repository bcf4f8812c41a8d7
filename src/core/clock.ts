// The one clock: every timing in cmp goes through here (milliseconds, monotonic, sub-millisecond where available).

/** Milliseconds since an arbitrary origin, monotonic. */
export function nowMs(): number {
  return performance.now();
}

/** Percentile (0..100) of `values` by nearest rank; NaN for an empty list. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}
