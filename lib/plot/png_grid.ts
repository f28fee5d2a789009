/**
 * Image grids (samples side by side) and PNG output through npm `fast-png`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { imageGrid, writePng } from "./png_grid.ts";
 *
 * const red = {
 *   data: new Uint8Array(4 * 4 * 3).map((_, i) => i % 3 ? 0 : 255),
 *   width: 4,
 *   height: 4,
 * };
 * const grid = imageGrid([red, red, red, red], { cols: 4, pad: 2 });
 * assert.deepEqual([grid.width, grid.height], [4 * 4 + 5 * 2, 4 + 2 * 2]);
 * const dir = await Deno.makeTempDir();
 * await writePng(`${dir}/samples.png`, grid);
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */
import { encode } from "npm:fast-png@8.0.0";
import { writeFileAtomic } from "../util/atomic.ts";

/** An 8-bit RGB image, row-major, `height * width * 3` bytes. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** Grid input: an {@link RgbImage}, or a shapes-world style `{image, width, height}`. */
export type RgbLike = RgbImage | { image: Uint8Array; width: number; height: number };

/** Options for {@link imageGrid}. */
export interface GridOptions {
  /** Images per row (default: ceil(sqrt(n))). */
  cols?: number;
  /** Pixels between and around cells (default 2). */
  pad?: number;
  /** Padding colour (default white). */
  background?: [number, number, number];
}

function pixels(im: RgbLike, i: number): RgbImage {
  const data = "data" in im ? im.data : im.image;
  const { width, height } = im;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new Error(
      `imageGrid: images[${i}] has size ${width}x${height}, expected positive integers`,
    );
  }
  if (!(data instanceof Uint8Array) || data.length !== width * height * 3) {
    throw new Error(
      `imageGrid: images[${i}] has ${data?.length} bytes, expected ${width}*${height}*3 RGB bytes`,
    );
  }
  return { data, width, height };
}

/**
 * Tile images row by row into one RGB image. Cells are as large as the largest image; smaller ones
 * sit in the cell's top-left corner.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { imageGrid } from "./png_grid.ts";
 *
 * const cell = () => ({ data: new Uint8Array(4 * 4 * 3), width: 4, height: 4 });
 * const g = imageGrid([cell(), cell(), cell()], { cols: 2, pad: 1 }); // 2x2 cells, last one blank
 * assert.deepEqual([g.width, g.height], [2 * 4 + 3, 2 * 4 + 3]);
 * ```
 */
export function imageGrid(images: RgbLike[], opts: GridOptions = {}): RgbImage {
  if (!images.length) throw new Error("imageGrid: no images given");
  const ims = images.map(pixels);
  const cols = opts.cols ?? Math.ceil(Math.sqrt(ims.length));
  const pad = opts.pad ?? 2;
  if (!Number.isInteger(cols) || cols < 1) {
    throw new Error(`imageGrid: cols must be >= 1, got ${cols}`);
  }
  if (!Number.isInteger(pad) || pad < 0) throw new Error(`imageGrid: pad must be >= 0, got ${pad}`);
  const rows = Math.ceil(ims.length / cols);
  const cw = Math.max(...ims.map((i) => i.width));
  const ch = Math.max(...ims.map((i) => i.height));
  const width = cols * cw + (cols + 1) * pad;
  const height = rows * ch + (rows + 1) * pad;
  const out = new Uint8Array(width * height * 3);
  const [r, g, b] = opts.background ?? [255, 255, 255];
  for (let p = 0; p < width * height; p++) {
    out[3 * p] = r;
    out[3 * p + 1] = g;
    out[3 * p + 2] = b;
  }
  ims.forEach((im, i) => {
    const x0 = pad + (i % cols) * (cw + pad);
    const y0 = pad + Math.floor(i / cols) * (ch + pad);
    for (let y = 0; y < im.height; y++) {
      const src = im.data.subarray(y * im.width * 3, (y + 1) * im.width * 3);
      out.set(src, ((y0 + y) * width + x0) * 3);
    }
  });
  return { data: out, width, height };
}

/**
 * Encode an RGB image as PNG bytes.
 *
 * @example
 * ```ts
 * const png = encodePng({ data: new Uint8Array([255, 0, 0]), width: 1, height: 1 });
 * ```
 */
export function encodePng(im: RgbImage): Uint8Array {
  const { data, width, height } = pixels(im, 0);
  return encode({ width, height, data, depth: 8, channels: 3 });
}

/**
 * Write an RGB image as a PNG file, atomically.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { imageGrid, writePng } from "./png_grid.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const black = { data: new Uint8Array(2 * 2 * 3), width: 2, height: 2 };
 * await writePng(`${dir}/grid.png`, imageGrid([black, black], { cols: 8 }));
 * const png = await Deno.readFile(`${dir}/grid.png`);
 * assert.deepEqual(Array.from(png.subarray(1, 4)), [80, 78, 71]); // "PNG" signature
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writePng(path: string, im: RgbImage): Promise<void> {
  await writeFileAtomic(path, encodePng(im));
}
