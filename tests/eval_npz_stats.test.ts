/**
 * numpy `.npz` reference statistics (clean-fid's form): files numpy wrote with `np.savez` and
 * `np.savez_compressed` (tests/fixtures/npz_stats, made by tests/fixtures/make_npz_stats.py) load
 * with exactly numpy's values, a Fortran-ordered sigma included; the Frechet distance against them
 * equals scipy's (pytorch-fid's formula); wrong dtypes, shapes, names and dimensions are refused
 * in one line naming the file and the array.
 */
import assert from "node:assert/strict";
import { zipSync } from "fflate";
import {
  decodeNpy,
  decodeNpzStats,
  encodeNpy,
  encodeStats,
  featureStats,
  frechetDistance,
  readReferenceStats,
} from "../lib/eval/clip_fid/mod.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

const DIR = new URL("./fixtures/npz_stats/", import.meta.url).pathname;
const expected = JSON.parse(Deno.readTextFileSync(`${DIR}expected.json`));

function load(name: string) {
  return decodeNpzStats(Deno.readFileSync(`${DIR}${name}`), name);
}

Deno.test("npz: np.savez and np.savez_compressed files give numpy's values exactly", () => {
  const stored = load("stored.npz");
  assert.deepEqual(Array.from(stored.mu), expected.mu);
  assert.deepEqual(Array.from(stored.sigma), expected.sigma);
  assert.equal(stored.n, 0, ".npz records no image count");
  const deflated = load("deflated.npz");
  assert.deepEqual(Array.from(deflated.mu), expected.mu);
  // Saved in Fortran order and not symmetric: only a correct reordering gives these values.
  assert.deepEqual(Array.from(deflated.sigma), expected.deflated_sigma);
});

Deno.test("npz: the Frechet distance against numpy's statistics equals scipy's", () => {
  const feats = Float32Array.from(expected.features as number[]);
  const gen = featureStats(feats, expected.features_n, 8);
  const fd = frechetDistance(gen, load("stored.npz"));
  assert.ok(Math.abs(fd - expected.fid) <= 1e-9 * expected.fid, `${fd} vs scipy ${expected.fid}`);
});

Deno.test("npy: header versions, byte order and a round trip", () => {
  const a = new Float64Array([1.5, -2, 3.25, 1e-300, 7, 8]);
  const v1 = encodeNpy(a, [2, 3]);
  assert.equal(v1.subarray(10).indexOf(0x0a) + 11, v1.length - 48, "header ends in a newline");
  assert.equal((v1.length - 48) % 64, 0, "header block is a multiple of 64 bytes");
  assert.deepEqual(decodeNpy(v1, "x"), {
    descr: "<f8",
    fortranOrder: false,
    shape: [2, 3],
    data: a,
  });
  // Version 2.0: a 4-byte header length; big-endian values.
  const dict = "{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }\n";
  const v2 = new Uint8Array(12 + dict.length + 16);
  v2.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 2, 0]);
  const dv = new DataView(v2.buffer);
  dv.setUint32(8, dict.length, true);
  v2.set(new TextEncoder().encode(dict), 12);
  dv.setFloat64(12 + dict.length, 0.1, false);
  dv.setFloat64(20 + dict.length, -4, false);
  assert.deepEqual(Array.from(decodeNpy(v2, "x").data), [0.1, -4]);
});

Deno.test("npz: bad files are refused in one line naming the file and the array", async () => {
  const cases: [string, Uint8Array, string][] = [
    [
      "f32.npz",
      Deno.readFileSync(`${DIR}f32.npz`),
      'f32.npz: array "mu": dtype <f4, expected float64 (<f8)',
    ],
    [
      "bad_shape.npz",
      Deno.readFileSync(`${DIR}bad_shape.npz`),
      'bad_shape.npz: array "sigma" has shape (8, 7), expected (8, 8) to match mu',
    ],
    [
      "no_sigma.npz",
      Deno.readFileSync(`${DIR}no_sigma.npz`),
      'no_sigma.npz: no array "sigma"; reference statistics hold mu (float64 [d]) and sigma ' +
      "(float64 [d, d]), as clean-fid's np.savez files do",
    ],
    [
      "mu2d.npz",
      zipSync({
        "mu.npy": encodeNpy(new Float64Array(4), [2, 2]),
        "sigma.npy": encodeNpy(new Float64Array(4), [2, 2]),
      }),
      'mu2d.npz: array "mu" has shape (2,2), expected (d,)',
    ],
    [
      "nan.npz",
      zipSync({
        "mu.npy": encodeNpy(new Float64Array([0, NaN]), [2]),
        "sigma.npy": encodeNpy(new Float64Array(4), [2, 2]),
      }),
      'nan.npz: array "mu" has a non-finite value at 1',
    ],
  ];
  for (const [name, bytes, message] of cases) {
    assert.throws(() => decodeNpzStats(bytes, name), { message });
  }
  assert.throws(
    () => decodeNpzStats(new Uint8Array([0x50, 0x4b, 3, 4, 1, 2]), "cut.npz"),
    /^Error: cut\.npz: not a readable \.npz \(zip\) file/,
  );
  const whole = encodeNpy(new Float64Array(2), [2]);
  assert.throws(() => decodeNpy(whole.subarray(0, whole.length - 8), 'x.npz: array "mu"'), {
    message: 'x.npz: array "mu": 8 data bytes for shape (2), expected 16',
  });
  assert.throws(() => decodeNpy(whole.subarray(0, 70), "y.npy"), {
    message: "y.npy: .npy header is cut short",
  });

  await withTempDir("xgen_npz_", async (dir) => {
    // Through readReferenceStats: the dimension must be the extractor's, naming both.
    const ex = { name: "inception-v3-pool3-00000000", preprocessing: "clean", dim: 2048 };
    await assert.rejects(readReferenceStats(`${DIR}stored.npz`, ex), {
      message: `${DIR}stored.npz: statistics of 8-d features, but the FID extractor ` +
        "inception-v3-pool3-00000000 gives 2048-d features (clean-fid's statistics are 2048-d " +
        "Inception-v3 pool3 features: use --extractor inception)",
    });
    const ok = await readReferenceStats(`${DIR}stored.npz`, { ...ex, dim: 8 });
    assert.equal(ok.format, "npz");
    assert.deepEqual(Array.from(ok.mu), expected.mu);
    // The kit's own safetensors statistics still load, by content rather than by name.
    const kit = `${dir}/ref.npz`;
    const stats = { mu: new Float64Array([1, 2]), sigma: new Float64Array([1, 0, 0, 1]), n: 5 };
    const ident = { name: "e", preprocessing: "p", dim: 2 };
    await Deno.writeFile(kit, encodeStats(stats, { extractor: ident }));
    const back = await readReferenceStats(kit, ident);
    assert.equal(back.format, "kit");
    assert.equal(back.n, 5);
  });
});
