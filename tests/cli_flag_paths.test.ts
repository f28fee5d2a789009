/**
 * Output and input paths of every kit command are checked when the flags are parsed: an output
 * whose folder does not exist, or an input that is not there, is one line naming the command, the
 * flag and the value (exit code 2) before any model loads, instead of an error at the last step.
 */
import assert from "node:assert/strict";
import { cli } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

/** Our own stderr lines (Deno may note a node_modules lock held by a concurrent run). */
function ownLines(stderr: string): string[] {
  return stderr.split("\n").filter((l) => l !== "" && !l.startsWith("Blocking waiting"));
}

Deno.test("path flags: missing folders, missing inputs and files-for-folders are one line", async () => {
  await withTempDir("xgen_cli_paths_", async (dir) => {
    const file = `${dir}/file.txt`;
    await Deno.writeTextFile(file, "x");
    const gone = `${dir}/nope`;
    const cases: [string[], string][] = [
      [
        ["lib/cli/sample.ts", "--run", dir, "--prompt", "a", "--out", `${gone}/g.png`],
        `sample: --out ${gone}/g.png: folder ${gone} does not exist`,
      ],
      [
        ["lib/cli/sample.ts", "--run", dir, "--prompt", "a", "--out", dir],
        `sample: --out ${dir}: is a folder, expected a file`,
      ],
      [
        ["lib/cli/touch_up.ts", "--image", file, "--prompt", "a", "--out", `${gone}/t.png`],
        `touch-up: --out ${gone}/t.png: folder ${gone} does not exist`,
      ],
      [
        ["lib/cli/upscale.ts", "--model", dir, "--image", file, "--out", `${file}/u.png`],
        `upscale: --out ${file}/u.png: ${file} is a file, not a folder`,
      ],
      [
        ["lib/cli/word_swap.ts", "--run", dir, "--json", `${gone}/s.json`],
        `word-swap: --json ${gone}/s.json: folder ${gone} does not exist`,
      ],
      [
        ["lib/cli/eval.ts", "--run", dir, "--out", file],
        `eval: --out ${file}: is a file, expected a folder (or a path to create one)`,
      ],
      [
        ["lib/cli/eval.ts", "--run", dir, "--out", `${file}/sub/eval`],
        `eval: --out ${file}/sub/eval: ${file} is a file, so the folder cannot be created`,
      ],
      [
        ["lib/cli/eval.ts", "--run", dir, "--reference-stats", `${gone}.safetensors`],
        `eval: --reference-stats ${gone}.safetensors: no such file`,
      ],
      [
        ["lib/cli/eval.ts", "--run", dir, "--prompts", `text:${gone}.txt`],
        `eval: --prompts text:${gone}.txt: ${gone}.txt: no such file`,
      ],
      [
        ["lib/cli/eval.ts", "--run", dir, "--prompts", `coco:${file}:${gone}`],
        `eval: --prompts coco:${file}:${gone}: ${gone}: no such folder`,
      ],
      [
        ["lib/cli/eval.ts", "--run", dir, "--prompts", "shapes"],
        "eval: --prompts shapes: expected heldout, coco:PATH_TO_JSON:IMAGES_DIR, text:PATH, " +
        'parti:PATH.tsv or shards:DIR, got "shapes"',
      ],
      [
        ["lib/cli/eval_compare.ts", "--report", `${gone}.json`],
        `eval:compare: --report ${gone}.json: no such file`,
      ],
      [
        ["lib/cli/eval_compare.ts", "--report", file, "--out", `${gone}/c.html`],
        `eval:compare: --out ${gone}/c.html: folder ${gone} does not exist`,
      ],
      [
        ["lib/cli/train.ts", "--out", `${file}/run`],
        `train: --out ${file}/run: ${file} is a file, so the folder cannot be created`,
      ],
      [
        ["lib/cli/train.ts", "--out", `${dir}/run`, "--checkpoints", file],
        `train: --checkpoints ${file}: is a file, expected a folder (or a path to create one)`,
      ],
    ];
    for (const [argv, want] of cases) {
      const r = await cli(argv);
      assert.equal(r.code, 2, `${argv.join(" ")}: ${r.stderr}`);
      assert.deepEqual(ownLines(r.stderr), [want]);
    }
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["file.txt"], "nothing made");
  });
});
