// The dashboard in a browser (`cmp dashboard` without Electron): the renderer over HTTP and its messages over a
// WebSocket, on 127.0.0.1 only, for whoever holds this run's token, with the page's content security policy.

import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketServer, type WebSocket } from 'ws';
import { CmpError } from '../errors.js';
import { MAX_MESSAGE_BYTES, type ServerMessage } from './messages.js';
import {
  contentSecurityPolicy,
  DASHBOARD_HEADERS,
  newToken,
  presentedToken,
  sameToken,
  tokenCookie,
} from './security.js';
import { DashboardSession } from './session.js';

/** The renderer's files (targets/build.ts writes them to dist/targets/dashboard/), by URL path. */
export const RENDERER_FILES: Readonly<Record<string, { file: string; type: string }>> = Object.freeze({
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/dashboard.js': { file: 'dashboard.js', type: 'text/javascript; charset=utf-8' },
  '/dashboard.css': { file: 'dashboard.css', type: 'text/css; charset=utf-8' },
});

/** Where the renderer's messages go. */
export const WEBSOCKET_PATH = '/ws';

/** Options of {@link startDashboardServer}. */
export interface DashboardServerOptions {
  /** TCP port on 127.0.0.1; 0 (default) picks a free one. */
  port?: number;
  /** Models to offer first in the profile form. */
  models?: string[];
  /** Folder of the built renderer (default: dist/targets/dashboard/ of this package). */
  rendererDir?: string;
}

/** A running dashboard server; close() ends its connections and stops listening (jobs in flight run on). */
export interface DashboardServer {
  /** The address to open, token included: http://127.0.0.1:PORT/?token=... */
  url: string;
  port: number;
  token: string;
  session: DashboardSession;
  close(): Promise<void>;
}

/** The built renderer: dist/targets/dashboard/ beside src/ or dist/ of this package. */
export function rendererDir(): string {
  const dir = fileURLToPath(new URL('../../dist/targets/dashboard/', import.meta.url));
  const beside = fileURLToPath(new URL('../targets/dashboard/', import.meta.url));
  for (const candidate of [beside, dir]) if (existsSync(join(candidate, 'index.html'))) return candidate;
  throw new CmpError('IO', `The dashboard page is not built (no ${join(dir, 'index.html')}). Run npm run build.`);
}

