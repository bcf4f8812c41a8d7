// The conformance suite's harness: every backend answers the same exported models' inputs, judged by one rule.

import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { predictFrozenWithExits } from '../../src/compress/train.js';
import { argmaxAt, softmaxEntropy } from '../../src/core/entropy.js';
import type { FrozenModel, FrozenWeightLayer } from '../../src/core/frozen.js';
import { quantizeRows } from '../../src/core/quantize.js';
import { makeRng } from '../../src/core/rng.js';
import type { ModelSpec } from '../../src/core/spec.js';
import { selectorPath, stagePath, type Manifest } from '../../src/core/manifest.js';
import { EXIT_INDEX_NAME, exportOnnx } from '../../src/export/export-onnx.js';
import { firmwareRoot, requireTool } from '../../src/link/firmware-build.js';
import { convertToMcuModel } from '../../src/core/mcu-model.js';
import { MaskedInput } from '../../src/runtime/masked-input.js';
import { binarizationMargins } from '../../src/runtime/bitwasm/engine-reference.js';
import { planModel, unsupportedReason } from '../../src/runtime/bitwasm/plan.js';
import { readModelFile, type ModelFile } from '../../src/runtime/model-file.js';
import { Predictor } from '../../src/runtime/predictor.js';
import { fixtureData, fixtures, type FixtureData, type ModelFixture } from '../fixtures.js';
import { launchChromium, ROOT } from '../helpers.js';

/** One input as a backend (or the reference) answered it. */
export interface Answer {
  label: number;
  /** 1..n: the early exit that answered; 0: the final classifier. */
  exit: number;
  logits: Float32Array;
}

/** An exported model on disk (stage and selector files beside it), its inputs, and the trained model's answers. */
export interface ConformanceModel {
  name: string;
  path: string;
  file: ModelFile;
  /** `count` instances of `features` pixels in [0, 1], as a device's sensor gives them. */
  pixels: Float32Array;
  count: number;
  features: number;
  classes: number;
  /** What the trained model computes (TensorFlow.js, float32, the exits' decision on its own entropies). */
  reference: Answer[];
  /** The data set's labels of the inputs. */
  truth: Uint8Array;
  /**
   * Inputs on a knife edge: some binarized activation lies within KNIFE_EDGE of its threshold (as a fraction of the
   * largest |value| its layer binarizes, measured by bitwasm's reference engine), so float32 sums in another order may
   * flip its bit, and any answer is right. Empty for models without binarized activations, and for models with exits
   * (bitwasm runs their stage files, not one plan, so they are not measured).
   */
  knifeEdge: Set<number>;
}

/**
 * A binarized activation this close to its threshold, as a fraction of its layer's largest |value|, may take either
 * bit in a backend that sums in another order: float32 sums of a few hundred terms differ by a few 1e-7 of their scale
 * (a LeNet's conv sums, after a change to the training's float rounding, put one of 60 inputs across a threshold).
 */
export const KNIFE_EDGE = 2e-6;

/** Runs every input of a model on one backend, one instance per call as a device serves them. */
export type Runner = (model: ConformanceModel) => Promise<Answer[]>;

/** Where a backend computes a layer another way than the trained model, by design. */
export interface Allowance {
  /** Short name, as the README's table "Conformance" names the row. */
  name: string;
  /** Largest logit difference allowed, as a fraction of the input's logit scale max(1, max |reference logit|). */
  relative: number;
  /** Whether this allowance applies to `backend` on `model`. */
  applies(backend: string, model: Pick<ConformanceModel, 'file'>): boolean;
  why: string;
}

/**
 * The one tolerance rule: for every input, a backend's exit must be the reference's, its logits within the allowance
 * times the input's logit scale, and its label the reference's unless the reference's top two logits lie closer than
 * twice that (a tie the allowance may break either way). Inputs on a knife edge (`knifeEdge`) are not judged. The
 * first row that applies is the allowance. The README's
 * table under "Conformance" is this one, with what the suite measured.
 */
