// cmp deploy --target electron: the electron target's flags, the app folder it wrote as a table, and whether this
// machine has Electron to run it.

import { resolve } from 'node:path';
import { DASHBOARD_DATASETS } from '../../../dashboard/messages.js';
import { TARGETS } from '../../../deploy/targets.js';
import { CmpError } from '../../../errors.js';
import { readModelFile } from '../../../runtime/model-file.js';
import type { FlagDef, Parsed } from '../../args.js';
import type { CliIo } from '../../command.js';
import { dataLoader } from '../../data-flag.js';
import { electronBinary, electronRange } from '../../electron.js';
import { formatBytes, formatTable } from '../../table.js';

/** Flags only this target reads (--out is shared with browser: both write a folder). */
export const ELECTRON_DEPLOY_FLAGS: Record<string, FlagDef> = {
  out: {
    type: 'string',
    value: 'DIR',
    help: 'browser, electron: folder the site or app is written to (new, empty, or one cmp wrote before)',
  },
};

/** Writes the app folder. */
export const electronDeploy = {
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const f = parsed.flags;
    const out = f.out as string | undefined;
    if (!out) {
      throw new CmpError('BAD_FLAG', 'cmp deploy --target electron needs --out DIR, the folder the app is written to.');
    }
    const dataset = f.data as string | undefined;
    if (dataset !== undefined && !DASHBOARD_DATASETS.includes(dataset)) {
      throw new CmpError(
        'BAD_FLAG',
        `--data ${dataset} is not one the app offers. Use one of: ${DASHBOARD_DATASETS.filter((d) => d !== 'auto').join(', ')}.`,
      );
    }
    const file = readModelFile(parsed.positionals[0]);
    const { app: report } = await TARGETS.electron.deploy({ out, dataset }, file, {
      data: dataLoader(f.data, io),
      onProgress: (message) => io.progress.update(message),
    });
    const here = electronBinary();
    io.progress.done();
    const result = {
      model: file.path,
      target: 'electron',
      out,
      appModel: report.model,
      platform: `${report.platform.os}/${report.platform.arch}`,
      files: report.files,
      bytes: report.bytes,
      packages: report.packages,
      // What the folder needs to run: Electron is not in it (the app's host provides it), and its native files are
      // this platform's.
      needs: { electron: electronRange(), platform: `${report.platform.os}/${report.platform.arch}` },
      electronHere: here ?? null,
      run: here ? `${here} ${resolve(out)}` : `electron ${resolve(out)}`,
    };
    if (io.json) io.out(JSON.stringify(result, null, 2));
    else {
      io.out(
        formatTable(
          ['model', 'app', 'platform', 'files', 'size', 'runtime packages'],
          [[file.path, out, result.platform, report.files, formatBytes(report.bytes), report.packages.length]],
        ),
      );
      const needs = `Electron ${result.needs.electron} on ${result.needs.platform}`;
      if (here) io.out(`Run it: ${result.run} (it needs ${needs}; this machine has it).`);
      else {
        io.out(
          `It needs ${needs}, which this machine lacks: Electron is not in the folder. Run it where Electron is installed (${result.run}), package it with electron-builder or electron-forge, or install Electron here (npm install electron, which downloads its binary). Without Electron, the same dashboard runs in a browser: cmp dashboard --http --model ${file.path}`,
        );
      }
    }
    return 0;
  },
};
