// Writes one JSON Schema file per cmp format into schemas/, from the valibot schemas the readers check with.
// Run by `npm run build`; test/schemas.test.ts fails when a file here is not what this writes.

import { toJsonSchema } from '@valibot/to-json-schema';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GenericSchema } from 'valibot';
import { MANIFEST_SCHEMA } from '../src/core/manifest.js';
import { RELEASE_CONFIG_SCHEMA } from '../src/core/release.js';
import { SITE_CONFIG_SCHEMA } from '../src/core/site.js';
import { MODEL_SPEC_SCHEMA } from '../src/core/spec.js';
import { CLIENT_MESSAGE_SCHEMA } from '../src/dashboard/messages.js';
import { DEVICE_PROFILE_SCHEMA } from '../src/profile/device-profile.js';

export const SCHEMA_DIR = fileURLToPath(new URL('.', import.meta.url));

/** Every format by file name, with the document it describes. */
export const FORMATS: Readonly<Record<string, { schema: GenericSchema; title: string }>> = Object.freeze({
  'cmp-model': { schema: MODEL_SPEC_SCHEMA, title: "cmp-model/1: a network spec (a run folder's model.json)" },
  'cmp-manifest': {
    schema: MANIFEST_SCHEMA,
    title: 'cmp-manifest/1: the manifest in an exported ONNX file\'s metadata_props under "cmp"',
  },
  'cmp-profile': { schema: DEVICE_PROFILE_SCHEMA, title: 'cmp-profile/1: a profile of one model on one device' },
  'cmp-dashboard': {
    schema: CLIENT_MESSAGE_SCHEMA,
    title: 'cmp-dashboard/1: a request the dashboard renderer sends to its server',
  },
  'cmp-release': { schema: RELEASE_CONFIG_SCHEMA, title: 'cmp-release/1: release.json in a release on a device' },
  'cmp-site': { schema: SITE_CONFIG_SCHEMA, title: 'cmp-site/1: site.json in a browser site folder' },
});

/** The text of `schemas/<name>.schema.json`. */
export function jsonSchemaText(name: string): string {
  const { schema, title } = FORMATS[name];
  // errorMode 'throw': a check JSON Schema cannot state fails the build instead of vanishing from the file.
  const json = toJsonSchema(schema, { errorMode: 'throw' });
  return `${JSON.stringify({ $id: `cmp-edge/schemas/${name}.schema.json`, title, ...json }, null, 2)}\n`;
}

export function schemaPath(name: string): string {
  return join(SCHEMA_DIR, `${name}.schema.json`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const name of Object.keys(FORMATS)) writeFileSync(schemaPath(name), jsonSchemaText(name));
}
