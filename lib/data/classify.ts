/**
 * Read colour and shape of shapes-world objects back from pixels, for evaluating generated images
 * ("did the model draw a red star when asked for one?").
 *
 * Steps: model the background (given, or a plane fitted per channel to the border pixels, which
 * covers plain, gradient and lightly textured backgrounds), mark pixels far from it, split them into
 * 8-connected components, name each component's colour from its fully covered core pixels, turn the
 * pixels into a soft coverage map by projecting onto the (background -> object colour) segment, then
 * render every shape prototype with the component's centroid and spread and keep the best soft IoU.
 *
 * @example
 * ```ts
 * import { classifyObject } from "./classify.ts";
 * import { shapesWorldSample } from "./shapes_world.ts";
 *
 * const s = shapesWorldSample(3, { seed: 1, size: 32, singleObjectOnly: true });
 * const guess = classifyObject(s.image, s.width, s.height);
 * console.log(guess?.color, guess?.shape); // e.g. "red" "star"
 * ```
 * @module
 */

import {
  COLOR_NAMES,
  type ColorName,
  COLORS,
  insideShape,
  renderCoverage,
  type Rgb,
  SHAPE_NAMES,
  type ShapeName,
} from "./shapes_world.ts";

/** One detected object. */
export interface DetectedObject {
  /** Nearest named colour to the mean of the object's core pixels. */
  color: ColorName;
  /** Euclidean RGB distance from that mean to the named colour. */
  colorDistance: number;
  /** Best-matching shape prototype. */
  shape: ShapeName;
  /** Soft IoU of the best prototype (0..1). */
  iou: number;
  /** Soft IoU for every prototype. */
  shapeScores: Record<ShapeName, number>;
  /** Coverage-weighted centroid in pixels (x right, y down). */
  x: number;
  y: number;
  /** Summed coverage (object area in pixels). */
  area: number;
  /** Mean RGB of the core pixels. */
  meanRgb: [number, number, number];
}

/** Options for {@link findObjects}. */
export interface FindObjectsOptions {
  /**
   * Known background: one RGB colour, or a full `h*w*3` image. Default: a per-channel plane
   * fitted to the one-pixel border.
   */
  background?: Rgb | Uint8Array;
  /** RGB distance from the background that counts as object (default 40). */
  threshold?: number;
  /** Components smaller than this many pixels are ignored (default 3). */
  minPixels?: number;
}

interface Moments {
  mx: number;
  my: number;
  sx: number;
  sy: number;
}

/** Centroid and spread of every prototype in unit coordinates, by dense sampling. */
const PROTOTYPE_MOMENTS: Record<ShapeName, Moments> = (() => {
  const out = {} as Record<ShapeName, Moments>;
  const n = 400;
  for (const s of SHAPE_NAMES) {
    let m0 = 0, m1x = 0, m1y = 0, m2x = 0, m2y = 0;
    for (let j = 0; j < n; j++) {
      const v = -1.2 + (2.4 * (j + 0.5)) / n;
      for (let i = 0; i < n; i++) {
        const u = -1.2 + (2.4 * (i + 0.5)) / n;
        if (!insideShape(s, u, v)) continue;
        m0++;
        m1x += u;
        m1y += v;
        m2x += u * u;
        m2y += v * v;
      }
    }
    const mx = m1x / m0, my = m1y / m0;
    out[s] = { mx, my, sx: Math.sqrt(m2x / m0 - mx * mx), sy: Math.sqrt(m2y / m0 - my * my) };
  }
  return out;
})();

/** Per-pixel background estimate (h*w*3 floats). */
function backgroundModel(
  image: Uint8Array,
  width: number,
  height: number,
  bg: Rgb | Uint8Array | undefined,
): Float32Array {
  const n = width * height;
  const out = new Float32Array(n * 3);
  if (bg instanceof Uint8Array) {
    if (bg.length !== n * 3) {
      throw new Error(`findObjects: background image has ${bg.length} bytes, expected ${n * 3}`);
    }
    out.set(bg);
    return out;
  }
  if (bg) {
    for (let i = 0; i < n; i++) out.set(bg, 3 * i);
    return out;
  }
  // Least-squares plane a + b*x + c*y per channel over the border ring.
  const ata = [0, 0, 0, 0, 0, 0, 0, 0, 0];
  const atb = [[0, 0, 0], [0, 0, 0], [0, 0, 0]];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (y !== 0 && y !== height - 1 && x !== 0 && x !== width - 1) continue;
      const f = [1, x / width - 0.5, y / height - 0.5];
      for (let r = 0; r < 3; r++) {
        for (let c = 0; c < 3; c++) ata[3 * r + c] += f[r] * f[c];
        for (let k = 0; k < 3; k++) atb[k][r] += f[r] * image[3 * (y * width + x) + k];
      }
    }
  }
  const coef = [0, 1, 2].map((k) => solve3(ata, atb[k]));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const fx = x / width - 0.5, fy = y / height - 0.5;
      for (let k = 0; k < 3; k++) {
        const [a, b, c] = coef[k];
        out[3 * (y * width + x) + k] = a + b * fx + c * fy;
      }
    }
  }
  return out;
}

