// The browser target: a static site that runs the model with onnxruntime-web or bitwasm (cmp serve serves it; its
// pages profile themselves and post cmp-profile/1 back, which the site keeps under profiles/).

import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { basename, isAbsolute, join, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { modelFilePaths } from '../core/manifest.js';
import {
  parseSiteConfig,
  SITE_LAYOUT,
  SITE_RUNTIMES,
  SITE_SCHEMA,
  type SiteConfig,
  type SitePrediction,
  type SiteRuntime,
} from '../core/site.js';
import { isBinaryMode } from '../core/spec.js';
import { CMP_VERSION } from '../core/version.js';
import { CmpError, isCmpError } from '../errors.js';
import { checkDeviceProfile } from '../profile/device-profile-check.js';
import type { DeviceProfile } from '../profile/device-profile.js';
import { datasetConsumer, type ModelFile } from '../runtime/model-file.js';
import { Predictor } from '../runtime/predictor.js';
import { recordDevice } from './devices.js';
import type { Target } from './target.js';

/** Backends a browser has: ort-node is a native addon and never runs there. */
export const BROWSER_BACKENDS: readonly string[] = Object.freeze(['auto', 'ort-web', 'bitwasm']);

/** Largest profile a page may post, bytes (one latency per instance leaves room for 100,000). */
export const MAX_SITE_PROFILE_BYTES = 8 * 1024 * 1024;

/** A site folder, and what the site's page runs. */
export interface BrowserDevice {
  /** The folder the site is written to: new, empty, or a site cmp wrote before. */
  out: string;
  /** The backend the page opens the model on (default auto; the address may override it: ?backend=NAME). */
  backend?: string;
  /** Test instances the page answers and profiles (default 100). */
  samples?: number;
}

/** What a site deploy wrote. */
export interface BrowserDeployReport {
  model: string;
  target: 'browser';
  out: string;
  dataset: string;
  samples: number;
  backend: string;
  files: number;
  bytes: number;
  runtimes: SiteRuntime[];
  runtimesReason: string;
  /** Bytes by part: page (index.html and its script), each runtime, model, samples, site.json. */
  parts: Record<string, number>;
  host: { backend: 'ort-node'; accuracy: number };
}

export const browserTarget: Target<BrowserDevice, BrowserDeployReport> = {
  kind: 'browser',
  what: 'a static site, with --out DIR',

  async deploy(device, file, options) {
    const { out } = device;
    const progress = options.onProgress ?? (() => undefined);
    const backend = device.backend ?? 'auto';
    if (!BROWSER_BACKENDS.includes(backend)) {
      throw new CmpError(
        'BAD_FLAG',
        `--backend ${backend} does not run in a browser. Use one of: ${BROWSER_BACKENDS.join(', ')}.`,
      );
    }
    const previous = checkOut(out);
    const bundle = bundleDir();
    const modelFiles = modelFilePaths(file.path, file.manifest).map((path) => ({
      site: posix.join(SITE_LAYOUT.modelDir, basename(path)),
      bytes: path === file.path ? file.bytes : readSibling(path, file.path),
    }));
    const data = await options.data(datasetConsumer(file), device.samples ?? 100);
    const count = data.test.count;
    const features = data.inputShape.reduce((a, b) => a * b, 1);
    const pixels = data.test.x.subarray(0, count * features);

    const host = await Predictor.open(file, { backend: 'ort-node' });
    const predictions: SitePrediction[] = [];
    try {
      if (host.features !== features) {
        throw new CmpError(
          'BAD_FLAG',
          `${file.path} takes ${host.features} values per instance but ${data.name} images have ${features}. Pass --data with the model's data set.`,
        );
      }
      for (let i = 0; i < count; i++) {
        progress(`host predictions ${i}/${count}`);
        const p = await host.infer(pixels.subarray(i * features, (i + 1) * features));
        predictions.push({ label: p.label, exit: p.exit, logits: Array.from(p.logits) });
      }
    } finally {
      await host.dispose();
    }
    if (backend !== 'auto') {
      // The page would fail later on a backend that cannot run this model (bitwasm and early exits): say so now.
      progress(`opening ${file.path} on ${backend}`);
      await (await Predictor.open(file, { backend })).dispose();
    }
    const shipped = await siteRuntimes(file, backend);

    // The runtimes the page will not use stay out: onnxruntime-web alone is 13.6 MiB, a binary model 1/100th of it.
    const left = Object.entries(SITE_RUNTIMES).flatMap(([name, files]) =>
      shipped.runtimes.includes(name as SiteRuntime) ? [] : files,
    );
    const bundleFiles = readdirSync(bundle).filter(
      (name) => statSync(join(bundle, name)).isFile() && !left.includes(name),
    );
    const config: SiteConfig = {
      schema: SITE_SCHEMA,
      createdAt: new Date().toISOString(),
      cmpVersion: CMP_VERSION,
      model: modelFiles[0].site,
      backend,
      runtimes: shipped.runtimes,
      samples: {
        file: SITE_LAYOUT.samples,
        dataset: data.name,
        count,
        features,
        labels: Array.from(data.test.y),
        classes: file.manifest?.labels ?? data.labels,
        host: { backend: 'ort-node', predictions },
      },
      files: [...bundleFiles, ...modelFiles.map((m) => m.site), SITE_LAYOUT.samples],
    };
    let bytes = 0;
    const parts: Record<string, number> = Object.fromEntries(
      ['page', ...shipped.runtimes, 'model', 'samples', SITE_LAYOUT.config].map((part) => [part, 0]),
    );
    try {
      if (previous) removeSite(out, previous);
      mkdirSync(join(out, SITE_LAYOUT.modelDir), { recursive: true });
      // site.json first: a deploy cut short still names every file it owns, so the next one can clear them.
      writeFileSync(join(out, SITE_LAYOUT.config), `${JSON.stringify(config, null, 2)}\n`);
      for (const name of bundleFiles) copyFileSync(join(bundle, name), join(out, name));
      for (const m of modelFiles) writeFileSync(join(out, m.site), m.bytes);
      writeFileSync(
        join(out, SITE_LAYOUT.samples),
        new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.byteLength),
      );
      for (const name of [SITE_LAYOUT.config, ...config.files]) {
        const size = statSync(join(out, name)).size;
        const part = sitePart(
          name,
          modelFiles.map((m) => m.site),
        );
        parts[part] += size;
        bytes += size;
      }
    } catch (err) {
      throw new CmpError('IO', `Cannot write the site to ${out}: ${(err as Error).message}. Check the folder.`, {
        cause: err,
      });
    }

    const hostAccuracy = count ? predictions.filter((p, i) => p.label === data.test.y[i]).length / count : 0;
    recordDevice({
      kind: 'browser',
      name: resolve(out),
      path: resolve(out),
      model: file.path,
      deployedAt: new Date().toISOString(),
    });
    return {
      model: file.path,
      target: 'browser',
      out,
      dataset: data.name,
      samples: count,
      backend,
      files: config.files.length + 1,
      bytes,
      runtimes: shipped.runtimes,
      runtimesReason: shipped.why,
      parts,
      host: { backend: 'ort-node', accuracy: hostAccuracy },
    };
  },

  /**
   * A browser profiles itself in the site's page and posts the profile to cmp serve, which keeps it under profiles/:
   * the newest one posted, checked whole. `request` is not run here (the page chose its instances).
   */
  async profile(device) {
    const dir = join(device.out, SITE_LAYOUT.profilesDir);
    const names = await readdir(dir).catch((): string[] => []);
    const newest = names
      .filter((n) => n.endsWith('.json'))
      .sort()
      .at(-1);
    if (!newest) {
      throw new CmpError(
        'BAD_ARGUMENT',
        `No browser has posted a profile to ${device.out} yet. Serve the site (cmp serve ${device.out}), open it in a browser and press Profile.`,
      );
    }
    const path = join(dir, newest);
    if ((await stat(path)).size > MAX_SITE_PROFILE_BYTES) {
      throw new CmpError(
        'BAD_ARGUMENT',
        `${path} is larger than a profile's ${MAX_SITE_PROFILE_BYTES} bytes. Remove it.`,
      );
    }
    let value: unknown;
    try {
      value = JSON.parse(await readFile(path, 'utf8'));
    } catch (err) {
      throw new CmpError('BAD_ARGUMENT', `${path} is not JSON. Remove it; the page posts a new one.`, { cause: err });
    }
    return { profile: checkDeviceProfile(value, path, { quote: false }), details: undefined };
  },
};

