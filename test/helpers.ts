// Shared test helpers: real data sets (failing loudly when absent) and running the real CLI.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_FASHION_MNIST_DIR, loadDataset, type Dataset } from '../src/data/datasets.js';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const CLI = join(ROOT, 'bin', 'cmp.js');

/** A slice of the real Fashion-MNIST; throws with the install command when the Debian package is missing. */
export async function fashionMnist(limitTrain: number, limitTest: number): Promise<Dataset> {
  if (!existsSync(join(DEFAULT_FASHION_MNIST_DIR, 't10k-images-idx3-ubyte.gz'))) {
    throw new Error(
      `Fashion-MNIST is missing from ${DEFAULT_FASHION_MNIST_DIR}: run apt-get install dataset-fashion-mnist`,
    );
  }
  return loadDataset('fashion-mnist', { limitTrain, limitTest });
}

/**
 * A file of the workplace's shared folder (third-party models for import tests): $CMP_SHARED_DIR, else `../shared`
 * beside the repository, else /work/shared. Missing everywhere is a loud failure, never a skip.
 */
export function sharedFile(...parts: string[]): string {
  const roots = [process.env.CMP_SHARED_DIR, join(ROOT, '..', 'shared'), '/work/shared'].filter(
    (r): r is string => !!r,
  );
  for (const root of roots) if (existsSync(join(root, ...parts))) return join(root, ...parts);
  throw new Error(
    `${parts.join('/')} is not in any shared folder (${roots.join(', ')}). Set CMP_SHARED_DIR to the folder holding models/.`,
  );
}

/**
 * How long a test waits for something that must happen (an answer, a page, a job) before it calls it a hang and
 * fails. A guard against waiting forever, never a speed check: under load everything is slower, and speed is
 * measured in bench/.
 */
export const HANG_MS = 300_000;

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A fresh temporary folder. */
export function tempDir(prefix = 'cmp-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * cmp's own state folder for this test file and everything it starts: a fresh one, chosen with a fresh HOME by
 * test/register.js (which every test command loads), so no test touches the user's ~/.cmp.
 */
export const TEST_CMP_HOME = isolatedCmpHome();

function isolatedCmpHome(): string {
  const home = process.env.CMP_HOME;
  if (!home || !process.env.CMP_TEST_USER_HOME) {
    throw new Error(
      'Tests run with --import ./test/register.js, which gives each test file its own HOME and CMP_HOME.',
    );
  }
  return home;
}

/** Runs the built CLI (dist/, built by npm test) and captures its output. */
export function runCli(
  args: string[],
  cwd = ROOT,
  env: Record<string, string> = {},
): { code: number; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    cwd,
    encoding: 'utf8',
    timeout: 600_000,
    env: { ...process.env, ...env },
  });
  return { code: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** Largest absolute difference between two arrays of equal length. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

/** Asserts a CLI run failed with exactly one line on stderr matching `pattern`. */
export function assertOneLineError(result: { code: number; stderr: string }, pattern: RegExp): void {
  assert.notEqual(result.code, 0, 'exit code');
  const lines = result.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got:\n${result.stderr}`);
  assert.match(lines[0], pattern);
}

/** Debian's Chromium, which the browser-side tests drive through playwright-core. */
export const CHROMIUM = '/usr/bin/chromium';

/** Headless Chromium; a missing one fails with the install command, never a skip. */
export async function launchChromium(): Promise<import('playwright-core').Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium is missing at ${CHROMIUM}: run apt-get install chromium`);
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}
