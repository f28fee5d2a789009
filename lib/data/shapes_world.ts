/**
 * "Shapes world": a procedurally generated captioned image set, fully determined by a seed.
 *
 * Every sample is drawn from its own random stream `Rng.stream(seed, [index, split])`, so any
 * worker or rank can render any index on its own and the result never depends on which other
 * samples were generated before it. Images are anti-aliased by 4x4 supersampling per pixel, so
 * shapes stay recognisable at 16x16 and 32x32.
 *
 * A fixed, seed-independent set of (colour, shape) pairs ({@link HELDOUT_PAIRS}) never appears in
 * the train split; the heldout split contains only those pairs, so compositional generalisation can
 * be measured ("a purple circle" was never seen in training, purple things and circles were).
 *
 * @example
 * ```ts
 * const s = shapesWorldSample(7, { seed: 1, size: 32, split: "train" });
 * console.log(s.caption, s.meta.aesthetic, s.image.length); // ... 3072
 * ```
 * @module
 */

import { Rng } from "../util/rng.ts";

/** RGB triple, 0..255 per channel. */
export type Rgb = readonly [number, number, number];

/** Named object colours, well separated in RGB so they can be read back from pixels. */
export const COLORS = {
  red: [220, 30, 30],
  green: [30, 170, 50],
  blue: [35, 70, 225],
  yellow: [245, 220, 30],
  purple: [135, 40, 185],
  orange: [250, 130, 10],
  white: [250, 250, 250],
  black: [15, 15, 15],
} as const satisfies Record<string, Rgb>;

/** A colour name from {@link COLORS}. */
export type ColorName = keyof typeof COLORS;

/** Colour names in a fixed order. */
export const COLOR_NAMES: readonly ColorName[] = Object.keys(COLORS) as ColorName[];

/** Outline of a shape in unit coordinates (x right, y down, extent about [-1, 1]). */
export interface ShapeDef {
  /** `circle` is analytic; everything else is a polygon (even-odd fill). */
  kind: "circle" | "polygon";
  /** Polygons as flat [x0, y0, x1, y1, ...] lists; several polygons are unioned. */
  polygons: readonly (readonly number[])[];
}

function regularStar(points: number, outer: number, inner: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < 2 * points; i++) {
    const r = i % 2 === 0 ? outer : inner;
    const a = -Math.PI / 2 + (i * Math.PI) / points;
    out.push(r * Math.cos(a), r * Math.sin(a) + 0.1); // +0.1 centres the star's bbox vertically
  }
  return out;
}

/**
 * Shape outlines. Chosen to differ in fill ratio and silhouette even at ~10 pixels across: the
 * square and diamond are the same polygon at 0 and 45 degrees, so objects are never rotated.
 */
export const SHAPES: Readonly<
  Record<"circle" | "square" | "triangle" | "star" | "diamond" | "cross", ShapeDef>
> = {
  circle: { kind: "circle", polygons: [] },
  square: { kind: "polygon", polygons: [[-0.85, -0.85, 0.85, -0.85, 0.85, 0.85, -0.85, 0.85]] },
  triangle: { kind: "polygon", polygons: [[0, -0.95, 1, 0.85, -1, 0.85]] },
  star: { kind: "polygon", polygons: [regularStar(5, 1.05, 0.45)] },
  diamond: { kind: "polygon", polygons: [[0, -1, 1, 0, 0, 1, -1, 0]] },
  cross: {
    kind: "polygon",
    polygons: [
      [-0.32, -0.95, 0.32, -0.95, 0.32, 0.95, -0.32, 0.95],
      [-0.95, -0.32, 0.95, -0.32, 0.95, 0.32, -0.95, 0.32],
    ],
  },
};

/** A shape name from {@link SHAPES}. */
export type ShapeName = keyof typeof SHAPES;

/** Shape names in a fixed order. */
export const SHAPE_NAMES: readonly ShapeName[] = Object.keys(SHAPES) as ShapeName[];

/**
 * (colour, shape) pairs kept out of the train split: 7 of 48 (~15%). A fixed list (no seed), each
 * colour and each shape at most once, so every colour and every shape is still seen in training.
 */
export const HELDOUT_PAIRS: readonly (readonly [ColorName, ShapeName])[] = [
  ["red", "star"],
  ["green", "square"],
  ["blue", "triangle"],
  ["yellow", "diamond"],
  ["purple", "circle"],
  ["orange", "cross"],
  ["white", "triangle"],
];

/** Whether a (colour, shape) pair belongs to the held-out split. */
export function isHeldoutPair(color: ColorName, shape: ShapeName): boolean {
  return HELDOUT_PAIRS.some(([c, s]) => c === color && s === shape);
}

