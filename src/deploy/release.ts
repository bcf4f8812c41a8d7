// Building a release for a device: the agent bundle, the model files, the runtime for the device's platform, and
// release.json with every file's SHA-256 and the host's answer for the smoke instance.

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RELEASE_LAYOUT, type ReleaseConfig, type ReleaseFileEntry } from '../core/release.js';
import { CMP_VERSION } from '../core/version.js';
import { CmpError } from '../errors.js';
import { modelFilesOf, type ModelFile } from '../runtime/model-file.js';
import { Predictor } from '../runtime/predictor.js';
import { isOrtNodeRuntimeFile, sha256Hex, walkFiles } from './package-files.js';

/** The package root: src/deploy and dist/deploy both sit two levels below it. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The agent bundle and the kernels beside it, built by `npm run build` (targets/build.ts). */
export const AGENT_BUNDLE_DIR = join(ROOT, 'dist', 'targets', 'rpi');
/** Largest |device logit - host logit| the health check accepts (another CPU sums float32 in another order). */
export const SMOKE_TOLERANCE = 1e-3;

/** Node's names for the device: process.platform and process.arch read there. */
export interface DevicePlatform {
  os: string;
  arch: string;
}

/** Which runtime a release carries for a platform, and why. */
export interface RuntimeChoice {
  backend: string;
  /** Folder of onnxruntime-node's native files for the platform, when it ships them. */
  nativeDir?: string;
  /** No native binary: the release carries onnxruntime-web's WebAssembly build for Node instead. */
  wasm: boolean;
  reason: string;
}

/** A release ready to upload: its config and where each file's bytes come from. */
export interface ReleasePlan {
  config: ReleaseConfig;
  /** Release-relative path -> local file, for every entry of config.files. */
  sources: Map<string, string>;
  bytes: number;
}

/**
 * onnxruntime-node where the npm package ships a binary for the device; otherwise no native code at all: bitwasm for
 * binary layers and onnxruntime-web's WebAssembly build (in Node) for the rest. `auto` picks on the device.
 */
export function chooseRuntime(platform: DevicePlatform): RuntimeChoice {
  const nativeDir = join(packageRoot('onnxruntime-node'), 'bin', 'napi-v6', platform.os, platform.arch);
  if (existsSync(join(nativeDir, 'onnxruntime_binding.node'))) {
    return {
      backend: 'auto',
      nativeDir,
      wasm: false,
      reason: `onnxruntime-node ships ${platform.os}/${platform.arch}`,
    };
  }
  return {
    backend: 'auto',
    wasm: true,
    reason: `onnxruntime-node has no ${platform.os}/${platform.arch} binary, so the release carries no native code: bitwasm for binary layers, onnxruntime-web (WebAssembly) otherwise`,
  };
}

/**
 * Plans the release of `model` for `platform`. The smoke instance (`smokePixels`, [0, 1] values of one whole input) is
 * answered here by onnxruntime-node; the device must give the same label and logits within SMOKE_TOLERANCE.
 */
export async function buildRelease(
  model: ModelFile,
  platform: DevicePlatform,
  smokePixels: Float32Array,
): Promise<ReleasePlan> {
  if (!existsSync(join(AGENT_BUNDLE_DIR, RELEASE_LAYOUT.agent))) {
    throw new CmpError('INTERNAL', `The device agent is not built (${AGENT_BUNDLE_DIR}). Run npm run build.`);
  }
  const runtime = chooseRuntime(platform);
  const sources = new Map<string, string>();
  for (const name of readdirSync(AGENT_BUNDLE_DIR)) sources.set(name, join(AGENT_BUNDLE_DIR, name));
  for (const { path, name } of modelFilesOf(model)) sources.set(`model/${name}`, path);
  const runtimeFiles = runtime.nativeDir ? nativeRuntimeFiles(platform) : wasmRuntimeFiles();
  for (const [to, from] of runtimeFiles) sources.set(to, from);

  const host = await Predictor.open(model, { backend: 'ort-node' });
  let smoke: ReleaseConfig['smoke'];
  try {
    const p = await host.infer(smokePixels);
    smoke = { input: [...smokePixels], label: p.label, logits: [...p.logits], tolerance: SMOKE_TOLERANCE };
  } finally {
    await host.dispose();
  }
  const files: ReleaseFileEntry[] = [...sources.entries()]
    .map(([path, from]) => ({ path, bytes: statSync(from).size, sha256: sha256Hex(readFileSync(from)) }))
    .sort((a, b) => a.path.localeCompare(b.path));
  const id = sha256Hex(JSON.stringify({ files: files.map((f) => [f.path, f.sha256]), backend: runtime.backend })).slice(
    0,
    12,
  );
  const config: ReleaseConfig = {
    schema: 'cmp-release/1',
    id,
    createdAt: new Date().toISOString(),
    cmpVersion: CMP_VERSION,
    model: `model/${basename(model.path)}`,
    ...(model.manifest?.training?.dataset ? { dataset: model.manifest.training.dataset } : {}),
    backend: runtime.backend,
    backendReason: runtime.reason,
    platform,
    smoke,
    files,
  };
  return { config, sources, bytes: files.reduce((a, f) => a + f.bytes, 0) };
}

/** onnxruntime-node's files for one platform and the CommonJS build of onnxruntime-common. */
function nativeRuntimeFiles(platform: DevicePlatform): Map<string, string> {
  return new Map([
    ...packageFiles('onnxruntime-node', (rel) => isOrtNodeRuntimeFile(rel, platform)),
    ...packageFiles('onnxruntime-common', (rel) => rel.startsWith('dist/cjs/') && /(\.js|\/package\.json)$/.test(rel)),
  ]);
}

/** onnxruntime-web's build for Node (ES module, single-threaded wasm) and the ES build of onnxruntime-common. */
function wasmRuntimeFiles(): Map<string, string> {
  const web = new Set(['dist/ort.node.min.mjs', 'dist/ort-wasm-simd-threaded.mjs', 'dist/ort-wasm-simd-threaded.wasm']);
  return new Map([
    ...packageFiles('onnxruntime-web', (rel) => web.has(rel)),
    ...packageFiles('onnxruntime-common', (rel) => rel.startsWith('dist/esm/') && /(\.js|\/package\.json)$/.test(rel)),
  ]);
}

/** Files of an installed package that `pick` keeps (and its package.json), as node_modules/<pkg>/<rel> -> file. */
function packageFiles(pkg: string, pick: (rel: string) => boolean): Map<string, string> {
  const root = packageRoot(pkg);
  const out = new Map<string, string>();
  for (const rel of walkFiles(root))
    if (rel === 'package.json' || pick(rel)) out.set(`node_modules/${pkg}/${rel}`, join(root, rel));
  return out;
}

/** The folder of an installed package (found from its entry point: some packages do not export package.json). */
function packageRoot(name: string): string {
  let dir = dirname(createRequire(import.meta.url).resolve(name));
  while (!existsSync(join(dir, 'package.json')) || basename(dir) !== name) {
    const up = dirname(dir);
    if (up === dir)
      throw new CmpError('INTERNAL', `Cannot find the folder of package ${name}. Reinstall with npm install.`);
    dir = up;
  }
  return dir;
}
