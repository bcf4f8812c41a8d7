// The browser site format (cmp-site/1) shared by `cmp deploy --target browser`, which writes it, the page, which
// reads it, and `cmp serve`, which serves it.

import * as v from 'valibot';
import { CmpError } from '../errors.js';
import { checkDocument } from './schema.js';

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

/** One sample as the host's onnxruntime-node answered it: `exit` 1..n for an early exit, 0 for the final classifier. */
const SITE_PREDICTION_SCHEMA = v.object({
  label: v.pipe(v.number(), v.safeInteger(), v.minValue(0)),
  exit: v.pipe(v.number(), v.safeInteger(), v.minValue(0)),
  logits: v.array(v.number()),
});
export type SitePrediction = v.InferOutput<typeof SITE_PREDICTION_SCHEMA>;

/**
 * site.json (cmp-site/1). `model`: relative to the site folder; its stage and selector files lie beside it.
 * `backend`: the one the page opens the model on unless its address names another (?backend=NAME). `runtimes`: the
 * runtimes the site ships (keys of SITE_RUNTIMES); the page opens the model on no other (sites written before this
 * field shipped both). `samples`: the sample inputs (`file` relative to the site folder; `features` values of one
 * instance; each sample's true label; class names by label; what the host answered for each, for the page to compare
 * its own answers with). `files`: every file the deploy wrote, relative to the site folder: a redeploy removes exactly
 * these.
 */
export const SITE_CONFIG_SCHEMA = v.object({
  schema: v.literal('cmp-site/1'),
  createdAt: v.string(),
  cmpVersion: v.string(),
  model: v.string(),
  backend: v.string(),
  runtimes: v.optional(v.array(v.picklist(['bitwasm', 'ort-web']))),
  samples: v.object({
    file: v.string(),
    dataset: v.string(),
    count: v.pipe(v.number(), v.safeInteger(), v.minValue(0)),
    features: v.pipe(v.number(), v.safeInteger(), v.minValue(1)),
    labels: v.array(v.pipe(v.number(), v.safeInteger(), v.minValue(0))),
    classes: v.array(v.string()),
    host: v.object({ backend: v.string(), predictions: v.array(SITE_PREDICTION_SCHEMA) }),
  }),
  files: v.array(v.string()),
});
export type SiteConfig = v.InferOutput<typeof SITE_CONFIG_SCHEMA>;

/** `value` (a parsed site.json) as a whole SiteConfig, or one IO line naming the field and what to do. */
export function parseSiteConfig(value: unknown, source: string): SiteConfig {
  return checkDocument(
    SITE_CONFIG_SCHEMA,
    value,
    (problem) =>
      new CmpError(
        'IO',
        `The site config ${source} has ${problem}. Deploy the site again with cmp deploy --target browser.`,
      ),
  );
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
