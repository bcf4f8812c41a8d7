// The rpi target: any Linux device with Node reachable over SSH (rpi.ts does the work: releases, the device agent,
// health checks). Deploys record the device; profiles run on the device and come back checked as cmp-profile/1.

import { checkDeviceProfile } from '../profile/device-profile-check.js';
import { datasetConsumer } from '../runtime/model-file.js';
import { recordDevice, type DeviceRecord } from './devices.js';
import {
  deployRpi,
  profileRpi,
  rollbackRpi,
  rpiStatus,
  type ReleasePlans,
  type RpiDeployReport,
  type RpiOptions,
  type RpiStatus,
} from './rpi.js';
import { formatAddress } from './remote.js';
import { CmpError } from '../errors.js';
import type { Target } from './target.js';

/** A device over SSH; the devices of a fleet deployed together share `plans` (one release plan per platform). */
export interface RpiDevice extends RpiOptions {
  plans?: ReleasePlans;
}

/** The rpi target keeps releases: status and rollback are always there. */
export type RpiTarget = Target<RpiDevice, RpiDeployReport, undefined, RpiStatus> &
  Required<Pick<Target<RpiDevice, RpiDeployReport, undefined, RpiStatus>, 'status' | 'rollback'>>;

export const rpiTarget: RpiTarget = {
  kind: 'rpi',
  what: 'a Linux device over SSH, with --host USER@HOST',

  async deploy(device, file, options) {
    const data = await options.data(datasetConsumer(file), 1);
    const features = data.inputShape.reduce((a, b) => a * b, 1);
    const report = await deployRpi(
      file,
      data.test.x.slice(0, features),
      device,
      device.plans ?? (new Map() as ReleasePlans),
    );
    const { address, identity, knownHosts, remoteDir, node } = device;
    recordDevice({
      kind: 'rpi',
      name: report.host,
      ssh: { ...address, identity, knownHosts, remoteDir, node },
      model: file.path,
      release: report.release,
      deployedAt: new Date().toISOString(),
    });
    return report;
  },

  /** Profiles the release the device runs (request.model is not used), on the device, with its agent. */
  async profile(device, request) {
    const progress = request.onProgress;
    const options: RpiOptions = progress
      ? {
          ...device,
          onProgress: (message) => {
            const m = /(\d+)\/(\d+)/.exec(message);
            progress(m ? Number(m[1]) : 0, m ? Number(m[2]) : request.count, message);
          },
        }
      : device;
    const profile = await profileRpi(
      options,
      async (releaseDataset) => {
        const data = await request.data({ name: 'the release', recorded: releaseDataset }, request.count);
        return { name: data.name, split: data.test, features: data.inputShape.reduce((a, b) => a * b, 1) };
      },
      request.count,
      request.backend,
    );
    // What a device sends back enters here: checked whole before anyone reads it.
    return { profile: checkDeviceProfile(profile, formatAddress(device.address)), details: undefined };
  },

  status: (device) => rpiStatus(device),
  rollback: (device) => rollbackRpi(device),
};

/** How to reach a device devices.json recorded. */
export function rpiDeviceOf(record: DeviceRecord): RpiDevice {
  const ssh = record.ssh;
  if (!ssh) throw new CmpError('BAD_ARGUMENT', `Device ${record.name} has no SSH address. Deploy to it again.`);
  return {
    address: { user: ssh.user, host: ssh.host, port: ssh.port },
    identity: ssh.identity,
    knownHosts: ssh.knownHosts,
    remoteDir: ssh.remoteDir,
    node: ssh.node,
  };
}
