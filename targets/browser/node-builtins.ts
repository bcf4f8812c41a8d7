// Node's built-in modules as the browser bundle sees them (targets/build.ts aliases node:fs, node:fs/promises and
// node:module here): the page reads files by fetch, so a call that reaches one is a bug, named instead of a crash.

import { CmpError } from '../../src/edge.js';

function nodeOnly(name: string): never {
  throw new CmpError(
    'INTERNAL',
    `${name} is Node-only and was called in a browser. Read files by fetch (a ModelReader).`,
  );
}

export function readFileSync(): never {
  return nodeOnly('fs.readFileSync');
}

export function existsSync(): never {
  return nodeOnly('fs.existsSync');
}

export function statSync(): never {
  return nodeOnly('fs.statSync');
}

export function openSync(): never {
  return nodeOnly('fs.openSync');
}

export function fstatSync(): never {
  return nodeOnly('fs.fstatSync');
}

export function readSync(): never {
  return nodeOnly('fs.readSync');
}

export function closeSync(): never {
  return nodeOnly('fs.closeSync');
}

export function realpathSync(): never {
  return nodeOnly('fs.realpathSync');
}

/** The open flags external data reads with; their values never reach a browser call. */
export const constants = Object.freeze({ O_RDONLY: 0, O_NONBLOCK: 0 });

export async function readFile(): Promise<never> {
  return nodeOnly('fs/promises.readFile');
}

export function createRequire(): never {
  return nodeOnly('module.createRequire');
}