/**
 * Stores a profile a page posted in the site's profiles/, as <time>-<backend>.json (names sort by time, so the last
 * is the newest); returns its path inside the site.
 */
export async function saveSiteProfile(root: string, profile: DeviceProfile): Promise<string> {
  const dir = join(root, SITE_LAYOUT.profilesDir);
  await mkdir(dir, { recursive: true });
  const stem = `${new Date().toISOString().replace(/[:.]/g, '-')}-${profile.backend.replace(/[^a-z0-9-]/gi, '_').slice(0, 32)}`;
  for (let n = 1; ; n++) {
    const name = `${stem}${n > 1 ? `-${n}` : ''}.json`;
    try {
      await writeFile(join(dir, name), `${JSON.stringify(profile, null, 2)}\n`, { flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw err;
    }
    return `${SITE_LAYOUT.profilesDir}/${name}`;
  }
}

/**
 * The runtimes a site ships for `backend`: the one asked for; with auto, bitwasm alone when it runs the model and
 * every weight layer is binary (where it beats onnxruntime-web), both when float layers leave the choice to auto's
 * race in the page, onnxruntime-web when bitwasm cannot run the model.
 */
async function siteRuntimes(file: ModelFile, backend: string): Promise<{ runtimes: SiteRuntime[]; why: string }> {
  if (backend === 'bitwasm' || backend === 'ort-web') return { runtimes: [backend], why: `--backend ${backend}` };
  try {
    await (await Predictor.open(file, { backend: 'bitwasm' })).dispose();
  } catch (err) {
    const reason = isCmpError(err) ? err.message.replace(/\.$/, '') : String(err);
    return { runtimes: ['ort-web'], why: `bitwasm cannot run the model: ${reason}` };
  }
  const layers = file.manifest?.layers ?? [];
  if (layers.length > 0 && layers.every((l) => isBinaryMode(l.weights))) {
    return {
      runtimes: ['bitwasm'],
      why: 'every weight layer is binary; --backend ort-web ships onnxruntime-web instead',
    };
  }
  return { runtimes: ['bitwasm', 'ort-web'], why: "float or int8 layers: auto's race in the page picks one" };
}

/** Which part of a site a file belongs to, for the size report. */
function sitePart(name: string, modelFiles: string[]): string {
  if (modelFiles.includes(name)) return 'model';
  if (name === SITE_LAYOUT.samples) return 'samples';
  if (name === SITE_LAYOUT.config) return SITE_LAYOUT.config;
  for (const [runtime, files] of Object.entries(SITE_RUNTIMES)) if (files.includes(name)) return runtime;
  return 'page';
}

/**
 * Reads a site's config, or undefined when `dir` holds none (or a foreign file by that name); a damaged cmp-site/1
 * file is one line naming its bad field.
 */
export function readSiteConfig(dir: string): SiteConfig | undefined {
  const path = join(dir, SITE_LAYOUT.config);
  let config: unknown;
  try {
    config = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
  return (config as { schema?: unknown } | null)?.schema === SITE_SCHEMA ? parseSiteConfig(config, path) : undefined;
}

/** The earlier site in `out`, if any; refuses a file, or a folder with files that cmp did not write. */
function checkOut(out: string): SiteConfig | undefined {
  if (!existsSync(out)) return undefined;
  if (!statSync(out).isDirectory()) {
    throw new CmpError('BAD_FLAG', `--out ${out} is a file, not a folder. Pass a folder for the site.`);
  }
  if (readdirSync(out).length === 0) return undefined;
  const previous = readSiteConfig(out);
  if (!previous) {
    throw new CmpError(
      'BAD_FLAG',
      `--out ${out} holds files and is not a cmp site (no ${SITE_LAYOUT.config}). Pass a new or empty folder; cmp replaces only sites it wrote.`,
    );
  }
  return previous;
}

/** Removes the files an earlier deploy wrote, never a path outside `out`, its config, or the profiles it gathered. */
function removeSite(out: string, previous: SiteConfig): void {
  for (const path of previous.files) {
    const owned =
      typeof path === 'string' &&
      !isAbsolute(path) &&
      posix.normalize(path) === path &&
      !path.split('/').includes('..') &&
      path !== SITE_LAYOUT.config &&
      !path.startsWith(`${SITE_LAYOUT.profilesDir}/`);
    if (owned) rmSync(join(out, path), { force: true });
  }
  try {
    rmdirSync(join(out, SITE_LAYOUT.modelDir));
  } catch {
    // not empty or not there: left as it is
  }
}

/** The page bundle (targets/build.ts): beside the compiled CLI in dist/, or dist/ itself when running from src/. */
function bundleDir(): string {
  for (const url of ['../targets/browser/', '../../dist/targets/browser/']) {
    const dir = fileURLToPath(new URL(url, import.meta.url));
    if (existsSync(join(dir, SITE_LAYOUT.bundle))) return dir;
  }
  throw new CmpError(
    'IO',
    `The browser page is not built (no dist/targets/browser/${SITE_LAYOUT.bundle}). Run npm run build.`,
  );
}

function readSibling(path: string, model: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new CmpError(
      'MODEL_INVALID',
      `${model} needs ${path} beside it, which cannot be read (${(err as Error).message}). Export the model again.`,
      { cause: err },
    );
  }
}
