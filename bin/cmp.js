#!/usr/bin/env node
// The cmp executable: runs the compiled CLI (npm install builds dist/ through the prepare script).
import { main } from '../dist/cli/main.js';

// `cmp inspect x.onnx | head` closes stdout early: that is the reader's choice, not an error.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`cmp: ${String(err?.message ?? err).split('\n')[0]}\n`);
    process.exitCode = 1;
  },
);
