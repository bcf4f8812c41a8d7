// The dashboard's messages (cmp-dashboard/1): what the renderer sends over the WebSocket or Electron IPC, what the
// server answers, and the one check every incoming message passes before anything acts on it.

import * as v from 'valibot';
import { checkDocument } from '../core/schema.js';
import { CmpError } from '../errors.js';
import type { ModelAnalysis } from '../profile/analyze.js';
import type { DeviceProfile } from '../profile/device-profile.js';

/** The protocol name `hello` answers with; a change to the messages below changes it. */
export const DASHBOARD_PROTOCOL = 'cmp-dashboard/1';

/** Largest message the server reads, bytes (a request is a few paths and numbers). */
export const MAX_MESSAGE_BYTES = 64 * 1024;
/** Most instances one profiling request may run. */
export const MAX_PROFILE_COUNT = 10_000;
/** Longest path a message may carry, characters. */
export const MAX_PATH_LENGTH = 4096;

/** Data sets the profile form offers; `auto` is the model's own (its manifest), else Fashion-MNIST, else MNIST. */
export const DASHBOARD_DATASETS: readonly string[] = Object.freeze(['auto', 'fashion-mnist', 'mnist']);
/** One of DASHBOARD_DATASETS. */
export type DashboardDataset = 'auto' | 'fashion-mnist' | 'mnist';

/** A message id: a whole number >= 0 that the reply repeats. */
const ID = v.pipe(v.number(), v.safeInteger(), v.minValue(0));
/** A path, key or device id: one non-empty line of at most `max` characters. */
const line = (max: number) =>
  v.pipe(v.string(), v.minLength(1), v.maxLength(max), v.regex(/^[^\0\r\n]*$/, 'one line (no NUL, CR or LF)'));

/*
 * Requests, renderer -> server. Each carries `id`, a whole number the reply repeats:
 *   hello                              the whole state: devices, profiles, jobs, models, data sets
 *   devices [serialPath]               list the devices again; serialPath adds a port the system does not list
 *   profile device model dataset count start a profiling job (the reply names it; `job` events follow)
 *   load-profile path                  add a saved cmp-profile/1 JSON file (e.g. from cmp profile --target rpi --out)
 *   remove-profile key                 drop a profile from the comparison
 *   model path [device]                the model view of an ONNX file or a run folder; its analysis (cmp analyze)
 *                                      for device (an id devices lists; default this machine on ort-node)
 *   report                             the report: one self-contained HTML file and the JSON behind it
 * Unknown types and unknown keys are refused.
 */
export const CLIENT_MESSAGE_SCHEMA = v.variant('type', [
  v.strictObject({ id: ID, type: v.literal('hello') }),
  v.strictObject({ id: ID, type: v.literal('devices'), serialPath: v.optional(line(MAX_PATH_LENGTH)) }),
  v.strictObject({
    id: ID,
    type: v.literal('profile'),
    device: line(512),
    model: v.optional(line(MAX_PATH_LENGTH)),
    dataset: v.picklist(['auto', 'fashion-mnist', 'mnist']),
    count: v.pipe(v.number(), v.safeInteger(), v.minValue(1), v.maxValue(MAX_PROFILE_COUNT)),
  }),
  v.strictObject({ id: ID, type: v.literal('load-profile'), path: line(MAX_PATH_LENGTH) }),
  v.strictObject({ id: ID, type: v.literal('remove-profile'), key: line(64) }),
  v.strictObject({ id: ID, type: v.literal('model'), path: line(MAX_PATH_LENGTH), device: v.optional(line(512)) }),
  v.strictObject({ id: ID, type: v.literal('report') }),
]);
export type ClientMessage = v.InferOutput<typeof CLIENT_MESSAGE_SCHEMA>;

/** The request types, which name the reply each gets (ReplyResults). */
export type ClientMessageType = ClientMessage['type'];

/** A device the dashboard can show or profile. `id` is `<kind>:<name>`, the kind as deploy/target.ts names it. */
export interface DashboardDevice {
  id: string;
  kind: 'local' | 'mcu' | 'rpi' | 'browser';
  name: string;
  /** One line for the list: backend, port, host, site folder. */
  detail: string;
  /** Whether the dashboard can run a profile on it (browsers profile themselves, in their page). */
  profilable: boolean;
  /** Whether a profile needs a model path (rpi devices run the release they hold). */
  needsModel: boolean;
  /** The model last deployed there, as devices.json records it. */
  model?: string;
}

