// The ssh2 adapter: the only file that imports ssh2. Host keys are checked against known_hosts, keys come from
// --identity, the SSH agent or ~/.ssh/id_*, and every failure is one line that says what to do.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import ssh2, { type AgentAuthMethod, type PublicKeyAuthMethod, type SFTPWrapper } from 'ssh2';
import { CmpError } from '../errors.js';
import {
  addHostKey,
  checkHostKey,
  GLOBAL_KNOWN_HOSTS,
  keyTypeOf,
  knownHostName,
  type HostKeyVerdict,
} from './known-hosts.js';
import { formatAddress, shellQuote, type ExecResult, type Remote, type RemoteAddress } from './remote.js';

// ssh2 is CommonJS: Node gives an ES module its exports only as the default import.
const { Client, utils } = ssh2;

export interface SshOptions {
  /** Private key file (OpenSSH or PEM, unencrypted; encrypted keys belong in the agent). */
  identity?: string;
  /** Trust and remember a host that known_hosts does not list yet. */
  acceptNewHostKey?: boolean;
  /** known_hosts file (default ~/.ssh/known_hosts); the global files (GLOBAL_KNOWN_HOSTS) are read after it. */
  knownHosts?: string;
  /** The system-wide known_hosts files (default GLOBAL_KNOWN_HOSTS, as ssh reads them). */
  globalKnownHosts?: readonly string[];
  /** Connect and handshake timeout (default 15 s). */
  timeoutMs?: number;
}

/** Default key files, in the order OpenSSH tries them. */
const DEFAULT_KEYS = ['id_ed25519', 'id_ecdsa', 'id_rsa'];
const DEFAULT_EXEC_TIMEOUT_MS = 120_000;