/** Low-saturation background colours (luminance 95..185) that contrast with every object colour. */
export const BACKGROUND_COLORS = {
  grey: [128, 128, 128],
  "light grey": [175, 175, 172],
  "dark grey": [98, 98, 100],
  beige: [178, 165, 140],
  "pale blue": [140, 158, 178],
  "pale green": [140, 165, 140],
  "dusty pink": [178, 145, 150],
  slate: [112, 120, 132],
} as const satisfies Record<string, Rgb>;

/** A background colour name. */
export type BackgroundColorName = keyof typeof BACKGROUND_COLORS;
const BG_NAMES = Object.keys(BACKGROUND_COLORS) as BackgroundColorName[];

/** How a background was drawn. */
export interface BackgroundMeta {
  kind: "plain" | "gradient" | "noise";
  /** Colour name (gradient: start colour). */
  color: BackgroundColorName;
  /** Gradient end colour. */
  to?: BackgroundColorName;
  /** Gradient direction. */
  direction?: "horizontal" | "vertical";
  /** Noise amplitude (uniform +-amp per pixel, grey). */
  amplitude?: number;
  /** Words used in captions ("grey", "beige to pale blue gradient"). */
  description: string;
}

/** One object in a scene; x, y are the centre in pixels, r the half-extent in pixels. */
export interface ObjectMeta {
  shape: ShapeName;
  color: ColorName;
  size: "small" | "large";
  x: number;
  y: number;
  r: number;
}

/** Spatial relation of a two-object scene: objects[0] is `kind` objects[1]. */
export type RelationKind = "left of" | "right of" | "above" | "below";

/** Everything the generator decided for a sample. */
export interface SampleMeta {
  objects: ObjectMeta[];
  background: BackgroundMeta;
  /** Caption template id. */
  template: string;
  relation?: RelationKind;
  count: number;
  /** Aesthetic-style score in [3, 7] (contrast, centring, size, background, plus noise). */
  aesthetic: number;
  split: "train" | "heldout";
}

/** A captioned RGB image. */
export interface Sample {
  key: string;
  /** Row-major RGB, `height * width * 3` bytes. */
  image: Uint8Array;
  width: number;
  height: number;
  caption: string;
  meta: SampleMeta;
}

/** Options for {@link shapesWorldSample}. */
export interface ShapesWorldOptions {
  seed: number;
  /** Image side in pixels (default 32; 16 and 64 are the other usual sizes). */
  size?: number;
  split?: "train" | "heldout";
  /** Only single-object scenes (for classifier evaluation, simple prompts). */
  singleObjectOnly?: boolean;
  /** Supersamples per pixel side (default 4, i.e. 16 samples per pixel). */
  supersample?: number;
}

const SPLIT_CODE = { train: 0, heldout: 1 } as const;
const NUMBER_WORDS = ["zero", "one", "two", "three"];
const RELATIONS: readonly RelationKind[] = ["left of", "right of", "above", "below"];
const RELATION_WORDS: Record<RelationKind, string> = {
  "left of": "to the left of",
  "right of": "to the right of",
  above: "above",
  below: "below",
};
const INVERSE: Record<RelationKind, RelationKind> = {
  "left of": "right of",
  "right of": "left of",
  above: "below",
  below: "above",
};

function article(word: string): string {
  return /^[aeiou]/.test(word) ? "an" : "a";
}

function plural(shape: ShapeName): string {
  return shape === "cross" ? "crosses" : `${shape}s`;
}

function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[rng.int(items.length)];
}

/** Allowed (colour, shape) pairs for a split. */
function allowedPairs(split: "train" | "heldout"): [ColorName, ShapeName][] {
  const out: [ColorName, ShapeName][] = [];
  for (const c of COLOR_NAMES) {
    for (const s of SHAPE_NAMES) {
      if (isHeldoutPair(c, s) === (split === "heldout")) out.push([c, s]);
    }
  }
  return out;
}
const PAIRS = { train: allowedPairs("train"), heldout: allowedPairs("heldout") };