/** A latency histogram: `counts[i]` instances took from `edgesMs[i]` up to `edgesMs[i + 1]` milliseconds. */
export interface LatencyHistogram {
  edgesMs: number[];
  counts: number[];
}

/** What a split inference over a serial link adds to a profile: the device's share and the bytes each way. */
export interface McuDetails {
  port: string;
  board: string;
  firmwareVersion: string;
  clockHz: number;
  /** The board's model + activation arena, bytes. */
  arenaBytes: number;
  baudRate: number;
  /** Share of instances an exit on the device answered. */
  deviceShare: number;
  /** Wire bytes per inference, device -> host (answers, hand-offs) and host -> device (sensor feed, requests). */
  meanUpBytes: number;
  meanDownBytes: number;
  meanHandoffBytes: number;
  uplinkMsAtBaud: number;
  /** Mean time the device computed per inference (its cycle counter), milliseconds. */
  deviceMsMean: number;
  resends: number;
}

/** One profile in the comparison. */
export interface ProfileEntry {
  /** Unique within the session, e.g. p3. */
  key: string;
  /** measured: a job of this dashboard; file: a saved JSON file; browser: posted by a page to cmp serve. */
  source: 'measured' | 'file' | 'browser';
  /** The device id (measured), or the file the profile came from. */
  origin: string;
  title: string;
  profile: DeviceProfile;
  histogram: LatencyHistogram;
  mcu?: McuDetails;
  /** The latency cmp analyze estimates for this profile's model from the device's cost table, beside the measured. */
  estimate: LatencyEstimate;
}

/**
 * Estimated against measured latency of a profile. The estimate is the device's recorded cost table (cmp profile
 * writes it) applied to the model's analysis; the measured is the profile's: the batch-1 p50 on this machine's
 * backends, the device's mean compute time per inference on a board (the layers up to its last exit).
 */
export interface LatencyEstimate {
  /** The cost table's device (host-ort-node, mps2-an385), when there is one for this profile's device. */
  costTable?: string;
  /** Estimated ms (absent: no table, no model file, or the table lacks a kernel; `note` says which). */
  estimatedMs?: number;
  measuredMs: number;
  /** What the measured number is, in words. */
  measured: string;
  /** (estimated - measured) / measured. */
  error?: number;
  /** Why there is no estimate, or what it leaves out; one line. */
  note?: string;
}

/** A profiling job's state; `job` events carry it whenever it changes. */
export interface JobState {
  job: number;
  device: string;
  deviceName: string;
  model?: string;
  state: 'queued' | 'running' | 'done' | 'failed';
  done: number;
  total: number;
  /** What it is doing now, or why it failed (one line). */
  message: string;
  /** The profile it produced (done). */
  profileKey?: string;
}

