// Reading a file a user or a model file named: regular files only, opened without blocking, never past a size limit,
// and (for files a model names beside itself) never through a link that leads out of the model's folder.

import { closeSync, constants, fstatSync, openSync, readSync, realpathSync } from 'node:fs';
import { sep } from 'node:path';

/**
 * The bytes of the regular file at `path`. Throws a plain Error whose message says what is wrong (the caller wraps it
 * into its one-line CmpError): not a regular file (a device such as /dev/zero, a FIFO, a folder), larger than
 * `maxBytes`, or, with `inside`, a real path (links resolved) outside that folder.
 */
export function readRegularFile(path: string, options: { maxBytes?: number; inside?: string } = {}): Uint8Array {
  const real = realpathSync(path);
  if (options.inside !== undefined) {
    const folder = realpathSync(options.inside);
    if (!real.startsWith(folder.endsWith(sep) ? folder : folder + sep)) {
      throw new Error(`it leads to a file outside ${options.inside}`);
    }
  }
  // Non-blocking: a FIFO in the file's place must not stall the open.
  const fd = openSync(real, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new Error('it is not a regular file');
    const max = options.maxBytes ?? Number.MAX_SAFE_INTEGER;
    if (stat.size > max) throw new Error(`it is ${stat.size} bytes, over the ${max} this file can be`);
    const data = new Uint8Array(stat.size);
    for (let done = 0; done < data.length;) {
      const n = readSync(fd, data, done, data.length - done, done);
      if (n === 0) return data.subarray(0, done); // it shrank while being read
      done += n;
    }
    return data;
  } finally {
    closeSync(fd);
  }
}
