import assert from "node:assert/strict";
import {
  COLOR_NAMES,
  COLORS,
  HELDOUT_PAIRS,
  isHeldoutPair,
  renderCoverage,
  SHAPE_NAMES,
  shapesWorldSample,
} from "../lib/data/shapes_world.ts";

Deno.test("same seed and index give identical bytes; other index, seed or split differ", () => {
  for (const size of [16, 32, 64]) {
    const a = shapesWorldSample(17, { seed: 5, size, split: "train" });
    const b = shapesWorldSample(17, { seed: 5, size, split: "train" });
    assert.equal(a.image.length, size * size * 3);
    assert.deepEqual(a.image, b.image);
    assert.equal(a.caption, b.caption);
    assert.deepEqual(a.meta, b.meta);
    assert.notDeepEqual(shapesWorldSample(18, { seed: 5, size }).image, a.image);
    assert.notDeepEqual(shapesWorldSample(17, { seed: 6, size }).image, a.image);
    assert.notDeepEqual(shapesWorldSample(17, { seed: 5, size, split: "heldout" }).image, a.image);
  }
});

Deno.test("held-out pairs never appear in train (2000 samples); heldout has only them", () => {
  assert.ok(HELDOUT_PAIRS.length >= 5 && HELDOUT_PAIRS.length <= 10);
  // Seed-independent and leaves every colour and every shape in the train split.
  for (const c of COLOR_NAMES) assert.ok(SHAPE_NAMES.some((s) => !isHeldoutPair(c, s)));
  for (const s of SHAPE_NAMES) assert.ok(COLOR_NAMES.some((c) => !isHeldoutPair(c, s)));
  const seenTrain = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const s = shapesWorldSample(i, { seed: 123, size: 16, split: "train" });
    for (const o of s.meta.objects) {
      assert.ok(!isHeldoutPair(o.color, o.shape), `train sample ${i} has ${o.color} ${o.shape}`);
      seenTrain.add(`${o.color} ${o.shape}`);
    }
  }
  // All 41 train pairs show up in 2000 samples.
  assert.equal(seenTrain.size, COLOR_NAMES.length * SHAPE_NAMES.length - HELDOUT_PAIRS.length);
  const seenHeld = new Set<string>();
  for (let i = 0; i < 300; i++) {
    const s = shapesWorldSample(i, { seed: 123, size: 16, split: "heldout" });
    for (const o of s.meta.objects) {
      assert.ok(isHeldoutPair(o.color, o.shape));
      seenHeld.add(`${o.color} ${o.shape}`);
    }
  }
  assert.equal(seenHeld.size, HELDOUT_PAIRS.length);
});

Deno.test("captions name what is drawn; relations match geometry", () => {
  const templates = new Set<string>();
  let relations = 0, counts = 0;
  for (let i = 0; i < 600; i++) {
    const s = shapesWorldSample(i, { seed: 9, size: 32 });
    const m = s.meta;
    templates.add(m.template);
    assert.equal(m.count, m.objects.length);
    for (const o of m.objects) {
      assert.ok(s.caption.includes(o.color), `${s.caption} lacks ${o.color}`);
    }
    if (m.relation) {
      relations++;
      const [a, b] = m.objects;
      assert.ok(s.caption.includes(a.shape) && s.caption.includes(b.shape));
      const ok = {
        "left of": a.x + a.r < b.x - b.r,
        "right of": a.x - a.r > b.x + b.r,
        above: a.y + a.r < b.y - b.r,
        below: a.y - a.r > b.y + b.r,
      }[m.relation];
      assert.ok(ok, `sample ${i}: ${m.relation} but objects at ${JSON.stringify(m.objects)}`);
    } else if (m.count > 1) {
      counts++;
      assert.match(s.caption, m.count === 2 ? /\btwo\b/ : /\bthree\b/);
      // Copies never overlap.
      for (let p = 0; p < m.count; p++) {
        for (let q = p + 1; q < m.count; q++) {
          const [u, v] = [m.objects[p], m.objects[q]];
          assert.ok(Math.max(Math.abs(u.x - v.x), Math.abs(u.y - v.y)) >= u.r + v.r - 0.02);
        }
      }
    } else {
      assert.ok(s.caption.includes(m.objects[0].shape));
    }
    // Objects stay inside the frame.
    for (const o of m.objects) {
      assert.ok(o.x - o.r >= 0 && o.x + o.r <= 32 && o.y - o.r >= 0 && o.y + o.r <= 32);
    }
  }
  assert.ok(relations > 100 && counts > 60, `relations ${relations}, counts ${counts}`);
  assert.ok(templates.size >= 12, `only ${templates.size} templates`);
  assert.ok([...templates].some((t) => t.includes("photograph")));
});

Deno.test("singleObjectOnly gives one object; pixels at its centre have its colour", () => {
  for (let i = 0; i < 50; i++) {
    const s = shapesWorldSample(i, { seed: 2, size: 32, singleObjectOnly: true });
    assert.equal(s.meta.count, 1);
    const o = s.meta.objects[0];
    // The unit-space origin is deep inside every shape, so the pixel under the centre is solid.
    const p = 3 * (Math.floor(o.y) * 32 + Math.floor(o.x));
    const want = COLORS[o.color];
    for (let k = 0; k < 3; k++) assert.ok(Math.abs(s.image[p + k] - want[k]) <= 2);
  }
});

Deno.test("coverage is anti-aliased and integrates to the analytic area", () => {
  const w = 64, r = 20;
  const area = (shape: (typeof SHAPE_NAMES)[number]) =>
    renderCoverage(shape, { width: w, height: w, x: 32, y: 32, rx: r, ry: r, supersample: 8 })
      .reduce((s, v) => s + v, 0);
  const close = (got: number, want: number) =>
    assert.ok(Math.abs(got - want) / want < 0.01, `area ${got} vs ${want}`);
  close(area("circle"), Math.PI * r * r);
  close(area("square"), (1.7 * r) ** 2);
  close(area("diamond"), 2 * r * r);
  close(area("triangle"), 0.5 * 2 * 1.8 * r * r);
  // Cross: two 0.64 x 1.9 bars minus their 0.64 x 0.64 overlap.
  close(area("cross"), (2 * 0.64 * 1.9 - 0.64 * 0.64) * r * r);
  const cov = renderCoverage("circle", { width: 16, height: 16, x: 8.3, y: 7.6, rx: 5, ry: 5 });
  const partial = cov.filter((v) => v > 0 && v < 1).length;
  assert.ok(partial >= 12, `only ${partial} edge pixels are partially covered`);
});

Deno.test("aesthetic scores spread over [3, 7] on both sides of 4.5", () => {
  const a: number[] = [];
  for (let i = 0; i < 500; i++) a.push(shapesWorldSample(i, { seed: 4, size: 16 }).meta.aesthetic);
  assert.ok(a.every((v) => v >= 3 && v <= 7));
  const high = a.filter((v) => v >= 4.5).length / a.length;
  assert.ok(high > 0.4 && high < 0.85, `fraction >= 4.5 is ${high}`);
});

Deno.test("bad options give clear errors", () => {
  assert.throws(() => shapesWorldSample(-1, { seed: 1 }), /index must be a non-negative integer/);
  assert.throws(() => shapesWorldSample(0, { seed: 1, size: 3 }), /size must be an integer/);
  assert.throws(
    // deno-lint-ignore no-explicit-any
    () => shapesWorldSample(0, { seed: 1, split: "test" as any }),
    /split must be "train" or "heldout"/,
  );
});