export const ALLOWANCES: readonly Allowance[] = Object.freeze<Allowance[]>([
  {
    name: 'int8 layers on ort-node',
    relative: 2e-2,
    applies: (backend, model) => engineOf(backend) === 'ort-node' && layersOf(model).some((l) => l.weights === 'int8'),
    why: "onnxruntime-node fuses DequantizeLinear + MatMul into MatMulNBits, which quantizes the layer's input to int8",
  },
  {
    name: 'int8 layers on bitwasm',
    relative: 2e-2,
    applies: (backend, model) => engineOf(backend) === 'bitwasm' && layersOf(model).some((l) => l.weights === 'int8'),
    why: "bitwasm quantizes an int8 layer's input to int8 per sample and sums int8 products (core/quantize.ts quantizeInput)",
  },
  {
    name: 'binary weights on float inputs, firmware',
    relative: 5e-4,
    applies: (backend, model) =>
      backend === 'firmware-host' &&
      layersOf(model).some((l) => (l.weights === 'dab' || l.weights === 'xnor') && l.inputs === 'none'),
    why: 'a row is lower * sum(x) + (upper - lower) * (sum of x under 1-bits): two long sums, not one of w * x',
  },
  {
    name: 'everything else',
    relative: 2e-5,
    applies: () => true,
    why: 'float32 sums in another order; binary activations give the same bits, popcounts are exact',
  },
]);

/** The allowance that judges `backend` on `model`. */
export function allowanceFor(backend: string, model: Pick<ConformanceModel, 'file'>): Allowance {
  return ALLOWANCES.find((a) => a.applies(backend, model)) as Allowance;
}

/** The runtime under a backend's variant: ort-web@chromium runs ort-web, ort-node:one-graph runs ort-node. */
function engineOf(backend: string): string {
  return backend.split(/[:@]/)[0];
}

function layersOf(model: Pick<ConformanceModel, 'file'>): Manifest['layers'] {
  return model.file.manifest?.layers ?? [];
}

/** What the rule finds wrong with a backend's answers: one line per input that breaks it (empty: conforms). */
export function judge(answers: Answer[], model: ConformanceModel, relative: number): string[] {
  const problems: string[] = [];
  if (answers.length !== model.count) return [`${answers.length} answers for ${model.count} inputs`];
  answers.forEach((a, i) => {
    if (model.knifeEdge.has(i)) return;
    const ref = model.reference[i];
    const bound = relative * logitScale(ref.logits);
    const diff = maxDiff(a.logits, ref.logits);
    const tie = topTwoGap(ref.logits) < 2 * bound;
    if ((a.label !== ref.label && !tie) || a.exit !== ref.exit || !(diff <= bound))
      problems.push(
        `input ${i}: label ${a.label} exit ${a.exit} against ${ref.label} exit ${ref.exit}, ` +
          `logits off by ${diff.toExponential(2)} (allowed ${bound.toExponential(2)})`,
      );
  });
  return problems;
}

/** The largest logit difference on any judged input, as a fraction of its logit scale (for the README's table). */
export function worstRelativeDiff(answers: Answer[], model: ConformanceModel): number {
  let worst = 0;
  answers.forEach((a, i) => {
    if (model.knifeEdge.has(i)) return;
    const ref = model.reference[i].logits;
    worst = Math.max(worst, maxDiff(a.logits, ref) / logitScale(ref));
  });
  return worst;
}

function logitScale(logits: Float32Array): number {
  let scale = 1;
  for (const v of logits) scale = Math.max(scale, Math.abs(v));
  return scale;
}

function topTwoGap(logits: Float32Array): number {
  const sorted = Array.from(logits).sort((a, b) => b - a);
  return sorted[0] - sorted[1];
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let max = 0;
  for (let c = 0; c < a.length; c++) max = Math.max(max, Math.abs(a[c] - b[c]));
  return max;
}

/**
 * Exports a fixture as `cmp export` does (into a fresh folder) and computes the reference on its first `count` test
 * inputs. A model with exits gets thresholds that send inputs out at every exit and the end, each set in the widest
 * gap between the reference's entropies near the middle, so no backend's rounding can move an input across one.
 */
export async function conformanceModel(
  dir: string,
  name: string,
  fixture: ModelFixture,
  count: number,
): Promise<ConformanceModel> {
  const trained = await fixtures.model(fixture);
  return frozenConformanceModel(dir, name, trained.frozen, fixture.data, count);
}

/**
 * conformanceModel for a frozen model made without training (layer shapes no trainer arch has, such as 3x3 int8
 * convs): the reference is the frozen model's own answers on the data's first test images.
 */