/** Solve a 3x3 system by Cramer's rule (the border design matrix is well conditioned). */
function solve3(m: number[], b: number[]): [number, number, number] {
  const det = (a: number[]) =>
    a[0] * (a[4] * a[8] - a[5] * a[7]) - a[1] * (a[3] * a[8] - a[5] * a[6]) +
    a[2] * (a[3] * a[7] - a[4] * a[6]);
  const d = det(m);
  if (Math.abs(d) < 1e-12) return [b[0] / Math.max(1, m[0]), 0, 0];
  const col = (i: number) => {
    const a = m.slice();
    for (let r = 0; r < 3; r++) a[3 * r + i] = b[r];
    return det(a) / d;
  };
  return [col(0), col(1), col(2)];
}

/** Nearest named colour to an RGB value. */
export function nearestColor(rgb: readonly number[]): { name: ColorName; distance: number } {
  let best: ColorName = COLOR_NAMES[0], bestD = Infinity;
  for (const name of COLOR_NAMES) {
    const c = COLORS[name];
    const d = Math.hypot(rgb[0] - c[0], rgb[1] - c[1], rgb[2] - c[2]);
    if (d < bestD) [best, bestD] = [name, d];
  }
  return { name: best, distance: bestD };
}

/** 8-connected components of a boolean mask, as lists of pixel indices. */
function components(mask: Uint8Array, width: number, height: number): number[][] {
  const seen = new Uint8Array(mask.length);
  const out: number[][] = [];
  for (let start = 0; start < mask.length; start++) {
    if (!mask[start] || seen[start]) continue;
    const comp: number[] = [];
    const stack = [start];
    seen[start] = 1;
    while (stack.length) {
      const p = stack.pop()!;
      comp.push(p);
      const px = p % width, py = (p - px) / width;
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const qx = px + dx, qy = py + dy;
          if (qx < 0 || qy < 0 || qx >= width || qy >= height) continue;
          const q = qy * width + qx;
          if (mask[q] && !seen[q]) {
            seen[q] = 1;
            stack.push(q);
          }
        }
      }
    }
    out.push(comp);
  }
  return out;
}

/**
 * Find every object in an image, largest first.
 *
 * @example
 * ```ts
 * import { findObjects } from "./classify.ts";
 * import { shapesWorldSample } from "./shapes_world.ts";
 *
 * const s = shapesWorldSample(5, { seed: 2, size: 32 });
 * const objs = findObjects(s.image, s.width, s.height);
 * console.log(objs.map((o) => `${o.color} ${o.shape} at ${o.x},${o.y}`));
 * ```
 */
export function findObjects(
  image: Uint8Array,
  width: number,
  height: number,
  opts: FindObjectsOptions = {},
): DetectedObject[] {
  if (image.length !== width * height * 3) {
    throw new Error(
      `findObjects: image has ${image.length} bytes, expected ${width}*${height}*3 RGB`,
    );
  }
  const threshold = opts.threshold ?? 40;
  const minPixels = opts.minPixels ?? 3;
  const n = width * height;
  const bg = backgroundModel(image, width, height, opts.background);
  const dist = new Float32Array(n);
  const mask = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const dr = image[3 * i] - bg[3 * i], dg = image[3 * i + 1] - bg[3 * i + 1];
    const db = image[3 * i + 2] - bg[3 * i + 2];
    dist[i] = Math.hypot(dr, dg, db);
    mask[i] = dist[i] > threshold ? 1 : 0;
  }
  const out: DetectedObject[] = [];
  for (const comp of components(mask, width, height)) {
    if (comp.length < minPixels) continue;
    out.push(describeComponent({ image, width, height, bg, dist, comp }));
  }
  return out.sort((a, b) => b.area - a.area);
}

