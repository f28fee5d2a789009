import assert from "node:assert/strict";
import { classifyObject, findObjects, nearestColor } from "../lib/data/classify.ts";
import {
  BACKGROUND_COLORS,
  COLOR_NAMES,
  COLORS,
  renderCoverage,
  shapesWorldSample,
} from "../lib/data/shapes_world.ts";

Deno.test("classifier recovers colour (>=95%) and shape (>=85%) of single objects at 32x32", () => {
  const n = 300;
  let color = 0, shape = 0;
  for (let i = 0; i < n; i++) {
    const s = shapesWorldSample(i, { seed: 77, size: 32, singleObjectOnly: true });
    const g = classifyObject(s.image, s.width, s.height);
    assert.ok(g, `sample ${i}: nothing found`);
    if (g.color === s.meta.objects[0].color) color++;
    if (g.shape === s.meta.objects[0].shape) shape++;
  }
  assert.ok(color / n >= 0.95, `colour accuracy ${color / n}`);
  assert.ok(shape / n >= 0.85, `shape accuracy ${shape / n}`);
});

Deno.test("classifier also works on held-out pairs at 16x16", () => {
  const n = 150;
  let color = 0, shape = 0;
  for (let i = 0; i < n; i++) {
    const s = shapesWorldSample(i, { seed: 3, size: 16, split: "heldout", singleObjectOnly: true });
    const g = classifyObject(s.image, 16, 16);
    if (g?.color === s.meta.objects[0].color) color++;
    if (g?.shape === s.meta.objects[0].shape) shape++;
  }
  assert.ok(color / n >= 0.95, `colour accuracy ${color / n}`);
  assert.ok(shape / n >= 0.75, `shape accuracy ${shape / n}`);
});

Deno.test("findObjects locates both objects of relation scenes on the right sides", () => {
  let checked = 0, ok = 0;
  for (let i = 0; checked < 80; i++) {
    const s = shapesWorldSample(i, { seed: 21, size: 32 });
    if (!s.meta.relation) continue;
    checked++;
    const found = findObjects(s.image, 32, 32);
    const [a, b] = s.meta.objects;
    const fa = found.find((f) => f.color === a.color && Math.hypot(f.x - a.x, f.y - a.y) < 2);
    const fb = found.find((f) => f.color === b.color && Math.hypot(f.x - b.x, f.y - b.y) < 2);
    if (fa && fb && fa.shape === a.shape && fb.shape === b.shape) ok++;
  }
  assert.ok(ok / checked >= 0.85, `both objects right in ${ok}/${checked}`);
});

Deno.test("explicit background, empty image and a hand-drawn square", () => {
  const w = 24, bg = BACKGROUND_COLORS.grey;
  const img = new Uint8Array(w * w * 3);
  for (let i = 0; i < w * w; i++) img.set(bg, 3 * i);
  assert.equal(classifyObject(img, w, w), null);
  const cov = renderCoverage("square", { width: w, height: w, x: 10, y: 13, rx: 6, ry: 6 });
  for (let i = 0; i < w * w; i++) {
    for (let k = 0; k < 3; k++) {
      img[3 * i + k] = Math.round(bg[k] + (COLORS.orange[k] - bg[k]) * cov[i]);
    }
  }
  const g = classifyObject(img, w, w, bg)!;
  assert.equal(g.color, "orange");
  assert.equal(g.shape, "square");
  assert.ok(g.iou > 0.95, `iou ${g.iou}`);
  // Centroid of a square is its centre; area is the drawn coverage, about (1.7 * 6)^2 = 104.
  assert.ok(Math.abs(g.x - 10) < 0.05 && Math.abs(g.y - 13) < 0.05);
  const drawn = cov.reduce((s, v) => s + v, 0);
  assert.ok(Math.abs(g.area - drawn) < 0.5 && Math.abs(drawn - 104.04) < 6, `area ${g.area}`);
  assert.throws(() => classifyObject(img, w + 1, w), /expected 25\*24\*3/);
});

Deno.test("nearestColor maps each named colour to itself", () => {
  for (const c of COLOR_NAMES) {
    const r = nearestColor(COLORS[c]);
    assert.equal(r.name, c);
    assert.equal(r.distance, 0);
  }
});
