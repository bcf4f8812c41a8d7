import { instantiateKernels } from './src/runtime/bitwasm/loader.js';
const k = await instantiateKernels();
const base = (k.heapBase() + 15) & ~15;
k.memory.grow(200);
const C = 64, H = 16, W = 16, K = 3, OH = 14, rows = 64, len = C * 9, pos = OH * OH;
const x = base, q = x + 4 * C * H * W, patches = q + 2 * C * H * W + 64, w = patches + 2 * pos * len + 64, ws = w + rows * len + 64, y = ws + 4 * rows + 64, as = y + 4 * rows * pos + 64;
const f = new Float32Array(k.memory.buffer);
for (let i = 0; i < C * H * W; i++) f[(x >> 2) + i] = Math.random() * 2 - 1;
const i8 = new Int8Array(k.memory.buffer);
for (let i = 0; i < rows * len; i++) i8[w + i] = Math.floor(Math.random() * 255) - 127;
for (let i = 0; i < rows; i++) f[(ws >> 2) + i] = 0.01;
const shift = as + 64;
function time(name: string, fn: () => void) {
  const t: number[] = [];
  for (let r = 0; r < 300; r++) { const a = performance.now(); fn(); t.push(performance.now() - a); }
  t.sort((a, b) => a - b);
  console.log(name, (t[150] * 1000).toFixed(1), 'us');
}
for (let rep = 0; rep < 2; rep++) {
time("transpose", () => k.pixelMajor(q, C, H * W, patches));
time('quantize flat', () => k.quantizeInput(x, C * H * W, q, as));
time('im2col', () => k.i8Im2col(q, C, H, W, K, patches));
time('dot', () => k.i8Dot(patches, pos, len, w, ws, rows, as, 0, 0, shift, 0, y, pos, 1));
}