/** Opens an SSH session with an SFTP channel. */
export async function openSsh(address: RemoteAddress, options: SshOptions = {}): Promise<Remote> {
  const where = formatAddress(address);
  const knownHosts = options.knownHosts ?? join(homedir(), '.ssh', 'known_hosts');
  const auth = authMethods(address.user, options.identity);
  const conn = new Client();
  let verdict: { verdict: HostKeyVerdict; fingerprint: string; name: string } | undefined;
  await new Promise<void>((resolve, reject) => {
    conn.once('ready', () => resolve());
    conn.once('error', (err: Error & { level?: string; code?: string }) => {
      reject(connectError(err, address, knownHosts, verdict, auth.tried));
    });
    conn.connect({
      host: address.host,
      port: address.port,
      username: address.user,
      readyTimeout: options.timeoutMs ?? 15_000,
      authHandler: auth.methods,
      hostVerifier: (key: Buffer): boolean => {
        const name = knownHostName(address.host, address.port);
        const fingerprint = `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
        let v = checkHostKey(
          [knownHosts, ...(options.globalKnownHosts ?? GLOBAL_KNOWN_HOSTS)],
          address.host,
          address.port,
          key,
        );
        if (v === 'unknown' && options.acceptNewHostKey) {
          addHostKey(knownHosts, address.host, address.port, keyTypeOf(key), key);
          v = 'known';
        }
        verdict = { verdict: v, fingerprint, name };
        return v === 'known';
      },
    });
  });
  const sftp = await new Promise<SFTPWrapper>((resolve, reject) =>
    conn.sftp((err, s) => (err ? reject(ioError(where, 'opening SFTP', err)) : resolve(s))),
  );
  let closed = false;
  conn.on('close', () => (closed = true));
  conn.on('error', () => (closed = true));
  const lost = (what: string, err: unknown): CmpError =>
    closed
      ? new CmpError(
          'IO',
          `Lost the SSH connection to ${where} while ${what}. Check the device and run the command again.`,
          { cause: err },
        )
      : ioError(where, what, err);
  const sftpCall = <T>(
    what: string,
    call: (cb: (err: Error | null | undefined, value?: T) => void) => void,
  ): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (closed) reject(lost(what, undefined));
      else call((err, value) => (err ? reject(lost(what, err)) : resolve(value as T)));
    });

  const run = (
    command: string,
    what: string,
    timeoutMs = DEFAULT_EXEC_TIMEOUT_MS,
    onStderrLine?: (line: string) => void,
  ): Promise<ExecResult> =>
    new Promise<ExecResult>((resolve, reject) => {
      if (closed) return reject(lost(what, undefined));
      conn.exec(command, (err, stream) => {
        if (err) return reject(lost(what, err));
        let stdout = '';
        let stderr = '';
        let partial = '';
        const timer = setTimeout(() => {
          stream.close();
          reject(
            new CmpError('IO', `${what} on ${where} took over ${Math.round(timeoutMs / 1000)} s and was stopped.`),
          );
        }, timeoutMs);
        stream.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
        stream.stderr.on('data', (d: Buffer) => {
          stderr += d.toString('utf8');
          if (!onStderrLine) return;
          partial += d.toString('utf8');
          const lines = partial.split('\n');
          partial = lines.pop() ?? '';
          lines.forEach(onStderrLine);
        });
        stream.on('close', (code: number | null) => {
          clearTimeout(timer);
          if (code === null || code === undefined) reject(lost(what, undefined));
          else resolve({ code, stdout, stderr });
        });
      });
    });

  return {
    address,
    exec: (argv, options = {}) =>
      run(argv.map(shellQuote).join(' '), argv.slice(0, 2).join(' '), options.timeoutMs, options.onStderrLine),
    script: (source, timeoutMs) => run(source, 'reading the device', timeoutMs),
    putFile: (local, remote, onBytes) =>
      sftpCall<void>(`uploading ${remote}`, (cb) =>
        sftp.fastPut(local, remote, { step: (sent: number) => onBytes?.(sent) }, (err) => cb(err)),
      ),
    putData: (data, remote) =>
      sftpCall<void>(`uploading ${remote}`, (cb) => sftp.writeFile(remote, Buffer.from(data), (err) => cb(err))),
    readData: (path) =>
      new Promise((resolve, reject) =>
        closed
          ? reject(lost(`reading ${path}`, undefined))
          : sftp.readFile(path, (err, data) => resolve(err ? undefined : new Uint8Array(data))),
      ),
    async link(existing: string, path: string): Promise<boolean> {
      // OpenSSH's hardlink@openssh.com extension (every OpenSSH since 5.7); ssh2 throws when the server lacks it.
      try {
        await sftpCall<void>(`linking ${path}`, (cb) => sftp.ext_openssh_hardlink(existing, path, (err) => cb(err)));
        return true;
      } catch (err) {
        if (closed) throw err;
        return false;
      }
    },
    mkdir: (path) => sftpCall<void>(`creating ${path}`, (cb) => sftp.mkdir(path, (err) => cb(err))),
    async mkdirp(remote: string): Promise<void> {
      const parts = remote.split('/').filter((p) => p.length);
      let path = remote.startsWith('/') ? '' : '.';
      for (const part of parts) {
        path = `${path}/${part}`;
        const size = await statSize(path);
        if (size === undefined) await sftpCall<void>(`creating ${path}`, (cb) => sftp.mkdir(path, (err) => cb(err)));
      }
    },
    rename: (from, to) => sftpCall<void>(`renaming ${from}`, (cb) => sftp.rename(from, to, (err) => cb(err))),
    readlink: (path) =>
      new Promise((resolve, reject) =>
        closed
          ? reject(lost(`reading ${path}`, undefined))
          : sftp.readlink(path, (err, target) => resolve(err ? undefined : target)),
      ),
    size: statSize,
    async remove(path: string): Promise<void> {
      const r = await run(['rm', '-rf', '--', path].map(shellQuote).join(' '), `removing ${path}`);
      if (r.code !== 0) throw new CmpError('IO', `Cannot remove ${path} on ${where}: ${r.stderr.trim()}`);
    },
    close: () => conn.end(),
  };

  function statSize(path: string): Promise<number | undefined> {
    return new Promise((resolve, reject) =>
      closed
        ? reject(lost(`reading ${path}`, undefined))
        : sftp.lstat(path, (err, st) => resolve(err ? undefined : st.size)),
    );
  }
}

/** Agent first (keys stay there), then --identity or the default key files, as OpenSSH does. */
function authMethods(
  username: string,
  identity?: string,
): { methods: (AgentAuthMethod | PublicKeyAuthMethod)[]; tried: string[] } {
  const methods: (AgentAuthMethod | PublicKeyAuthMethod)[] = [];
  const tried: string[] = [];
  if (process.env.SSH_AUTH_SOCK && !identity) {
    methods.push({ type: 'agent' as const, username, agent: process.env.SSH_AUTH_SOCK });
    tried.push('the SSH agent');
  }
  const files = identity
    ? [identity]
    : DEFAULT_KEYS.map((k) => join(homedir(), '.ssh', k)).filter((p) => existsSync(p));
  for (const file of files) {
    let data: Buffer;
    try {
      data = readFileSync(file);
    } catch (err) {
      throw new CmpError('BAD_FLAG', `Cannot read --identity ${file}: ${(err as Error).message}. Check the path.`, {
        cause: err,
      });
    }
    const parsed = utils.parseKey(data);
    if (parsed instanceof Error) {
      if (!identity) continue;
      throw new CmpError(
        'BAD_FLAG',
        /encrypt|passphrase/i.test(parsed.message)
          ? `--identity ${file} is encrypted. Add it to the SSH agent (ssh-add ${file}) and deploy without --identity.`
          : `--identity ${file} is not a private key cmp can read (${parsed.message}). Pass an OpenSSH private key.`,
      );
    }
    methods.push({ type: 'publickey' as const, username, key: data });
    tried.push(file);
  }
  if (methods.length === 0) {
    throw new CmpError(
      'BAD_FLAG',
      'No SSH key to log in with: pass --identity FILE, start ssh-agent with your key, or create ~/.ssh/id_ed25519.',
    );
  }
  return { methods, tried };
}

function connectError(
  err: Error & { level?: string; code?: string },
  a: RemoteAddress,
  knownHosts: string,
  host: { verdict: HostKeyVerdict; fingerprint: string; name: string } | undefined,
  tried: string[],
): CmpError {
  const where = `${a.host}:${a.port}`;
  if (host?.verdict === 'mismatch') {
    return new CmpError(
      'IO',
      `The host key of ${host.name} (${host.fingerprint}) does not match ${knownHosts}: the device changed or someone is in between. If it was reinstalled, run ssh-keygen -R '${host.name}' -f ${knownHosts} and deploy again.`,
    );
  }
  if (host?.verdict === 'revoked')
    return new CmpError('IO', `The host key of ${host.name} is marked @revoked in ${knownHosts}. Do not deploy to it.`);
  if (host?.verdict === 'unknown') {
    return new CmpError(
      'IO',
      `${host.name} is not in ${knownHosts} (its key is ${host.fingerprint}). Check the fingerprint on the device, then pass --accept-new-host-key once.`,
    );
  }
  if (err.code === 'ECONNREFUSED')
    return new CmpError(
      'IO',
      `Cannot connect to ${where}: connection refused. Check the host, --port and that sshd runs.`,
    );
  if (err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN')
    return new CmpError('IO', `Cannot resolve ${a.host}. Check the host name.`);
  if (err.level === 'client-timeout' || err.code === 'ETIMEDOUT')
    return new CmpError('IO', `No SSH answer from ${where} in time. Check the host and the network.`);
  if (err.level === 'client-authentication') {
    return new CmpError(
      'IO',
      `SSH login as ${a.user}@${a.host} was refused for ${tried.join(', ')}. Add your public key to ~/.ssh/authorized_keys on the device (ssh-copy-id) or pass --identity.`,
    );
  }
  return ioError(where, 'connecting', err);
}

function ioError(where: string, what: string, err: unknown): CmpError {
  return new CmpError(
    'IO',
    `SSH to ${where} failed while ${what}: ${String((err as Error)?.message ?? err).split('\n')[0]}.`,
    { cause: err },
  );
}
