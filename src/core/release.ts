// The release format (cmp-release/1) shared by the host that builds a release and the device agent that runs it.

import * as v from 'valibot';
import { CmpError } from '../errors.js';
import { checkDocument } from './schema.js';

/*
 * On the device, under the base folder (default ~/.cmp):
 *   releases/<id>/            one immutable release: cmp-edge.mjs (the agent), bitwasm.wasm, release.json,
 *                             model/<files>, node_modules/ (onnxruntime-node for the device's platform, if any)
 *   releases/.partial-<id>/   an upload in progress; renamed to releases/<id> once every file is written
 *   current -> releases/<id>  the running release, switched by renaming a new link over it (atomic)
 *   previous -> releases/<id> the release before it, what rollback returns to
 *   agent.sock                the service: HTTP over this Unix socket (GET /health, POST /infer, GET /stats)
 *   agent.pid, agent.log      the supervisor's pid and log when systemd is not available
 *   agent.lock                held while an agent activates a release or starts or stops the service: JSON
 *                             {pid, what, since}; a lock whose pid is not a live cmp-edge is stale and taken over
 *   data/<name>.*             profiling inputs uploaded by cmp profile
 * A release id is the first 12 hex digits of a SHA-256 over its files, so deploying the same thing twice is a no-op.
 */

/** One file of a release, relative to its folder. */
const RELEASE_FILE_SCHEMA = v.object({
  path: v.string(),
  bytes: v.pipe(v.number(), v.safeInteger(), v.minValue(0)),
  sha256: v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/, '64 lowercase hex digits')),
});
export type ReleaseFileEntry = v.InferOutput<typeof RELEASE_FILE_SCHEMA>;

/**
 * release.json (cmp-release/1). `model`: relative to the release folder. `dataset`: the data set the model was trained
 * on (its manifest), the default for profiling. `backend`: the one the service and the profile run on (a registered
 * name, or auto), `backendReason` why (e.g. "onnxruntime-node ships linux/arm64"). `platform`: node's
 * process.platform / process.arch on the device it was built for. `smoke`: one instance and what the host's
 * onnxruntime answered for it; the health check compares the device's answer.
 */
export const RELEASE_CONFIG_SCHEMA = v.object({
  schema: v.literal('cmp-release/1'),
  id: v.pipe(v.string(), v.regex(/^[0-9a-f]{12}$/, '12 lowercase hex digits')),
  createdAt: v.string(),
  cmpVersion: v.string(),
  model: v.string(),
  dataset: v.optional(v.string()),
  backend: v.string(),
  backendReason: v.string(),
  platform: v.object({ os: v.string(), arch: v.string() }),
  smoke: v.object({
    input: v.array(v.number()),
    label: v.pipe(v.number(), v.safeInteger(), v.minValue(0)),
    logits: v.array(v.number()),
    tolerance: v.pipe(v.number(), v.minValue(0)),
  }),
  files: v.array(RELEASE_FILE_SCHEMA),
});
export type ReleaseConfig = v.InferOutput<typeof RELEASE_CONFIG_SCHEMA>;

/** `value` (a parsed release.json) as a whole ReleaseConfig, or one IO line naming the field and what to do. */
export function parseReleaseConfig(value: unknown, source: string): ReleaseConfig {
  return checkDocument(
    RELEASE_CONFIG_SCHEMA,
    value,
    (problem) =>
      new CmpError('IO', `The release config ${source} has ${problem}. Deploy the model again with cmp deploy.`),
  );
}

/** A release id: 12 lowercase hex digits. Everything that names a release on the device is checked against this. */
export const RELEASE_ID = /^[0-9a-f]{12}$/;

/** Where releases live under the base folder. */
export const RELEASE_LAYOUT = Object.freeze({
  releases: 'releases',
  current: 'current',
  previous: 'previous',
  partialPrefix: '.partial-',
  socket: 'agent.sock',
  pidFile: 'agent.pid',
  lock: 'agent.lock',
  log: 'agent.log',
  data: 'data',
  agent: 'cmp-edge.mjs',
  config: 'release.json',
  /** Written on the device at activation: the backend `auto` chose there, which the service then loads directly. */
  pinned: 'backend.json',
});
