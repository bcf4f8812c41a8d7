// The dashboard's device list: this machine (one entry per backend), boards on serial ports (listed, recorded by
// deploys, or named), SSH hosts and browser sites from earlier deploys ($CMP_HOME/devices.json).

import { listDevices, type DeviceRecord } from '../deploy/devices.js';
import { LOCAL_BACKENDS } from '../deploy/target-local.js';
import { formatAddress } from '../deploy/remote.js';
import { isCmpError } from '../errors.js';
import { listSerialPorts } from '../link/transport-serial.js';
import type { DashboardDevice } from './messages.js';

/** The device list and one line for each source that could not be read. */
export interface DeviceList {
  devices: DashboardDevice[];
  /** Recorded devices by id (what rpi profiling connects with, where browser profiles lie). */
  records: Map<string, DeviceRecord>;
  notes: string[];
}

/** Lists every device; `serialPaths` are ports the user named (pseudo-terminals are never listed by the system). */
export async function listDashboardDevices(serialPaths: readonly string[]): Promise<DeviceList> {
  const notes: string[] = [];
  const devices: DashboardDevice[] = LOCAL_BACKENDS.map((backend) => ({
    id: `local:${backend}`,
    kind: 'local',
    name: `this machine (${backend})`,
    detail: `${process.platform}/${process.arch}, ${backend === 'bitwasm' ? "cmp's 1-bit WebAssembly engine" : 'onnxruntime-node'}`,
    profilable: true,
    needsModel: true,
  }));
  const records = new Map<string, DeviceRecord>();
  let recorded: DeviceRecord[] = [];
  try {
    recorded = listDevices();
  } catch (err) {
    notes.push(isCmpError(err) ? err.message : String(err));
  }
  const serial = new Map<string, DashboardDevice>();
  const addSerial = (path: string, detail: string, model?: string): void => {
    if (serial.has(path)) return;
    serial.set(path, {
      id: `mcu:${path}`,
      kind: 'mcu',
      name: path,
      detail,
      profilable: true,
      needsModel: true,
      ...(model ? { model } : {}),
    });
  };
  for (const r of recorded.filter((d) => d.kind === 'mcu' && d.path))
    addSerial(r.path as string, `serial port (deployed ${r.deployedAt.slice(0, 10)})`, r.model);
  for (const path of serialPaths) addSerial(path, 'serial port (named)');
  try {
    for (const port of await listSerialPorts()) {
      addSerial(port.path, ['serial port', port.manufacturer, port.serialNumber].filter(Boolean).join(', '));
    }
  } catch (err) {
    notes.push(isCmpError(err) ? err.message : String(err));
  }
  devices.push(...serial.values());
  for (const r of recorded) {
    if (r.kind === 'rpi' && r.ssh) {
      const id = `rpi:${formatAddress(r.ssh)}`;
      if (records.has(id)) continue;
      records.set(id, r);
      devices.push({
        id,
        kind: 'rpi',
        name: formatAddress(r.ssh),
        detail: `SSH, release ${r.release ?? '?'} (${r.model})`,
        profilable: true,
        needsModel: false,
        model: r.model,
      });
    } else if (r.kind === 'browser' && r.path) {
      const id = `browser:${r.path}`;
      if (records.has(id)) continue;
      records.set(id, r);
      devices.push({
        id,
        kind: 'browser',
        name: r.path,
        detail: 'browser site: its pages post profiles to cmp serve',
        profilable: false,
        needsModel: false,
        model: r.model,
      });
    }
  }
  return { devices, records, notes };
}
