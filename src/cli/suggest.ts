// The nearest of some names to a mistyped one, for "did you mean ...?" in the CLI's errors.

/**
 * Edit distance counting insertions, deletions, substitutions and swaps of neighbours as one each (optimal string
 * alignment): `trian` is 1 from `train`.
 */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/**
 * The name nearest to `word`, when it is near enough to be a typo (at most a third of its letters off, at least 1;
 * a name that starts with `word` counts too); ties go to the first name given.
 */
export function nearest(word: string, names: readonly string[]): string | undefined {
  const lower = word.toLowerCase();
  let best: { name: string; distance: number } | undefined;
  for (const name of names) {
    const distance = name.startsWith(lower) && lower.length >= 2 ? 0.5 : editDistance(lower, name);
    if (!best || distance < best.distance) best = { name, distance };
  }
  return best && best.distance <= Math.max(1, Math.floor(word.length / 3)) ? best.name : undefined;
}
