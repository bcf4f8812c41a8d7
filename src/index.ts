// The cmp library's public API: what targets/, app/ and users import (never the CLI).

export { CmpError, isCmpError, type CmpErrorCode } from './errors.js';
export { expandBinary, packBits, packedRowBytes, unpackBits } from './core/bitpack.js';
export { bestSplit, binarizeRows, type BinaryRows } from './core/binarize.js';
export { nowMs, percentile } from './core/clock.js';
export { freeze, type FrozenLayer, type FrozenModel, type FrozenWeightLayer } from './core/frozen.js';
export { MANIFEST_KEY, parseManifest, PIXEL_FEED, type LayerManifest, type Manifest } from './core/manifest.js';
export { loadRun, saveRun, type Run, type RunRecord, type TrainingRecord } from './core/run.js';
export {
  ACTIVATION_LLOYD_STEPS,
  buildSpec,
  inferShapes,
  parseSpec,
  type BinarizeMode,
  type LayerSpec,
  type ModelSpec,
} from './core/spec.js';
export { CMP_VERSION } from './core/version.js';
export { loadDataset, resolveDefaultDataset, type Dataset, type Split } from './data/datasets.js';
export { readIdx, readIdxFile, writeIdx, type IdxArray } from './data/idx.js';
export { trainRun, specFor, type TrainRunOptions } from './compress/train-run.js';
export {
  evaluateFrozen,
  predictFrozen,
  train,
  type TrainOptions,
  type TrainProgress,
  type TrainResult,
} from './compress/train.js';
export { exportOnnx, EXPORT_OPSET, type ExportResult } from './export/export-onnx.js';
export { exportRun } from './export/export-run.js';
export { backendNames, createBackend, registerBackend, type Backend, type BackendFactory } from './runtime/backends.js';
export { evaluate, predict, type EvalResult } from './runtime/evaluate.js';
export { inspectModel, type ModelReport } from './runtime/inspect.js';
export {
  callerNormalization,
  parseModelFile,
  readModelFile,
  withInputRange,
  type ModelFile,
} from './runtime/model-file.js';
export { pruneRun, removeDeadGroups, type PruneRunOptions, type PruneRunResult } from './compress/prune-run.js';
export { importRun, parseInputRange, type ImportRunOptions, type ImportRunResult } from './import/import-run.js';
export { inspectTfjs, type TfjsReport } from './import/inspect-tfjs.js';
export {
  applyPruning,
  planPruning,
  scoreGroups,
  weightCount,
  PRUNE_METHODS,
  type PruneMethod,
} from './compress/prune.js';
export { shrinkGroups, type GroupSparsityOptions } from './compress/gss.js';
export { calibrate, observeExits, paretoSet, type CalibrationGoal } from './compress/calibrate.js';
export { softmaxEntropy } from './core/entropy.js';
export { stagePath } from './core/manifest.js';
export { StagedModel, measureStageLatency, type StagedResult } from './runtime/early-exit.js';
export { Profiler } from './runtime/profiler.js';
export { Predictor, type Prediction, type PredictorOptions } from './runtime/predictor.js';
export { type DeviceFacts, type DeviceProfile, type LatencySummary } from './profile/device-profile.js';
export { DashboardSession, type DashboardSessionOptions } from './dashboard/session.js';
export {
  rendererDir,
  RENDERER_FILES,
  startDashboardServer,
  WEBSOCKET_PATH,
  type DashboardServer,
  type DashboardServerOptions,
} from './dashboard/server.js';
export { contentSecurityPolicy, DASHBOARD_HEADERS } from './dashboard/security.js';
export {
  checkClientMessage,
  DASHBOARD_DATASETS,
  DASHBOARD_PROTOCOL,
  MAX_MESSAGE_BYTES,
  MAX_PROFILE_COUNT,
  type ClientMessage,
  type DashboardDataset,
  type DashboardDevice,
  type DashboardReport,
  type DashboardState,
  type JobState,
  type LatencyHistogram,
  type McuDetails,
  type ModelView,
  type ProfileEntry,
  type ReplyResults,
  type ServerMessage,
} from './dashboard/messages.js';
export {
  ELECTRON_APP_LAYOUT,
  ELECTRON_APP_SCHEMA,
  readElectronAppConfig,
  writeElectronApp,
  type ElectronAppConfig,
  type ElectronAppReport,
  type ElectronAppSettings,
} from './deploy/electron-app.js';
