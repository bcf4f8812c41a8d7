// What the tests need from the machine, checked by `npm test` before it builds or runs anything: as root it installs
// the missing Debian packages (as CI does), otherwise it names them in one line with the command that installs them.
// Then the ARM test devices (test/arm-userlands.ts): as root it builds the missing ones from Debian's packages (about
// 12 minutes, once), otherwise one line names the command. `--check` only checks. CMP_PREREQ_ROOT looks for every
// file under another root (its test points it at an empty one).

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ARM_USERLAND_DIR, BUILD_COMMAND, buildUserland, enableBinfmt, missingUserlands } from './arm-userlands.js';

/** A Debian package the tests use, what for, and a file that is there once it is installed. */
export interface Prerequisite {
  debian: string;
  usedFor: string;
  /** An absolute path, or a program name looked up on PATH. */
  provides: string;
}

/** Every package the tests need; .ci/run installs the same list (test/prerequisites.test.ts keeps them equal). */
export const PREREQUISITES: readonly Prerequisite[] = Object.freeze([
  {
    debian: 'dataset-fashion-mnist',
    usedFor: 'real images for the export-equivalence and data tests',
    provides: join(
      process.env.CMP_FASHION_MNIST_DIR || '/usr/share/datasets/fashion-mnist',
      't10k-images-idx3-ubyte.gz',
    ),
  },
  { debian: 'gcc-arm-none-eabi', usedFor: 'building the microcontroller firmware', provides: 'arm-none-eabi-gcc' },
  {
    debian: 'libnewlib-arm-none-eabi',
    usedFor: "the firmware's C library",
    provides: '/usr/lib/arm-none-eabi/newlib/libc.a',
  },
  { debian: 'qemu-system-arm', usedFor: 'running the firmware on an emulated board', provides: 'qemu-system-arm' },
  { debian: 'gcc', usedFor: "building the firmware's kernels for the host tests", provides: 'gcc' },
  { debian: 'make', usedFor: 'the firmware builds', provides: 'make' },
  { debian: 'openssh-server', usedFor: "the rpi target's device, an sshd on 127.0.0.1", provides: '/usr/sbin/sshd' },
  { debian: 'chromium', usedFor: 'the browser target and the dashboard', provides: '/usr/bin/chromium' },
  { debian: 'qemu-user-static', usedFor: 'running the ARM test devices', provides: '/usr/bin/qemu-aarch64-static' },
  { debian: 'binfmt-support', usedFor: "enabling qemu-user's handlers", provides: 'update-binfmts' },
  { debian: 'debootstrap', usedFor: 'building the ARM test devices from Debian', provides: 'debootstrap' },
]);

/** Whether `provides` is there: a file under `root`, or a program on PATH (each PATH folder under `root`). */
function present(provides: string, root: string): boolean {
  if (provides.startsWith('/')) return existsSync(join(root, provides));
  return (process.env.PATH ?? '')
    .split(delimiter)
    .filter(Boolean)
    .some((dir) => existsSync(join(root, dir, provides)));
}

/** The prerequisites that are not installed. */
export function missingPrerequisites(root = process.env.CMP_PREREQ_ROOT ?? '/'): Prerequisite[] {
  return PREREQUISITES.filter((p) => !present(p.provides, root));
}

/** Checks, installs what it can, and returns the exit code: 0 when everything the tests need is there. */
function main(args: string[]): number {
  const code = packages(args);
  return code === 0 && !process.env.CMP_PREREQ_ROOT ? userlands(args) : code;
}

/** The Debian packages: checked, installed as root. */
function packages(args: string[]): number {
  let missing = missingPrerequisites();
  if (missing.length === 0) return 0;
  const names = missing.map((p) => p.debian);
  const canInstall =
    !args.includes('--check') && process.getuid?.() === 0 && !process.env.CMP_PREREQ_ROOT && present('apt-get', '/');
  if (canInstall) {
    process.stderr.write(`npm test: installing the Debian packages the tests need: ${names.join(' ')}\n`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const steps = [['update'], ['install', '-y', '--no-install-recommends', ...names]];
    for (const step of steps) spawnSync('apt-get', step, { stdio: ['ignore', 'inherit', 'inherit'], env });
    missing = missingPrerequisites();
    if (missing.length === 0) return 0;
  }
  const still = missing.map((p) => `${p.debian} (${p.usedFor})`).join(', ');
  const install = `${process.getuid?.() === 0 ? '' : 'sudo '}apt-get install ${missing.map((p) => p.debian).join(' ')}`;
  process.stderr.write(
    `npm test needs Debian packages that are not installed: ${still}. ${canInstall ? 'apt-get could not install them; check its output above, then run' : 'Install them:'} ${install}\n`,
  );
  return 1;
}

/** The ARM test devices: checked, built as root (debootstrap and qemu-user, from the packages above). */
function userlands(args: string[]): number {
  const build = !args.includes('--check') && process.getuid?.() === 0;
  const binfmt = build ? enableBinfmt() : undefined;
  let missing = missingUserlands();
  if (build && !binfmt && missing.length > 0) {
    for (const arch of missing) {
      const began = Date.now();
      process.stderr.write(
        `npm test: building the ${arch} test device in ${ARM_USERLAND_DIR} (debootstrap, minutes)\n`,
      );
      try {
        buildUserland(arch, 'ignore');
      } catch (e) {
        process.stderr.write(`npm test: ${(e as Error).message}\n`);
        break;
      }
      process.stderr.write(`npm test: built the ${arch} test device in ${Math.round((Date.now() - began) / 1000)} s\n`);
    }
    missing = missingUserlands();
  }
  if (binfmt) {
    process.stderr.write(`npm test: the ARM test devices need ${binfmt}\n`);
    return 1;
  }
  if (missing.length === 0) return 0;
  process.stderr.write(
    `npm test needs the ARM test devices (Debian ${missing.join(' and ')} userlands in ${ARM_USERLAND_DIR}), which are not built: run ${BUILD_COMMAND}\n`,
  );
  return 1;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));
