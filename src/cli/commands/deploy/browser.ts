// cmp deploy --target browser: the browser target's flags, and the site it wrote as a table.

import { BROWSER_BACKENDS, type BrowserDeployReport } from '../../../deploy/target-browser.js';
import { TARGETS } from '../../../deploy/targets.js';
import { CmpError } from '../../../errors.js';
import { readModelFile } from '../../../runtime/model-file.js';
import type { FlagDef, Parsed } from '../../args.js';
import type { CliIo } from '../../command.js';
import { dataLoader } from '../../data-flag.js';
import { formatBytes, formatPercent, formatTable } from '../../table.js';

/** Flags only this target reads. */
export const BROWSER_DEPLOY_FLAGS: Record<string, FlagDef> = {
  out: {
    type: 'string',
    value: 'DIR',
    help: 'browser: folder the static site is written to (new, empty, or an earlier cmp site)',
  },
  samples: { type: 'int', default: '100', help: 'browser: test images the page answers and profiles' },
  backend: {
    type: 'string',
    value: 'NAME',
    default: 'auto',
    choices: BROWSER_BACKENDS,
    help: 'browser: backend the page opens the model on (the address may override it: ?backend=NAME)',
  },
};

/** Writes the static site. */
export const browserDeploy = {
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const f = parsed.flags;
    const out = f.out as string | undefined;
    if (!out) {
      throw new CmpError('BAD_FLAG', 'cmp deploy --target browser needs --out DIR, the folder the site is written to.');
    }
    // deploy merges every target's flags, so a --backend of another target could have passed the parser's choices:
    // the target refuses it.
    const r = await TARGETS.browser.deploy(
      { out, backend: (f.backend as string | undefined) ?? 'auto', samples: (f.samples as number | undefined) ?? 100 },
      readModelFile(parsed.positionals[0]),
      { data: dataLoader(f.data, io), onProgress: (message) => io.progress.update(message) },
    );
    io.progress.done();
    const result: BrowserDeployReport & { serve: string } = { ...r, serve: `cmp serve ${out}` };
    if (io.json) {
      io.out(JSON.stringify(result, null, 2));
      return 0;
    }
    io.out(
      formatTable(
        ['model', 'site', 'samples', 'backend', 'files', 'size', 'host accuracy'],
        [
          [
            r.model,
            out,
            `${r.samples} ${r.dataset}`,
            r.backend,
            r.files,
            formatBytes(r.bytes),
            formatPercent(r.host.accuracy),
          ],
        ],
      ),
    );
    const said = Object.entries(r.parts).map(([part, n]) => `${part} ${formatBytes(n)}`);
    io.out(
      `Site: ${formatBytes(r.bytes)} (${said.join(', ')}). Runtimes: ${r.runtimes.join(' and ')} (${r.runtimesReason}).`,
    );
    io.out(`Serve it: cmp serve ${out}`);
    return 0;
  },
};
