/**
 * `deno task study` end to end at its smallest size (`--size test`, about 25 s on 2 cores; the
 * quick size takes about 45): the report holds every section with headlines whose intervals
 * contain their values, every figure is written beside it (Plotly JSON + SVG, images as PNG),
 * plotly.js is inlined exactly once, and in headless Chromium every Plotly figure renders with no
 * script error. Then, with two step results deleted as if the study had been killed, `--reuse`
 * reads the others back and reruns those two to the same headlines; without `--reuse`, or with
 * another size, the folder is refused.
 */
import assert from "node:assert/strict";
import { cli } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp_dir.ts";
import { dumpDom, findChromium } from "./helpers/chromium.ts";

const CHROMIUM = findChromium();
if (!CHROMIUM) {
  console.warn("study_report: chromium not found on PATH; the rendering check is skipped");
}

const SECTIONS = ["data", "rank_seeds", "clip_fid", "best_of_n", "touch_ups", "human", "training"];
const STEPS = ["train", "data", "rank_seeds", "clip_fid", "best_of_n", "touch_ups", "human"];

interface ReportJson {
  format: string;
  headlines: {
    id: string;
    section: string;
    value: number;
    lo: number;
    hi: number;
    level: number;
  }[];
  sections: {
    id: string;
    figures: string[];
    headlines: string[];
    found: string;
    measured: string;
  }[];
}

Deno.test({
  name: "deno task study --size test: report, figures, headlines, rendering, --reuse",
  sanitizeResources: false,
  async fn() {
    await withTempDir("xgen_study_", async (dir) => {
      const out = `${dir}/study`;
      const r = await cli(["lib/cli/study.ts", "--size", "test", "--out", out]);
      assert.equal(r.code, 0, r.stderr.slice(-3000));

      const report: ReportJson = JSON.parse(await Deno.readTextFile(`${out}/report.json`));
      assert.equal(report.format, "xgen-kit/study-report@1");
      assert.deepEqual(report.sections.map((s) => s.id), SECTIONS);
      const ids = new Set<string>();
      for (const h of report.headlines) {
        assert.ok(!ids.has(h.id), `headline ${h.id} is unique`);
        ids.add(h.id);
        assert.ok(
          [h.value, h.lo, h.hi].every(Number.isFinite) && h.lo <= h.value && h.value <= h.hi,
          `${h.id}: ${h.lo} <= ${h.value} <= ${h.hi}`,
        );
        assert.equal(h.level, 0.95, `${h.id} level`);
      }
      for (const s of report.sections) {
        assert.ok(s.headlines.length >= 1, `${s.id} has a headline`);
        assert.ok(s.figures.length >= 1, `${s.id} has a figure`);
        assert.ok(s.found.length > 20 && s.measured.length > 20, `${s.id} sentences`);
      }
      // The headlines the brief names, by id.
      for (
        const id of [
          "rank_seeds.variance_ratio",
          "clip_fid.clip_score",
          "clip_fid.fid",
          "best_of_n.judge_win_rate",
          "touch_ups.difference",
          "training.heldout_colour",
        ]
      ) assert.ok(ids.has(id), id);
      // Touch-ups keep every pixel outside the regenerated box.
      assert.match(
        report.sections.find((s) => s.id === "touch_ups")!.measured,
        /; 0 pixels outside the boxes changed\./,
      );

      // Every figure beside the report: Plotly ones as JSON + SVG, images as PNG.
      const plotly: string[] = [];
      for (const s of report.sections) {
        for (const f of s.figures) {
          const stem = f.replace(/^figures\//, "").replace(/\.(json|png)$/, "");
          if (f.endsWith(".json")) {
            plotly.push(stem);
            const fig = JSON.parse(await Deno.readTextFile(`${out}/${f}`));
            assert.ok(Array.isArray(fig.data) && fig.data.length >= 1, `${f} has traces`);
            const svg = await Deno.readTextFile(`${out}/figures/${stem}.svg`);
            assert.ok(svg.startsWith("<svg"), `${stem}.svg`);
          } else {
            const png = await Deno.readFile(`${out}/${f}`);
            assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47], `${f} is a PNG`);
          }
        }
      }
      assert.equal(plotly.length, 10, "10 Plotly figures over the 7 sections");

      // Self-contained: plotly.js inlined once, nothing loaded from elsewhere.
      const html = await Deno.readTextFile(`${out}/report.html`);
      assert.equal(html.match(/plotly\.js v\d/g)?.length, 1, "plotly.js inlined once");
      assert.ok(!/<script[^>]+src=/i.test(html), "no external script");
      assert.ok(!/<img[^>]+src="(?!data:)/i.test(html), "images inlined as data URIs");
      assert.equal(html.match(/class="study-plot"/g)?.length, plotly.length);

      if (CHROMIUM) {
        const { dom, code, stderr } = await dumpDom(CHROMIUM, `${out}/report.html`, {
          profileDir: `${dir}/profile`,
        });
        assert.equal(code, 0, stderr.slice(-2000));
        assert.match(dom, /<pre id="js-errors"><\/pre>/, "no script errors");
        const rendered = [...dom.matchAll(/id="plot-([\w-]+)"[^>]*data-rendered="1"/g)]
          .map((m) => m[1]);
        assert.deepEqual(rendered.sort(), [...plotly].sort(), "every Plotly figure rendered");
        assert.equal(
          dom.match(/class="study-plot js-plotly-plot"/g)?.length,
          plotly.length,
          "Plotly drew into every plot element",
        );
      }

      // A study stopped before its last steps, continued with --reuse: the finished steps are
      // read back, the missing ones run again and give the same headlines (seeded).
      const rerun = ["touch_ups", "human"];
      for (const s of rerun) await Deno.remove(`${out}/steps/${s}.json`);
      await Deno.remove(`${out}/report.html`);
      const again = await cli(["lib/cli/study.ts", "--size", "test", "--out", out, "--reuse"]);
      assert.equal(again.code, 0, again.stderr.slice(-3000));
      for (const s of STEPS) {
        const readBack = new RegExp(`== ${s}: done before`).test(again.stderr);
        assert.equal(readBack, !rerun.includes(s), `${s} read back: ${readBack}`);
      }
      assert.ok((await Deno.stat(`${out}/report.html`)).isFile);
      const report2: ReportJson = JSON.parse(await Deno.readTextFile(`${out}/report.json`));
      assert.deepEqual(report2.headlines, report.headlines);
      const refused = await cli(["lib/cli/study.ts", "--size", "test", "--out", out]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /holds a study already; pass --reuse to continue it/);
      const other = await cli(["lib/cli/study.ts", "--size", "quick", "--out", out, "--reuse"]);
      assert.equal(other.code, 1);
      assert.match(other.stderr, /made with size "test"/);
    });
  },
});
