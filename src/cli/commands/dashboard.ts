// cmp dashboard: the desktop app when Electron is installed; otherwise the same page served to a browser on 127.0.0.1,
// for whoever opens the printed address (it carries this run's token).

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDashboardServer } from '../../dashboard/server.js';
import { CmpError } from '../../errors.js';
import type { Parsed } from '../args.js';
import type { CliIo, Command } from '../command.js';
import { electronBinary } from '../electron.js';
import { stopSignal } from '../stop-signal.js';

export const dashboardCommand: Command = {
  def: {
    name: 'dashboard',
    summary: 'Profile devices side by side and look at a model; Electron when installed, else a page on 127.0.0.1.',
    positionals: [],
    flags: {
      http: { type: 'boolean', help: 'serve the page to a browser even when Electron is installed' },
      port: { type: 'count', value: 'N', default: '0', help: 'http: TCP port on 127.0.0.1 (0 picks a free one)' },
      model: { type: 'string', value: 'FILE', help: 'a model to offer first in the profile form' },
    },
    examples: ['cmp dashboard', 'cmp dashboard --http --port 8090 --model fm-exit.onnx'],
  },
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const f = parsed.flags;
    const port = (f.port as number | undefined) ?? 0;
    if (port > 65535) {
      throw new CmpError('BAD_FLAG', `--port ${port} is not a TCP port. Pass 1 to 65535, or 0 for a free one.`);
    }
    const model = f.model as string | undefined;
    if (model !== undefined && !existsSync(model)) {
      throw new CmpError('BAD_FLAG', `--model ${model} does not exist. Pass an ONNX file cmp export wrote.`);
    }
    const models = model ? [resolve(model)] : [];
    if (f.http !== true) {
      const electron = electronBinary();
      if (electron) return runElectron(electron, models, io);
      io.progress.log('Electron is not installed (npm install electron); serving the dashboard to a browser instead.');
    }
    const server = await startDashboardServer({ port, models });
    const stopped = stopSignal();
    if (io.json) io.out(JSON.stringify({ url: server.url, port: server.port, mode: 'http' }));
    else io.out(`Dashboard at ${server.url} (open it in a browser on this machine; Ctrl-C stops)`);
    await stopped;
    await server.close();
    return 0;
  },
};

/** Runs the app's main process (dist/targets/electron/main.mjs) in Electron until its window closes. */
async function runElectron(binary: string, models: string[], io: CliIo): Promise<number> {
  const main = [
    fileURLToPath(new URL('../../targets/electron/main.mjs', import.meta.url)),
    fileURLToPath(new URL('../../../dist/targets/electron/main.mjs', import.meta.url)),
  ].find((path) => existsSync(path));
  if (!main)
    throw new CmpError('IO', 'The dashboard app is not built (no dist/targets/electron/main.mjs). Run npm run build.');
  io.progress.log(`Opening the dashboard in Electron (${binary}).`);
  const child = spawn(binary, [main], {
    stdio: 'inherit',
    env: { ...process.env, CMP_DASHBOARD_MODELS: JSON.stringify(models) },
  });
  return new Promise((done, fail) => {
    child.once('error', (err) =>
      fail(
        new CmpError('IO', `Cannot start Electron (${err.message}). Reinstall it: npm install electron`, {
          cause: err,
        }),
      ),
    );
    child.once('exit', (code) => done(code ?? 1));
  });
}
