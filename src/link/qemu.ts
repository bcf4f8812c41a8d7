// Running the firmware on an emulated board: qemu-system-arm with its UART on a pseudo-terminal.

import { spawn, type ChildProcess } from 'node:child_process';
import { CmpError } from '../errors.js';
import { checkBoard, requireTool } from './firmware-build.js';
import { McuClient, type ConnectOptions, type McuClientOptions } from './mcu-client.js';
import type { Capabilities } from './protocol.js';
import type { Transport } from './transport.js';
import { openSerialTransport } from './transport-serial.js';

/** QEMU machine names per board. */
const MACHINES: Readonly<Record<string, string>> = Object.freeze({ 'mps2-an385': 'mps2-an385' });

/** A running emulated board. */
export interface QemuBoard {
  /** The pseudo-terminal of the board's UART0, e.g. /dev/pts/3. */
  port: string;
  process: ChildProcess;
  /** Everything QEMU printed so far (for error messages). */
  log(): string;
  /** Resolves when QEMU exits, with its exit code (null when killed). */
  exited: Promise<number | null>;
  /** Stops QEMU (SIGTERM, then SIGKILL after 2 s); idempotent. */
  stop(): Promise<void>;
}

/** Options of {@link startQemu}. */
export interface QemuOptions {
  elfPath: string;
  board?: string;
  /** How long to wait for QEMU to print its PTY, ms. */
  startTimeoutMs?: number;
  /**
   * Run with `-icount shift=N`: the virtual clock advances 2^N ns per guest instruction instead of following host
   * time, so the board's counter measures instructions (N = 5: 31.25 M instructions per second, about a Cortex-M3
   * at 1 instruction per cycle) whatever else the host runs. Undefined: host time, as QEMU does by default.
   */
  icountShift?: number;
}

/**
 * Starts `qemu-system-arm -M <machine> -nographic -monitor none -serial pty -kernel <elf>` and resolves once it has
 * printed `char device redirected to /dev/pts/N`. QEMU drops bytes sent before it notices the client: talk to it
 * through {@link McuClient.connect}, which probes until answered.
 */
export async function startQemu(options: QemuOptions): Promise<QemuBoard> {
  const board = options.board ?? 'mps2-an385';
  checkBoard(board);
  requireTool('qemu-system-arm');
  const args = ['-M', MACHINES[board], '-nographic', '-monitor', 'none', '-serial', 'pty', '-kernel', options.elfPath];
  if (options.icountShift !== undefined) args.push('-icount', `shift=${options.icountShift},align=off,sleep=off`);
  const child = spawn('qemu-system-arm', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const port = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new CmpError(
          'IO',
          `QEMU printed no serial port within ${options.startTimeoutMs ?? 10000} ms: ${oneLine(output)}`,
        ),
      );
    }, options.startTimeoutMs ?? 10000);
    const onText = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      const match = /char device redirected to (\/dev\/[^\s(]+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout.on('data', onText);
    child.stderr.on('data', onText);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(
        new CmpError('IO', `Cannot start qemu-system-arm: ${err.message}. Run: apt-get install -y qemu-system-arm`, {
          cause: err,
        }),
      );
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new CmpError('IO', `QEMU exited (code ${code}) before it opened a serial port: ${oneLine(output)}`));
    });
  });
  let stopping: Promise<void> | undefined;
  return {
    port,
    process: child,
    log: () => output,
    exited,
    stop() {
      stopping ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
        await exited;
        clearTimeout(timer);
      })();
      return stopping;
    },
  };
}

/** A booted board with a connected client. */
export interface QemuSession {
  qemu: QemuBoard;
  transport: Transport;
  client: McuClient;
  capabilities: Capabilities;
  /** Disposes the client, closes the port and stops QEMU (whatever client and transport hold then). */
  close(): Promise<void>;
}

/**
 * Starts QEMU, opens its PTY with serialport and probes with HELLO until the firmware answers. `wrap` may put a relay
 * between the client and the port (tests use it to damage bytes).
 */
export async function bootQemu(
  options: QemuOptions & { client?: McuClientOptions; connect?: ConnectOptions; wrap?: (t: Transport) => Transport },
): Promise<QemuSession> {
  const qemu = await startQemu(options);
  let transport: Transport | undefined;
  try {
    const serial = await openSerialTransport(qemu.port);
    transport = options.wrap ? options.wrap(serial) : serial;
    const client = new McuClient(transport, options.client);
    const capabilities = await client.connect(options.connect);
    const session: QemuSession = {
      qemu,
      transport,
      client,
      capabilities,
      // Reads the fields at close time: a caller may have swapped in a new connection.
      async close() {
        session.client.dispose();
        await session.transport.close();
        await qemu.stop();
      },
    };
    return session;
  } catch (err) {
    await transport?.close();
    await qemu.stop();
    throw err;
  }
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim().slice(0, 300) || '(no output)';
}
