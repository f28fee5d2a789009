import assert from "node:assert/strict";
import { concatBytes, concatFloat32 } from "../lib/util/mod.ts";

Deno.test("concatBytes: empty input, one chunk, several chunks with empty ones", () => {
  const none = concatBytes([]);
  assert.ok(none instanceof Uint8Array);
  assert.equal(none.length, 0);
  assert.equal(concatBytes([new Uint8Array(0), new Uint8Array(0)]).length, 0);

  // A single chunk comes back as a copy: writing to the result leaves the chunk alone.
  const one = new Uint8Array([7, 0, 255]);
  const copy = concatBytes([one]);
  assert.deepEqual(Array.from(copy), [7, 0, 255]);
  assert.notEqual(copy.buffer, one.buffer);
  copy[0] = 9;
  assert.equal(one[0], 7);

  const out = concatBytes([
    new Uint8Array(0),
    new Uint8Array([1, 2]),
    new Uint8Array(0),
    new Uint8Array([3]),
    new Uint8Array([254, 255, 0, 128]),
    new Uint8Array(0),
  ]);
  assert.equal(out.length, 7);
  assert.deepEqual(Array.from(out), [1, 2, 3, 254, 255, 0, 128]);
});

Deno.test("concatBytes: views into a larger buffer contribute only their own bytes", () => {
  const big = new Uint8Array([10, 11, 12, 13, 14, 15]);
  const out = concatBytes([big.subarray(1, 3), big.subarray(4)]);
  assert.equal(out.length, 4);
  assert.deepEqual(Array.from(out), [11, 12, 14, 15]);
  assert.equal(out.byteOffset, 0);
  assert.equal(out.buffer.byteLength, 4);
});

Deno.test("concatFloat32: empty input, one chunk, several chunks with empty ones", () => {
  const none = concatFloat32([]);
  assert.ok(none instanceof Float32Array);
  assert.equal(none.length, 0);

  const one = new Float32Array([0.5, -1.25]);
  const copy = concatFloat32([one]);
  assert.deepEqual(Array.from(copy), [0.5, -1.25]);
  assert.notEqual(copy.buffer, one.buffer);

  // Rows of two batches of a [n, 2] output, with an empty batch between them.
  const out = concatFloat32([
    new Float32Array([1, 2, 3, 4]),
    new Float32Array(0),
    new Float32Array([-0.5, 1e-3]),
  ]);
  assert.equal(out.length, 6);
  assert.deepEqual(Array.from(out), [1, 2, 3, 4, -0.5, Math.fround(1e-3)]);
});
