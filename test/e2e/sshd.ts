// A real OpenSSH server on 127.0.0.1 for the rpi target's tests: its own host key, a key-authenticated login as the
// current user, started and stopped by the test. Missing sshd fails loudly with what to install. The device is this
// machine, so the tests also look at its cmp folder directly (deviceRelease, deviceHealth).
// An ARM device is the same sshd with ChrootDirectory set to an ARM userland (test/arm-userlands.ts): sshd itself
// runs natively, and every login (shell, node, the service it leaves running) lands in the userland, where qemu-user
// runs its ARM programs; SFTP is sshd's internal one, so uploads land there too. Its folders are seen from here
// under the userland's root (hostPath).

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createConnection, createServer } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { prepareUserland, type ArmArch } from '../arm-userlands.js';
import { HANG_MS, sleep, tempDir } from '../helpers.js';

export const SSHD = '/usr/sbin/sshd';

export interface Sshd {
  port: number;
  dir: string;
  user: string;
  /** The client's private key (authorized on this server). */
  identity: string;
  /** A known_hosts file that lists this server's key. */
  knownHosts: string;
  /** `user@127.0.0.1:port`. */
  host: string;
  /** Stops the server and every session it runs (what a cut connection or a powered-off device looks like). */
  kill(): void;
  /** Starts it again on the same port with the same keys. */
  restart(): Promise<void>;
  /** The ARM userland logins land in, or undefined for this machine itself. */
  arch?: ArmArch;
  /** Where the device's `/` is on this machine: `/` itself, or the userland's root. */
  root: string;
}

export interface SshdOptions {
  /** PATH of the sessions (sshd's SetEnv), e.g. to make a device without Node. */
  path?: string;
  /** Logins land in this ARM userland (built by test/arm-userlands.ts; needs root, as chroot does). */
  arch?: ArmArch;
}

/** Starts sshd on a free port of 127.0.0.1. */
export async function startSshd(options: SshdOptions = {}): Promise<Sshd> {
  if (!existsSync(SSHD)) throw new Error(`${SSHD} is missing: run apt-get install openssh-server`);
  mkdirSync('/run/sshd', { recursive: true });
  const root = options.arch ? prepareUserland(options.arch) : '/';
  const dir = tempDir('cmp-sshd-');
  for (const key of ['host_key', 'client_key']) {
    const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, key)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
  }
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client_key.pub')));
  const port = await freePort();
  const user = userInfo().username;
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host_key')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'UsePAM no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PubkeyAuthentication yes',
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'StrictModes no',
      `AllowUsers ${user}`,
      'PermitRootLogin prohibit-password',
      'Subsystem sftp internal-sftp',
      'LogLevel ERROR',
      ...(options.path ? [`SetEnv PATH=${options.path}`] : []),
      ...(options.arch ? [`ChrootDirectory ${root}`] : []),
      '',
    ].join('\n'),
  );
  const hostKey = readFileSync(join(dir, 'host_key.pub'), 'utf8').trim().split(/\s+/);
  const knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, `[127.0.0.1]:${port} ${hostKey[0]} ${hostKey[1]}\n`);
  let child: ChildProcess | undefined;
  const launch = async (): Promise<void> => {
    child = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const deadline = Date.now() + HANG_MS;
    while (!(await accepts(port))) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`sshd did not start: ${stderr.trim()}`);
      await sleep(50);
    }
  };
  await launch();
  return {
    port,
    dir,
    user,
    identity: join(dir, 'client_key'),
    knownHosts,
    host: `${user}@127.0.0.1:${port}`,
    kill(): void {
      const pid = child?.pid;
      if (pid === undefined) return;
      // Sessions are sshd's descendants (a privileged monitor, its unprivileged session, sftp-server or the shell
      // below it): kill them all at once, as a cut link would end them, so none finishes the transfer it was in.
      for (const session of descendantsOf(pid)) {
        try {
          process.kill(session, 'SIGKILL');
        } catch {
          // it ended meanwhile
        }
      }
      child?.kill('SIGKILL');
      child = undefined;
    },
    restart: launch,
    ...(options.arch ? { arch: options.arch } : {}),
    root,
  };
}

/** A folder on the device as this machine sees it. */
export function hostPath(device: Pick<Sshd, 'root'>, path: string): string {
  return join(device.root, path);
}

/** A fresh empty folder on the device, as the device names it (under its /tmp). */
export function deviceTempDir(device: Pick<Sshd, 'root'>, prefix: string): string {
  if (device.root === '/') return tempDir(prefix);
  const dir = mkdtempSync(join(device.root, 'tmp', prefix));
  return dir.slice(device.root.length);
}

/** Pids below `pid` in the process tree, children first, read from /proc (no procps needed). */
function descendantsOf(pid: number): number[] {
  const parents = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // Field 4 of /proc/PID/stat is the parent pid; the command name before it may hold spaces, so split after ')'.
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      parents.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // it ended meanwhile
    }
  }
  const found: number[] = [];
  for (let i = -1; i < found.length; i++) {
    const parent = i < 0 ? pid : found[i];
    for (const [child, p] of parents) if (p === parent) found.push(child);
  }
  return found;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Cuts `device` off while `deploy` (a running cmp deploy) uploads to it: once a partial release folder appears in
 * `releasesDir`, the deploy is paused (SIGSTOP), the server and its sessions are killed, and the deploy resumes to find
 * its connection gone. The pause makes the cut land mid-upload however loaded the machine is: the rename that ends an
 * upload needs the paused client's next request, where a plain kill could come after an upload that finished first.
 */
export async function cutMidUpload(deploy: ChildProcess, releasesDir: string, device: Sshd): Promise<void> {
  const uploading = (): boolean =>
    existsSync(releasesDir) && readdirSync(releasesDir).some((n) => n.startsWith('.partial-'));
  for (const deadline = Date.now() + HANG_MS; !uploading(); await sleep(5)) {
    if (deploy.exitCode !== null) throw new Error(`the deploy ended (code ${deploy.exitCode}) before its upload began`);
    if (Date.now() > deadline) throw new Error('the upload never began');
  }
  deploy.kill('SIGSTOP');
  device.kill();
  deploy.kill('SIGCONT');
}

/** The release a device folder's `current` link names. */
export function deviceRelease(dir: string): string {
  return readlinkSync(join(dir, 'current')).split('/').pop() as string;
}

/** GET /health of the service on a device folder's socket, straight from the device side. */
export function deviceHealth(dir: string): Promise<{ ok: boolean; release: string; backend: string }> {
  return new Promise((resolve, reject) => {
    // agent: false, a fresh connection each time: a kept-alive one would outlive the service it talked to.
    const req = request({ socketPath: join(dir, 'agent.sock'), path: '/health', agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(JSON.parse(body) as { ok: boolean; release: string; backend: string }));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Stops a device folder's service (it outlives SSH sessions by design), so a test leaves nothing running: `dir` as
 * the device names it, stopped by the device's own node (in its userland, for an ARM device).
 */
export function stopDeviceService(dir: string, device: Pick<Sshd, 'root'> = { root: '/' }): void {
  if (!existsSync(join(hostPath(device, dir), 'current'))) return;
  const script = join(dir, 'current', 'cmp-edge.mjs');
  if (device.root === '/') spawnSync(process.execPath, [script, 'stop']);
  else spawnSync('chroot', [device.root, 'node', script, 'stop']);
}
