// Which validation library the formats use: the same cmp-profile schema in each candidate, bundled for a browser
// (bytes, gzip), run where eval is off (the dashboard's and the page's CSP), and what the chosen one adds to the edge
// bundles as they are built.

import { build, type BuildOptions, type Metafile } from 'esbuild';
import { gzipSync } from 'node:zlib';
import { createContext, runInContext } from 'node:vm';
import { fileURLToPath } from 'node:url';
import { formatTable } from '../src/cli/table.js';
import { atLeast, benchRecord, goalLines, parseBenchFlags, type Goal } from './common.js';
import { describeMachine, machineLine } from './machine.js';
import type { Benchmark } from './run.js';
import { BUNDLES, SHARED_OPTIONS } from '../targets/build.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The profile schema's fields, written once per library below (the shapes match src/profile/device-profile.ts). */
const CANDIDATES: readonly { name: string; packages: string[]; types: string; jsonSchema: string; source: string }[] = [
  {
    name: 'valibot 1.x',
    packages: ['valibot'],
    types: 'InferOutput',
    jsonSchema: '@valibot/to-json-schema (build time)',
    source: `
import * as v from 'valibot';
const N = v.pipe(v.number(), v.minValue(0));
const C = v.pipe(v.number(), v.safeInteger(), v.minValue(0));
const S = v.pipe(v.number(), v.minValue(0), v.maxValue(1));
const L = { mean: N, p50: N, p90: N, p99: N, min: N, max: N };
const P = v.strictObject({
  schema: v.literal('cmp-profile/1'),
  device: v.strictObject({ name: v.string(), platform: v.string(), arch: v.string(), cpus: C, memoryBytes: C, runtime: v.string() }),
  model: v.object({ path: v.string(), release: v.optional(v.string()) }),
  backend: v.string(), backendReason: v.optional(v.string()), exitsReason: v.optional(v.string()), dataset: v.string(),
  samples: v.pipe(v.number(), v.safeInteger(), v.minValue(1)), accuracy: S, latencyMs: v.object(L), latenciesMs: v.array(N),
  stages: v.array(v.object({ name: v.string(), runs: C, ...L })), exits: v.array(v.object({ exit: v.string(), share: S, accuracy: S })),
  throughputPerS: N, link: v.optional(v.object({ meanBytes: N, fullBytes: N, saving: N })), rssBytes: v.optional(C),
  startedAt: v.pipe(v.string(), v.isoTimestamp()), durationMs: N,
});
globalThis.check = (x) => { const r = v.safeParse(P, x, { abortEarly: true }); return r.success ? '' : v.getDotPath(r.issues[0]); };`,
  },
  {
    name: 'zod 4 (classic)',
    packages: ['zod'],
    types: 'z.infer',
    jsonSchema: 'z.toJSONSchema (built in)',
    source: `
import { z } from 'zod';
const N = z.number().min(0);
const C = z.number().int().min(0);
const S = z.number().min(0).max(1);
const L = { mean: N, p50: N, p90: N, p99: N, min: N, max: N };
const P = z.strictObject({
  schema: z.literal('cmp-profile/1'),
  device: z.strictObject({ name: z.string(), platform: z.string(), arch: z.string(), cpus: C, memoryBytes: C, runtime: z.string() }),
  model: z.object({ path: z.string(), release: z.string().optional() }),
  backend: z.string(), backendReason: z.string().optional(), exitsReason: z.string().optional(), dataset: z.string(),
  samples: z.number().int().min(1), accuracy: S, latencyMs: z.object(L), latenciesMs: z.array(N),
  stages: z.array(z.object({ name: z.string(), runs: C, ...L })), exits: z.array(z.object({ exit: z.string(), share: S, accuracy: S })),
  throughputPerS: N, link: z.object({ meanBytes: N, fullBytes: N, saving: N }).optional(), rssBytes: C.optional(),
  startedAt: z.iso.datetime(), durationMs: N,
});
globalThis.check = (x) => { const r = P.safeParse(x); return r.success ? '' : r.error.issues[0].path.join('.'); };`,
  },
  {
    name: 'zod 4 (zod/mini)',
    packages: ['zod'],
    types: 'z.infer',
    jsonSchema: 'z.toJSONSchema (built in)',
    source: `
import * as z from 'zod/mini';
const N = z.number().check(z.minimum(0));
const C = z.int().check(z.minimum(0));
const S = z.number().check(z.minimum(0), z.maximum(1));
const L = { mean: N, p50: N, p90: N, p99: N, min: N, max: N };
const P = z.strictObject({
  schema: z.literal('cmp-profile/1'),
  device: z.strictObject({ name: z.string(), platform: z.string(), arch: z.string(), cpus: C, memoryBytes: C, runtime: z.string() }),
  model: z.object({ path: z.string(), release: z.optional(z.string()) }),
  backend: z.string(), backendReason: z.optional(z.string()), exitsReason: z.optional(z.string()), dataset: z.string(),
  samples: z.int().check(z.minimum(1)), accuracy: S, latencyMs: z.object(L), latenciesMs: z.array(N),
  stages: z.array(z.object({ name: z.string(), runs: C, ...L })), exits: z.array(z.object({ exit: z.string(), share: S, accuracy: S })),
  throughputPerS: N, link: z.optional(z.object({ meanBytes: N, fullBytes: N, saving: N })), rssBytes: z.optional(C),
  startedAt: z.iso.datetime(), durationMs: N,
});
globalThis.check = (x) => { const r = z.safeParse(P, x); return r.success ? '' : r.error.issues[0].path.join('.'); };`,
  },
  {
    name: '@sinclair/typebox 0.34 (Value)',
    packages: ['@sinclair/typebox'],
    types: 'Static',
    jsonSchema: 'is JSON Schema',
    source: `
import { Type as T } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
const N = T.Number({ minimum: 0 });
const C = T.Integer({ minimum: 0 });
const S = T.Number({ minimum: 0, maximum: 1 });
const L = { mean: N, p50: N, p90: N, p99: N, min: N, max: N };
const P = T.Object({
  schema: T.Literal('cmp-profile/1'),
  device: T.Object({ name: T.String(), platform: T.String(), arch: T.String(), cpus: C, memoryBytes: C, runtime: T.String() }, { additionalProperties: false }),
  model: T.Object({ path: T.String(), release: T.Optional(T.String()) }),
  backend: T.String(), backendReason: T.Optional(T.String()), exitsReason: T.Optional(T.String()), dataset: T.String(),
  samples: T.Integer({ minimum: 1 }), accuracy: S, latencyMs: T.Object(L), latenciesMs: T.Array(N),
  stages: T.Array(T.Object({ name: T.String(), runs: C, ...L })), exits: T.Array(T.Object({ exit: T.String(), share: S, accuracy: S })),
  throughputPerS: N, link: T.Optional(T.Object({ meanBytes: N, fullBytes: N, saving: N })), rssBytes: T.Optional(C),
  startedAt: T.String(), durationMs: N,
}, { additionalProperties: false });
globalThis.check = (x) => { const e = Value.Errors(P, x).First(); return e ? e.path : ''; };`,
  },
  {
    name: 'ajv 8 (compiles schemas/cmp-profile.schema.json)',
    packages: ['ajv'],
    types: 'none (JSONSchemaType by hand)',
    jsonSchema: 'is its input',
    source: `
import { Ajv } from 'ajv';
import schema from './schemas/cmp-profile.schema.json' with { type: 'json' };
globalThis.check = (x) => {
  const validate = new Ajv({ strict: false, formats: { 'date-time': true } }).compile(schema);
  return validate(x) ? '' : validate.errors[0].instancePath;
};`,
  },
];

