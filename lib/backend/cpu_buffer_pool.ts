/**
 * A recycling pool for the Float32Arrays that the `cpu-blas` backend's own kernels allocate.
 *
 * A fresh 1 MiB `Float32Array` costs 100-300 us here (the allocator maps new pages and the kernel
 * zero-fills them on first touch), five to ten times the cost of writing it, and a UNet training
 * step allocates gigabytes in ~8000 kernel outputs. The pool keeps the arrays of disposed tensors
 * (free lists keyed by exact length; a training loop repeats the same shapes) and hands them to
 * later kernel outputs.
 *
 * Safety rules, enforced by the backend hooks (`adopt` on write, `pin` on read, `release` on
 * dispose): an array is recycled only if the pool created it, exactly one tensor adopted it as a
 * whole (no view, no second tensor), and nobody outside the backend ever read it. Any read
 * (`dataSync`, `data`, `bufferSync`, `array`) pins the array for good, so user-held values never
 * change under the user; any view of a pooled array, or a second tensor over it, pins it too.
 *
 * @example
 * ```ts
 * const pool = new BufferPool();
 * const a = pool.take(1024); // dirty: the caller must overwrite every element
 * pool.adopt(a); // a tensor now owns it
 * pool.release(a); // that tensor was disposed: a is reused by the next take(1024)
 * ```
 * @module
 */

const OUT = 1; // handed out by take(), no tensor yet
const LIVE = 2; // owned by exactly one tensor
const FREE = 3; // in a free list

/** Arrays shorter than this are not pooled (small allocations are cheap). */
const MIN_POOLED = 256;

/** Counters of a `BufferPool`. */
export interface BufferPoolStats {
  /** take() calls served from a free list. */
  hits: number;
  /** take() calls that allocated. */
  misses: number;
  /** Bytes held in free lists now. */
  freeBytes: number;
  /** Free-list byte cap. */
  limitBytes: number;
}

/**
 * Free lists of Float32Arrays with the ownership rules described in the module docs.
 *
 * @example
 * ```ts
 * const pool = new BufferPool({ limitBytes: 64 << 20 });
 * const out = pool.take(4096, true); // zero-filled
 * ```
 */
export class BufferPool {
  #free = new Map<number, Float32Array[]>();
  #state = new WeakMap<ArrayBufferLike, number>();
  #freeBytes = 0;
  #hits = 0;
  #misses = 0;
  /**
   * Most bytes kept in free lists. Beyond it, arrays of other lengths (oldest lengths first) are
   * dropped to make room, else the released array is left to the GC.
   */
  limitBytes: number;

  /**
   * An empty pool keeping at most `limitBytes` (default 768 MiB) in its free lists.
   *
   * @example
   * ```ts
   * new BufferPool({ limitBytes: 1 << 30 });
   * ```
   */
  constructor(opts: { limitBytes?: number } = {}) {
    const limit = opts.limitBytes ?? 768 * 1024 * 1024;
    if (!(Number.isFinite(limit) && limit >= 0)) {
      throw new Error(`BufferPool: limitBytes must be a non-negative number, got ${limit}`);
    }
    this.limitBytes = limit;
  }

