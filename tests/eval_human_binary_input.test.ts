/**
 * Files that are not UTF-8 text (a binary file, a Latin-1 export) are refused with one line that
 * names the file and shows a short escaped excerpt, never raw control bytes; control characters
 * inside an otherwise valid answer file are escaped in row errors too.
 */
import assert from "node:assert/strict";
import { decodeTextInput, escapeExcerpt, ingestResponses } from "../lib/eval/human/mod.ts";
import { cli } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

/** C0 controls (tab and line feed included), DEL and C1 controls: none may reach a terminal. */
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

const LOW = Array.from({ length: 32 }, (_, i) => i);
const HIGH = Array.from({ length: 129 }, (_, i) => 0x7f + i);

/** Bytes 0x00-0x1f and 0x7f-0xff, repeated. */
function binaryBytes(): Uint8Array {
  return Uint8Array.from([...LOW, ...HIGH, ...LOW, ...HIGH, ...LOW, ...HIGH]);
}

/** The same bytes high first, then rows with commas: the "header" is all control bytes. */
function binaryWithCommas(): Uint8Array {
  return Uint8Array.from([...HIGH, ...LOW, ...new TextEncoder().encode(",x\na,b,c\n")]);
}

Deno.test("excerpts escape control characters JSON-style and stay short", () => {
  const e = escapeExcerpt("\u0000a\tb\u001b[31m\u007f\u0085\u202e\ufffd" + "x".repeat(200));
  assert.ok(!CONTROL.test(e), e);
  assert.ok(e.startsWith('"\\u0000a\\tb\\u001b[31m\\u007f\\u0085\\u202e\\ufffd'), e);
  assert.ok(e.length <= 64, `${e.length}: ${e}`);
  assert.ok(e.endsWith('…"'));
  assert.equal(escapeExcerpt('say "hi"'), '"say \\"hi\\""');
  assert.throws(
    () => decodeTextInput(binaryBytes(), { source: "blob.csv", what: "answers" }),
    (e: Error) => /^blob\.csv line 1: not UTF-8 text/.test(e.message) && !CONTROL.test(e.message),
  );
  // Latin-1 "café" is not UTF-8 either: named by line, with a hint.
  const latin1 = Uint8Array.from([...new TextEncoder().encode("prompt\nok\ncaf"), 0xe9, 0x0a]);
  assert.throws(
    () => decodeTextInput(latin1, { source: "l.csv", what: "answers" }),
    /l\.csv line 3: not UTF-8 text.*"caf\\ufffd.*UTF-8/,
  );
  assert.equal(
    decodeTextInput(new TextEncoder().encode("\ufeffa,b\n"), { source: "ok.csv", what: "x" }),
    "a,b\n",
  );
});

Deno.test("command line: a binary answers, prompts or design file gives one escaped line naming it", async () => {
  await withTempDir("xgen-he-binary-", async (dir) => {
    await Deno.writeFile(`${dir}/blob.csv`, binaryBytes());
    await Deno.writeFile(`${dir}/blob2.csv`, binaryWithCommas());
    await Deno.writeTextFile(
      `${dir}/ok.csv`,
      "prompt,model_a,model_b,left,choice,rater,trial\na cat,x,y,x,left,r1,0\n",
    );
    const runs = [
      ["--responses", `${dir}/blob.csv`],
      ["--responses", `${dir}/blob2.csv`],
      ["--responses", `${dir}/ok.csv`, "--prompts", `${dir}/blob.csv`],
      ["--responses", `${dir}/ok.csv`, "--design", `${dir}/blob.csv`],
    ];
    for (const args of runs) {
      const r = await cli(["lib/cli/human_eval.ts", ...args, "--out", `${dir}/an`]);
      assert.equal(r.code, 1, r.stderr);
      const msg = r.stderr.trimEnd();
      assert.ok(!CONTROL.test(msg), `control characters in: ${JSON.stringify(msg)}`);
      assert.equal(msg.split("\n").length, 1, msg);
      assert.match(msg, /blob2?\.csv line 1: not UTF-8 text/);
      assert.ok(msg.length < 400, `${msg.length} characters`);
    }
  });
});

Deno.test("control characters inside a valid answer file are escaped in row errors", async () => {
  const text = "prompt,model_a,model_b,left,choice,rater,trial\n" +
    "a cat,x,y,x,\u001b[31mleft\u0007,r1,0\n" +
    "a dog,x,y,\u0001z,left,r1,0\n";
  const r = ingestResponses(text, { source: "ctl.csv" });
  assert.deepEqual(r.errors.map((e) => e.line), [2, 3]);
  for (const e of r.errors) assert.ok(!CONTROL.test(e.message), JSON.stringify(e.message));
  assert.match(r.errors[0].message, /got "\\u001b\[31mleft\\u0007"/);
  await withTempDir("xgen-he-ctl-", async (dir) => {
    await Deno.writeTextFile(`${dir}/ctl.csv`, text);
    const c = await cli([
      "lib/cli/human_eval.ts",
      "--responses",
      `${dir}/ctl.csv`,
      "--out",
      `${dir}/an`,
    ]);
    assert.equal(c.code, 1);
    assert.ok(!CONTROL.test(c.stderr.replaceAll("\n", "")), JSON.stringify(c.stderr));
    assert.match(c.stderr, /ctl\.csv:2: choice/);
  });
});
