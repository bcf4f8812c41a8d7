// The edge runtime's public API: what device bundles (targets/rpi, targets/browser) import. It leaves out the trainer
// and the exporter, so a bundle of it carries no TensorFlow.js.

export { CmpError, isCmpError, type CmpErrorCode } from './errors.js';
export { nowMs, percentile } from './core/clock.js';
export { argmaxAt, softmaxEntropy } from './core/entropy.js';
export { modelFilePaths, PIXEL_FEED, selectorPath, stagePath, type Manifest } from './core/manifest.js';
export { CMP_VERSION } from './core/version.js';
export { backendNames, createBackend, registerBackend, type Backend, type BackendFactory } from './runtime/backends.js';
export { StagedModel, type StagedResult } from './runtime/early-exit.js';
export { MaskedInput, type LinkTally } from './runtime/masked-input.js';
export {
  callerNormalization,
  parseModelFile,
  readModelFile,
  readModelFileAsync,
  type ModelFile,
  type ModelReader,
} from './runtime/model-file.js';
export { Predictor, type Prediction, type PredictorOptions } from './runtime/predictor.js';
export { Profiler, type ProfileRow } from './runtime/profiler.js';
export {
  profilePredictor,
  summarize,
  type DeviceFacts,
  type DeviceProfile,
  type LatencySummary,
  type ProfileMeasurement,
} from './profile/device-profile.js';
export {
  parseReleaseConfig,
  RELEASE_ID,
  RELEASE_LAYOUT,
  type ReleaseConfig,
  type ReleaseFileEntry,
} from './core/release.js';
export {
  parseSiteConfig,
  SITE_LAYOUT,
  SITE_LOGIT_TOLERANCE,
  SITE_RUNTIMES,
  SITE_SCHEMA,
  type SiteConfig,
  type SitePrediction,
  type SiteRuntime,
} from './core/site.js';
