// cmp serve: serves a browser site (cmp deploy --target browser) on 127.0.0.1 with the cross-origin isolation headers
// that onnxruntime-web's threads need, and stores the profiles its page posts under DIR/profiles/.

import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { extname, join, sep } from 'node:path';
import { SITE_LAYOUT } from '../../core/site.js';
import { CmpError, isCmpError } from '../../errors.js';
import { readSiteConfig, saveSiteProfile } from '../../deploy/target-browser.js';
import { checkDeviceProfile } from '../../profile/device-profile-check.js';
import type { DeviceProfile } from '../../profile/device-profile.js';
import type { Parsed } from '../args.js';
import type { CliIo, Command } from '../command.js';
import { stopSignal } from '../stop-signal.js';

export const DEFAULT_SERVE_PORT = 8080;

/** Largest profile body accepted: a profile holds one latency per sample, so this leaves room and refuses floods. */
export const MAX_PROFILE_BYTES = 8 * 1024 * 1024;

/** Content types by extension; anything else is served as bytes. */
const CONTENT_TYPES: Readonly<Record<string, string>> = Object.freeze({
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
});

/** On every answer. COOP and COEP isolate the page (SharedArrayBuffer for wasm threads, a timer at full resolution). */
const HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
  'cross-origin-resource-policy': 'same-origin',
  'x-content-type-options': 'nosniff',
  // A redeploy writes new files under the same names.
  'cache-control': 'no-cache',
});

export const serveCommand: Command = {
  def: {
    name: 'serve',
    summary:
      'Serve a browser site on 127.0.0.1 with the headers wasm threads need; stores the profiles its page posts.',
    positionals: ['DIR'],
    flags: {
      port: {
        type: 'count',
        value: 'N',
        default: String(DEFAULT_SERVE_PORT),
        help: 'TCP port on 127.0.0.1 (0 picks a free one)',
      },
    },
    examples: ['cmp serve site/', 'cmp serve site/ --port 0 --json'],
  },
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const dir = parsed.positionals[0];
    const port = (parsed.flags.port as number | undefined) ?? DEFAULT_SERVE_PORT;
    if (port > 65535) {
      throw new CmpError('BAD_FLAG', `--port ${port} is not a TCP port. Pass 1 to 65535, or 0 for a free one.`);
    }
    const root = await siteRoot(dir);
    const hosts = new Set<string>();
    const server = createServer((req, res) => {
      handle(req, res, root, hosts, (saved, profile) => {
        const where = join(dir, saved);
        if (io.json) io.out(JSON.stringify({ profile: where, backend: profile.backend, samples: profile.samples }));
        else {
          io.out(
            `Profile stored: ${where} (${profile.backend}, ${profile.samples} samples, p50 ${profile.latencyMs.p50.toFixed(3)} ms)`,
          );
        }
      }).catch((err: unknown) => {
        const message = isCmpError(err) ? err.message : String((err as Error)?.message ?? err).split('\n')[0];
        io.progress.log(`cmp serve: ${req.method ?? '?'} ${req.url ?? '?'} failed: ${message}`);
        if (!res.headersSent) reply(res, 500, message);
        else res.destroy();
      });
    });
    const bound = await listen(server, port);
    for (const host of [`127.0.0.1:${bound}`, `localhost:${bound}`]) hosts.add(host);
    const stopped = stopSignal();
    const url = `http://127.0.0.1:${bound}/`;
    if (io.json) io.out(JSON.stringify({ url, dir }));
    else io.out(`Serving ${dir} at ${url} (Ctrl-C stops)`);
    await stopped;
    server.closeAllConnections();
    await new Promise<void>((done) => server.close(() => done()));
    return 0;
  },
};

/** The real path of a site folder `cmp deploy --target browser` wrote; anything else is one error. */
async function siteRoot(dir: string): Promise<string> {
  let root: string;
  try {
    root = await realpath(dir);
  } catch (err) {
    throw new CmpError(
      'BAD_ARGUMENT',
      `There is no folder ${dir} to serve. Write the site first: cmp deploy MODEL --target browser --out ${dir}`,
      { cause: err },
    );
  }
  if (!(await stat(root)).isDirectory() || !readSiteConfig(root)) {
    throw new CmpError(
      'BAD_ARGUMENT',
      `${dir} is not a cmp site (no ${SITE_LAYOUT.config}). Write one with cmp deploy MODEL --target browser --out ${dir}`,
    );
  }
  return root;
}

/** Listens on 127.0.0.1 only; resolves to the port bound (the one asked for, or a free one for 0). */
function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const problem =
        err.code === 'EADDRINUSE'
          ? `Port ${port} on 127.0.0.1 is in use. Stop what holds it or pass --port N (0 picks a free one).`
          : err.code === 'EACCES'
            ? `Port ${port} needs privileges here. Pass --port 1024 or above (0 picks a free one).`
            : `Cannot listen on 127.0.0.1:${port} (${err.message}). Pass another --port.`;
      reject(new CmpError('IO', problem, { cause: err }));
    });
    server.listen(port, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
  });
}

