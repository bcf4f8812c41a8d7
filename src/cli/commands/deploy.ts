// cmp deploy: puts an exported model on a target (mcu, rpi, browser, electron): the target's flags, then its deploy.

import { TARGETS as DEVICE_TARGETS } from '../../deploy/targets.js';
import { CmpError } from '../../errors.js';
import type { FlagDef, Parsed } from '../args.js';
import type { CliIo, Command } from '../command.js';
import { DATA_FLAG } from '../data-flag.js';
import { BROWSER_DEPLOY_FLAGS, browserDeploy } from './deploy/browser.js';
import { ELECTRON_DEPLOY_FLAGS, electronDeploy } from './deploy/electron.js';
import { MCU_DEPLOY_FLAGS, mcuDeploy } from './deploy/mcu.js';
import { RPI_DEPLOY_FLAGS, rpiDeploy } from './deploy/rpi.js';

/** One target's deploy action; it prints its own result and returns the exit code. */
export interface TargetDeploy {
  run(parsed: Parsed, io: CliIo): Promise<number>;
}

/**
 * The targets a model is deployed to, by kind, with the flags only they read (the rest are refused for them). The
 * local target is left out: this machine runs a model where it lies.
 */
const TARGETS: Readonly<Record<string, { deploy: TargetDeploy; flags: Record<string, FlagDef>; what: string }>> =
  Object.freeze({
    browser: { deploy: browserDeploy, flags: BROWSER_DEPLOY_FLAGS, what: DEVICE_TARGETS.browser.what },
    electron: { deploy: electronDeploy, flags: ELECTRON_DEPLOY_FLAGS, what: DEVICE_TARGETS.electron.what },
    mcu: { deploy: mcuDeploy, flags: MCU_DEPLOY_FLAGS, what: DEVICE_TARGETS.mcu.what },
    rpi: { deploy: rpiDeploy, flags: RPI_DEPLOY_FLAGS, what: DEVICE_TARGETS.rpi.what },
  });

/** Flags every target reads. --port is the serial port for mcu and the SSH port for rpi. */
const SHARED_FLAGS: Record<string, FlagDef> = {
  port: {
    type: 'string',
    value: 'PATH|N',
    help: 'mcu: serial port of the board (/dev/ttyACM0, /dev/pts/N); rpi: SSH port',
  },
  data: { ...DATA_FLAG, help: `${DATA_FLAG.help}; the smoke test runs its first test image` },
};

export const deployCommand: Command = {
  def: {
    name: 'deploy',
    summary:
      'Put an exported model on a device (mcu over serial, rpi over SSH), into a static site (browser) or into the dashboard app (electron).',
    positionals: ['MODEL'],
    flags: {
      target: {
        type: 'string',
        value: 'NAME',
        choices: Object.keys(TARGETS),
        help: 'where the model runs (required)',
      },
      ...SHARED_FLAGS,
      ...Object.fromEntries(Object.values(TARGETS).flatMap((t) => Object.entries(t.flags))),
    },
    examples: [
      'cmp deploy fm-exit.onnx --target rpi --host pi@raspberrypi.local',
      'cmp deploy fm-mlp.onnx --target mcu --port /dev/pts/3',
      'cmp deploy fm-exit.onnx --target browser --out site/',
      'cmp deploy fm-exit.onnx --target electron --out app-dist/',
    ],
  },
  async run(parsed: Parsed, io: CliIo): Promise<number> {
    const name = parsed.flags.target as string | undefined;
    // No target is assumed: a model meant for a browser must not be sent down a serial port.
    if (!name) {
      const targets = Object.entries(TARGETS).map(([n, t]) => `${n} (${t.what})`);
      throw new CmpError(
        'BAD_FLAG',
        `cmp deploy needs --target NAME, where the model goes: ${targets.join('; ')}. Example: cmp deploy ${parsed.positionals[0]} --target browser --out site/`,
      );
    }
    const target = TARGETS[name];
    refuseForeignFlags(parsed, name, target.flags);
    return target.deploy.run(parsed, io);
  },
};

/** A flag that belongs to another target is a mistake worth naming (e.g. --out with --target rpi). */
export function refuseForeignFlags(parsed: Parsed, name: string, own: Record<string, FlagDef>): void {
  for (const [other, target] of Object.entries(TARGETS)) {
    if (other === name) continue;
    for (const flag of Object.keys(target.flags)) {
      if (flag in own || parsed.flags[flag] === undefined) continue;
      throw new CmpError('BAD_FLAG', `--${flag} is for --target ${other}, not ${name}. Drop it or change --target.`);
    }
  }
}
