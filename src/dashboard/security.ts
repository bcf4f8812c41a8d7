// The dashboard's security policy, shared by the HTTP server and the Electron app: the content security policy, the
// per-run token and how a request proves it holds it.

import { randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * The content security policy of the dashboard page: its own script and styles only (no inline script, no eval),
 * images from itself and data: URLs (the mask picture), and network only to `connect` (the WebSocket in HTTP mode;
 * nothing in Electron, which talks over IPC). The same policy sits in the page's meta tag, less frame-ancestors.
 */
export function contentSecurityPolicy(connect: readonly string[] = []): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    `connect-src ${connect.length ? connect.join(' ') : "'none'"}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** Headers on every dashboard answer besides the policy. */
export const DASHBOARD_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'cache-control': 'no-store',
});

/** A fresh token for one run of the server: 256 random bits, URL-safe. */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Compares a presented token with the run's in constant time. */
export function sameToken(presented: string, token: string): boolean {
  const a = Buffer.from(presented);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The cookie that carries the token, per port: cookies are shared across ports of one host. */
export function tokenCookie(port: number): string {
  return `cmp-dashboard-${port}`;
}

/** The token a request presents: `Authorization: Bearer T`, `X-Cmp-Token: T` or the cookie; undefined when none. */
export function presentedToken(
  headers: Record<string, string | string[] | undefined>,
  port: number,
): string | undefined {
  const auth = headers.authorization;
  if (typeof auth === 'string' && /^Bearer /i.test(auth)) return auth.slice(7).trim();
  const header = headers['x-cmp-token'];
  if (typeof header === 'string' && header) return header;
  const cookie = headers.cookie;
  if (typeof cookie !== 'string') return undefined;
  const name = tokenCookie(port);
  for (const part of cookie.split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return value.join('=');
  }
  return undefined;
}
