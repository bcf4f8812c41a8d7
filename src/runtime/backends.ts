// The built-in backends, registered once: import this module to get `createBackend` with every runtime cmp ships.

import { CmpError } from '../errors.js';
import { registerBackend, type BackendFactory } from './backend.js';
import { bitwasmBackend } from './backend-bitwasm.js';
import { ortNodeBackend } from './backend-ort-node.js';
import { ortWebBackend } from './backend-ort-web.js';

/**
 * bitwasm runs a model with early exits stage by stage, from its stage files (the whole file's If control flow is not
 * one of its ops), so `auto` ranks the whole file last and its stage files as any other.
 */
const bitwasmWithoutExits: BackendFactory = {
  ...bitwasmBackend,
  rank: (file) =>
    file.manifest?.exits?.length && !file.manifest.stage ? 0 : (bitwasmBackend.rank?.(file) ?? bitwasmBackend.priority),
  create: (file) => {
    if (file.manifest?.exits?.length && !file.manifest.stage) {
      return Promise.reject(
        new CmpError(
          'BACKEND_UNAVAILABLE',
          `bitwasm runs ${file.path} stage by stage, from its stage files, as cmp run and the device runtimes load it; give it a stage file, not the whole model`,
        ),
      );
    }
    return bitwasmBackend.create(file);
  },
};

registerBackend(bitwasmWithoutExits);
// A native addon that only Node loads: in a browser `auto` never tries it, and the names on offer leave it out.
if (typeof process !== 'undefined' && typeof process.versions?.node === 'string') registerBackend(ortNodeBackend);
registerBackend(ortWebBackend);

export { backendNames, createBackend, registerBackend, type Backend, type BackendFactory } from './backend.js';
