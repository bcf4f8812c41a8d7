// The dashboard's Electron main process: one sandboxed window on the app's own scheme, the content security policy on
// every answer, and the dashboard session behind IPC. Electron is loaded at run time (see electron.d.ts).

import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  contentSecurityPolicy,
  DASHBOARD_HEADERS,
  DashboardSession,
  RENDERER_FILES,
  type ElectronAppSettings,
} from '../src/index.js';
import { APP_HOST, APP_SCHEME, DASHBOARD_EVENT_CHANNEL, DASHBOARD_REQUEST_CHANNEL } from './api.js';
import type { ElectronMain } from './electron.js';

/** This bundle's folder: the app folder (cmp deploy --target electron), or dist/targets/electron/ under cmp. */
const APP_DIR = dirname(fileURLToPath(import.meta.url));
const PAGE_ORIGIN = `${APP_SCHEME}://${APP_HOST}`;

const { app, BrowserWindow, ipcMain, protocol, session } = createRequire(import.meta.url)('electron') as ElectronMain;

/** The models to offer: the app's own (package.json "cmp"), then those `cmp dashboard --model` passed. */
function appSettings(): { models: string[]; dataset?: string } {
  const models: string[] = [];
  let dataset: string | undefined;
  const packageJson = join(APP_DIR, 'package.json');
  if (existsSync(packageJson)) {
    const settings = (JSON.parse(readFileSync(packageJson, 'utf8')) as { cmp?: ElectronAppSettings }).cmp;
    for (const model of settings?.models ?? []) models.push(isAbsolute(model) ? model : resolve(APP_DIR, model));
    dataset = settings?.dataset;
  }
  const passed: unknown = JSON.parse(process.env.CMP_DASHBOARD_MODELS ?? '[]');
  if (Array.isArray(passed)) for (const model of passed) if (typeof model === 'string') models.push(resolve(model));
  return { models, ...(dataset ? { dataset } : {}) };
}

/** The renderer's files: beside this bundle in an app folder, else the dashboard build beside it. */
function rendererDir(): string {
  return existsSync(join(APP_DIR, 'index.html')) ? APP_DIR : join(APP_DIR, '..', 'dashboard');
}

// Before ready: the page's scheme behaves like https (secure context, its own origin), not like file://.
protocol.registerSchemesAsPrivileged([
  { scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: false } },
]);

app.on('web-contents-created', (_event, contents) => {
  // Nothing else loads in the app's windows: no navigation away, no new windows, no webviews.
  contents.on('will-navigate', (event, url) => {
    if (!url.startsWith(`${PAGE_ORIGIN}/`)) event.preventDefault();
  });
  contents.setWindowOpenHandler(() => ({ action: 'deny' }));
  contents.on('will-attach-webview', (event) => event.preventDefault());
});

app.on('window-all-closed', () => app.quit());

await app.whenReady();
const settings = appSettings();
const dashboard = new DashboardSession({ mode: 'electron', ...settings });
const pages = rendererDir();
const csp = contentSecurityPolicy();

protocol.handle(APP_SCHEME, async (request) => {
  const url = new URL(request.url);
  const entry =
    url.host === APP_HOST && Object.prototype.hasOwnProperty.call(RENDERER_FILES, url.pathname)
      ? RENDERER_FILES[url.pathname]
      : undefined;
  if (!entry || request.method !== 'GET') {
    return new Response(`Not found: ${url.pathname}\n`, { status: 404, headers: { ...DASHBOARD_HEADERS } });
  }
  return new Response(await readFile(join(pages, entry.file)), {
    headers: { ...DASHBOARD_HEADERS, 'content-security-policy': csp, 'content-type': entry.type },
  });
});
session.defaultSession.setPermissionRequestHandler((_contents, _permission, callback) => callback(false));

ipcMain.handle(DASHBOARD_REQUEST_CHANNEL, async (event, message) => {
  // Only the dashboard page speaks to the session; the session checks the message itself.
  if (!event.senderFrame?.url.startsWith(`${PAGE_ORIGIN}/`)) {
    return { type: 'error', id: null, message: 'Refused: the message did not come from the dashboard page.' };
  }
  return dashboard.handle(message);
});

const window = new BrowserWindow({
  width: 1400,
  height: 920,
  show: false,
  title: 'cmp dashboard',
  backgroundColor: '#ffffff',
  webPreferences: {
    preload: join(APP_DIR, 'preload.cjs'),
    contextIsolation: true,
    nodeIntegration: false,
    sandbox: true,
    webSecurity: true,
    allowRunningInsecureContent: false,
    webviewTag: false,
    spellcheck: false,
  },
});
const unsubscribe = dashboard.subscribe((message) => {
  if (!window.isDestroyed() && !window.webContents.isDestroyed())
    window.webContents.send(DASHBOARD_EVENT_CHANNEL, message);
});
window.on('closed', unsubscribe);
window.once('ready-to-show', () => window.show());
await window.loadURL(`${PAGE_ORIGIN}/index.html`);