/** One request: GET or HEAD of a file under `root`, or POST of a profile. `hosts` holds the names the server answers. */
async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  root: string,
  hosts: ReadonlySet<string>,
  onProfile: (saved: string, profile: DeviceProfile) => void,
): Promise<void> {
  // Another site's page may reach localhost, under its own name (DNS rebinding) or as a cross-origin POST: refused.
  if (!hosts.has(req.headers.host ?? '')) return reply(res, 403, `Host "${req.headers.host}" is not served here.`);
  const path = (req.url ?? '/').split(/[?#]/)[0];
  if (req.method === 'POST' && path === `/${SITE_LAYOUT.profileEndpoint}`) {
    return receiveProfile(req, res, root, hosts, onProfile);
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD, POST');
    return reply(res, 405, `${req.method} is not served here; the site takes GET and HEAD, profiles take POST.`);
  }
  const file = await resolveFile(root, path);
  if (!file) return reply(res, 404, `Not found: ${path}`);
  res.writeHead(200, {
    ...HEADERS,
    'content-type': CONTENT_TYPES[extname(file.path).toLowerCase()] ?? 'application/octet-stream',
    'content-length': String(file.bytes),
  });
  if (req.method === 'HEAD') return void res.end();
  await new Promise<void>((done, fail) => {
    createReadStream(file.path).on('error', fail).pipe(res).on('finish', done).on('error', fail);
  });
}

/** The file a URL path names under `root`, or undefined; no path leaves the site (.., encoded slashes, links). */
async function resolveFile(root: string, path: string): Promise<{ path: string; bytes: number } | undefined> {
  if (!path.startsWith('/')) return undefined;
  let segments: string[];
  try {
    segments = path.slice(1).split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    return undefined;
  }
  if (segments.some((s) => s.startsWith('.') || /[/\\\0]/.test(s))) return undefined;
  try {
    let real = await realpath(join(root, ...segments));
    let info = await stat(real);
    if (info.isDirectory()) {
      real = await realpath(join(real, SITE_LAYOUT.page));
      info = await stat(real);
    }
    if (!real.startsWith(`${root}${sep}`) || !info.isFile()) return undefined;
    return { path: real, bytes: info.size };
  } catch {
    return undefined;
  }
}

/** Checks a posted profile and stores it as profiles/<time>-<backend>.json. */
async function receiveProfile(
  req: IncomingMessage,
  res: ServerResponse,
  root: string,
  hosts: ReadonlySet<string>,
  onProfile: (saved: string, profile: DeviceProfile) => void,
): Promise<void> {
  const origin = req.headers.origin;
  if (origin !== undefined && !hosts.has(origin.replace(/^http:\/\//, ''))) {
    return reply(res, 403, `Profiles from ${origin} are refused; only the served page posts them.`);
  }
  if (!/^application\/json\b/.test(req.headers['content-type'] ?? '')) {
    return reply(res, 415, 'Send the profile as application/json.');
  }
  const body = await readBody(req, MAX_PROFILE_BYTES);
  if (body === undefined) {
    return reply(res, 413, `Profile is larger than ${MAX_PROFILE_BYTES} bytes. Send one cmp-profile/1 object.`);
  }
  let profile: DeviceProfile;
  try {
    let value: unknown;
    try {
      value = JSON.parse(body.toString('utf8'));
    } catch (err) {
      throw new CmpError(
        'BAD_ARGUMENT',
        `Profile is not JSON (${(err as Error).message.split('\n')[0]}). Send one cmp-profile/1 object.`,
      );
    }
    profile = checkDeviceProfile(value, 'the page');
  } catch (err) {
    if (!isCmpError(err)) throw err;
    return reply(res, 400, err.message);
  }
  const saved = await saveSiteProfile(root, profile);
  res.writeHead(201, { ...HEADERS, 'content-type': CONTENT_TYPES['.json'] });
  res.end(`${JSON.stringify({ saved })}\n`);
  onProfile(saved, profile);
}

/**
 * The whole body, or undefined once it passes `limit` bytes. The rest is still read and dropped, never kept: closing
 * the connection under a client that is still sending would lose the reply to a reset.
 */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  if (Number(req.headers['content-length'] ?? 0) > limit) {
    req.resume();
    return Promise.resolve(undefined);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes <= limit) chunks.push(chunk);
      else resolve(undefined);
    });
    req.on('end', () => resolve(bytes <= limit ? Buffer.concat(chunks) : undefined));
    req.on('error', reject);
  });
}

/** A one-line text answer. */
function reply(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, { ...HEADERS, 'content-type': CONTENT_TYPES['.txt'] });
  res.end(`${message}\n`);
}
