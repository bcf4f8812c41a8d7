// Electron on this machine: the optional dependency's binary when its download worked, and the version cmp asks for.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** The Electron binary when the optional dependency installed with its binary, else undefined. */
export function electronBinary(): string | undefined {
  try {
    // The electron package's main module is the path of its binary (it throws when the download failed).
    const path: unknown = require('electron');
    return typeof path === 'string' && existsSync(path) ? path : undefined;
  } catch {
    return undefined;
  }
}

/** The Electron versions the app is built for: package.json's optional dependency, e.g. "^41.7.1". */
export function electronRange(): string {
  const pkg = require('../../package.json') as { optionalDependencies?: Record<string, string> };
  return pkg.optionalDependencies?.electron ?? 'any';
}
