// cmp's version, read once from package.json (the same relative path from src/ and dist/); bundles get it defined.

import { createRequire } from 'node:module';

// targets/build.ts defines this in device bundles, which have no package.json beside them.
declare const __CMP_VERSION__: string | undefined;

export const CMP_VERSION: string =
  typeof __CMP_VERSION__ === 'string'
    ? __CMP_VERSION__
    : (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
