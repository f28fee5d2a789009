/**
 * JPEG (and PNG) reference images: decoding JPEGs encoded here with the same library (jpeg-js),
 * format told by content rather than name, corrupt files skipped and recorded with their path,
 * and COCO prompt sets over `.jpg`/`.jpeg` folders.
 */
import assert from "node:assert/strict";
import { decode as decodeJpeg, encode as encodeJpeg } from "jpeg-js";
import { encodePngRgb } from "../lib/data/mod.ts";
import {
  cocoPromptSet,
  CorruptImageError,
  decodeImageRgb,
  decodeJpegRgb,
  formatSkipped,
  readImageOrSkip,
  readImageRgb,
  type SkippedImage,
  sniffImageFormat,
} from "../lib/eval/clip_fid/mod.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

/** A smooth w x h test picture (RGB) and its JPEG bytes at `quality`. */
function picture(w: number, h: number, quality = 95) {
  const rgb = new Uint8Array(w * h * 3);
  const rgba = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const p = y * w + x;
      const v = [Math.round(255 * x / (w - 1)), Math.round(255 * y / (h - 1)), 96];
      rgb.set(v, 3 * p);
      rgba.set([...v, 255], 4 * p);
    }
  }
  const jpg: Uint8Array = encodeJpeg({ data: rgba, width: w, height: h }, quality).data;
  return { rgb, jpg: new Uint8Array(jpg) };
}

Deno.test("JPEG: decodes to RGB close to the source, equal to jpeg-js's RGBA output", () => {
  const { rgb, jpg } = picture(40, 24);
  assert.equal(sniffImageFormat(jpg), "jpeg");
  const img = decodeJpegRgb(jpg, "p.jpg");
  assert.equal(img.width, 40);
  assert.equal(img.height, 24);
  assert.equal(img.data.length, 40 * 24 * 3);
  // Lossy, but a smooth picture at quality 95 stays within a few levels everywhere.
  let maxErr = 0;
  for (let i = 0; i < rgb.length; i++) maxErr = Math.max(maxErr, Math.abs(img.data[i] - rgb[i]));
  assert.ok(maxErr <= 8, `max error ${maxErr}`);
  assert.ok(maxErr >= 1, "a JPEG round trip is not lossless; the test image must exercise it");
  // The library's other output format, alpha dropped, gives the same pixels.
  const rgba = decodeJpeg(jpg, { useTArray: true, formatAsRGBA: true }).data;
  for (let p = 0; p < 40 * 24; p++) {
    for (let c = 0; c < 3; c++) assert.equal(img.data[3 * p + c], rgba[4 * p + c]);
  }
  // A constant colour survives exactly or within one level (DC-only blocks).
  const flat = new Uint8Array(16 * 16 * 4);
  for (let p = 0; p < 256; p++) flat.set([200, 30, 120, 255], 4 * p);
  const f = decodeJpegRgb(encodeJpeg({ data: flat, width: 16, height: 16 }, 90).data);
  for (let p = 0; p < 256; p++) {
    [200, 30, 120].forEach((v, c) => assert.ok(Math.abs(f.data[3 * p + c] - v) <= 1));
  }
});

Deno.test("images are decoded by content, not by file name", () => {
  const png = encodePngRgb(Uint8Array.from({ length: 2 * 3 * 3 }, (_, i) => i * 10), 2, 3);
  const asJpgName = decodeImageRgb(png, "really_a_png.jpg");
  assert.deepEqual(Array.from(asJpgName.data), Array.from({ length: 18 }, (_, i) => i * 10));
  assert.equal(asJpgName.height, 3);
  const { jpg } = picture(8, 8);
  assert.equal(decodeImageRgb(jpg, "really_a_jpeg.png").width, 8);
  assert.equal(sniffImageFormat(new TextEncoder().encode("GIF89a....")), null);
});