export async function frozenConformanceModel(
  dir: string,
  name: string,
  model: FrozenModel,
  fixtureSlice: FixtureData,
  count: number,
): Promise<ConformanceModel> {
  const data = await fixtureData(fixtureSlice);
  const raw = await predictFrozenWithExits(model, data, data.test, count);
  const classes = model.spec.labels.length;
  const thresholds = raw.exits.map((logits) => middleGap(logits, count, classes));
  const frozen: FrozenModel = {
    ...model,
    exits: (model.exits ?? []).map((e, k) => ({ ...e, threshold: thresholds[k] })),
  };
  const exported = exportOnnx(frozen);
  const path = join(dir, `${name}.onnx`);
  writeFileSync(path, exported.bytes);
  exported.stages.forEach((bytes, k) => writeFileSync(stagePath(path, k + 1), bytes));
  if (exported.selector) writeFileSync(selectorPath(path), exported.selector);
  const reference: Answer[] = [];
  for (let i = 0; i < count; i++) {
    const exit = thresholds.findIndex((t, k) => softmaxEntropy(raw.exits[k], i * classes, classes) < t) + 1;
    const logits = (exit === 0 ? raw.logits : raw.exits[exit - 1]).slice(i * classes, (i + 1) * classes);
    reference.push({ label: argmaxAt(logits, 0, classes), exit, logits });
  }
  const features = data.inputShape.reduce((a, b) => a * b, 1);
  const file = readModelFile(path);
  const pixels = data.test.x.slice(0, count * features);
  const knifeEdge = new Set<number>();
  // Models with exits run on bitwasm as stage files, not as one plan: their inputs are not measured.
  if ((file.manifest?.layers ?? []).some((l) => l.inputs !== 'none') && unsupportedReason(file) === undefined) {
    binarizationMargins(planModel(file), pixels, count).forEach((m, i) => {
      if (m < KNIFE_EDGE) knifeEdge.add(i);
    });
  }
  return {
    name,
    path,
    file,
    pixels,
    count,
    features,
    classes,
    reference,
    truth: data.test.y.slice(0, count),
    knifeEdge,
  };
}

/** The threshold in the widest gap between sorted entropies of the middle half of the inputs. */
function middleGap(logits: Float32Array, count: number, classes: number): number {
  const h = Array.from({ length: count }, (_, i) => softmaxEntropy(logits, i * classes, classes)).sort((a, b) => a - b);
  let best = count >> 1;
  for (let i = count >> 2; i < (3 * count) >> 2; i++) if (h[i + 1] - h[i] > h[best + 1] - h[best]) best = i;
  return (h[best] + h[best + 1]) / 2;
}

/** A backend as a device runs it: cmp's Predictor, pixels in, one instance per call (masks, exits, normalization). */
export function predictorRunner(backend: string): Runner {
  return async (model) => {
    const predictor = await Predictor.open(model.file, { backend });
    try {
      if (predictor.backendName !== backend) throw new Error(`${backend} was asked for, ${predictor.backendName} ran`);
      const answers: Answer[] = [];
      for (let i = 0; i < model.count; i++) {
        const p = await predictor.infer(model.pixels.subarray(i * model.features, (i + 1) * model.features));
        answers.push({ label: p.label, exit: p.exit, logits: p.logits });
      }
      return answers;
    } finally {
      await predictor.dispose();
    }
  };
}

/**
 * onnxruntime on the one-graph file of a model with exits: its `If` nodes decide the exit in the graph (the staged
 * runtime that Predictor uses decides between stage files). Read raw from the runtime: `logits` and `exit_index`.
 * The suite gives it models with exits only: without exits, the file is the one Predictor runs.
 */
export function oneGraphRunner(runtime: 'onnxruntime-node' | 'onnxruntime-web'): Runner {
  return async (model) => {
    const ort = runtime === 'onnxruntime-node' ? await import('onnxruntime-node') : await import('onnxruntime-web');
    if (runtime === 'onnxruntime-web') (ort as typeof import('onnxruntime-web')).env.wasm.numThreads = 1;
    const session = await ort.InferenceSession.create(model.file.bytes);
    const link = await MaskedInput.open(model.file);
    try {
      const answers: Answer[] = [];
      for (let i = 0; i < model.count; i++) {
        const pixels = model.pixels.slice(i * model.features, (i + 1) * model.features);
        const { input, dims } = link
          ? await link.modelInput(pixels, 1)
          : { input: pixels, dims: [1, ...model.file.inputDims] };
        const out = await session.run({ [model.file.inputName]: new ort.Tensor('float32', input, dims) });
        const logits = (out.logits.data as Float32Array).slice(0, model.classes);
        const exit = Number((out[EXIT_INDEX_NAME].data as BigInt64Array)[0]);
        answers.push({ label: argmaxAt(logits, 0, model.classes), exit, logits });
      }
      return answers;
    } finally {
      await link?.dispose();
      await session.release();
    }
  };
}

