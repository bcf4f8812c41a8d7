// A minimal PNG writer (8-bit RGB, no interlace) for mask pictures: enough for cmp masks --png, no dependency.

import { deflateSync } from 'node:zlib';
import { crc32 } from '../core/crc32.js';

/** An RGB picture: `pixels` is width * height * 3 bytes, row-major. */
export interface RgbImage {
  width: number;
  height: number;
  pixels: Uint8Array;
}

export function rgbImage(width: number, height: number, fill = 0): RgbImage {
  return { width, height, pixels: new Uint8Array(width * height * 3).fill(fill) };
}

/** Paints a `scale`-times enlarged block of one colour at (x, y) in source pixels, offset by (left, top). */
export function paint(
  image: RgbImage,
  left: number,
  top: number,
  x: number,
  y: number,
  scale: number,
  rgb: number[],
): void {
  for (let dy = 0; dy < scale; dy++) {
    const row = top + y * scale + dy;
    for (let dx = 0; dx < scale; dx++) {
      const o = (row * image.width + left + x * scale + dx) * 3;
      image.pixels[o] = rgb[0];
      image.pixels[o + 1] = rgb[1];
      image.pixels[o + 2] = rgb[2];
    }
  }
}

/** The PNG file of `image`. */
export function encodePng(image: RgbImage): Uint8Array {
  const { width, height, pixels } = image;
  const raw = new Uint8Array(height * (width * 3 + 1));
  for (let y = 0; y < height; y++) {
    raw[y * (width * 3 + 1)] = 0; // filter: none
    raw.set(pixels.subarray(y * width * 3, (y + 1) * width * 3), y * (width * 3 + 1) + 1);
  }
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit, RGB, deflate, no filter method variants, no interlace
  const chunks = [chunk('IHDR', header), chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array(0))];
  const signature = Uint8Array.from([137, 80, 78, 71, 13, 10, 26, 10]);
  const out = new Uint8Array(signature.length + chunks.reduce((a, c) => a + c.length, 0));
  out.set(signature, 0);
  let o = signature.length;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  const typed = new TextEncoder().encode(type);
  out.set(typed, 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}