/** Even-odd point-in-polygon test on a flat coordinate list. */
function inPolygon(poly: readonly number[], x: number, y: number): boolean {
  let inside = false;
  const n = poly.length / 2;
  for (let i = 0, j = n - 1; i < n; j = i++) {
    const xi = poly[2 * i], yi = poly[2 * i + 1];
    const xj = poly[2 * j], yj = poly[2 * j + 1];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Whether unit-space point (u, v) lies inside `shape`. */
export function insideShape(shape: ShapeName, u: number, v: number): boolean {
  const def: ShapeDef = SHAPES[shape];
  if (def.kind === "circle") return u * u + v * v <= 1;
  for (const p of def.polygons) if (inPolygon(p, u, v)) return true;
  return false;
}

/** Options for {@link renderCoverage}. */
export interface CoverageOptions {
  width: number;
  height: number;
  /** Centre in pixels. */
  x: number;
  y: number;
  /** Horizontal and vertical half-extent in pixels (unit coordinate 1 maps to rx, ry). */
  rx: number;
  ry: number;
  /** Supersamples per pixel side (default 4). */
  supersample?: number;
}

/**
 * Fraction of each pixel covered by a shape (anti-aliasing mask), `height * width` floats in [0, 1].
 *
 * @example
 * ```ts
 * const m = renderCoverage("circle", { width: 16, height: 16, x: 8, y: 8, rx: 5, ry: 5 });
 * ```
 */
export function renderCoverage(shape: ShapeName, o: CoverageOptions): Float32Array {
  const { width, height, x, y, rx, ry } = o;
  const ss = o.supersample ?? 4;
  const out = new Float32Array(width * height);
  const x0 = Math.max(0, Math.floor(x - 1.1 * rx)), x1 = Math.min(width, Math.ceil(x + 1.1 * rx));
  const y0 = Math.max(0, Math.floor(y - 1.1 * ry)), y1 = Math.min(height, Math.ceil(y + 1.1 * ry));
  const inv = 1 / (ss * ss);
  for (let py = y0; py < y1; py++) {
    for (let px = x0; px < x1; px++) {
      let hits = 0;
      for (let sy = 0; sy < ss; sy++) {
        const v = (py + (sy + 0.5) / ss - y) / ry;
        for (let sx = 0; sx < ss; sx++) {
          const u = (px + (sx + 0.5) / ss - x) / rx;
          if (insideShape(shape, u, v)) hits++;
        }
      }
      out[py * width + px] = hits * inv;
    }
  }
  return out;
}

function mix(a: Rgb, b: Rgb, t: number): [number, number, number] {
  return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
}

/** Background as float RGB (h*w*3) plus its description. */
function drawBackground(rng: Rng, size: number): { pixels: Float32Array; meta: BackgroundMeta } {
  const pixels = new Float32Array(size * size * 3);
  const color = pick(rng, BG_NAMES);
  const roll = rng.uniform();
  const base = BACKGROUND_COLORS[color];
  if (roll < 0.45) {
    for (let i = 0; i < size * size; i++) pixels.set(base, 3 * i);
    return { pixels, meta: { kind: "plain", color, description: color } };
  }
  if (roll < 0.75) {
    let to = pick(rng, BG_NAMES);
    if (to === color) to = BG_NAMES[(BG_NAMES.indexOf(color) + 1) % BG_NAMES.length];
    const direction = rng.uniform() < 0.5 ? "horizontal" : "vertical";
    const end = BACKGROUND_COLORS[to];
    for (let yy = 0; yy < size; yy++) {
      for (let xx = 0; xx < size; xx++) {
        const t = ((direction === "horizontal" ? xx : yy) + 0.5) / size;
        pixels.set(mix(base, end, t), 3 * (yy * size + xx));
      }
    }
    return {
      pixels,
      meta: { kind: "gradient", color, to, direction, description: `${color} to ${to} gradient` },
    };
  }
  const amplitude = 4 + rng.int(7); // light texture: at most +-10 levels
  for (let i = 0; i < size * size; i++) {
    const n = (rng.uniform() * 2 - 1) * amplitude;
    pixels[3 * i] = base[0] + n;
    pixels[3 * i + 1] = base[1] + n;
    pixels[3 * i + 2] = base[2] + n;
  }
  return {
    pixels,
    meta: { kind: "noise", color, amplitude, description: `textured ${color}` },
  };
}

/** Half-extent in pixels for a size label; multi-object scenes use smaller objects. */
function radiusFor(size: "small" | "large", px: number, multi: boolean): number {
  const r = size === "large" ? 0.34 : 0.24;
  return r * px * (multi ? 0.65 : 1);
}

type Draft = Omit<ObjectMeta, "x" | "y">;

function makeObject(rng: Rng, pair: [ColorName, ShapeName], multi: boolean, px: number): Draft {
  const size = rng.uniform() < 0.5 ? "small" : "large";
  return { color: pair[0], shape: pair[1], size, r: radiusFor(size, px, multi) };
}

/** Uniform position keeping the whole object at least one pixel inside the image. */
function place(rng: Rng, lo: number, hi: number, r: number): number {
  const a = lo + r + 1, b = hi - r - 1;
  return b <= a ? (lo + hi) / 2 : a + rng.uniform() * (b - a);
}

interface Scene {
  objects: ObjectMeta[];
  relation?: RelationKind;
}

function layoutScene(rng: Rng, split: "train" | "heldout", px: number, single: boolean): Scene {
  const pairs = PAIRS[split];
  const roll = single ? 0 : rng.uniform();
  if (roll < 0.5) {
    const o = makeObject(rng, pick(rng, pairs), false, px);
    // Mostly near the centre, like photographs; the aesthetic score rewards centring.
    const spread = rng.uniform() < 0.6 ? 0.12 : 0.5;
    const jitter = (r: number) => {
      const c = px / 2 + (rng.uniform() * 2 - 1) * spread * px;
      return Math.min(px - r - 1, Math.max(r + 1, c));
    };
    return { objects: [{ ...o, x: jitter(o.r), y: jitter(o.r) }] };
  }
  if (roll < 0.7) {
    // Two or three copies of one object along a row, column or diagonal band.
    const n = 2 + rng.int(2);
    const d = makeObject(rng, pick(rng, pairs), true, px);
    // Three objects in a row only fit when small; two may be large.
    if (n === 3) d.size = "small";
    const r = d.size === "large" ? 0.21 * px : 0.12 * px;
    const objects: ObjectMeta[] = [];
    const vertical = rng.uniform() < 0.5;
    const cross = place(rng, 0, px, r);
    for (let i = 0; i < n; i++) {
      const along = place(rng, (i * px) / n, ((i + 1) * px) / n, r);
      objects.push({ ...d, r, x: vertical ? cross : along, y: vertical ? along : cross });
    }
    return { objects };
  }
  // Two distinct objects in a spatial relation: each in its own half of the image.
  const a = makeObject(rng, pick(rng, pairs), true, px);
  let bPair = pick(rng, pairs);
  while (bPair[0] === a.color && bPair[1] === a.shape) bPair = pick(rng, pairs);
  const b = makeObject(rng, bPair, true, px);
  const relation = pick(rng, RELATIONS);
  const horizontal = relation === "left of" || relation === "right of";
  const firstLow = relation === "left of" || relation === "above";
  const [lo, hi] = [[0, px / 2], [px / 2, px]];
  const aHalf = firstLow ? lo : hi, bHalf = firstLow ? hi : lo;
  const posIn = (o: Draft, half: number[]): ObjectMeta => {
    const main = place(rng, half[0], half[1], o.r);
    const side = place(rng, 0.1 * px, 0.9 * px, o.r);
    return { ...o, x: horizontal ? main : side, y: horizontal ? side : main };
  };
  return { objects: [posIn(a, aHalf), posIn(b, bHalf)], relation };
}

function describe(o: Draft, withSize: boolean): string {
  return withSize ? `${o.size} ${o.color} ${o.shape}` : `${o.color} ${o.shape}`;
}

function withArticle(phrase: string): string {
  return `${article(phrase)} ${phrase}`;
}

/** Pick a caption template for a scene; returns [template id, caption]. */
function captionFor(rng: Rng, scene: Scene, bg: BackgroundMeta): [string, string] {
  const objs = scene.objects;
  const bgWords = `on ${withArticle(bg.description)} background`;
  const useSize = rng.uniform() < 0.5;
  if (scene.relation) {
    const [a, b] = objs;
    const r = scene.relation;
    const t = rng.int(4);
    const pa = withArticle(describe(a, useSize)), pb = withArticle(describe(b, useSize));
    if (t === 0) return ["relation", `${pa} ${RELATION_WORDS[r]} ${pb}`];
    if (t === 1) return ["relation_photo", `a photo of ${pa} ${RELATION_WORDS[r]} ${pb}`];
    if (t === 2) {
      return ["relation_inverse", `${pb} ${RELATION_WORDS[INVERSE[r]]} ${pa}`];
    }
    return [
      "relation_photograph_bg",
      `A photograph of ${pa} ${RELATION_WORDS[r]} ${pb} ${bgWords}`,
    ];
  }
  if (objs.length > 1) {
    const o = objs[0];
    const n = NUMBER_WORDS[objs.length];
    const what = `${useSize ? o.size + " " : ""}${o.color} ${plural(o.shape)}`;
    const t = rng.int(3);
    if (t === 0) return ["count", `${n} ${what}`];
    if (t === 1) return ["count_photo", `a photo of ${n} ${what}`];
    return ["count_photograph_bg", `A photograph of ${n} ${what} ${bgWords}`];
  }
  const p = withArticle(describe(objs[0], useSize));
  const t = rng.int(6);
  if (t === 0) return ["single", p];
  if (t === 1) return ["single_photo_bg", `a photo of ${p} ${bgWords}`];
  if (t === 2) return ["single_photograph", `A photograph of ${p}`];
  if (t === 3) return ["single_image", `an image of ${p}`];
  if (t === 4) return ["single_bg", `${p} ${bgWords}`];
  return ["single_picture", `a picture showing ${p}`];
}

/** Aesthetic-style score from contrast, centring, object area and background, plus noise. */
function aestheticScore(rng: Rng, scene: Scene, bg: BackgroundMeta, px: number): number {
  const bgRgb = BACKGROUND_COLORS[bg.color];
  let contrast = 0, area = 0;
  for (const o of scene.objects) {
    const c = COLORS[o.color];
    contrast += Math.hypot(c[0] - bgRgb[0], c[1] - bgRgb[1], c[2] - bgRgb[2]) / 255;
    area += (Math.PI * o.r * o.r) / (px * px);
  }
  contrast /= scene.objects.length;
  // Centring of the objects' mean position, 0 = centred, 1 = at a corner.
  const mx = scene.objects.reduce((s, o) => s + o.x, 0) / scene.objects.length;
  const my = scene.objects.reduce((s, o) => s + o.y, 0) / scene.objects.length;
  const off = Math.hypot(mx - px / 2, my - px / 2) / (px / Math.SQRT2);
  const bgBonus = bg.kind === "gradient" ? 0.35 : bg.kind === "plain" ? 0.1 : -0.4;
  const clutter = scene.objects.length === 3 ? -0.3 : 0;
  const raw = 2.3 + 1.1 * contrast + 1.6 * (1 - off) + 2.5 * Math.min(area, 0.3) + bgBonus +
    clutter +
    0.5 * rng.gaussian();
  return Math.round(Math.min(7, Math.max(3, raw)) * 1000) / 1000;
}

/**
 * Render sample `index` of shapes world; the same (seed, split, index, size) always gives the same
 * bytes, on any worker.
 *
 * @example
 * ```ts
 * const s = shapesWorldSample(0, { seed: 42, size: 32, split: "heldout" });
 * s.meta.objects.every((o) => isHeldoutPair(o.color, o.shape)); // true
 * ```
 */
export function shapesWorldSample(index: number, opts: ShapesWorldOptions): Sample {
  const size = opts.size ?? 32;
  const split = opts.split ?? "train";
  if (!Number.isInteger(index) || index < 0) {
    throw new Error(`shapesWorldSample: index must be a non-negative integer, got ${index}`);
  }
  if (!Number.isInteger(size) || size < 8 || size > 1024) {
    throw new Error(`shapesWorldSample: size must be an integer in [8, 1024], got ${size}`);
  }
  if (!(split in SPLIT_CODE)) {
    throw new Error(`shapesWorldSample: split must be "train" or "heldout", got ${split}`);
  }
  const rng = Rng.stream(opts.seed, [index, SPLIT_CODE[split]]);
  const bg = drawBackground(rng, size);
  const scene = layoutScene(rng, split, size, opts.singleObjectOnly ?? false);
  const px = bg.pixels;
  for (const o of scene.objects) {
    const cov = renderCoverage(o.shape, {
      width: size,
      height: size,
      x: o.x,
      y: o.y,
      rx: o.r,
      ry: o.r,
      supersample: opts.supersample,
    });
    const c = COLORS[o.color];
    for (let i = 0; i < cov.length; i++) {
      const a = cov[i];
      if (a === 0) continue;
      for (let k = 0; k < 3; k++) px[3 * i + k] += (c[k] - px[3 * i + k]) * a;
    }
  }
  const image = new Uint8Array(size * size * 3);
  for (let i = 0; i < image.length; i++) image[i] = Math.min(255, Math.max(0, Math.round(px[i])));
  const [template, caption] = captionFor(rng, scene, bg.meta);
  const aesthetic = aestheticScore(rng, scene, bg.meta, size);
  const round = (v: number) => Math.round(v * 100) / 100;
  const objects = scene.objects.map((o) => ({ ...o, x: round(o.x), y: round(o.y), r: round(o.r) }));
  const meta: SampleMeta = {
    objects,
    background: bg.meta,
    template,
    count: objects.length,
    aesthetic,
    split,
  };
  if (scene.relation) meta.relation = scene.relation;
  return {
    key: index.toString().padStart(9, "0"),
    image,
    width: size,
    height: size,
    caption,
    meta,
  };
}