/**
 * The firmware's runtime and kernels built for this machine with gcc into `buildDir` (address and undefined-behaviour
 * sanitizers on), run on the device model format `cmp deploy --target mcu` uploads: the same C that runs on the board.
 */
export function firmwareHostRunner(buildDir: string): Runner {
  let binary: string | undefined;
  return (model) => {
    if (!binary) {
      requireTool('gcc');
      requireTool('make');
      execFileSync('make', ['-C', firmwareRoot(), '--no-print-directory', `BUILD_HOST=${buildDir}`, 'host-kernels'], {
        stdio: 'pipe',
      });
      binary = join(buildDir, 'test-kernels');
    }
    const blob = `${model.path}.cmpm`;
    const inputs = `${model.path}.inputs.f32`;
    writeFileSync(blob, convertToMcuModel(model.file).blob);
    // The device takes the network's input, (pixel - mean) / std, as the ONNX graph and cmp_runtime_write_pixels do.
    const { mean, std } = model.file.manifest?.input ?? { mean: 0, std: 1 };
    writeFileSync(
      inputs,
      model.pixels.map((v) => (v - mean) / std),
    );
    const run = spawnSync(binary, ['run', blob, inputs, String(model.count)], { encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`test-kernels run exited with ${run.status}: ${run.stdout}${run.stderr}`);
    return Promise.resolve(
      run.stdout
        .trim()
        .split('\n')
        .map((line) => {
          const [label, exit, , ...logits] = line.split(' ').map(Number);
          return { label, exit, logits: Float32Array.from(logits) };
        }),
    );
  };
}

/** Where the page's files come from: the browser target's build (npm run build), beside which the page bundle lies. */
const BROWSER_BUILD = join(ROOT, 'dist', 'targets', 'browser');
const BROWSER_FILES = ['ort-web.js', 'ort-wasm-simd-threaded.wasm', 'ort-wasm-simd-threaded.mjs', 'bitwasm.wasm'];
/** The page's made-up origin: Playwright answers its requests from `dir` (no server, no port). */
const ORIGIN = 'http://conformance.test';

/**
 * Backends in headless Chromium, as the browser target ships them: test/runtime/conformance-page.ts bundled the way
 * targets/build.ts bundles the site's page, onnxruntime-web and bitwasm.wasm from the browser target's build beside
 * it. One browser for every model; `close` ends it.
 */
export function chromiumRunners(dir: string): { runners: Record<string, Runner>; close(): Promise<void> } {
  let opened: Promise<{ browser: Browser; page: Page }> | undefined;
  const open = async (): Promise<{ browser: Browser; page: Page }> => {
    const pageDir = join(dir, 'page');
    mkdirSync(pageDir, { recursive: true });
    for (const name of BROWSER_FILES) {
      if (!existsSync(join(BROWSER_BUILD, name)))
        throw new Error(`${join(BROWSER_BUILD, name)} is missing: run npm run build (it builds the browser target)`);
      copyFileSync(join(BROWSER_BUILD, name), join(pageDir, name));
    }
    const { build } = await import('esbuild');
    const builtins = join(ROOT, 'targets', 'browser', 'node-builtins.ts');
    await build({
      entryPoints: [join(ROOT, 'test', 'runtime', 'conformance-page.ts')],
      outfile: join(pageDir, 'conform.js'),
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      logLevel: 'error',
      define: { __CMP_VERSION__: JSON.stringify('conformance') },
      alias: { 'node:fs': builtins, 'node:fs/promises': builtins, 'node:module': builtins },
      external: ['onnxruntime-node'],
      plugins: [
        {
          name: 'ort-web-beside-the-page',
          setup: (b) => b.onResolve({ filter: /^onnxruntime-web$/ }, () => ({ path: './ort-web.js', external: true })),
        },
      ],
    });
    writeFileSync(
      join(pageDir, 'index.html'),
      '<!doctype html><html><head><script type="module" src="conform.js"></script></head><body></body></html>',
    );
    const browser = await launchChromium();
    const page = await browser.newPage();
    await page.route(`${ORIGIN}/**`, (route) => {
      const path = join(dir, decodeURIComponent(new URL(route.request().url()).pathname));
      return existsSync(path) ? route.fulfill({ path }) : route.fulfill({ status: 404, body: 'not found' });
    });
    await page.goto(`${ORIGIN}/page/index.html`);
    await page.waitForFunction(() => typeof window.conform === 'function');
    return { browser, page };
  };
  const runner =
    (backend: string): Runner =>
    async (model) => {
      opened ??= open();
      const { page } = await opened;
      const inputs = `${model.path}.pixels.f32`;
      writeFileSync(inputs, model.pixels);
      const url = (path: string): string => `${ORIGIN}/${relative(dir, path)}`;
      const answers = await page.evaluate(([m, b, i, n]) => window.conform(m, b, i, n), [
        url(model.path),
        backend,
        url(inputs),
        model.count,
      ] as const);
      return answers.map((a) => ({ label: a.label, exit: a.exit, logits: Float32Array.from(a.logits) }));
    };
  return {
    runners: { 'ort-web@chromium': runner('ort-web'), 'bitwasm@chromium': runner('bitwasm') },
    close: async () => {
      if (opened) await (await opened).browser.close();
    },
  };
}

/** A DAB LeNet with two exits, so inputs leave at each of three places (also test/export/early-exit.test.ts). */
export const TWO_EXIT_LENET: ModelFixture = {
  data: { dataset: 'fashion-mnist', limitTrain: 1500, limitTest: 60 },
  train: {
    arch: 'lenet',
    filters: [6, 8],
    widths: [32],
    exits: [1, 2],
    binarizeWeights: 'dab',
    binarizeActivations: 'dab',
    epochs: 1,
    batchSize: 50,
    learningRate: 0.002,
    seed: 3,
  },
};

/**
 * An int8 conv net no trainer arch makes: 3x3 convs, 1 -> 8 on 28x28 (four output positions a vector in bitwasm),
 * pooled, 8 -> 12 on 13x13 (Winograd, odd output sides), pooled, and an int8 dense layer, random weights (seed 5). Its
 * reference is its own float answers, so it checks what is computed, not what is learned.
 */
export function int8ConvNet(): FrozenModel {
  const next = makeRng(5);
  const random = (n: number, scale = 1, offset = 0): Float32Array =>
    Float32Array.from({ length: n }, () => offset + (next() * 2 - 1) * scale);
  const int8 = { weights: 'int8', inputs: 'none' } as const;
  const conv = (name: string, filters: number, channels: number): FrozenWeightLayer => ({
    kind: 'conv',
    name,
    weightShape: [filters, channels, 3, 3],
    // Mostly positive weights: fewer outputs that cancel to near zero, where the quantized input's error is largest.
    weights: { kind: 'int8', ...quantizeRows(random(filters * channels * 9, 1, 0.5), filters, channels * 9) },
    scale: random(filters, 0.5, 1),
    shift: random(filters, 0.5),
    activation: 'relu',
    inputs: 'none',
  });
  const spec: ModelSpec = {
    format: 'cmp-model/1',
    arch: 'int8-convnet',
    input: { shape: [1, 28, 28], mean: 0, std: 1 },
    labels: Array.from({ length: 10 }, (_, i) => String(i)),
    layers: [
      { kind: 'conv', name: 'conv1', filters: 8, kernel: 3, batchNorm: true, activation: 'relu', binarize: int8 },
      { kind: 'maxpool', name: 'pool1', size: 2 },
      { kind: 'conv', name: 'conv2', filters: 12, kernel: 3, batchNorm: true, activation: 'relu', binarize: int8 },
      { kind: 'maxpool', name: 'pool2', size: 2 },
      { kind: 'flatten', name: 'flatten' },
      { kind: 'dense', name: 'logits', units: 10, batchNorm: false, activation: 'none', binarize: int8 },
    ],
  };
  return {
    spec,
    layers: [
      conv('conv1', 8, 1),
      { kind: 'maxpool', name: 'pool1', size: 2 },
      conv('conv2', 12, 8),
      { kind: 'maxpool', name: 'pool2', size: 2 },
      { kind: 'flatten', name: 'flatten' },
      {
        kind: 'dense',
        name: 'logits',
        weightShape: [300, 10],
        weights: { kind: 'int8', ...quantizeRows(random(10 * 300), 10, 300) },
        scale: new Float32Array(10).fill(1),
        shift: random(10, 0.1),
        activation: 'none',
        inputs: 'none',
      },
    ],
  };
}
