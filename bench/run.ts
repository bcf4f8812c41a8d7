// The benchmark runner: `npm run bench -- NAME [--json] [flags]` runs one benchmark and prints its table.

import { CmpError, isCmpError } from '../src/errors.js';
import { accuracySize } from './accuracy-size.js';
import { deploy } from './deploy.js';
import { fleet } from './fleet.js';
import { exit } from './exit.js';
import { importBench } from './import.js';
import { prune } from './prune.js';
import { kernels } from './kernels.js';
import { link } from './link.js';
import { models } from './models.js';
import { select } from './select.js';
import { trainSpeed } from './train-speed.js';

export interface Benchmark {
  name: string;
  summary: string;
  run(argv: string[], json: boolean): Promise<number>;
}

const BENCHMARKS: readonly Benchmark[] = Object.freeze([
  accuracySize,
  trainSpeed,
  prune,
  select,
  exit,
  link,
  kernels,
  models,
  deploy,
  fleet,
  importBench,
]);

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const bench = BENCHMARKS.find((b) => b.name === name);
  const json = rest.includes('--json');
  try {
    if (!bench) {
      throw new CmpError(
        'BAD_ARGUMENT',
        `${name ? `Unknown benchmark "${name}"` : 'No benchmark named'}. Use one of: ${BENCHMARKS.map((b) => b.name).join(', ')} (npm run bench -- NAME).`,
      );
    }
    return await bench.run(
      rest.filter((a) => a !== '--json'),
      json,
    );
  } catch (err) {
    process.stderr.write(`bench: ${isCmpError(err) ? err.message : String((err as Error).stack ?? err)}\n`);
    return isCmpError(err) ? 2 : 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
