// The exit rows of a profile: per exit, then the final classifier, the share of instances it answered and their
// accuracy. cmp-profile/1, cmp run's staged report and a board's split inference all count them here.

/** One exit's row: `exit1`.. then `final`; `share` of all instances, `accuracy` over those it answered. */
export interface ExitRow {
  exit: string;
  share: number;
  accuracy: number;
}

/** Tallies instances by the exit that answered them: 1..exitCount an exit, 0 the final classifier. */
export class ExitTally {
  private readonly counts: number[];
  private readonly correct: number[];

  constructor(readonly exitCount: number) {
    this.counts = new Array<number>(exitCount + 1).fill(0);
    this.correct = new Array<number>(exitCount + 1).fill(0);
  }

  /** The row index an answer from `exit` counts in: the exits in order, then the final classifier. */
  slot(exit: number): number {
    return exit === 0 ? this.exitCount : exit - 1;
  }

  add(exit: number, right: boolean): void {
    const k = this.slot(exit);
    this.counts[k]++;
    this.correct[k] += Number(right);
  }

  /** Share of every instance answered right. */
  accuracy(): number {
    const total = this.counts.reduce((a, b) => a + b, 0);
    return total ? this.correct.reduce((a, b) => a + b, 0) / total : 0;
  }

  /** Every row, the final classifier last; shares of no instances are 0. */
  rows(): ExitRow[] {
    const total = this.counts.reduce((a, b) => a + b, 0);
    return this.counts.map((n, k) => ({
      exit: k === this.exitCount ? 'final' : `exit${k + 1}`,
      share: total ? n / total : 0,
      accuracy: n ? this.correct[k] / n : 0,
    }));
  }
}
