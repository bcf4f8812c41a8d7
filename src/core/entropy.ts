// Softmax entropy of logits, the confidence measure of early exits (nats; low entropy = confident).

/** Entropy (nats) of softmax(logits[offset .. offset + classes)), computed stably from the log-sum-exp. */
export function softmaxEntropy(logits: ArrayLike<number>, offset: number, classes: number): number {
  let max = -Infinity;
  for (let c = 0; c < classes; c++) max = Math.max(max, logits[offset + c]);
  let sum = 0;
  for (let c = 0; c < classes; c++) sum += Math.exp(logits[offset + c] - max);
  const logSum = Math.log(sum);
  let entropy = 0;
  for (let c = 0; c < classes; c++) {
    const logP = logits[offset + c] - max - logSum;
    entropy -= Math.exp(logP) * logP;
  }
  return entropy;
}

/** Index of the largest of logits[offset .. offset + classes). */
export function argmaxAt(logits: ArrayLike<number>, offset: number, classes: number): number {
  let best = 0;
  for (let c = 1; c < classes; c++) if (logits[offset + c] > logits[offset + best]) best = c;
  return best;
}
