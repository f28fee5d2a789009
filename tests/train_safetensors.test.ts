import assert from "node:assert/strict";
import {
  decodeSafetensors,
  encodeSafetensors,
  halfToFloat,
  readSafetensors,
  toTensorDataMap,
  writeSafetensors,
} from "../lib/train/safetensors.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

/** Build a file by hand from the spec: u64 LE header length, JSON, raw bytes. */
function build(header: unknown, data: Uint8Array, pad = 0): Uint8Array {
  const h = new TextEncoder().encode(JSON.stringify(header) + " ".repeat(pad));
  const out = new Uint8Array(8 + h.length + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, h.length, true);
  dv.setUint32(4, 0, true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

Deno.test("safetensors round trip keeps values, shapes and metadata; data is 8-aligned", async () => {
  const tensors = {
    "down.0.conv.weight": {
      shape: [3, 3, 2, 4],
      data: Float32Array.from({ length: 72 }, (_, i) => i / 7 - 3),
    },
    "bias": { shape: [4], data: new Float32Array([1.5, -2, 0, 3.25e-8]) },
    "scalar": { shape: [], data: new Float32Array([42]) },
    "empty": { shape: [0, 5], data: new Float32Array(0) },
  };
  const bytes = encodeSafetensors(tensors, { step: "12", note: "héllo" });
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(n % 8, 0, "header padded to a multiple of 8");
  // Header parses as plain JSON with offsets laid out by sorted name.
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  assert.deepEqual(header.bias, { dtype: "F32", shape: [4], data_offsets: [0, 16] });
  assert.deepEqual(header.__metadata__, { step: "12", note: "héllo" });
  const file = decodeSafetensors(bytes);
  assert.deepEqual(file.metadata, { step: "12", note: "héllo" });
  for (const [k, t] of Object.entries(tensors)) {
    assert.equal(file.tensors[k].dtype, "F32");
    assert.deepEqual(file.tensors[k].shape, t.shape);
    assert.deepEqual(Array.from(file.tensors[k].data as Float32Array), Array.from(t.data));
  }
  await withTempDir("xgen_train_safetensors_", async (dir) => {
    await writeSafetensors(`${dir}/m.safetensors`, tensors, { a: "b" });
    const back = toTensorDataMap(await readSafetensors(`${dir}/m.safetensors`));
    assert.deepEqual(Array.from(back.bias.data), Array.from(tensors.bias.data));
  });
});

Deno.test("F16, BF16, I32, I64 decode known values (unaligned header)", () => {
  // F16 bit patterns with exact values from the IEEE 754 binary16 definition.
  const halves = [0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x3555, 0x8000, 0x7c00, 0xfc00];
  const want = [1, -2, 65504, 2 ** -24, 2 ** -14, 0.333251953125, -0, Infinity, -Infinity];
  const f16 = new Uint8Array(halves.length * 2);
  halves.forEach((h, i) => {
    f16[2 * i] = h & 0xff;
    f16[2 * i + 1] = h >> 8;
  });
  // BF16 1.0 = 0x3f80, -3.0 = 0xc040, 0.15625 = 0x3e20.
  const bf16 = new Uint8Array([0x80, 0x3f, 0x40, 0xc0, 0x20, 0x3e]);
  const i32 = new Uint8Array(new Int32Array([-7, 2147483647]).buffer);
  const i64 = new Uint8Array(new BigInt64Array([-5n, 1n << 40n]).buffer);
  const a = f16.length, b = a + bf16.length, c = b + i32.length, d = c + i64.length;
  const data = new Uint8Array(d);
  data.set(f16, 0);
  data.set(bf16, a);
  data.set(i32, b);
  data.set(i64, c);
  const header = {
    h: { dtype: "F16", shape: [3, 3], data_offsets: [0, a] },
    bf: { dtype: "BF16", shape: [3], data_offsets: [a, b] },
    i: { dtype: "I32", shape: [2], data_offsets: [b, c] },
    l: { dtype: "I64", shape: [2, 1], data_offsets: [c, d] },
  };
  const file = decodeSafetensors(build(header, data, 1), "hand.safetensors");
  const got = Array.from(file.tensors.h.data as Float32Array);
  assert.deepEqual(got, want);
  assert.ok(Object.is(got[6], -0));
  assert.ok(Number.isNaN(halfToFloat(0x7e00)));
  assert.deepEqual(Array.from(file.tensors.bf.data as Float32Array), [1, -3, 0.15625]);
  assert.deepEqual(Array.from(file.tensors.i.data as Int32Array), [-7, 2147483647]);
  assert.deepEqual(Array.from(file.tensors.l.data as BigInt64Array), [-5n, 1n << 40n]);
  assert.equal(file.tensors.h.dtype, "F16");
  assert.deepEqual(Array.from(toTensorDataMap(file).l.data), [-5, 2 ** 40]);
});

Deno.test("malformed headers give errors naming the file and tensor", () => {
  const src = "bad.safetensors";
  const data = new Uint8Array(16);
  const cases: [unknown, Uint8Array, RegExp][] = [
    [
      {
        a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
        b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
      },
      new Uint8Array(12),
      /bad\.safetensors: tensor "b": data_offsets \[4, 12\] overlap tensor "a"/,
    ],
    [
      { a: { dtype: "F32", shape: [2], data_offsets: [8, 16] } },
      data,
      /tensor "a": gap of 8 bytes/,
    ],
    [
      { a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } },
      data,
      /8 trailing bytes after the last tensor/,
    ],
    [
      { a: { dtype: "F32", shape: [5], data_offsets: [0, 20] } },
      data,
      /tensor "a": data_offsets \[0, 20\] out of range \(data is 16 bytes\)/,
    ],
    [
      { a: { dtype: "F32", shape: [3], data_offsets: [0, 16] } },
      data,
      /tensor "a": 16 bytes for F32\[3\] which needs 12/,
    ],
    [
      { a: { dtype: "Q4", shape: [4], data_offsets: [0, 16] } },
      data,
      /tensor "a": unknown dtype "Q4"/,
    ],
    [
      { a: { dtype: "F32", shape: [-4], data_offsets: [0, 16] } },
      data,
      /tensor "a": shape must be/,
    ],
    [
      { __metadata__: { n: 3 }, a: { dtype: "F32", shape: [4], data_offsets: [0, 16] } },
      data,
      /__metadata__ "n" must be a string/,
    ],
    [[1, 2], new Uint8Array(0), /header must be a JSON object/],
  ];
  for (const [h, d, re] of cases) {
    assert.throws(() => decodeSafetensors(build(h, d), src), (e: Error) => {
      assert.match(e.message, /^safetensors bad\.safetensors: /);
      assert.match(e.message, re);
      return true;
    });
  }
  // Header length beyond the file, and a short file.
  const huge = new Uint8Array(16);
  new DataView(huge.buffer).setUint32(0, 1000, true);
  assert.throws(
    () => decodeSafetensors(huge, src),
    /header length 1000 exceeds the file \(16 bytes\)/,
  );
  assert.throws(() => decodeSafetensors(new Uint8Array(3), src), /shorter than the 8-byte header/);
  const notJson = build({}, new Uint8Array(0));
  notJson[8] = 0x5b; // "[" then "}" -> invalid JSON
  assert.throws(() => decodeSafetensors(notJson, src), /header is not valid UTF-8 JSON/);
  // A valid-but-unsupported dtype validates, then fails decoding with the tensor named.
  assert.throws(
    () =>
      decodeSafetensors(
        build({ u: { dtype: "U8", shape: [2], data_offsets: [0, 2] } }, new Uint8Array(2)),
        src,
      ),
    /tensor "u": dtype U8 is valid but not supported/,
  );
  assert.throws(
    () => encodeSafetensors({ w: { shape: [3], data: new Float32Array(2) } }),
    /tensor "w" has 2 values but shape \[3\] needs 3/,
  );
});

Deno.test("hostile headers: one-line errors naming the file; any tensor name round-trips", () => {
  const src = "evil.safetensors";
  const data = new Uint8Array(8);
  const f32 = (offs: unknown, shape: unknown = [2], dtype: unknown = "F32") => ({
    a: { dtype, shape, data_offsets: offs },
  });
  const cases: [unknown, RegExp][] = [
    [f32([-8, 0]), /tensor "a": data_offsets must be \[begin, end\] non-negative integers/],
    [f32([0, 8.5]), /tensor "a": data_offsets must be \[begin, end\] non-negative integers/],
    [f32([0, 2 ** 53]), /tensor "a": data_offsets must be \[begin, end\] non-negative integers/],
    [f32([0, 2 ** 53 - 1]), /tensor "a": data_offsets \[0, 9007199254740991\] out of range/],
    [f32([8, 0]), /tensor "a": data_offsets \[8, 0\] out of range/],
    [f32([0, 8, 16]), /tensor "a": data_offsets must be \[begin, end\]/],
    [f32([0, 8], [2], "F16"), /tensor "a": 8 bytes for F16\[2\] which needs 4/],
    [f32([0, 8], [2 ** 40, 2 ** 40]), /tensor "a": 8 bytes for F32\[.*\] which needs /],
    // Names of Object.prototype members are not dtypes.
    [f32([0, 8], [2], "toString"), /tensor "a": unknown dtype "toString"/],
    [f32([0, 8], [2], "__proto__"), /tensor "a": unknown dtype "__proto__"/],
    [{ a: null }, /tensor "a": entry must be an object/],
    [{ a: [1, 2] }, /tensor "a": entry must be an object/],
    [{ __metadata__: null }, /"__metadata__" must be an object of strings/],
    // A name with a line break is quoted, so the error stays on one line.
    [{ "x\ny": { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, /tensor "x\\ny": 8 bytes/],
  ];
  for (const [h, re] of cases) {
    assert.throws(() => decodeSafetensors(build(h, data), src), (e: Error) => {
      assert.match(e.message, /^safetensors evil\.safetensors: /);
      assert.match(e.message, re);
      assert.equal(e.message.split("\n").length, 1, `one line: ${e.message}`);
      return true;
    }, JSON.stringify(h));
  }
  // The parser's message quotes the header; its line breaks are escaped.
  const broken = build({}, new Uint8Array(0));
  broken.set(new TextEncoder().encode("\n"), 8);
  assert.throws(() => decodeSafetensors(broken, src), (e: Error) => {
    assert.match(e.message, /^safetensors evil\.safetensors: header is not valid UTF-8 JSON/);
    assert.equal(e.message.split("\n").length, 1, `one line: ${e.message}`);
    return true;
  });
  // Header lengths of 2^63-1 and 2^64-1 are refused before any allocation.
  for (const n of [2n ** 63n - 1n, 2n ** 64n - 1n]) {
    const b = build({}, new Uint8Array(0));
    new DataView(b.buffer).setBigUint64(0, n, true);
    assert.throws(() => decodeSafetensors(b, src), (e: Error) => {
      assert.match(
        e.message,
        new RegExp(`^safetensors evil\\.safetensors: header length ${n} exceeds the file \\(`),
      );
      return true;
    });
  }
  // "__proto__" and "constructor" are ordinary tensor names (Deno has no __proto__ setter).
  const two = new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer);
  const file = decodeSafetensors(
    build({
      ["__proto__"]: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      constructor: { dtype: "F32", shape: [2], data_offsets: [8, 16] },
    }, two),
    src,
  );
  assert.deepEqual(Object.keys(file.tensors).sort(), ["__proto__", "constructor"]);
  assert.equal(Object.getPrototypeOf(file.tensors), Object.prototype);
  assert.deepEqual(Array.from(file.tensors["__proto__"].data as Float32Array), [1, 2]);
  const map = toTensorDataMap(file);
  assert.deepEqual(Object.keys(map).sort(), ["__proto__", "constructor"]);
  assert.deepEqual(Array.from(map["constructor"].data), [3, 4]);
});