/** A minimal valid cmp-profile/1 document (the check below also gives it a share of 1.5, which must be refused). */
export const PROFILE = {
  schema: 'cmp-profile/1',
  device: { name: 'pi', platform: 'linux', arch: 'arm64', cpus: 4, memoryBytes: 1e9, runtime: 'node v20' },
  model: { path: 'm.onnx' },
  backend: 'bitwasm',
  dataset: 'mnist',
  samples: 2,
  accuracy: 0.5,
  latencyMs: { mean: 1, p50: 1, p90: 1, p99: 1, min: 1, max: 1 },
  latenciesMs: [1, 1],
  stages: [],
  exits: [{ exit: 'final', share: 1, accuracy: 0.5 }],
  throughputPerS: 1000,
  startedAt: new Date(0).toISOString(),
  durationMs: 2,
};

interface LibraryRow {
  library: string;
  minBytes: number;
  gzipBytes: number;
  /** What check() said in a context where eval and new Function throw: the bad field's path, or why it failed. */
  withoutEval: string;
  types: string;
  jsonSchema: string;
}

async function libraryRow(c: (typeof CANDIDATES)[number]): Promise<LibraryRow | string> {
  let code: string;
  try {
    const out = await build({
      stdin: { contents: c.source, resolveDir: ROOT, loader: 'js' },
      bundle: true,
      minify: true,
      write: false,
      platform: 'browser',
      format: 'iife',
      target: 'es2022',
      logLevel: 'silent',
    });
    code = out.outputFiles[0].text;
  } catch {
    return `${c.name}: not installed (npm install --no-save ${c.packages.join(' ')})`;
  }
  // The dashboard's and the site's CSP (script-src 'self') forbid eval and new Function: so does this context.
  const context = createContext({}, { codeGeneration: { strings: false, wasm: false } });
  let withoutEval: string;
  try {
    runInContext(code, context);
    const check = (context as { check: (x: unknown) => string }).check;
    const good = check(JSON.parse(JSON.stringify(PROFILE)) as unknown);
    const bad = check({ ...PROFILE, exits: [{ exit: 'final', share: 1.5, accuracy: 0.5 }] });
    withoutEval = good === '' && bad !== '' ? `runs; names ${bad}` : `runs; wrong answer ("${good}", "${bad}")`;
  } catch (err) {
    withoutEval = `fails: ${String((err as Error).message)
      .split('\n')[0]
      .slice(0, 50)}`;
  }
  return {
    library: c.name,
    minBytes: code.length,
    gzipBytes: gzipSync(code, { level: 9 }).length,
    withoutEval,
    types: c.types,
    jsonSchema: c.jsonSchema,
  };
}

