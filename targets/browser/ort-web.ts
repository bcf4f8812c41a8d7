// onnxruntime-web as the browser page loads it: its own file (ort-web.js), fetched only when the page opens a model on
// ort-web, so a site that runs on bitwasm alone neither ships nor loads it.
export * from 'onnxruntime-web';
