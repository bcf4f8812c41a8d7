// The release format (cmp-release/1) shared by the host that builds a release and the device agent that runs it.

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
export interface ReleaseFileEntry {
  path: string;
  bytes: number;
  sha256: string;
}

/** release.json. */
export interface ReleaseConfig {
  schema: 'cmp-release/1';
  id: string;
  createdAt: string;
  cmpVersion: string;
  /** The model, relative to the release folder. */
  model: string;
  /** The data set the model was trained on (its manifest), the default for profiling. */
  dataset?: string;
  /** Backend the service and the profile run on (a registered name, or auto). */
  backend: string;
  /** Why this backend: e.g. "onnxruntime-node ships linux/arm64". */
  backendReason: string;
  /** The platform the release was built for (node's process.platform / process.arch on the device). */
  platform: { os: string; arch: string };
  /** One instance and what the host's onnxruntime answered for it: the health check compares the device's answer. */
  smoke: { input: number[]; label: number; logits: number[]; tolerance: number };
  files: ReleaseFileEntry[];
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
