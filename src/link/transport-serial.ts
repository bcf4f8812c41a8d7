// The serialport adapter of Transport: the only file that imports serialport (a real UART or a PTY from QEMU).

import { SerialPort } from 'serialport';
import { CmpError } from '../errors.js';
import type { Transport } from './transport.js';

/** Options of {@link openSerialTransport}. */
export interface SerialOptions {
  /** Line speed; a PTY ignores it. */
  baudRate?: number;
}

/** The default line speed of the firmware's UART. */
export const DEFAULT_BAUD_RATE = 115200;

/** Opens a serial port (e.g. /dev/ttyACM0, or the /dev/pts/N QEMU prints) as a Transport, 8N1, raw. */
export async function openSerialTransport(path: string, options: SerialOptions = {}): Promise<Transport> {
  const port = new SerialPort({ path, baudRate: options.baudRate ?? DEFAULT_BAUD_RATE, autoOpen: false });
  await new Promise<void>((resolve, reject) => {
    port.open((err) => (err ? reject(err) : resolve()));
  }).catch((err: unknown) => {
    throw new CmpError(
      'IO',
      `Cannot open serial port ${path}: ${(err as Error).message}. Check the path (QEMU prints it as "char device redirected to /dev/pts/N").`,
      { cause: err },
    );
  });
  const listeners = new Set<(bytes: Uint8Array) => void>();
  port.on('data', (chunk: Buffer) => {
    const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    for (const listener of listeners) listener(bytes);
  });
  // Errors after opening (device unplugged, QEMU gone) surface as write failures or timeouts in the client.
  port.on('error', () => undefined);
  let closed = false;
  return {
    name: path,
    write: (bytes) =>
      new Promise<void>((resolve, reject) => {
        port.write(Buffer.from(bytes), (err) => {
          if (err)
            reject(new CmpError('IO', `Writing to ${path} failed: ${err.message}. Check the device is still there.`));
          else
            port.drain((e) => (e ? reject(new CmpError('IO', `Writing to ${path} failed: ${e.message}.`)) : resolve()));
        });
      }),
    onData(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (closed || !port.isOpen) {
          closed = true;
          resolve();
          return;
        }
        closed = true;
        port.close(() => resolve());
      }),
  };
}

/** A serial port the system lists (USB boards, UARTs); pseudo-terminals such as QEMU's are never listed. */
export interface ListedSerialPort {
  path: string;
  manufacturer?: string;
  serialNumber?: string;
}

/** The ports the system lists. On Linux this needs udevadm (apt-get install udev); without it, a CmpError. */
export async function listSerialPorts(): Promise<ListedSerialPort[]> {
  try {
    const ports = await SerialPort.list();
    return ports.map((p) => ({
      path: p.path,
      ...(p.manufacturer ? { manufacturer: p.manufacturer } : {}),
      ...(p.serialNumber ? { serialNumber: p.serialNumber } : {}),
    }));
  } catch (err) {
    throw new CmpError(
      'IO',
      `Cannot list serial ports: ${(err as Error).message.split('\n')[0]}. On Linux install udev (apt-get install udev), or name the port.`,
      { cause: err },
    );
  }
}
