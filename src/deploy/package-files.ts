// Copying installed packages to another machine (a device release, the Electron app): which files, and their hashes.

import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

/** Every file under `root` outside nested node_modules, as relative paths with forward slashes. */
export function walkFiles(root: string, sub = ''): string[] {
  return readdirSync(join(root, sub), { withFileTypes: true }).flatMap((e) => {
    const rel = sub ? `${sub}/${e.name}` : e.name;
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : walkFiles(root, rel);
    return e.isFile() ? [rel] : [];
  });
}

/** SHA-256 as lowercase hex. */
export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Whether `rel` (a path inside the onnxruntime-node package) runs on `platform`: its package.json, its CommonJS code
 * and that platform's native folder, about a fifth of the npm package.
 */
export function isOrtNodeRuntimeFile(rel: string, platform: { os: string; arch: string }): boolean {
  return (
    rel === 'package.json' ||
    /^dist\/[^/]+\.js$/.test(rel) ||
    rel.startsWith(`bin/napi-v6/${platform.os}/${platform.arch}/`)
  );
}
