/**
 * Deterministic, serialisable random streams.
 *
 * Every source of randomness in the kit (data order, noise, timesteps, caption dropout, sampler
 * noise) draws from an {@link Rng}. A stream is named by a seed plus a list of integers (for example
 * `[rank, purpose]`), so two data-parallel workers never share noise: the study's wild loss came from
 * workers with identical seeds drawing identical noise levels.
 *
 * The generator is xoshiro128** (32-bit ops only, fast in JavaScript), seeded through splitmix32 so
 * that nearby seeds give unrelated streams. Its whole state is four uint32 values plus a cached
 * normal deviate, saved in checkpoints so a resumed run draws exactly what an uninterrupted run would.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Rng, STREAM } from "./rng.ts";
 *
 * const rank = 0;
 * const rng = Rng.stream(1234, [rank, STREAM.noise]);
 * const saved = rng.state(); // JSON-safe
 * const eps = rng.normal(4 * 32 * 32);
 * assert.deepEqual(Rng.fromState(saved).normal(eps.length), eps);
 * ```
 * @module
 */

/** Named sub-streams, so every purpose draws from its own sequence. */
export const STREAM = {
  data: 1,
  noise: 2,
  timesteps: 3,
  dropout: 4,
  init: 5,
  sampler: 6,
  eval: 7,
} as const;

/** JSON-safe snapshot of an {@link Rng}. */
export interface RngState {
  s: [number, number, number, number];
  spare: number | null;
}

function splitmix32(a: number): () => number {
  return () => {
    a = (a + 0x9e3779b9) | 0;
    let z = a;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** Seeded pseudo-random generator (xoshiro128**) with uniform, normal and integer draws. */
export class Rng {
  private s: Uint32Array;
  private spare: number | null = null;

  private constructor(s: Uint32Array) {
    this.s = s;
  }

  /** A stream for `seed` and an optional path of integers (rank, purpose, index...). */
  static stream(seed: number, path: readonly number[] = []): Rng {
    if (!Number.isFinite(seed)) throw new Error(`Rng: seed must be a finite number, got ${seed}`);
    let h = (Math.floor(seed) >>> 0) ^ 0x5bd1e995;
    // Mix every path element into the seed so [0,1] and [1,0] differ.
    for (const p of path) {
      const m = splitmix32(h ^ Math.imul((p >>> 0) + 1, 0x27d4eb2d));
      h = m() ^ m();
    }
    const sm = splitmix32(h);
    const s = new Uint32Array([sm(), sm(), sm(), sm()]);
    if ((s[0] | s[1] | s[2] | s[3]) === 0) s[0] = 1; // the all-zero state is a fixed point
    return new Rng(s);
  }

  /** Restore a generator from {@link Rng.state}. */
  static fromState(st: RngState): Rng {
    if (!st || !Array.isArray(st.s) || st.s.length !== 4) {
      throw new Error("Rng.fromState: expected {s: [u32,u32,u32,u32], spare}");
    }
    const r = new Rng(new Uint32Array(st.s));
    r.spare = st.spare ?? null;
    return r;
  }

  /** JSON-safe copy of the full state. */
  state(): RngState {
    const [a, b, c, d] = this.s;
    return { s: [a, b, c, d], spare: this.spare };
  }

  /** A child stream derived from this one's seed path; does not advance this stream. */
  fork(index: number): Rng {
    return Rng.stream(this.s[0] ^ this.s[2], [index, this.s[1], this.s[3]]);
  }

  /** Next raw uint32. */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!(n > 0)) throw new Error(`Rng.int: n must be positive, got ${n}`);
    return Math.floor(this.uniform() * n);
  }

  /** One standard normal deviate (Box-Muller, the second value cached). */
  gaussian(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** `n` standard normal deviates. */
  normal(n: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.gaussian();
    return out;
  }

  /** `n` uniform deviates in [0, 1). */
  uniforms(n: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.uniform();
    return out;
  }

  /** In-place Fisher-Yates shuffle; returns the array. */
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): number[] {
    return this.shuffle(Array.from({ length: n }, (_, i) => i));
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
