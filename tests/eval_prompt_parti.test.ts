import assert from "node:assert/strict";
import { parsePromptSpec, partiPromptSet, promptSetFromSpec } from "../lib/eval/clip_fid/mod.ts";

const TSV = new URL("../data/parti_prompts_example.tsv", import.meta.url).pathname;

/**
 * Rows of the example file as [prompt, category, challenge], read independently: plain TSV, so
 * quotes are part of the prompt.
 */
function rows(): [string, string, string][] {
  return Deno.readTextFileSync(TSV).trim().split("\n").slice(1).map((l) => {
    const [p, c, ch] = l.split("\t").map((f) => f.trim());
    return [p, c, ch];
  });
}

Deno.test("parti: spec parsing with category/challenge filters and clear errors", () => {
  assert.deepEqual(parsePromptSpec("parti:a/P.tsv"), {
    kind: "parti",
    path: "a/P.tsv",
    filter: {},
  });
  assert.deepEqual(parsePromptSpec("parti:P.tsv?category=Food%20%26%20Beverage&challenge=Basic"), {
    kind: "parti",
    path: "P.tsv",
    filter: { category: "Food & Beverage", challenge: "Basic" },
  });
  assert.throws(() => parsePromptSpec("parti:P.tsv?colour=red"), /category= or challenge=/);
  assert.throws(() => parsePromptSpec("parti:"), /parti:PATH\.tsv/);
});

Deno.test("parti: seeded sample without replacement, filters, cycling, no reference images", async () => {
  const all = rows();
  const set = await promptSetFromSpec(`parti:${TSV}`, { count: all.length, seed: 3 });
  assert.equal(set.kind, "parti");
  assert.equal(set.reference, null);
  // A permutation of every prompt: each appears exactly as often as in the file.
  assert.deepEqual([...set.prompts].sort(), all.map((r) => r[0]).sort());
  const again = await partiPromptSet(TSV, { count: 10, seed: 3 });
  assert.deepEqual(again.prompts, set.prompts.slice(0, 10));
  const other = await partiPromptSet(TSV, { count: 10, seed: 4 });
  assert.notDeepEqual(other.prompts, again.prompts);

  const animals = all.filter((r) => r[1] === "Animals").map((r) => r[0]);
  const a = await partiPromptSet(TSV, { count: 2 * animals.length, seed: 0 }, {
    category: "Animals",
  });
  assert.ok(a.prompts.every((p) => animals.includes(p)));
  // Cycled: the first pass is a permutation of the category, the second repeats it.
  assert.deepEqual([...a.prompts.slice(0, animals.length)].sort(), [...animals].sort());
  assert.deepEqual(a.prompts.slice(animals.length), a.prompts.slice(0, animals.length));
  assert.match(a.description, /category=Animals/);
  await assert.rejects(
    () => partiPromptSet(TSV, { count: 1, seed: 0 }, { challenge: "Nope" }),
    /no prompts with challenge=Nope/,
  );
  await assert.rejects(
    () => partiPromptSet("/no/such.tsv", { count: 1, seed: 0 }),
    /cannot be read/,
  );
});