interface ComponentInput {
  image: Uint8Array;
  width: number;
  height: number;
  bg: Float32Array;
  dist: Float32Array;
  comp: number[];
}

function describeComponent(c: ComponentInput): DetectedObject {
  const { image, width, height, bg, dist, comp } = c;
  // Colour from the core: pixels nearly as far from the background as the farthest one, i.e. fully
  // covered, so anti-aliased edges (blended with the background) do not shift the mean.
  let maxD = 0;
  for (const p of comp) maxD = Math.max(maxD, dist[p]);
  const mean = [0, 0, 0];
  let cnt = 0;
  for (const p of comp) {
    if (dist[p] < 0.8 * maxD) continue;
    for (let k = 0; k < 3; k++) mean[k] += image[3 * p + k];
    cnt++;
  }
  for (let k = 0; k < 3; k++) mean[k] /= cnt;
  const { name: color, distance: colorDistance } = nearestColor(mean);

  // Soft coverage on the component grown by one pixel (to include faint edge pixels).
  const region = new Set<number>();
  for (const p of comp) {
    const px = p % width, py = (p - px) / width;
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        const qx = px + dx, qy = py + dy;
        if (qx >= 0 && qy >= 0 && qx < width && qy < height) region.add(qy * width + qx);
      }
    }
  }
  const alpha = new Float32Array(width * height);
  let m0 = 0, m1x = 0, m1y = 0, m2x = 0, m2y = 0;
  for (const p of region) {
    let num = 0, den = 0;
    for (let k = 0; k < 3; k++) {
      const seg = mean[k] - bg[3 * p + k];
      num += (image[3 * p + k] - bg[3 * p + k]) * seg;
      den += seg * seg;
    }
    const a = den > 0 ? Math.min(1, Math.max(0, num / den)) : 0;
    if (a < 0.08) continue; // background noise, not coverage
    alpha[p] = a;
    const x = (p % width) + 0.5, y = Math.floor(p / width) + 0.5;
    m0 += a;
    m1x += a * x;
    m1y += a * y;
    m2x += a * x * x;
    m2y += a * y * y;
  }
  const cx = m1x / m0, cy = m1y / m0;
  // Pixel quantisation adds 1/12 px^2 of spread that the continuous prototype does not have.
  const sx = Math.sqrt(Math.max(1e-6, m2x / m0 - cx * cx - 1 / 12));
  const sy = Math.sqrt(Math.max(1e-6, m2y / m0 - cy * cy - 1 / 12));

  const shapeScores = {} as Record<ShapeName, number>;
  let shape: ShapeName = SHAPE_NAMES[0], iou = -1;
  for (const s of SHAPE_NAMES) {
    const m = PROTOTYPE_MOMENTS[s];
    const rx = sx / m.sx, ry = sy / m.sy;
    const cov = renderCoverage(s, { width, height, x: cx - m.mx * rx, y: cy - m.my * ry, rx, ry });
    let inter = 0, union = 0;
    for (let i = 0; i < cov.length; i++) {
      const a = alpha[i], b = cov[i];
      if (a === 0 && b === 0) continue;
      inter += Math.min(a, b);
      union += Math.max(a, b);
    }
    const score = union > 0 ? inter / union : 0;
    shapeScores[s] = score;
    if (score > iou) [shape, iou] = [s, score];
  }
  return {
    color,
    colorDistance,
    shape,
    iou,
    shapeScores,
    x: cx,
    y: cy,
    area: m0,
    meanRgb: [mean[0], mean[1], mean[2]],
  };
}

/**
 * Colour and shape of the dominant (largest) object, or `null` when nothing stands out from the
 * background.
 *
 * @example
 * ```ts
 * import { classifyObject } from "./classify.ts";
 * import { shapesWorldSample } from "./shapes_world.ts";
 *
 * const s = shapesWorldSample(0, { seed: 9, size: 32, singleObjectOnly: true });
 * const g = classifyObject(s.image, 32, 32);
 * g?.color === s.meta.objects[0].color;
 * ```
 */
export function classifyObject(
  image: Uint8Array,
  width: number,
  height: number,
  bg?: Rgb | Uint8Array,
): DetectedObject | null {
  return findObjects(image, width, height, { background: bg })[0] ?? null;
}
