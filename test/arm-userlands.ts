// Real ARM devices for the rpi tests: Debian bookworm userlands for armhf (what Raspberry Pi OS 32-bit is built on,
// Node 18 from Debian) and arm64, run by qemu-user through binfmt_misc. Built once with debootstrap into a cache
// outside the repository ($CMP_ARM_USERLANDS, default /var/cache/cmp-arm) and reached through an sshd whose logins
// land in them (test/e2e/sshd.ts). `node --import tsx test/arm-userlands.ts` builds the missing ones (as root, about
// 5 and 7 minutes); npm test's prerequisite check runs it, so CI builds them on its first run.

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where the userlands live, one folder per architecture. Safe to delete: the next build makes them again. */
export const ARM_USERLAND_DIR = process.env.CMP_ARM_USERLANDS || '/var/cache/cmp-arm';

/** Debian's architecture names; Node reports them as `arm` and `arm64`. */
export type ArmArch = 'armhf' | 'arm64';
export const ARM_ARCHES: readonly ArmArch[] = Object.freeze(['armhf', 'arm64']);

/**
 * What each userland is: the suite, and what debootstrap adds to its minimal base: Node from Debian, as on Pi OS, and
 * the CA list Pi OS has (without it Debian's node warns on every start that it cannot load it).
 */
const SUITE = 'bookworm';
const PACKAGES = ['nodejs', 'ca-certificates'];
/** qemu-user's binfmt_misc handler for each architecture. */
const BINFMT: Record<ArmArch, string> = { armhf: 'qemu-arm', arm64: 'qemu-aarch64' };
/** Written last into a finished userland: a folder without it is a build that did not finish. */
const STAMP = 'cmp-userland.json';

/** The command that builds the userlands, for messages. */
export const BUILD_COMMAND = 'sudo node --import tsx test/arm-userlands.ts';

/** The root folder of the `arch` userland. */
export function userlandRoot(arch: ArmArch): string {
  return join(ARM_USERLAND_DIR, arch);
}

/** The userlands that are not built (or whose build did not finish, or was made with another package list). */
export function missingUserlands(): ArmArch[] {
  return ARM_ARCHES.filter((arch) => {
    try {
      const stamp = JSON.parse(readFileSync(join(userlandRoot(arch), STAMP), 'utf8')) as { packages?: string[] };
      return stamp.packages?.join(' ') !== PACKAGES.join(' ');
    } catch {
      return true;
    }
  });
}

/**
 * Makes qemu-user run ARM programs, inside a chroot too: binfmt_misc mounted and the handlers enabled with the F flag
 * (Debian's qemu-user-static registers them so), which loads the emulator before the chroot hides it. Returns why
 * not, or undefined.
 */
export function enableBinfmt(): string | undefined {
  const misc = '/proc/sys/fs/binfmt_misc';
  const handlerOk = (arch: ArmArch): boolean => {
    try {
      const text = readFileSync(join(misc, BINFMT[arch]), 'utf8');
      return /^enabled$/m.test(text) && /^flags: .*F/m.test(text);
    } catch {
      return false;
    }
  };
  if (ARM_ARCHES.every(handlerOk)) return undefined;
  if (process.getuid?.() !== 0) {
    return `qemu-user's binfmt_misc handlers (${ARM_ARCHES.map((a) => BINFMT[a]).join(', ')}) are not enabled with the F flag: as root, run mount -t binfmt_misc binfmt_misc ${misc}; update-binfmts --enable`;
  }
  if (!existsSync(join(misc, 'register'))) spawnSync('mount', ['-t', 'binfmt_misc', 'binfmt_misc', misc]);
  for (const arch of ARM_ARCHES) spawnSync('update-binfmts', ['--enable', BINFMT[arch]]);
  const off = ARM_ARCHES.filter((a) => !handlerOk(a));
  if (off.length === 0) return undefined;
  return `could not enable qemu-user's binfmt_misc handlers ${off.map((a) => BINFMT[a]).join(', ')} with the F flag: install qemu-user-static and binfmt-support, then run mount -t binfmt_misc binfmt_misc ${misc}; update-binfmts --enable`;
}

