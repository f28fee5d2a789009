/**
 * Bytes of binary data an object keeps alive: every `ArrayBuffer` reachable from it through own
 * properties (string and symbol keys, enumerable or not), array elements, `Map`/`Set` entries and
 * typed-array views, each buffer counted once at its full `byteLength`. A view over a slice of a
 * large buffer therefore counts the whole buffer, which is what it keeps from being collected.
 * Unlike a heap measurement this is exact and deterministic, so a test can assert that an
 * accumulator's state does not grow with the data fed to it.
 *
 * Fields declared with `#name` are invisible to reflection; the kit's classes use TypeScript
 * `private`, which is an ordinary property at run time.
 *
 * @example
 * ```ts
 * const acc = new FeatureStatsAccumulator(4).add(batch, 100);
 * retainedBytes(acc); // 8 * (4 + 16): mean and scatter matrix in float64
 * ```
 * @module
 */

/**
 * Total `byteLength` of the distinct `ArrayBuffer`s / `SharedArrayBuffer`s reachable from `root`.
 *
 * @example
 * ```ts
 * retainedBytes({ a: new Float64Array(3), b: [new Uint8Array(5)] }); // 29
 * ```
 */
export function retainedBytes(root: unknown): number {
  const seen = new Set<unknown>();
  const buffers = new Set<ArrayBufferLike>();
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || (typeof v !== "object" && typeof v !== "function") || seen.has(v)) continue;
    seen.add(v);
    if (v instanceof ArrayBuffer || v instanceof SharedArrayBuffer) {
      buffers.add(v);
      continue;
    }
    if (ArrayBuffer.isView(v)) buffers.add(v.buffer);
    if (v instanceof Map) { for (const [k, x] of v) stack.push(k, x); }
    if (v instanceof Set) { for (const x of v) stack.push(x); }
    // Typed arrays expose their elements as properties too: skip walking them one by one.
    if (ArrayBuffer.isView(v)) continue;
    for (const key of Reflect.ownKeys(v)) {
      const d = Object.getOwnPropertyDescriptor(v, key);
      // Data properties only: calling getters could allocate or have side effects.
      if (d && "value" in d) stack.push(d.value);
    }
  }
  let total = 0;
  for (const b of buffers) total += b.byteLength;
  return total;
}
