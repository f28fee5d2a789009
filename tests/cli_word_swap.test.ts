/**
 * `deno task word-swap` (lib/cli/word_swap.ts): the probe's captions differ from the right ones in
 * exactly the swapped word, and the command runs end to end on a tiny run.
 */
import assert from "node:assert/strict";
import { swapProbe } from "../lib/cli/word_swap.ts";
import { COLOR_NAMES, SHAPE_NAMES } from "../lib/data/mod.ts";
import { makeTinyRun } from "./helpers/tiny_run.ts";
import { cli } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

Deno.test("swapProbe: one word changes, to every alternative in turn", () => {
  for (const word of ["shape", "colour"] as const) {
    const p = swapProbe(40, { seed: 2, size: 16, split: "heldout", word });
    assert.equal(p.images.length, 40);
    assert.ok(p.images.every((im) => im.length === 16 * 16 * 3));
    const names: readonly string[] = word === "shape" ? SHAPE_NAMES : COLOR_NAMES;
    const k = word === "shape" ? 2 : 1;
    const seen = new Set<string>();
    p.captions.forEach((c, i) => {
      const a = c.split(" "), b = p.swapped[i].split(" ");
      assert.equal(a.length, 3);
      assert.deepEqual(b.filter((_, j) => j !== k), a.filter((_, j) => j !== k));
      assert.notEqual(b[k], a[k]);
      assert.ok(names.includes(b[k]), b[k]);
      seen.add(b[k]);
    });
    assert.equal(seen.size, names.length, `${word}: every name appears as a swap`);
  }
});

Deno.test("deno task word-swap runs on a tiny run, writes its JSON and refuses bad timesteps", async () => {
  await withTempDir("xgen_cli_wordswap_", async (dir) => {
    await makeTinyRun(`${dir}/run`, {
      captions: SHAPE_NAMES.flatMap((s) => COLOR_NAMES.map((c) => `a ${c} ${s}`)),
    });
    const run = (args: string[]) => cli(["lib/cli/word_swap.ts", "--run", `${dir}/run`, ...args]);
    const ok = await run(["--n", "6", "--timesteps", "100,700", "--json", `${dir}/s.json`]);
    const out = ok.stdout;
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(out, /mean delta \(shape swapped, train pairs, n=6\): -?\d+\.\d+/);
    const j = JSON.parse(await Deno.readTextFile(`${dir}/s.json`));
    assert.deepEqual(j.rows.map((r: { t: number }) => r.t), [100, 700]);
    for (const r of j.rows) assert.ok(Math.abs(r.swappedLoss - r.loss - r.delta) < 1e-9);
    const bad = await run(["--timesteps", "100,x"]);
    assert.equal(bad.code, 2);
    assert.match(
      bad.stderr,
      /--timesteps must be comma-separated integers/,
    );
    // Past the run's training timesteps: one usage line before any probing.
    const late = await run(["--timesteps", "100,1000"]);
    assert.equal(late.code, 2);
    assert.equal(
      late.stderr.trim(),
      "word-swap: --timesteps must be comma-separated integers from 0 to 999 (the run's " +
        'training timesteps), got "100,1000"',
    );
  });
});
