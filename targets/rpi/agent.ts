// cmp-edge: the program a release runs on the device (bundled by targets/build.ts).

import { CMP_VERSION } from '../../src/edge.js';

process.stdout.write(`cmp-edge ${CMP_VERSION}\n`);
