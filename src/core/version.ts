// cmp's version, read once from package.json (the same relative path from src/ and dist/).

import { createRequire } from 'node:module';

export const CMP_VERSION: string = (createRequire(import.meta.url)('../../package.json') as { version: string })
  .version;
