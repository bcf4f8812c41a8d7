// (x - mean) / std: the input normalization a caller applies to pixel / 255 before feeding a model, written once.

/** The mean and standard deviation a model's inputs are standardized with (see callerNormalization). */
export interface Normalization {
  mean: number;
  std: number;
}

/**
 * `x` standardized, (x - mean) / std, into `out` (default a new array; `x` itself to work in place). With mean 0 and
 * std 1 a copy, so the caller may always write into what it gets.
 */
export function standardize(
  x: ArrayLike<number>,
  { mean, std }: Normalization,
  out: Float32Array = new Float32Array(x.length),
): Float32Array {
  if (mean === 0 && std === 1) {
    if (out !== x) out.set(x);
    return out;
  }
  for (let i = 0; i < x.length; i++) out[i] = (x[i] - mean) / std;
  return out;
}
