/**
 * `deno task train` checks every flag before any stage runs: a bad checkpoint location or an
 * out-of-range number is one line naming the flag (exit 2) and leaves no run folder, so the
 * corrected command runs into the same --out. A folder left by an older kit with an unusable
 * checkpoint location in its config.json is not a reason to refuse the corrected run.
 */
import assert from "node:assert/strict";
import { resolvePreset } from "../lib/recipe/presets.ts";
import { trainRun } from "../lib/jobs/train_run.ts";
import { cli } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

const TRAIN = ["lib/cli/train.ts", "--preset", "tiny", "--skip-eval"];

/** Our own stderr lines (Deno may note a node_modules lock held by a concurrent run). */
function ownLines(stderr: string): string[] {
  return stderr.split("\n").filter((l) => l !== "" && !l.startsWith("Blocking waiting"));
}

const exists = (p: string) => Deno.stat(p).then(() => true, () => false);

Deno.test("train: a bad --checkpoints fails first in one line; the corrected run then works", async () => {
  await withTempDir("xgen_cli_train_flags_", async (dir) => {
    const run = `${dir}/run`;
    const cases: [string, string][] = [
      [
        "s3://b/p",
        "train: --checkpoints s3://b/p: no built-in store for URL scheme s3:// (expected a folder " +
        "or gs://bucket/prefix)",
      ],
      [
        "gs://A/p",
        'train: --checkpoints gs://A/p: invalid bucket name "A" (uppercase letters; use ' +
        "lowercase letters, digits, -, _ and .)",
      ],
      [
        "gs://ab/p",
        'train: --checkpoints gs://ab/p: invalid bucket name "ab" (3 to 63 characters)',
      ],
    ];
    for (const [url, want] of cases) {
      const r = await cli([...TRAIN, "--out", run, "--checkpoints", url]);
      assert.equal(r.code, 2, `${url}: ${r.stderr}`);
      assert.deepEqual(ownLines(r.stderr), [want]);
      assert.equal(await exists(run), false, `${url}: no run folder (no stage, no config.json)`);
    }
    const ck = `${dir}/checkpoints`;
    const ok = await cli([...TRAIN, "--out", run, "--checkpoints", ck]);
    assert.equal(ok.code, 0, ok.stderr);
    const config = JSON.parse(await Deno.readTextFile(`${run}/config.json`));
    assert.equal(config.checkpoints, ck);
    for (const stage of ["autoencoder", "clip", "unet"]) {
      const names = [...Deno.readDirSync(`${ck}/${stage}`)].map((e) => e.name);
      assert.ok(names.some((n) => n.startsWith("ckpt-")), `${stage} checkpoints under ${ck}`);
    }
  });
});

Deno.test("train: numbers out of range are one line naming the flag, value and range", async () => {
  await withTempDir("xgen_cli_train_numbers_", async (dir) => {
    const run = `${dir}/run`;
    const cases: [string[], string][] = [
      [["--steps", "-1"], 'train: --steps expects an integer from 1 to 1000000000, got "-1"'],
      [
        ["--seed", "99999999999999999999"],
        'train: --seed expects an integer from 0 to 4294967295, got "99999999999999999999"',
      ],
      [["--seed", "-1"], 'train: --seed expects an integer from 0 to 4294967295, got "-1"'],
      [
        ["--batch-size", "1e3"],
        'train: --batch-size expects an integer, got "1e3"',
      ],
      [["--procs", "100000"], 'train: --procs expects an integer from 1 to 1024, got "100000"'],
    ];
    for (const [argv, want] of cases) {
      const r = await cli([...TRAIN, "--out", run, ...argv]);
      assert.equal(r.code, 2, `${argv.join(" ")}: ${r.stderr}`);
      assert.deepEqual(ownLines(r.stderr), [want]);
      assert.equal(await exists(run), false);
    }
    // --out naming a file cannot become a run folder: refused before any stage.
    await Deno.writeTextFile(`${dir}/file`, "x");
    const r = await cli([...TRAIN, "--out", `${dir}/file`]);
    assert.equal(r.code, 2, r.stderr);
    assert.deepEqual(ownLines(r.stderr), [
      `train: --out ${dir}/file: is a file, expected a folder (or a path to create one)`,
    ]);
  });
});

Deno.test("train: a config.json recording an unusable checkpoint location does not block the corrected run", async () => {
  await withTempDir("xgen_cli_train_legacy_", async (dir) => {
    // What an older kit left: config.json written before the stage that refused the URL.
    const run = `${dir}/run`;
    await Deno.mkdir(run);
    await Deno.writeTextFile(
      `${run}/config.json`,
      JSON.stringify({
        preset: resolvePreset("tiny"),
        seed: 0,
        checkpoints: "s3://b/p",
        reuse: null,
        backend: "cpu-blas",
        worldSize: 1,
        created: "2020-01-01T00:00:00.000Z",
      }),
    );
    const ck = `${dir}/checkpoints`;
    const r = await cli([...TRAIN, "--out", run, "--checkpoints", ck]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /config\.json records checkpoints at s3:\/\/b\/p, which no run can use \(no built-in store for URL scheme s3:\/\/ .*\): no stage trained; recording /,
    );
    const config = JSON.parse(await Deno.readTextFile(`${run}/config.json`));
    assert.equal(config.checkpoints, ck);
    // Other settings still protect the run: another seed is refused as before.
    const other = await cli([...TRAIN, "--out", run, "--checkpoints", ck, "--seed", "1"]);
    assert.equal(other.code, 1);
    assert.match(other.stderr, /already holds a run; pass --resume/);
  });
});

Deno.test("trainRun refuses a bad checkpoint location or seed before writing anything", async () => {
  await withTempDir("xgen_pipeline_options_", async (dir) => {
    const o = {
      out: `${dir}/run`,
      preset: resolvePreset("tiny", { unetSteps: 2 }),
      seed: 0,
      resume: false,
      backend: "cpu-blas",
      skipEval: true,
      log: () => {},
    };
    await assert.rejects(
      () => trainRun({ ...o, checkpoints: "gs://Bad/p" }),
      (e: Error) => {
        assert.equal(
          e.message,
          'checkpoints "gs://Bad/p": invalid bucket name "Bad" (uppercase letters; use lowercase ' +
            "letters, digits, -, _ and .)",
        );
        return true;
      },
    );
    await assert.rejects(
      () => trainRun({ ...o, seed: 2 ** 32 }),
      /seed must be an integer from 0 to 4294967295, got 4294967296/,
    );
    assert.equal(await exists(o.out), false, "no run folder, no config.json, no data");
  });
});
