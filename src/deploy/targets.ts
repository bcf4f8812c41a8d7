// The built-in targets, registered once: import this module for TARGETS (each kind's target, typed) and targetFor.

import { registerTarget } from './target.js';
import { browserTarget } from './target-browser.js';
import { electronTarget } from './target-electron.js';
import { localTarget } from './target-local.js';
import { mcuTarget } from './target-mcu.js';
import { rpiTarget } from './target-rpi.js';

/** Every target by kind: the dashboard and the CLI call `TARGETS[kind].profile()` alike. */
export const TARGETS = Object.freeze({
  local: localTarget,
  rpi: rpiTarget,
  mcu: mcuTarget,
  browser: browserTarget,
  electron: electronTarget,
});

for (const target of Object.values(TARGETS)) registerTarget(target);

export { DEVICE_KINDS, readDeviceKind, targetFor, targetKinds, type DeviceKind } from './target.js';