Deno.test("corrupt images are skipped and recorded with their path; missing files throw", async () => {
  await withTempDir("xgen_jpeg_", async (dir) => {
    const { jpg } = picture(32, 32);
    const files: Record<string, Uint8Array> = {
      "ok.jpg": jpg,
      "truncated.jpg": jpg.subarray(0, Math.floor(jpg.length * 0.6)),
      "header_only.jpeg": jpg.subarray(0, 20),
      "garbage.jpg": Uint8Array.from([0xff, 0xd8, 0xff, ...Array(200).fill(7)]),
      "empty.jpg": new Uint8Array(0),
      "text.jpg": new TextEncoder().encode("not an image"),
      "bad.png": encodePngRgb(new Uint8Array(4 * 4 * 3), 4, 4).subarray(0, 40),
    };
    for (const [name, bytes] of Object.entries(files)) {
      await Deno.writeFile(`${dir}/${name}`, bytes);
    }
    const skipped: SkippedImage[] = [];
    const ok = await readImageOrSkip(`${dir}/ok.jpg`, skipped);
    assert.equal(ok?.width, 32);
    assert.equal(skipped.length, 0);
    const bad = Object.keys(files).filter((n) => n !== "ok.jpg");
    for (const name of bad) {
      assert.equal(await readImageOrSkip(`${dir}/${name}`, skipped), null, name);
    }
    assert.deepEqual(skipped.map((s) => s.path), bad.map((n) => `${dir}/${n}`));
    assert.match(skipped[0].reason, /^corrupt JPEG \(/);
    assert.match(skipped[3].reason, /^not a PNG or JPEG file \(0 bytes\)$/);
    assert.match(skipped[5].reason, /^corrupt PNG/);
    await assert.rejects(readImageRgb(`${dir}/truncated.jpg`), (e: Error) => {
      assert.ok(e instanceof CorruptImageError);
      assert.equal(e.path, `${dir}/truncated.jpg`);
      return e.message.startsWith(`${dir}/truncated.jpg: corrupt JPEG`);
    });
    // A missing file is a wrong folder, not a damaged image: it throws instead of skipping.
    await assert.rejects(
      readImageOrSkip(`${dir}/missing.jpg`, skipped),
      new RegExp(`image ${dir}/missing\\.jpg: cannot be read`),
    );
    assert.equal(skipped.length, bad.length);
    assert.equal(
      formatSkipped(skipped, 2),
      `6 corrupt images skipped: ${dir}/truncated.jpg (${skipped[0].reason}); ` +
        `${dir}/header_only.jpeg (${skipped[1].reason}); and 4 more`,
    );
  });
});

Deno.test("COCO prompt set over JPEGs: .jpg/.jpeg read, PNG fallback, corrupt ones counted", async () => {
  await withTempDir("xgen_jpeg_coco_", async (dir) => {
    const pics = [picture(20, 12), picture(12, 20), picture(16, 16)];
    await Deno.writeFile(`${dir}/000001.jpg`, pics[0].jpg);
    await Deno.writeFile(`${dir}/000002.jpeg`, pics[1].jpg);
    // 000003.jpg was converted to PNG earlier: only the .png exists.
    await Deno.writeFile(`${dir}/000003.png`, encodePngRgb(pics[2].rgb, 16, 16));
    await Deno.writeFile(`${dir}/000004.jpg`, pics[2].jpg.subarray(0, 100));
    const doc = {
      images: [1, 2, 3, 4].map((id) => ({
        id,
        file_name: id === 2 ? "000002.jpeg" : `00000${id}.jpg`,
      })),
      annotations: [1, 2, 3, 4].map((id) => ({ id: 10 + id, image_id: id, caption: `Pic ${id}` })),
    };
    await Deno.writeTextFile(`${dir}/captions.json`, JSON.stringify(doc));
    const set = await cocoPromptSet(`${dir}/captions.json`, dir, { count: 4, seed: 1 });
    assert.equal(set.skipped.length, 0);
    const sizes: Record<string, [number, number] | null> = {};
    for (let i = 0; i < 4; i++) {
      const r = await set.reference!(i);
      sizes[set.prompts[i]] = r ? [r.width, r.height] : null;
      if (set.prompts[i] === "Pic 3") assert.deepEqual(r?.data, pics[2].rgb, "PNG fallback exact");
    }
    assert.deepEqual(sizes, {
      "Pic 1": [20, 12],
      "Pic 2": [12, 20],
      "Pic 3": [16, 16],
      "Pic 4": null,
    });
    assert.equal(set.skipped.length, 1);
    assert.equal(set.skipped[0].path, `${dir}/000004.jpg`);
    assert.match(set.skipped[0].reason, /corrupt JPEG/);
    // Identities (cache keys) name the listed files whatever was read.
    assert.ok(set.referenceIds!.includes("3:000003.jpg"));
    // A listed file found under neither name is an error naming it.
    await Deno.remove(`${dir}/000001.jpg`);
    const i1 = set.prompts.indexOf("Pic 1");
    await assert.rejects(
      set.reference!(i1),
      new RegExp(`COCO reference image ${dir}/000001\\.jpg: cannot be read`),
    );
  });
});
