// The browser site format (cmp-site/1) shared by `cmp deploy --target browser`, which writes it, the page, which
// reads it, and `cmp serve`, which serves it.

/*
 * In the site folder:
 *   index.html, cmp-page.js    the page and its bundle (dist/targets/browser/, built by targets/build.ts)
 *   bitwasm.wasm               cmp's own kernels, fetched from beside the bundle        } the runtimes the model can
 *   ort-web.js, ort-wasm-*     onnxruntime-web and its WebAssembly runtime               } use: see SITE_RUNTIMES
 *   model/<files>              the model and its stage and selector files, under their exported names
 *   samples.f32                the sample inputs: count x features float32 values in [0, 1], little-endian, row-major
 *   site.json                  this config; written first, so a deploy cut short still names every file it owns
 *   profiles/<name>.json       profiles the page posted to `cmp serve` (a redeploy keeps them)
 */

/** One sample as the host's onnxruntime-node answered it. */
export interface SitePrediction {
  label: number;
  /** 1..n for an early exit, 0 for the final classifier. */
  exit: number;
  logits: number[];
}

/** site.json. */
export interface SiteConfig {
  schema: 'cmp-site/1';
  createdAt: string;
  cmpVersion: string;
  /** The model, relative to the site folder; its stage and selector files lie beside it. */
  model: string;
  /** Backend the page opens the model on unless its address names another (?backend=NAME). */
  backend: string;
  /**
   * The runtimes the site ships (keys of SITE_RUNTIMES); the page opens the model on no other. Sites written before
   * this field shipped both.
   */
  runtimes?: SiteRuntime[];
  samples: {
    /** Relative to the site folder. */
    file: string;
    dataset: string;
    count: number;
    /** Values of one instance (channels x height x width). */
    features: number;
    /** True label of each sample. */
    labels: number[];
    /** Class names, indexed by label. */
    classes: string[];
    /** What the host answered for each sample, for the page to compare its own answers with. */
    host: { backend: string; predictions: SitePrediction[] };
  };
  /** Every file the deploy wrote, relative to the site folder: a redeploy removes exactly these. */
  files: string[];
}

export const SITE_SCHEMA = 'cmp-site/1';

/** Fixed names inside a site folder. */
export const SITE_LAYOUT = Object.freeze({
  config: 'site.json',
  page: 'index.html',
  /** The page's script, built by targets/build.ts beside index.html. */
  bundle: 'cmp-page.js',
  samples: 'samples.f32',
  modelDir: 'model',
  profilesDir: 'profiles',
  /** Where the page posts its profile, relative to the site's root. */
  profileEndpoint: 'profiles',
});

/** The files each runtime the page can use adds to a site; a deploy ships only those the model can use. */
export const SITE_RUNTIMES = Object.freeze({
  bitwasm: Object.freeze(['bitwasm.wasm']),
  'ort-web': Object.freeze(['ort-web.js', 'ort-wasm-simd-threaded.wasm', 'ort-wasm-simd-threaded.mjs']),
});

export type SiteRuntime = keyof typeof SITE_RUNTIMES;

/** Largest |page logit - host logit| the page (and its test) accepts: float32 sums in another order. */
export const SITE_LOGIT_TOLERANCE = 1e-4;