interface BundleRow {
  bundle: string;
  totalBytes: number;
  valibotBytes: number;
  schemaBytes: number;
}

/** The edge bundles as targets/build.ts makes them: total bytes, and those that valibot and the format schemas add. */
async function bundleRow(name: string): Promise<BundleRow> {
  const options: BuildOptions = {
    ...SHARED_OPTIONS,
    ...BUNDLES[name].options,
    write: false,
    metafile: true,
    logLevel: 'silent',
  };
  const out = await build(options);
  const meta = out.metafile as Metafile;
  const [, output] = Object.entries(meta.outputs).find(([path]) => !path.endsWith('.map'))!;
  const bytesOf = (test: (path: string) => boolean): number =>
    Object.entries(output.inputs)
      .filter(([path]) => test(path))
      .reduce((a, [, i]) => a + i.bytesInOutput, 0);
  return {
    bundle: name,
    totalBytes: output.bytes,
    valibotBytes: bytesOf((p) => p.includes('node_modules/valibot/')),
    schemaBytes: bytesOf((p) => p.endsWith('src/core/schema.ts')),
  };
}

export const schemaSize: Benchmark = {
  name: 'schema-size',
  summary: 'validation libraries: bundle bytes, running without eval; what valibot adds to the edge bundles',
  async run(argv, json) {
    const flags = parseBenchFlags(argv, { save: {} });
    const started = Date.now();
    const libraries: LibraryRow[] = [];
    const missing: string[] = [];
    for (const c of CANDIDATES) {
      const row = await libraryRow(c);
      if (typeof row === 'string') missing.push(row);
      else libraries.push(row);
    }
    const bundles: BundleRow[] = [];
    for (const name of ['rpi', 'browser', 'dashboard']) bundles.push(await bundleRow(name));
    const chosen = libraries.find((l) => l.library.startsWith('valibot'));
    const noEval = libraries.filter((l) => l.withoutEval.startsWith('runs; names'));
    const smallest = Math.min(...noEval.map((l) => l.gzipBytes));
    const goals: Goal[] = chosen
      ? [
          atLeast(
            "the chosen library checks a profile where eval is off (the dashboard's CSP)",
            noEval.includes(chosen) ? 1 : 0,
            1,
            'yes',
          ),
          atLeast('the chosen library is the smallest (gzip) of those that do', smallest / chosen.gzipBytes, 1, 'x'),
        ]
      : [];
    const seconds = (Date.now() - started) / 1000;
    if (json) {
      process.stdout.write(
        `${benchRecord('schema-size', { seconds, libraries, missing, bundles, goals }, flags.save)}\n`,
      );
      return goals.every((g) => g.met) ? 0 : 1;
    }
    const lines = [
      `schema-size: the cmp-profile/1 schema and a whole-document check in each library, bundled by esbuild (minified,`,
      `browser, iife), run in a vm context without eval; machine: ${machineLine(describeMachine())}; ${seconds.toFixed(1)} s`,
      formatTable(
        ['library', 'bytes', 'gzip', 'without eval', 'types', 'JSON Schema'],
        libraries.map((l) => [l.library, l.minBytes, l.gzipBytes, l.withoutEval, l.types, l.jsonSchema]),
      ),
      ...missing,
      '',
      'the bundles as npm run build makes them (minified) and what valibot and core/schema.ts take in them:',
      formatTable(
        ['bundle', 'bytes', 'valibot', 'core/schema.ts'],
        bundles.map((b) => [b.bundle, b.totalBytes, b.valibotBytes, b.schemaBytes]),
      ),
      'goals:',
      ...goalLines(goals),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    if (flags.save) benchRecord('schema-size', { seconds, libraries, missing, bundles, goals }, flags.save);
    return goals.every((g) => g.met) ? 0 : 1;
  },
};
