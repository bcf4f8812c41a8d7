// cmp deploy --target mcu: the mcu target's flags, and what the upload and smoke test found as a table.

import { TARGETS } from '../../../deploy/targets.js';
import { CmpError } from '../../../errors.js';
import { DEFAULT_BAUD_RATE } from '../../../link/transport-serial.js';
import { readModelFile } from '../../../runtime/model-file.js';
import type { FlagDef, Parsed } from '../../args.js';
import type { CliIo } from '../../command.js';
import { dataLoader } from '../../data-flag.js';
import { formatTable } from '../../table.js';

/** Flags only this target reads. */
export const MCU_DEPLOY_FLAGS: Record<string, FlagDef> = {
  'baud-rate': { type: 'int', default: String(DEFAULT_BAUD_RATE), help: 'mcu: line speed (a PTY ignores it)' },
};

/** Deploys to a microcontroller running cmp's firmware on a serial port. */
export const mcuDeploy = {
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const f = parsed.flags;
    const port = f.port as string | undefined;
    if (!port) {
      throw new CmpError(
        'BAD_FLAG',
        "cmp deploy --target mcu needs --port PATH (cmp firmware qemu prints the emulated board's).",
      );
    }
    const result = await TARGETS.mcu.deploy(
      { port, baudRate: f['baud-rate'] as number | undefined },
      readModelFile(parsed.positionals[0]),
      { data: dataLoader(f.data, io), onProgress: (message) => io.progress.update(message) },
    );
    io.progress.done();
    const { smoke } = result;
    if (io.json) io.out(JSON.stringify(result, null, 2));
    else {
      io.out(
        formatTable(
          [
            'model',
            'board',
            'blob bytes',
            'arena used',
            'CRC-32',
            'upload ms',
            'label (device/host)',
            'max logit diff',
            'device ms',
          ],
          [
            [
              result.model,
              result.board,
              result.blobBytes,
              `${result.arenaUsed}/${result.arenaBytes}`,
              result.crc,
              result.uploadMs,
              `${smoke.deviceLabel}/${smoke.hostLabel}`,
              smoke.maxLogitDiff.toExponential(1),
              smoke.deviceMs.toFixed(2),
            ],
          ],
        ),
      );
    }
    return 0;
  },
};
