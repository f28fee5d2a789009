/**
 * Seeded random RGB test pictures.
 *
 * @example
 * ```ts
 * const img = randomImage(37, 23, 1); // the same bytes on every run
 * const other = randomImage(16, 16, 1, [9]); // another stream of the same seed
 * ```
 * @module
 */
import type { RgbImage } from "../../lib/plot/mod.ts";
import { Rng } from "../../lib/util/rng.ts";

/**
 * A `w` x `h` RGB image (HWC bytes) of independent uniform values 0-255 drawn from the kit's
 * seeded stream `Rng.stream(seed, path)`.
 */
export function randomImage(
  w: number,
  h: number,
  seed: number,
  path: readonly number[] = [],
): RgbImage {
  const rng = Rng.stream(seed, path);
  return { data: Uint8Array.from({ length: w * h * 3 }, () => rng.int(256)), width: w, height: h };
}
