// The typed API the Electron preload exposes to the dashboard renderer (window.cmpDashboard), and its IPC channels.

import type { ClientMessage, ServerMessage } from '../src/index.js';

/** The renderer's requests: main answers each with a reply or a one-line error (ipcMain.handle). */
export const DASHBOARD_REQUEST_CHANNEL = 'cmp-dashboard:request';
/** Events from main: job progress and the profile list. */
export const DASHBOARD_EVENT_CHANNEL = 'cmp-dashboard:event';
/** The name the preload exposes the bridge under. */
export const DASHBOARD_BRIDGE = 'cmpDashboard';
/** The renderer's origin in the app: a privileged scheme of its own, never file:// (cmp-app://dashboard/index.html). */
export const APP_SCHEME = 'cmp-app';
export const APP_HOST = 'dashboard';

/** All the renderer can reach in the main process: send a request, hear events. Nothing of Node or Electron. */
export interface DashboardBridge {
  request(message: ClientMessage): Promise<ServerMessage>;
  /** Calls `listener` with every event; returns the function that stops it. */
  onEvent(listener: (message: ServerMessage) => void): () => void;
}
