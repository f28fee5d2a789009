import assert from "node:assert/strict";
import { encode } from "fast-png";
import { decodePngRgb, encodePngRgb, isPng } from "../lib/data/png.ts";

Deno.test("RGB PNG round trip is exact", () => {
  const w = 7, h = 5;
  const img = new Uint8Array(w * h * 3).map((_, i) => (i * 37 + 11) % 256);
  const png = encodePngRgb(img, w, h);
  assert.ok(isPng(png));
  const back = decodePngRgb(png);
  assert.equal(back.width, w);
  assert.equal(back.height, h);
  assert.deepEqual(back.image, img);
});

Deno.test("grey, grey+alpha, RGBA, 16-bit, 1-bit and palette PNGs decode to RGB", () => {
  const w = 3, h = 2;
  const grey = [0, 50, 100, 150, 200, 255];
  const expectGrey = new Uint8Array(grey.flatMap((g) => [g, g, g]));
  assert.deepEqual(
    decodePngRgb(encode({ width: w, height: h, data: new Uint8Array(grey), channels: 1 })).image,
    expectGrey,
  );
  const ga = new Uint8Array(grey.flatMap((g) => [g, 128]));
  assert.deepEqual(
    decodePngRgb(encode({ width: w, height: h, data: ga, channels: 2 })).image,
    expectGrey,
  );
  const rgba = new Uint8Array(grey.flatMap((g) => [g, 255 - g, 7, 99]));
  assert.deepEqual(
    decodePngRgb(encode({ width: w, height: h, data: rgba, channels: 4 })).image,
    new Uint8Array(grey.flatMap((g) => [g, 255 - g, 7])),
  );
  const g16 = new Uint16Array([0, 257 * 50, 257 * 100, 65535, 257 * 200, 257 * 255]);
  assert.deepEqual(
    decodePngRgb(encode({ width: w, height: h, data: g16, channels: 1, depth: 16 })).image,
    new Uint8Array([0, 50, 100, 255, 200, 255].flatMap((g) => [g, g, g])),
  );
  // 1-bit grey, 9 pixels wide so rows do not end on a byte boundary: 1,0,1,1,0,0,1,0 | 1.
  const bits = [1, 0, 1, 1, 0, 0, 1, 0, 1];
  const packed = new Uint8Array([0b10110010, 0b10000000, 0b01001101, 0b00000000]);
  const oneBit = encode({ width: 9, height: 2, data: packed, channels: 1, depth: 1 });
  const rows = [...bits, ...bits.map((b) => 1 - b)];
  assert.deepEqual(
    decodePngRgb(oneBit).image,
    new Uint8Array(rows.flatMap((b) => [b * 255, b * 255, b * 255])),
  );
  const pal = encode({
    width: 2,
    height: 1,
    data: new Uint8Array([1, 0]),
    channels: 1,
    depth: 8,
    palette: [[10, 20, 30], [200, 100, 50]],
  });
  assert.deepEqual(decodePngRgb(pal).image, new Uint8Array([200, 100, 50, 10, 20, 30]));
});

Deno.test("bad input: wrong sizes, not a PNG, truncated PNG", () => {
  assert.throws(() => encodePngRgb(new Uint8Array(5), 2, 1), /expected 2\*1\*3 = 6/);
  assert.throws(() => encodePngRgb(new Uint8Array(0), 0, 1), /positive integers/);
  assert.throws(() => decodePngRgb(new Uint8Array([1, 2, 3]), "x.png"), /x.png: not a PNG/);
  const png = encodePngRgb(new Uint8Array(16 * 16 * 3).fill(9), 16, 16);
  assert.throws(() => decodePngRgb(png.subarray(0, 40), "y.png"), /y.png: corrupt PNG/);
});