/** Starts the server on 127.0.0.1 and resolves once it listens. */
export async function startDashboardServer(options: DashboardServerOptions = {}): Promise<DashboardServer> {
  const dir = options.rendererDir ?? rendererDir();
  const token = newToken();
  const session = new DashboardSession({ mode: 'http', models: options.models });
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
  // Filled in once the port is known: the names the server answers to, and the page origins allowed to connect.
  const hosts = new Set<string>();
  const origins = new Set<string>();
  let port = 0;
  let csp = '';
  const server = createServer((req, res) => {
    serve(req, res).catch((err: unknown) => {
      if (!res.headersSent) reply(res, 500, `Internal error: ${String((err as Error)?.message ?? err).split('\n')[0]}`);
      else res.destroy();
    });
  });

  const serve = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    // Another site's page may reach 127.0.0.1 under its own name (DNS rebinding): only our names are answered.
    if (!hosts.has(req.headers.host ?? '')) return reply(res, 403, `Host "${req.headers.host}" is not served here.`);
    const url = new URL(req.url ?? '/', `http://${req.headers.host}`);
    const query = url.searchParams.get('token');
    if (query !== null && req.method === 'GET') {
      if (!sameToken(query, token)) return reply(res, 403, 'Wrong token. Open the address cmp dashboard printed.');
      // The token moves into a cookie the page's own requests carry, and leaves the address bar and its history.
      res.writeHead(303, {
        ...DASHBOARD_HEADERS,
        'set-cookie': `${tokenCookie(port)}=${token}; HttpOnly; SameSite=Strict; Path=/`,
        // Only to a page of ours: a path such as /a/..//evil.com normalizes to //evil.com, another site.
        location: Object.prototype.hasOwnProperty.call(RENDERER_FILES, url.pathname) ? url.pathname : '/',
      });
      return void res.end();
    }
    const presented = presentedToken(req.headers, port);
    if (presented === undefined) {
      return reply(res, 401, 'No token. Open the address cmp dashboard printed (it ends in ?token=...).');
    }
    if (!sameToken(presented, token)) return reply(res, 403, 'Wrong token. Open the address cmp dashboard printed.');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return reply(
        res,
        405,
        `${req.method} is not served here; the page takes GET, its messages go over ${WEBSOCKET_PATH}.`,
      );
    }
    const entry = Object.prototype.hasOwnProperty.call(RENDERER_FILES, url.pathname)
      ? RENDERER_FILES[url.pathname]
      : undefined;
    if (!entry) return reply(res, 404, `Not found: ${url.pathname}`);
    const body = await readFile(join(dir, entry.file));
    res.writeHead(200, {
      ...DASHBOARD_HEADERS,
      'content-security-policy': csp,
      'content-type': entry.type,
      'content-length': String(body.length),
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  };

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const refuse = (status: number, message: string): void => {
      socket.end(
        `HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : status === 404 ? 'Not Found' : 'Forbidden'}\r\n` +
          `content-type: text/plain; charset=utf-8\r\nconnection: close\r\n\r\n${message}\n`,
      );
    };
    if (!hosts.has(req.headers.host ?? '')) return refuse(403, `Host "${req.headers.host}" is not served here.`);
    if ((req.url ?? '').split('?')[0] !== WEBSOCKET_PATH) return refuse(404, `Not found: ${req.url}`);
    // A WebSocket is not bound by the same-origin policy: the Origin header is what tells another site's page apart.
    const origin = req.headers.origin ?? '';
    if (!origins.has(origin)) return refuse(403, `Origin "${origin}" may not connect. Open the dashboard's own page.`);
    const presented = presentedToken(req.headers, port);
    if (presented === undefined) return refuse(401, 'No token. Open the address cmp dashboard printed.');
    if (!sameToken(presented, token)) return refuse(403, 'Wrong token. Open the address cmp dashboard printed.');
    wss.handleUpgrade(req, socket, head, (ws) => connect(ws));
  });

  const connect = (ws: WebSocket): void => {
    const send = (message: ServerMessage): void => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
    };
    const unsubscribe = session.subscribe(send);
    ws.on('close', unsubscribe);
    ws.on('error', () => ws.terminate());
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        send({ type: 'error', id: null, message: 'Dashboard message is binary. Send JSON text.' });
        return;
      }
      let value: unknown;
      try {
        value = JSON.parse(
          (Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer)).toString('utf8'),
        );
      } catch (err) {
        send({
          type: 'error',
          id: null,
          message: `Dashboard message is not JSON (${(err as Error).message.split('\n')[0]}). Send one JSON object.`,
        });
        return;
      }
      void session.handle(value).then(send);
    });
  };

  port = await listen(server, options.port ?? 0);
  for (const name of [`127.0.0.1:${port}`, `localhost:${port}`]) {
    hosts.add(name);
    origins.add(`http://${name}`);
  }
  csp = contentSecurityPolicy([...hosts].map((h) => `ws://${h}`));
  return {
    url: `http://127.0.0.1:${port}/?token=${token}`,
    port,
    token,
    session,
    async close() {
      for (const client of wss.clients) client.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}

/** Listens on 127.0.0.1 only; resolves to the port bound. */
function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const problem =
        err.code === 'EADDRINUSE'
          ? `Port ${port} on 127.0.0.1 is in use. Stop what holds it or pass --port 0 for a free one.`
          : `Cannot listen on 127.0.0.1:${port} (${err.message}). Pass another --port.`;
      reject(new CmpError('IO', problem, { cause: err }));
    });
    server.listen(port, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
  });
}

/** A one-line text answer. */
function reply(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, { ...DASHBOARD_HEADERS, 'content-type': 'text/plain; charset=utf-8' });
  res.end(`${message}\n`);
}
