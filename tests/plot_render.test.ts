import assert from "node:assert/strict";
import { decode } from "fast-png";
import {
  imageGrid,
  lossCurveFigure,
  plotlyHtml,
  plotlyMime,
  smoothEma,
  writePlotlyHtml,
  writePng,
} from "../lib/plot/mod.ts";

function findChromium(): string | null {
  for (const name of ["chromium", "chromium-browser", "google-chrome"]) {
    for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
      try {
        if (Deno.statSync(`${dir}/${name}`).isFile) return `${dir}/${name}`;
      } catch { /* not here */ }
    }
  }
  return null;
}

const CHROMIUM = findChromium();
if (!CHROMIUM) {
  console.warn(
    "plot_render: chromium not found on PATH; skipping the browser test (apt-get install chromium)",
  );
}

const metrics = Array.from(
  { length: 12 },
  (_, i) => ({ step: i + 1, loss: 1 / (i + 1), lr: 1e-3 }),
);

Deno.test({
  name: "plotly HTML renders offline in headless chromium with every trace and point",
  ignore: !CHROMIUM,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    const fig = lossCurveFigure(metrics, { logY: true, title: "loss" });
    // A markers trace with a known point count and a hostile name (must not break the script).
    fig.data.push({
      type: "scatter",
      mode: "markers",
      name: "</script><b>x",
      x: [1, 2, 3, 4, 5, 6, 7],
      y: [3, 1, 4, 1, 5, 9, 2],
    });
    await writePlotlyHtml(`${dir}/fig.html`, fig);
    const html = await Deno.readTextFile(`${dir}/fig.html`);
    assert.ok(!/https?:\/\/cdn/.test(html.slice(0, 2000)), "no CDN script");
    const out = await new Deno.Command(CHROMIUM!, {
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        `--user-data-dir=${dir}/profile`,
        "--virtual-time-budget=5000",
        "--dump-dom",
        `file://${dir}/fig.html`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dom = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr).slice(-2000));
    assert.ok(dom.includes('<svg class="main-svg"'), "plot rendered to SVG");
    assert.equal(dom.match(/<g class="trace scatter/g)?.length, 3, "3 traces");
    assert.equal(dom.match(/class="point"/g)?.length, 7, "7 marker points");
    assert.ok(
      dom.includes("&lt;/script&gt;&lt;b&gt;x"),
      "hostile name shown as text in the legend",
    );
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test("lossCurveFigure and smoothEma: closed-form smoothing, log axis", () => {
  const [a, b, c] = smoothEma([2, 4, NaN], 0.5);
  assert.equal(a, 2, "debiased first value is the value");
  assert.equal(b, (0.5 * 2 + 4) / 1.5);
  assert.equal(c, b, "non-finite values repeat the previous smoothed value");
  const fig = lossCurveFigure(metrics, { logY: true, smoothing: 0.8 });
  assert.equal(fig.data.length, 2);
  assert.deepEqual(fig.data[0].x, metrics.map((m) => m.step));
  assert.deepEqual(fig.data[0].y, metrics.map((m) => m.loss));
  assert.deepEqual(fig.data[1].y, smoothEma(metrics.map((m) => m.loss), 0.8));
  assert.equal((fig.layout!.yaxis as { type: string }).type, "log");
  assert.equal(lossCurveFigure(metrics, { smoothing: 0 }).data.length, 1);
});

Deno.test("plotlyMime bundle has plotly JSON and an HTML fallback", () => {
  const fig = { data: [{ y: [1, 2] }], layout: { title: { text: "t" } } };
  const b = plotlyMime(fig, { id: "p1", includePlotlyJs: false });
  assert.deepEqual(b["application/vnd.plotly.v1+json"], { data: fig.data, layout: fig.layout });
  assert.ok(b["text/html"].startsWith('<div id="p1"'));
  assert.ok(b["text/html"].includes('Plotly.newPlot("p1", [{"y":[1,2]}]'));
  const full = plotlyMime(fig)["text/html"];
  assert.ok(full.length > 1_000_000, "fallback inlines plotly.js");
  assert.ok(plotlyHtml(fig).includes("<title>t</title>"));
  assert.throws(() => plotlyMime({ data: "x" } as never), /figure\.data must be an array/);
});

Deno.test("imageGrid + writePng round trip through fast-png decode", async () => {
  const mk = (r: number, g: number, b: number) => ({
    data: Uint8Array.from({ length: 2 * 3 * 3 }, (_, i) => [r, g, b][i % 3] + Math.floor(i / 3)),
    width: 2,
    height: 3,
  });
  const ims = [mk(10, 20, 30), mk(100, 110, 120), {
    image: mk(200, 210, 220).data,
    width: 2,
    height: 3,
  }];
  const grid = imageGrid(ims, { cols: 2, pad: 1, background: [1, 2, 3] });
  assert.equal(grid.width, 2 * 2 + 3 * 1);
  assert.equal(grid.height, 2 * 3 + 3 * 1);
  const px = (x: number, y: number) =>
    Array.from(grid.data.subarray((y * grid.width + x) * 3, (y * grid.width + x) * 3 + 3));
  assert.deepEqual(px(0, 0), [1, 2, 3], "padding");
  assert.deepEqual(px(1, 1), [10, 20, 30], "image 0 pixel (0,0)");
  assert.deepEqual(px(2, 3), [10 + 5, 20 + 5, 30 + 5], "image 0 pixel (1,2)");
  assert.deepEqual(px(4, 1), [100, 110, 120], "image 1 at x = pad + w + pad");
  assert.deepEqual(px(1, 5), [200, 210, 220], "image 2 on the second row");
  assert.deepEqual(px(4, 5), [1, 2, 3], "empty 4th cell is background");
  const dir = await Deno.makeTempDir();
  await writePng(`${dir}/g.png`, grid);
  const png = decode(await Deno.readFile(`${dir}/g.png`));
  assert.equal(png.width, grid.width);
  assert.equal(png.height, grid.height);
  assert.equal(png.channels, 3);
  assert.deepEqual(Array.from(png.data as Uint8Array), Array.from(grid.data));
  assert.throws(
    () => imageGrid([{ data: new Uint8Array(5), width: 2, height: 3 }]),
    /images\[0\] has 5 bytes, expected 2\*3\*3/,
  );
  await Deno.remove(dir, { recursive: true });
});