/** The model view: what the file holds, per layer, and what training recorded about its mask and exits. */
export interface ModelView {
  path: string;
  kind: 'onnx' | 'run';
  /** ONNX file size, bytes (for a run folder: the size its export would have). */
  fileBytes: number;
  arch: string;
  dataset?: string;
  labels: number;
  layers: {
    name: string;
    kind: string;
    weights: string;
    inputs: string;
    weightCount: number;
    weightBytes: number;
    bitsPerWeight: number;
  }[];
  /** Over the binarized layers: bits stored per weight (levels and padding included). */
  binaryBitsPerWeight?: number;
  exits: { name: string; after: string; threshold: number | null }[];
  mask?: {
    kind: 'static' | 'dynamic';
    granularity: string;
    values: string;
    units: number;
    /** Units kept (static masks; for a run's dynamic mask, the mean over validation instances). */
    keptUnits?: number;
    fullInputBytes: number;
    /** Static masks and runs' dynamic masks (averaged over test images); none for a dynamic mask's ONNX file. */
    picture?: {
      /** [channels, height, width]; `sent` holds one value in [0, 1] per feature: the share of instances sending it. */
      shape: [number, number, number];
      sent: number[];
      /** The picture as a PNG data URL (white: sent). */
      png: string;
    };
    /** Why there is no picture, when one was expected. */
    note?: string;
  };
  /** Run folders: the learned mask's checkpoints (accuracy against the share of the input kept). */
  checkpoints: {
    dir: string;
    epoch: number;
    keptFraction: number;
    frameBytes: number;
    validationAccuracy: number;
    testAccuracy: number;
  }[];
  /**
   * What cmp analyze says of the model for `device` (a device id; the target and cost table follow from its kind):
   * per layer and in total work, memory, flash, the estimated latency, whether it fits and what to change.
   */
  analysis?: ModelAnalysis & {
    device: string;
    /** The cost table the estimate came from (absent: none recorded for the device; `note` says how to make one). */
    costTable?: string;
    note?: string;
  };
  /** Why there is no analysis (a file cmp cannot analyse); one line. */
  analysisNote?: string;
  /** Run folders: exit calibration's operating points (accuracy against mean latency). */
  calibration?: {
    pareto: { thresholds: number[]; accuracy: number; meanLatencyMs: number; exitShares: number[] }[];
    chosen: { thresholds: number[]; accuracy: number; meanLatencyMs: number; exitShares: number[] };
    full: { thresholds: number[]; accuracy: number; meanLatencyMs: number; exitShares: number[] };
  };
}

/** The answer to `hello`. */
export interface DashboardState {
  protocol: typeof DASHBOARD_PROTOCOL;
  cmpVersion: string;
  /** http: a browser against `cmp dashboard`; electron: the desktop app. */
  mode: 'http' | 'electron';
  devices: DashboardDevice[];
  profiles: ProfileEntry[];
  jobs: JobState[];
  /** Models to offer in the form (the Electron app's own model first). */
  models: string[];
  datasets: readonly string[];
  /** The data set the profile form starts with (the Electron app's, when its deploy named one). */
  dataset: DashboardDataset;
  /** One line each: what could not be read (a damaged devices.json, a site's bad profile, no serial listing). */
  notes: string[];
}

/** The report an export writes: one HTML file with its charts inline, and the JSON it shows. */
export interface DashboardReport {
  html: string;
  json: string;
}

/** Results by request type. */
export interface ReplyResults {
  hello: DashboardState;
  devices: { devices: DashboardDevice[]; notes: string[] };
  profile: { job: number };
  /** `profile` is the first of `profiles` (a fleet's file holds one per device). */
  'load-profile': { profile: ProfileEntry; profiles: ProfileEntry[] };
  'remove-profile': { removed: string };
  model: ModelView;
  report: DashboardReport;
}

/*
 * Server -> renderer: a reply or an error for each request (same id; id null when the request had no readable id),
 * and events: `job` when a job changes, `profiles` when the comparison changes.
 */
export type ServerMessage =
  | { type: 'reply'; id: number; result: ReplyResults[ClientMessageType] }
  | { type: 'error'; id: number | null; message: string }
  | { type: 'job'; job: JobState }
  | { type: 'profiles'; profiles: ProfileEntry[] };

/** The request id of `value` when it has a usable one, for the error reply to a message that fails the check. */
export function messageId(value: unknown): number | null {
  const id = (value as { id?: unknown } | null)?.id;
  return typeof value === 'object' && value !== null && Number.isSafeInteger(id) && (id as number) >= 0
    ? (id as number)
    : null;
}

/** Returns `value` as a ClientMessage, or throws one CmpError naming the first thing wrong with it. */
export function checkClientMessage(value: unknown): ClientMessage {
  const type = (value as { type?: unknown } | null)?.type;
  const known = CLIENT_MESSAGE_SCHEMA.options.some((o) => o.entries.type.literal === type);
  const bad = (problem: string): CmpError =>
    new CmpError(
      'BAD_ARGUMENT',
      `Dashboard message ${known ? `"${String(type)}" ` : ''}has ${problem}. See src/dashboard/messages.ts for the requests.`,
    );
  if (Array.isArray(value)) throw bad('a top level that is a list, expected an object');
  return checkDocument(CLIENT_MESSAGE_SCHEMA, value, bad);
}
