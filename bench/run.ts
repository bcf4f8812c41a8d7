// The benchmark runner: `npm run bench -- NAME [--json] [flags]` runs one benchmark and prints its table.

import { CmpError, isCmpError } from '../src/errors.js';

export interface Benchmark {
  name: string;
  summary: string;
  run(argv: string[], json: boolean): Promise<number>;
}

/**
 * Each benchmark's module, loaded only when that benchmark runs, so one that cannot load (deploy and fleet need the
 * test sshd and helpers) does not stop the others.
 */
const BENCHMARKS: readonly { name: string; load: () => Promise<Benchmark> }[] = Object.freeze([
  { name: 'accuracy-size', load: async () => (await import('./accuracy-size.js')).accuracySize },
  { name: 'train-speed', load: async () => (await import('./train-speed.js')).trainSpeed },
  { name: 'prune', load: async () => (await import('./prune.js')).prune },
  { name: 'select', load: async () => (await import('./select.js')).select },
  { name: 'exit', load: async () => (await import('./exit.js')).exit },
  { name: 'link', load: async () => (await import('./link.js')).link },
  { name: 'kernels', load: async () => (await import('./kernels.js')).kernels },
  { name: 'models', load: async () => (await import('./models.js')).models },
  { name: 'deploy', load: async () => (await import('./deploy.js')).deploy },
  { name: 'fleet', load: async () => (await import('./fleet.js')).fleet },
  { name: 'import', load: async () => (await import('./import.js')).importBench },
  { name: 'fuzz', load: async () => (await import('./fuzz.js')).fuzz },
  { name: 'analyze', load: async () => (await import('./analyze.js')).analyze },
  { name: 'schema-size', load: async () => (await import('./schema-size.js')).schemaSize },
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
    return await (
      await bench.load()
    ).run(
      rest.filter((a) => a !== '--json'),
      json,
    );
  } catch (err) {
    process.stderr.write(`bench: ${isCmpError(err) ? err.message : String((err as Error).stack ?? err)}\n`);
    return isCmpError(err) ? 2 : 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
