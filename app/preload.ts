// The dashboard window's preload: runs sandboxed, before the page, and gives it exactly one thing, the typed bridge of
// app/api.ts (request and onEvent over IPC). The page never sees ipcRenderer, its events, Node or Electron.

import type { ServerMessage } from '../src/index.js';
import type { ElectronPreload } from './electron.js';
import { DASHBOARD_BRIDGE, DASHBOARD_EVENT_CHANNEL, DASHBOARD_REQUEST_CHANNEL, type DashboardBridge } from './api.js';

// A sandboxed preload is a CommonJS script whose require gives Electron's renderer modules (an import cannot load).
declare const require: (id: 'electron') => ElectronPreload;

const { contextBridge, ipcRenderer } = require('electron');

const bridge: DashboardBridge = {
  request: (message) => ipcRenderer.invoke(DASHBOARD_REQUEST_CHANNEL, message) as Promise<ServerMessage>,
  onEvent(listener) {
    // The IPC event object stays here: it would hand the page the sender and its ports.
    const forward = (_event: unknown, message: unknown): void => listener(message as ServerMessage);
    ipcRenderer.on(DASHBOARD_EVENT_CHANNEL, forward);
    return () => ipcRenderer.removeListener(DASHBOARD_EVENT_CHANNEL, forward);
  },
};

contextBridge.exposeInMainWorld(DASHBOARD_BRIDGE, bridge);
