// Lets node's test runner and the benchmarks load TypeScript sources directly (tsx), without a build step; and gives
// every test file its own user: a fresh HOME and CMP_HOME, so no test reads or writes the state of whoever runs it.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { register } from 'tsx/esm/api';

register();

// Every test command loads this file (`node --import ./test/register.js --test ...`), and node's runner starts each
// test file as its own process with the same flags, so this is the one place a test's per-user paths are chosen: a
// new test cannot forget it. The process a test file runs in makes its own; what it starts (the CLI, a server)
// inherits them through the environment. ~/.cmp/devices.json once put a user's deployed model first in the
// Electron app's list and failed its test; ~/.ssh/known_hosts and the default keys are read by the SSH target.
const testFile = /\.test\.[cm]?[jt]s$/.test(process.argv[1] ?? '') || process.execArgv.includes('--test');
if (testFile) {
  const home = mkdtempSync(join(tmpdir(), 'cmp-test-home-'));
  // What the user had, for the test that checks none of it is read (test/isolation.test.ts).
  process.env.CMP_TEST_USER_HOME ??= process.env.HOME ?? '';
  process.env.HOME = home;
  process.env.USERPROFILE = home;
  process.env.CMP_HOME = join(home, '.cmp');
  for (const xdg of ['CONFIG', 'CACHE', 'DATA', 'STATE']) {
    process.env[`XDG_${xdg}_HOME`] = join(home, `.xdg-${xdg.toLowerCase()}`);
    mkdirSync(process.env[`XDG_${xdg}_HOME`], { recursive: true });
  }
  // Settings a user may have exported that change what cmp does; the tests' own inputs (CMP_FASHION_MNIST_DIR,
  // CMP_SHARED_DIR, CMP_TEST_FIXTURES) stay.
  for (const name of ['CMP_DEBUG', 'CMP_TF_BACKEND', 'CMP_DASHBOARD_MODELS', 'CMP_EDGE_SERVICE', 'CMP_BENCH_DIR']) {
    delete process.env[name];
  }
  process.on('exit', () => rmSync(home, { recursive: true, force: true }));
}