  /**
   * A Float32Array of length `n`: recycled (contents arbitrary unless `zero`) or new.
   *
   * @example
   * ```ts
   * const out = new BufferPool().take(10, true);
   * ```
   */
  take(n: number, zero = false): Float32Array {
    if (n < MIN_POOLED) return new Float32Array(n);
    const list = this.#free.get(n);
    while (list && list.length > 0) {
      const a = list.pop()!;
      this.#freeBytes -= a.byteLength;
      // A free array that something adopted or read since its release is pinned: skip it.
      if (this.#state.get(a.buffer) !== FREE) continue;
      this.#hits++;
      this.#state.set(a.buffer, OUT);
      if (zero) a.fill(0);
      return a;
    }
    this.#misses++;
    const b = new Float32Array(n);
    this.#state.set(b.buffer, OUT);
    return b;
  }

  /**
   * A tensor was created over `values`: it owns a pooled array only if it took the whole array
   * straight from take(); views and second owners pin the array.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { BufferPool } from "./cpu_buffer_pool.ts";
   *
   * const pool = new BufferPool();
   * const values = pool.take(1024);
   * pool.adopt(values); // one tensor now owns it
   * pool.release(values); // disposed: back in the free list
   * assert.equal(pool.take(1024), values);
   * ```
   */
  adopt(values: unknown): void {
    if (!ArrayBuffer.isView(values)) return;
    const s = this.#state.get(values.buffer);
    if (s === undefined) return;
    if (s === OUT && isWhole(values)) this.#state.set(values.buffer, LIVE);
    else this.#state.delete(values.buffer);
  }

  /**
   * `values` escaped the backend (read by a user, moved): never recycle it.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { BufferPool } from "./cpu_buffer_pool.ts";
   *
   * const pool = new BufferPool();
   * const values = pool.take(1024);
   * pool.adopt(values);
   * pool.pin(values); // read by user code: never recycled
   * pool.release(values);
   * assert.notEqual(pool.take(1024), values);
   * ```
   */
  pin(values: unknown): void {
    if (ArrayBuffer.isView(values)) this.#state.delete(values.buffer);
  }

  /**
   * The tensor that owned `values` was disposed: recycle the array if the rules allow.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { BufferPool } from "./cpu_buffer_pool.ts";
   *
   * const pool = new BufferPool();
   * const values = pool.take(1024);
   * pool.adopt(values);
   * pool.release(values);
   * assert.equal(pool.stats().freeBytes, 1024 * 4);
   * ```
   */
  release(values: unknown): void {
    if (!(values instanceof Float32Array)) return;
    if (this.#state.get(values.buffer) !== LIVE || !isWhole(values)) return;
    const over = this.#freeBytes + values.byteLength - this.limitBytes;
    if (over > 0 && this.#evict(over, values.length) < over) {
      this.#state.delete(values.buffer);
      return;
    }
    this.#state.set(values.buffer, FREE);
    let list = this.#free.get(values.length);
    if (!list) this.#free.set(values.length, list = []);
    list.push(values);
    this.#freeBytes += values.byteLength;
  }

  /** Drop free arrays of other lengths, oldest lengths first, until `bytes` are freed. */
  #evict(bytes: number, keep: number): number {
    let freed = 0;
    for (const [len, list] of this.#free) {
      if (len === keep) continue;
      while (list.length > 0 && freed < bytes) {
        const a = list.pop()!;
        this.#state.delete(a.buffer);
        this.#freeBytes -= a.byteLength;
        freed += a.byteLength;
      }
      if (list.length === 0) this.#free.delete(len);
      if (freed >= bytes) break;
    }
    return freed;
  }

  /**
   * Drop every free array (left to the GC).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { BufferPool } from "./cpu_buffer_pool.ts";
   *
   * const pool = new BufferPool();
   * const values = pool.take(1024);
   * pool.adopt(values);
   * pool.release(values);
   * pool.clear();
   * assert.equal(pool.stats().freeBytes, 0);
   * ```
   */
  clear(): void {
    for (const list of this.#free.values()) for (const a of list) this.#state.delete(a.buffer);
    this.#free.clear();
    this.#freeBytes = 0;
  }

  /**
   * Hit/miss counters and free bytes.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { BufferPool } from "./cpu_buffer_pool.ts";
   *
   * const pool = new BufferPool();
   * const a = pool.take(1024);
   * pool.adopt(a);
   * pool.release(a);
   * pool.take(1024); // served from the free list
   * assert.deepEqual([pool.stats().hits, pool.stats().misses], [1, 1]);
   * ```
   */
  stats(): BufferPoolStats {
    return {
      hits: this.#hits,
      misses: this.#misses,
      freeBytes: this.#freeBytes,
      limitBytes: this.limitBytes,
    };
  }
}

function isWhole(v: ArrayBufferView): boolean {
  return v.byteOffset === 0 && v.byteLength === v.buffer.byteLength;
}

/** A backend that carries a `BufferPool` for its kernels' outputs. */
export interface PooledBackend {
  /** The pool the backend's kernels take output arrays from. */
  bufferPool: BufferPool;
}

/**
 * An output array of `n` floats for a kernel running on `backend`: from its pool when it has one
 * (contents arbitrary unless `zero`: the kernel must write every element), else a new array.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BufferPool, takeF32 } from "./cpu_buffer_pool.ts";
 *
 * // A kernel's args.backend: pooled on cpu-blas (it has a bufferPool), fresh elsewhere.
 * const pooled = { bufferPool: new BufferPool() };
 * assert.equal(takeF32(pooled, 1024).length, 1024);
 * assert.equal(pooled.bufferPool.stats().misses, 1);
 * assert.deepEqual(takeF32({}, 4, true), new Float32Array(4));
 * ```
 */
export function takeF32(backend: unknown, n: number, zero = false): Float32Array {
  const pool = (backend as Partial<PooledBackend>).bufferPool;
  return pool ? pool.take(n, zero) : new Float32Array(n);
}
