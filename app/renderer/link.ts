// How the renderer reaches the dashboard: Electron's preload bridge when there is one, else the WebSocket of the page's
// own server (cmp dashboard). Either way: requests answered by id, events to listeners.

import type { ClientMessage, ReplyResults, ServerMessage } from '../../src/index.js';
import type { DashboardBridge } from '../api.js';

declare global {
  interface Window {
    cmpDashboard?: DashboardBridge;
  }
}

/** A request as the renderer writes it; the link numbers it. */
export type DashboardRequest = ClientMessage extends infer M
  ? M extends ClientMessage
    ? Omit<M, 'id'>
    : never
  : never;

export interface DashboardLink {
  mode: 'electron' | 'http';
  request<T extends DashboardRequest>(message: T): Promise<ReplyResults[T['type']]>;
  /** Events (job, profiles) and errors that answer no request. */
  onEvent(listener: (message: ServerMessage) => void): void;
  onClose(listener: (reason: string) => void): void;
}

const TYPES: ReadonlySet<string> = new Set(['reply', 'error', 'job', 'profiles']);

/** Whether `value` has the shape of a server message (the server is trusted; this guards against a broken one). */
export function isServerMessage(value: unknown): value is ServerMessage {
  if (typeof value !== 'object' || value === null) return false;
  const m = value as Record<string, unknown>;
  if (typeof m.type !== 'string' || !TYPES.has(m.type)) return false;
  if (m.type === 'reply') return typeof m.id === 'number' && typeof m.result === 'object';
  if (m.type === 'error') return typeof m.message === 'string' && (m.id === null || typeof m.id === 'number');
  if (m.type === 'job') return typeof m.job === 'object' && m.job !== null;
  return Array.isArray(m.profiles);
}

/** Connects to the dashboard: the bridge, or a WebSocket once it is open. */
export async function openLink(): Promise<DashboardLink> {
  const bridge = window.cmpDashboard;
  const eventListeners: ((message: ServerMessage) => void)[] = [];
  const closeListeners: ((reason: string) => void)[] = [];
  const pending = new Map<number, { resolve: (result: unknown) => void; reject: (err: Error) => void }>();
  let nextId = 1;
  const receive = (value: unknown): void => {
    if (!isServerMessage(value)) {
      for (const l of eventListeners)
        l({ type: 'error', id: null, message: 'The dashboard sent a message this page does not know.' });
      return;
    }
    if ((value.type === 'reply' || value.type === 'error') && value.id !== null && pending.has(value.id)) {
      const waiter = pending.get(value.id);
      pending.delete(value.id);
      if (value.type === 'reply') waiter?.resolve(value.result);
      else waiter?.reject(new Error(value.message));
      return;
    }
    for (const l of eventListeners) l(value);
  };
  const link = (mode: DashboardLink['mode'], send: (message: ClientMessage) => void): DashboardLink => ({
    mode,
    request<T extends DashboardRequest>(message: T): Promise<ReplyResults[T['type']]> {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve: resolve as (result: unknown) => void, reject });
        send({ ...message, id });
      });
    },
    onEvent: (listener) => void eventListeners.push(listener),
    onClose: (listener) => void closeListeners.push(listener),
  });

  if (bridge) {
    bridge.onEvent(receive);
    return link('electron', (message) => {
      bridge
        .request(message)
        .then(receive, (err: unknown) =>
          receive({ type: 'error', id: message.id, message: String((err as Error)?.message ?? err) }),
        );
    });
  }
  const socket = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener('open', () => resolve(), { once: true });
    socket.addEventListener(
      'error',
      () => reject(new Error('The dashboard refused the connection: reopen the address cmp dashboard printed.')),
      {
        once: true,
      },
    );
  });
  socket.addEventListener('message', (event: MessageEvent<string>) => {
    let value: unknown;
    try {
      value = JSON.parse(event.data);
    } catch {
      value = undefined;
    }
    receive(value);
  });
  socket.addEventListener('close', (event) => {
    for (const waiter of pending.values()) waiter.reject(new Error('The dashboard closed the connection.'));
    pending.clear();
    for (const l of closeListeners) l(event.reason || `connection closed (${event.code})`);
  });
  return link('http', (message) => socket.send(JSON.stringify(message)));
}
