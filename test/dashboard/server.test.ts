// The dashboard server's login redirect: it sends the browser only to a page of its own, whatever path came with the
// token.

import assert from 'node:assert/strict';
import { request } from 'node:http';
import { test } from 'node:test';
import { startDashboardServer } from '../../src/dashboard/server.js';

function get(port: number, path: string): Promise<{ status: number; location?: string }> {
  return new Promise((done, fail) => {
    const req = request({ host: '127.0.0.1', port, path }, (res) => {
      res.resume();
      res.on('end', () => done({ status: res.statusCode ?? 0, location: res.headers.location }));
    });
    req.on('error', fail);
    req.end();
  });
}

test('the token login redirects only to the dashboard own paths, never to another site', async () => {
  const server = await startDashboardServer();
  try {
    const t = server.token;
    assert.deepEqual(await get(server.port, `/?token=${t}`), { status: 303, location: '/' });
    assert.deepEqual(await get(server.port, `/dashboard.js?token=${t}`), { status: 303, location: '/dashboard.js' });
    // Each of these normalizes to a path that starts with // (a protocol-relative address: another host).
    for (const path of ['/a/..//evil.com', '//evil.com', '/.//evil.com', '/a/../\\evil.com', '/%2F%2Fevil.com']) {
      const r = await get(server.port, `${path}?token=${t}`);
      assert.equal(r.status, 303, path);
      assert.equal(r.location, '/', path);
    }
  } finally {
    await server.close();
  }
});