/** The Debian mirror apt uses here (deb822 or one-line sources), else Debian's own. */
export function debianMirror(): string {
  for (const file of ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list']) {
    if (!existsSync(file)) continue;
    const text = readFileSync(file, 'utf8');
    const uri =
      /^URIs:\s*(\S+\/debian)\/?\s*$/m.exec(text)?.[1] ??
      /^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian)\/?\s/m.exec(text)?.[1];
    if (uri) return uri;
  }
  return 'http://deb.debian.org/debian';
}

/**
 * Builds the `arch` userland with debootstrap into a partial folder, then renames it into place, so a userland only
 * ever appears whole. Output goes to `log`. Throws a one-line error when debootstrap fails.
 */
export function buildUserland(arch: ArmArch, log: 'inherit' | 'ignore' = 'inherit'): void {
  const root = userlandRoot(arch);
  const partial = `${root}.partial`;
  rmSync(partial, { recursive: true, force: true });
  rmSync(root, { recursive: true, force: true });
  const args = ['--arch', arch, '--variant=minbase', `--include=${PACKAGES.join(',')}`, SUITE, partial, debianMirror()];
  const r = spawnSync('debootstrap', args, { stdio: ['ignore', log, log] });
  if (r.status !== 0) {
    const tail = existsSync(join(partial, 'debootstrap', 'debootstrap.log'))
      ? ` (see ${join(partial, 'debootstrap', 'debootstrap.log')})`
      : '';
    throw new Error(`debootstrap ${args.join(' ')} failed with code ${r.status}${tail}`);
  }
  const stamp = { arch, suite: SUITE, packages: PACKAGES, builtAt: new Date().toISOString() };
  writeFileSync(join(partial, STAMP), `${JSON.stringify(stamp)}\n`);
  renameSync(partial, root);
}

/**
 * Readies a built userland for a login: binfmt enabled, and /proc and /sys mounted inside it (Node and onnxruntime
 * read them; without /sys onnxruntime prints cpuinfo warnings). Returns its root; throws one line saying what to run.
 */
export function prepareUserland(arch: ArmArch): string {
  const binfmt = enableBinfmt();
  if (binfmt) throw new Error(`The ${arch} test device needs ${binfmt}`);
  if (missingUserlands().includes(arch)) {
    throw new Error(
      `The ${arch} test device (a Debian userland in ${userlandRoot(arch)}) is not built: run ${BUILD_COMMAND}`,
    );
  }
  const root = userlandRoot(arch);
  for (const [kind, at] of [
    ['proc', 'proc'],
    ['sysfs', 'sys'],
  ]) {
    if (spawnSync('mountpoint', ['-q', join(root, at)]).status === 0) continue;
    const r = spawnSync('mount', ['-t', kind, kind, join(root, at)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`The ${arch} test device needs /${at} mounted (as root): ${r.stderr.trim()}`);
  }
  return root;
}

/** Builds the missing userlands; the exit code says whether they are all there. */
function main(): number {
  const binfmt = enableBinfmt();
  if (binfmt) {
    process.stderr.write(`The ARM test devices need ${binfmt}\n`);
    return 1;
  }
  for (const arch of missingUserlands()) {
    if (process.getuid?.() !== 0) {
      process.stderr.write(`Building the ${arch} test device needs root (debootstrap, chroot): run ${BUILD_COMMAND}\n`);
      return 1;
    }
    const began = Date.now();
    process.stderr.write(`building the ${arch} test device in ${userlandRoot(arch)} with debootstrap (minutes)\n`);
    try {
      buildUserland(arch);
    } catch (e) {
      process.stderr.write(`${(e as Error).message}\n`);
      return 1;
    }
    process.stderr.write(`built the ${arch} test device in ${Math.round((Date.now() - began) / 1000)} s\n`);
  }
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exitCode = main();
