/**
 * Prompts and the pixel judge the study report's inference sections share: single-object
 * shapes-world prompts spread over the seen colour/shape pairs, and a {@link Scorer} that reads
 * colour and shape back from the pixels (`classifyObject`), a judge independent of any CLIP.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pixelJudge, spreadPrompts } from "./report_prompts.ts";
 * import { shapesWorldSample } from "../data/mod.ts";
 *
 * assert.deepEqual(spreadPrompts(2).length, 2);
 * const s = shapesWorldSample(0, { seed: 9, size: 32, singleObjectOnly: true });
 * const o = s.meta.objects[0];
 * const [score] = await pixelJudge.score(`a ${o.color} ${o.shape}`, [{ data: s.image, width: 32, height: 32 }]);
 * assert.ok(score >= 0.5); // the colour at least is read back
 * ```
 * @module
 */
import {
  classifyObject,
  COLOR_NAMES,
  type ColorName,
  isHeldoutPair,
  SHAPE_NAMES,
  type ShapeName,
} from "../data/mod.ts";
import type { Scorer } from "../inference/best_of_n.ts";

/**
 * `count` prompts "a <colour> <shape>", every k-th seen pair so all colours and shapes appear.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { spreadPrompts } from "./report_prompts.ts";
 *
 * assert.equal(spreadPrompts(3)[0], "a red circle");
 * ```
 */
export function spreadPrompts(count: number): string[] {
  const pairs: [ColorName, ShapeName][] = [];
  for (const c of COLOR_NAMES) {
    for (const s of SHAPE_NAMES) if (!isHeldoutPair(c, s)) pairs.push([c, s]);
  }
  const k = pairs.length / count;
  return Array.from({ length: count }, (_, i) => {
    const [c, s] = pairs[Math.floor(i * k) % pairs.length];
    return `a ${c} ${s}`;
  });
}

/**
 * Half a point for the right colour and half for the right shape, read from the pixels; 0 when
 * no object is found or the prompt names no colour or shape.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pixelJudge } from "./report_prompts.ts";
 *
 * const blank = { data: new Uint8Array(16 * 16 * 3).fill(200), width: 16, height: 16 };
 * assert.deepEqual(Array.from(await pixelJudge.score("a red circle", [blank])), [0]); // no object
 * ```
 */
export const pixelJudge: Scorer = {
  name: "pixel readback (colour + shape)",
  score(prompt, images) {
    const words = prompt.toLowerCase().split(/\s+/);
    const color = COLOR_NAMES.find((c) => words.includes(c));
    const shape = SHAPE_NAMES.find((s) => words.includes(s));
    return Promise.resolve(Float32Array.from(images, (im) => {
      const det = classifyObject(im.data, im.width, im.height);
      if (!det) return 0;
      return (det.color === color ? 0.5 : 0) + (det.shape === shape ? 0.5 : 0);
    }));
  },
};
