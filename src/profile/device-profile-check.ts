// Checks a profile that arrives from outside (a page's POST, a device's reply, a saved file) against cmp-profile/1,
// once, at the edge: the whole document against its schema, then what a schema cannot say.

import { checkDocument } from '../core/schema.js';
import { CmpError } from '../errors.js';
import { DEVICE_PROFILE_SCHEMA, type DeviceProfile } from './device-profile.js';

/**
 * Returns `value` as a DeviceProfile, or throws one CmpError naming the first field that is wrong; `where` names the
 * sender. With `quote: false` (a file a user named, which may hold anything) the error names the field and the kind of
 * its value, and never quotes the value or an unknown key.
 */
export function checkDeviceProfile(value: unknown, where: string, options: { quote?: boolean } = {}): DeviceProfile {
  const bad = (problem: string): CmpError =>
    new CmpError(
      'BAD_ARGUMENT',
      `Profile from ${where} has ${problem}. Send a cmp-profile/1 object (profilePredictor's measurement with device and model).`,
    );
  const p = checkDocument(DEVICE_PROFILE_SCHEMA, value, bad, options);
  if (p.latenciesMs.length !== p.samples) {
    throw bad(`${p.latenciesMs.length} latenciesMs for ${p.samples} samples`);
  }
  return p;
}
