import assert from "node:assert/strict";
import { decode } from "fast-png";
import {
  imageGrid,
  lossCurveFigure,
  plotlyHtml,
  plotlyMime,
  plotlySvg,
  smoothEma,
  writePlotlyHtml,
  writePng,
} from "../lib/plot/mod.ts";
import { withTempDir } from "./helpers/temp_dir.ts";
import { dumpDom, findChromium } from "./helpers/chromium.ts";

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
    await withTempDir("xgen_plot_render_", async (dir) => {
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
      const out = await dumpDom(CHROMIUM!, `${dir}/fig.html`, {
        profileDir: `${dir}/profile`,
        budgetMs: 5000,
      });
      const dom = out.dom;
      assert.equal(out.code, 0, out.stderr.slice(-2000));
      assert.ok(dom.includes('<svg class="main-svg"'), "plot rendered to SVG");
      assert.equal(dom.match(/<g class="trace scatter/g)?.length, 3, "3 traces");
      assert.equal(dom.match(/class="point"/g)?.length, 7, "7 marker points");
      assert.ok(
        dom.includes("&lt;/script&gt;&lt;b&gt;x"),
        "hostile name shown as text in the legend",
      );
    });
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

Deno.test("plotlyMime bundle has plotly JSON and a small static SVG, HTML only on request", () => {
  const fig = { data: [{ y: [1, 2] }], layout: { title: { text: "t" } } };
  const b = plotlyMime(fig);
  assert.deepEqual(b["application/vnd.plotly.v1+json"], { data: fig.data, layout: fig.layout });
  assert.ok(b["image/svg+xml"].startsWith("<svg "));
  assert.ok(b["image/svg+xml"].length < 20_000, "the SVG fallback stays small");
  assert.ok(!/<script/i.test(b["image/svg+xml"]), "the SVG fallback needs no scripts");
  assert.equal(b["text/plain"], "Plotly figure: t");
  assert.equal(b["text/html"], undefined, "no HTML (and no inlined plotly.js) by default");
  const h = plotlyMime(fig, { html: { id: "p1", includePlotlyJs: false } })["text/html"] as string;
  assert.ok(h.startsWith('<div id="p1"'));
  assert.ok(h.includes('Plotly.newPlot("p1", [{"y":[1,2]}]'));
  assert.ok(plotlyHtml(fig).includes("<title>t</title>"));
  assert.throws(() => plotlyMime({ data: "x" } as never), /figure\.data must be an array/);
});

Deno.test("plotlySvg draws the kit's trace kinds as well-formed SVG", () => {
  const svg = plotlySvg({
    data: [
      {
        type: "scatter",
        mode: "lines+markers+text",
        name: "a",
        x: [1, 2],
        y: [3, 4],
        text: ["g1", "g2"],
        error_y: { array: [0.1, 0.2] },
        error_x: { array: [0.1, 0.1] },
      },
      {
        type: "scatter",
        mode: "markers",
        name: "b & c",
        x: [1.5],
        y: [3.5],
        marker: { symbol: "star" },
      },
    ],
    layout: { title: { text: "x < y" }, xaxis: { title: { text: "X" } }, yaxis: { type: "log" } },
  });
  assert.match(svg, /<path d="M[\d.]+,[\d.]+L/);
  assert.match(svg, /<polygon /);
  assert.match(svg, />g2</);
  assert.match(svg, />x &lt; y</);
  assert.match(svg, />b &amp; c</);
  const bars = plotlySvg({
    data: [
      { type: "bar", name: "A", x: ["p", "q"], y: [40, null], error_y: { array: [5, 5] } },
      { type: "bar", name: "B", x: ["p", "q"], y: [60, 55] },
      { type: "box", x: ["p", "p", "p"], y: [1, 2, 3], boxpoints: "all" },
    ],
    layout: {
      yaxis: { range: [0, 100] },
      shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: 50, y1: 50 }],
    },
  });
  // 3 bars (the null one is skipped) plus the legend's 2 swatches and the plot frame.
  assert.equal(bars.match(/<rect x=/g)!.length, 3 + 2 + 1 + 1);
  assert.match(bars, />q</);
  // Every opened element is closed: a crude well-formedness check without an XML parser.
  const open = (svg + bars).match(/<svg /g)!.length, close = (svg + bars).match(/<\/svg>/g)!.length;
  assert.equal(open, close);
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
  await withTempDir("xgen_plot_render_", async (dir) => {
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
  });
});
