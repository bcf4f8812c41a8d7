// cmp deploy --target browser: writes a static site that runs the model with onnxruntime-web or bitwasm.

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
import { basename, isAbsolute, join, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { modelFilePaths } from '../../core/manifest.js';
import {
  parseSiteConfig,
  SITE_LAYOUT,
  SITE_RUNTIMES,
  SITE_SCHEMA,
  type SiteConfig,
  type SitePrediction,
  type SiteRuntime,
} from '../../core/site.js';
import { isBinaryMode } from '../../core/spec.js';
import { CMP_VERSION } from '../../core/version.js';
import { recordDevice } from '../../deploy/devices.js';
import { CmpError, isCmpError } from '../../errors.js';
import { datasetConsumer, readModelFile, type ModelFile } from '../../runtime/model-file.js';
import { Predictor } from '../../runtime/predictor.js';
import type { FlagDef, Parsed } from '../args.js';
import type { CliIo } from '../command.js';
import { loadDataFlag } from '../data-flag.js';
import { formatBytes, formatPercent, formatTable } from '../table.js';

/** Backends a browser has: ort-node is a native addon and never runs there. */
export const BROWSER_BACKENDS: readonly string[] = Object.freeze(['auto', 'ort-web', 'bitwasm']);

/** Flags only this target reads. */
export const BROWSER_DEPLOY_FLAGS: Record<string, FlagDef> = {
  out: {
    type: 'string',
    value: 'DIR',
    help: 'browser: folder the static site is written to (new, empty, or an earlier cmp site)',
  },
  samples: { type: 'int', default: '100', help: 'browser: test images the page answers and profiles' },
  backend: {
    type: 'string',
    value: 'NAME',
    default: 'auto',
    choices: BROWSER_BACKENDS,
    help: 'browser: backend the page opens the model on (the address may override it: ?backend=NAME)',
  },
};

/** Writes the static site. */
export const browserDeploy = {
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const f = parsed.flags;
    const out = f.out as string | undefined;
    if (!out) {
      throw new CmpError('BAD_FLAG', 'cmp deploy --target browser needs --out DIR, the folder the site is written to.');
    }
    const backend = (f.backend as string | undefined) ?? 'auto';
    // deploy merges every target's flags, so a --backend of another target could have passed the parser's choices.
    if (!BROWSER_BACKENDS.includes(backend)) {
      throw new CmpError(
        'BAD_FLAG',
        `--backend ${backend} does not run in a browser. Use one of: ${BROWSER_BACKENDS.join(', ')}.`,
      );
    }
    const previous = checkOut(out);
    const bundle = bundleDir();
    const file = readModelFile(parsed.positionals[0]);
    const modelFiles = modelFilePaths(file.path, file.manifest).map((path) => ({
      site: posix.join(SITE_LAYOUT.modelDir, basename(path)),
      bytes: path === file.path ? file.bytes : readSibling(path, file.path),
    }));
    const data = await loadDataFlag(f.data, io, datasetConsumer(file), {
      limitTest: (f.samples as number | undefined) ?? 100,
      limitTrain: 1,
      use: 'test',
    });
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
        io.progress.update(`host predictions ${i}/${count}`);
        const p = await host.infer(pixels.subarray(i * features, (i + 1) * features));
        predictions.push({ label: p.label, exit: p.exit, logits: Array.from(p.logits) });
      }
    } finally {
      await host.dispose();
    }
    if (backend !== 'auto') {
      // The page would fail later on a backend that cannot run this model (bitwasm and early exits): say so now.
      io.progress.update(`opening ${file.path} on ${backend}`);
      await (await Predictor.open(file, { backend })).dispose();
    }
    const shipped = await siteRuntimes(file, backend);
    io.progress.done();

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
    const result = {
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
      /** Bytes by part: page (index.html and its script), each runtime, model, samples, site.json. */
      parts,
      host: { backend: 'ort-node', accuracy: hostAccuracy },
      serve: `cmp serve ${out}`,
    };
    recordDevice({
      kind: 'browser',
      name: resolve(out),
      path: resolve(out),
      model: file.path,
      deployedAt: new Date().toISOString(),
    });
    if (io.json) io.out(JSON.stringify(result, null, 2));
    else {
      io.out(
        formatTable(
          ['model', 'site', 'samples', 'backend', 'files', 'size', 'host accuracy'],
          [
            [
              file.path,
              out,
              `${count} ${data.name}`,
              backend,
              result.files,
              formatBytes(bytes),
              formatPercent(hostAccuracy),
            ],
          ],
        ),
      );
      const said = Object.entries(parts).map(([part, n]) => `${part} ${formatBytes(n)}`);
      io.out(
        `Site: ${formatBytes(bytes)} (${said.join(', ')}). Runtimes: ${shipped.runtimes.join(' and ')} (${shipped.why}).`,
      );
      io.out(`Serve it: cmp serve ${out}`);
    }
    return 0;
  },
};

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
  for (const url of ['../../targets/browser/', '../../../dist/targets/browser/']) {
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
