// The built-in backends, registered once: import this module to get `createBackend` with every runtime cmp ships.

import { registerBackend } from './backend.js';
import { bitwasmBackend } from './backend-bitwasm.js';
import { ortNodeBackend } from './backend-ort-node.js';
import { ortWebBackend } from './backend-ort-web.js';

registerBackend(bitwasmBackend);
registerBackend(ortNodeBackend);
registerBackend(ortWebBackend);

export { backendNames, createBackend, registerBackend, type Backend, type BackendFactory } from './backend.js';
