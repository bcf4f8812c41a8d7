// The electron target: the dashboard as an Electron app folder that carries the model as this machine's device (run
// it with `electron DIR`, or package it with electron-builder or electron-forge). Its device is this machine.

import { Predictor } from '../runtime/predictor.js';
import { writeElectronApp, type ElectronAppReport } from './electron-app.js';
import { localTarget } from './target-local.js';
import type { Target } from './target.js';

/** The app folder, and the data set its profile form starts on. */
export interface ElectronDevice {
  /** New, empty, or an app cmp wrote before. */
  out: string;
  dataset?: string;
}

/** What an app deploy wrote. */
export interface ElectronDeployReport {
  model: string;
  target: 'electron';
  out: string;
  app: ElectronAppReport;
}

/** The backend the app's device runs models on. */
const APP_BACKEND = 'ort-node';

export const electronTarget: Target<ElectronDevice, ElectronDeployReport> = {
  kind: 'electron',
  what: 'the dashboard app, with --out DIR',

  async deploy(device, file, options) {
    // The app's device runs the model on onnxruntime-node: a model it cannot open is refused here, not there.
    options.onProgress?.(`opening ${file.path} on ${APP_BACKEND}`);
    await (await Predictor.open(file, { backend: APP_BACKEND })).dispose();
    options.onProgress?.(`writing ${device.out}`);
    const app = writeElectronApp(file, device.out, device.dataset);
    return { model: file.path, target: 'electron', out: device.out, app };
  },

  /** The app profiles this machine on onnxruntime-node, as the local target does (its runtime names Electron). */
  profile: (device, request) => localTarget.profile({ backend: APP_BACKEND }, request),
};
