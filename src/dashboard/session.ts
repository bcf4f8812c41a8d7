// One dashboard's state and actions, whatever carries its messages (the WebSocket of `cmp dashboard`, Electron IPC):
// every incoming message is checked, answered with a reply or a one-line error, and jobs report through events.

import { readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { CMP_VERSION } from '../core/version.js';
import { SITE_LAYOUT } from '../core/site.js';
import { CmpError, isCmpError } from '../errors.js';
import type { DeviceProfile } from '../profile/device-profile.js';
import { listDashboardDevices, type DeviceList } from './devices.js';
import { profileEstimate } from './estimates.js';
import { latencyHistogram } from './histogram.js';
import {
  checkClientMessage,
  DASHBOARD_DATASETS,
  DASHBOARD_PROTOCOL,
  messageId,
  type ClientMessage,
  type DashboardDataset,
  type DashboardDevice,
  type DashboardState,
  type JobState,
  type McuDetails,
  type ModelView,
  type ProfileEntry,
  type ReplyResults,
  type ServerMessage,
} from './messages.js';
import { modelView } from './model-view.js';
import { profileDevice, readProfileFile, type ProfileJobRequest } from './profile-jobs.js';
import { buildReport } from './report.js';

/** Profiles read from each browser site, newest first (a site keeps every profile its pages posted). */
export const MAX_SITE_PROFILES = 10;
/** Shortest time between two progress events of one job, milliseconds. */
const PROGRESS_INTERVAL_MS = 100;

/** Options of {@link DashboardSession}. */
export interface DashboardSessionOptions {
  mode: 'http' | 'electron';
  /** Models to offer first (the Electron app's own model, `cmp dashboard --model`). */
  models?: string[];
  /** The data set the profile form starts with (default auto: the model's own). */
  dataset?: string;
}

/** The dashboard's state: devices, profiles in the comparison, jobs, the model view; shared by all its windows. */
export class DashboardSession {
  private readonly listeners = new Set<(message: ServerMessage) => void>();
  private readonly serialPaths: string[] = [];
  private devices: DeviceList = { devices: [], records: new Map(), notes: [] };
  private readonly profiles: ProfileEntry[] = [];
  private readonly jobs = new Map<number, JobState>();
  /** Browser profile files already in the comparison (or refused), by path. */
  private readonly siteFiles = new Set<string>();
  private siteNotes: string[] = [];
  private model: ModelView | undefined;
  private nextJob = 1;
  private nextKey = 1;
  // Jobs run one at a time: two profiles on one machine would time each other, and a serial port has one client.
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly options: DashboardSessionOptions) {}

  /** Calls `listener` with every event (job changes, the profile list); returns the unsubscribe function. */
  subscribe(listener: (message: ServerMessage) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves once every queued job has finished. */
  idle(): Promise<void> {
    return this.queue;
  }

  /** Checks and answers one incoming message: a reply with its id, or a one-line error. Never rejects. */
  async handle(value: unknown): Promise<ServerMessage> {
    let message: ClientMessage;
    try {
      message = checkClientMessage(value);
    } catch (err) {
      return errorReply(messageId(value), err);
    }
    try {
      const result = await this.answer(message);
      return { type: 'reply', id: message.id, result };
    } catch (err) {
      return errorReply(message.id, err);
    }
  }

  private async answer(message: ClientMessage): Promise<ReplyResults[ClientMessage['type']]> {
    switch (message.type) {
      case 'hello':
        await this.refresh();
        return this.state();
      case 'devices':
        if (message.serialPath !== undefined && !this.serialPaths.includes(message.serialPath)) {
          this.serialPaths.push(message.serialPath);
        }
        await this.refresh();
        return { devices: this.devices.devices, notes: this.notes() };
      case 'profile':
        return { job: await this.startJob(message) };
      case 'load-profile': {
        // A fleet's file holds one profile per device: each gets its own card, side by side.
        const entries = (await readProfileFile(message.path)).map((profile, i, all) =>
          this.addProfile(
            'file',
            all.length === 1 ? message.path : `${message.path}#${i}`,
            `${profile.device.name} · ${profile.backend} · ${basename(message.path)}`,
            profile,
          ),
        );
        return { profile: entries[0], profiles: entries };
      }
      case 'remove-profile': {
        const at = this.profiles.findIndex((p) => p.key === message.key);
        if (at < 0) {
          throw new CmpError(
            'BAD_ARGUMENT',
            `There is no profile "${message.key}". Use one of: ${this.profiles.map((p) => p.key).join(', ') || '(none)'}.`,
          );
        }
        this.profiles.splice(at, 1);
        this.emit({ type: 'profiles', profiles: this.profiles });
        return { removed: message.key };
      }
      case 'model':
        this.model = await modelView(message.path, message.device);
        return this.model;
      case 'report':
        return buildReport(this.profiles, this.model);
    }
  }

  private state(): DashboardState {
    const recorded = this.devices.devices.map((d) => d.model).filter((m): m is string => !!m);
    return {
      protocol: DASHBOARD_PROTOCOL,
      cmpVersion: CMP_VERSION,
      mode: this.options.mode,
      devices: this.devices.devices,
      profiles: this.profiles,
      jobs: [...this.jobs.values()],
      models: [...new Set([...(this.options.models ?? []), ...recorded])],
      datasets: DASHBOARD_DATASETS,
      dataset: DASHBOARD_DATASETS.includes(this.options.dataset ?? '')
        ? (this.options.dataset as DashboardDataset)
        : 'auto',
      notes: this.notes(),
    };
  }

  private notes(): string[] {
    return [...this.devices.notes, ...this.siteNotes];
  }

  /** Lists the devices again and adds the profiles browsers posted to recorded sites since. */
  private async refresh(): Promise<void> {
    this.devices = await listDashboardDevices(this.serialPaths);
    this.siteNotes = [];
    let added = false;
    for (const device of this.devices.devices.filter((d) => d.kind === 'browser')) {
      const dir = join(device.name, SITE_LAYOUT.profilesDir);
      let names: string[];
      try {
        names = (await readdir(dir)).filter((n) => n.endsWith('.json'));
      } catch {
        continue; // no page has posted a profile yet
      }
      // Stored names start with the time they were posted, so the last in order are the newest.
      for (const name of names.sort().slice(-MAX_SITE_PROFILES)) {
        const path = join(dir, name);
        if (this.siteFiles.has(path)) continue;
        try {
          // cmp serve stores one profile per file.
          const [profile] = await readProfileFile(path);
          this.addProfile(
            'browser',
            path,
            `browser · ${profile.backend} · ${basename(device.name)}/${name}`,
            profile,
            undefined,
            false,
          );
          added = true;
        } catch (err) {
          this.siteNotes.push(oneLine(err));
        }
        this.siteFiles.add(path);
      }
    }
    if (added) this.emit({ type: 'profiles', profiles: this.profiles });
  }

  private addProfile(
    source: ProfileEntry['source'],
    origin: string,
    title: string,
    profile: DeviceProfile,
    mcu?: McuDetails,
    announce = true,
  ): ProfileEntry {
    const entry: ProfileEntry = {
      key: `p${this.nextKey++}`,
      source,
      origin,
      title,
      profile,
      histogram: latencyHistogram(profile.latenciesMs),
      ...(mcu ? { mcu } : {}),
      estimate: profileEstimate(profile, origin, mcu),
    };
    this.profiles.push(entry);
    if (announce) this.emit({ type: 'profiles', profiles: this.profiles });
    return entry;
  }

  private async startJob(message: Extract<ClientMessage, { type: 'profile' }>): Promise<number> {
    let device = this.findDevice(message.device);
    if (!device) {
      await this.refresh();
      device = this.findDevice(message.device);
    }
    if (!device) {
      const ids = this.devices.devices.filter((d) => d.profilable).map((d) => d.id);
      throw new CmpError('BAD_ARGUMENT', `Unknown device "${message.device}". Use one of: ${ids.join(', ')}.`);
    }
    if (!device.profilable) {
      throw new CmpError(
        'BAD_ARGUMENT',
        `${device.name} profiles itself: open its site (cmp serve ${device.name}) and its page posts the profile here.`,
      );
    }
    if (device.needsModel && !message.model) {
      throw new CmpError('BAD_ARGUMENT', `Profiling ${device.name} needs a model: give the path of an ONNX file.`);
    }
    const job: JobState = {
      job: this.nextJob++,
      device: device.id,
      deviceName: device.name,
      ...(device.needsModel && message.model ? { model: message.model } : {}),
      state: 'queued',
      done: 0,
      total: message.count,
      message: 'waiting for the jobs before it',
    };
    this.jobs.set(job.job, job);
    this.emit({ type: 'job', job: { ...job } });
    const target = device;
    this.queue = this.queue.then(() => this.runJob(job, target, message));
    return job.job;
  }

  private findDevice(id: string): DashboardDevice | undefined {
    // A page from before one name per kind may still say serial: for a board.
    const known = id.startsWith('serial:') ? `mcu:${id.slice('serial:'.length)}` : id;
    return this.devices.devices.find((d) => d.id === known);
  }

  /** Runs one job to its end; a failure becomes the job's message, never a rejection (the queue goes on). */
  private async runJob(
    job: JobState,
    device: DashboardDevice,
    message: Extract<ClientMessage, { type: 'profile' }>,
  ): Promise<void> {
    let lastMs = 0;
    let lastDone = 0;
    const update = (change: Partial<JobState>, force = true): void => {
      Object.assign(job, change);
      const now = Date.now();
      // Progress goes out every PROGRESS_INTERVAL_MS, or every tenth of the job: fast jobs show progress too.
      if (!force && now - lastMs < PROGRESS_INTERVAL_MS && job.done - lastDone < job.total / 10) return;
      lastMs = now;
      lastDone = job.done;
      this.emit({ type: 'job', job: { ...job } });
    };
    update({ state: 'running', message: 'starting' });
    const request: ProfileJobRequest = {
      ...(message.model ? { model: message.model } : {}),
      dataset: message.dataset,
      count: message.count,
      onProgress: (done, total, text) => update({ done, total, message: text }, done === 0 || done === total),
    };
    try {
      const result = await profileDevice(device, this.devices.records.get(device.id), request);
      const p = result.profile;
      const entry = this.addProfile(
        'measured',
        device.id,
        `${device.name} · ${p.backend} · ${basename(p.model.path)}`,
        p,
        result.mcu,
      );
      update({
        state: 'done',
        done: p.samples,
        total: p.samples,
        profileKey: entry.key,
        message: `${p.samples} instances, p50 ${p.latencyMs.p50.toFixed(3)} ms, accuracy ${(p.accuracy * 100).toFixed(1)}%`,
      });
    } catch (err) {
      update({ state: 'failed', message: oneLine(err) });
    }
  }

  private emit(message: ServerMessage): void {
    for (const listener of this.listeners) {
      try {
        listener(message);
      } catch {
        // A window that went away must not stop the others from hearing.
      }
    }
  }
}

/** An error as the one line a reply carries: a CmpError's message, else "Internal error: " and its first line. */
function oneLine(err: unknown): string {
  const text = isCmpError(err) ? err.message : `Internal error: ${String((err as Error)?.message ?? err)}`;
  return text.split('\n')[0].trim();
}

function errorReply(id: number | null, err: unknown): ServerMessage {
  return { type: 'error', id, message: oneLine(err) };
}
