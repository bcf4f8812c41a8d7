// Training progress as cmp train, prune and demo print it: a live status line, and a line per epoch.

import type { TrainProgress } from '../compress/train.js';
import { formatDuration, type Progress } from './progress.js';
import { formatPercent } from './table.js';

/** Reports training progress: a live status line, and a line per epoch. */
export function trainProgress(progress: Progress, label: string): (p: TrainProgress) => void {
  return (p) => {
    if (p.phase === 'batch') {
      progress.update(
        // The time left (with its unit) before the loss: a narrow terminal cuts the end of the line.
        `${label} epoch ${p.epoch}/${p.epochs} batch ${p.batch}/${p.batches}, ETA ${formatDuration(p.etaMs)}, loss ${p.loss.toFixed(4)}`,
      );
    } else {
      const r = p.record;
      progress.log(
        `${label} epoch ${r.epoch}/${p.epochs}: loss ${r.loss.toFixed(4)}, train ${formatPercent(r.trainAccuracy)}, test ${formatPercent(r.testAccuracy)} (${formatDuration(r.durationMs)}, ETA ${formatDuration(p.etaMs)})`,
      );
    }
  };
}
