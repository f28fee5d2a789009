/**
 * The kit's temporary names and their clean-up: only names the kit writes, only when their
 * writer is gone, never through symbolic links.
 */
import assert from "node:assert/strict";
import { kitTempWriter, removeStaleTemps, tempPathFor, writeTextAtomic } from "../lib/util/mod.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

/** A pid no process can have (above Linux's pid_max of 2^22). */
const DEAD_PID = 99999999;

Deno.test("kitTempWriter recognises exactly the kit's temporary names", () => {
  const mine = tempPathFor("a/model.json");
  assert.match(mine, new RegExp(`^a/model\\.json\\.tmp-${Deno.pid}-[0-9a-f]{8}$`));
  assert.equal(kitTempWriter(mine.slice(2)), Deno.pid);
  assert.equal(kitTempWriter(".onnx.tmp-123-0a1b2c3d"), 123, "the ONNX export's temp folder");
  assert.equal(kitTempWriter("model.tmp-0a1b2c3d"), 0, "older pid-less copy of a model part");
  assert.equal(kitTempWriter("tokenizer.json.tmp-0a1b2c3d"), 0);
  for (const n of ["model.json", "x.tmp-12-0A1B2C3D", "x.tmp-12-0a1b2c3", "notes.tmp-0a1b2c3d"]) {
    assert.equal(kitTempWriter(n), null, n);
  }
});

Deno.test("removeStaleTemps removes dead writers' temporaries only, without following links", async () => {
  await withTempDir("xgen_temps_", async (base) => {
    const dir = `${base}/run`;
    await Deno.mkdir(`${dir}/sub`, { recursive: true });
    await Deno.mkdir(`${base}/elsewhere`);
    const dead = [`a.json.tmp-${DEAD_PID}-0a1b2c3d`, `sub/b.bin.tmp-${DEAD_PID}-00ff00ff`];
    const alive = [`c.json.tmp-${Deno.ppid}-0a1b2c3d`, "d.json.tmp-x", "sub/keep.txt"];
    for (const n of [...dead, ...alive]) await Deno.writeTextFile(`${dir}/${n}`, "x");
    // Outside the folder, reached by a link: never touched.
    const far = `${base}/elsewhere/e.tmp-${DEAD_PID}-0a1b2c3d`;
    await Deno.writeTextFile(far, "x");
    await Deno.symlink(`${base}/elsewhere`, `${dir}/link`);
    await Deno.symlink(far, `${dir}/f.tmp-${DEAD_PID}-0a1b2c3d`);

    assert.deepEqual(await removeStaleTemps(dir), [`${dir}/${dead[0]}`], "top level only");
    assert.deepEqual(await removeStaleTemps(`${dir}/`, { recursive: true }), [`${dir}/${dead[1]}`]);
    for (const n of alive) assert.equal(await Deno.readTextFile(`${dir}/${n}`), "x", n);
    assert.equal(await Deno.readTextFile(far), "x");
    assert.equal((await Deno.lstat(`${dir}/f.tmp-${DEAD_PID}-0a1b2c3d`)).isSymlink, true);
    assert.deepEqual(await removeStaleTemps(`${base}/missing`, { recursive: true }), []);

    // A whole temporary folder goes at once; a finished atomic write leaves no temporary.
    await Deno.mkdir(`${dir}/model.tmp-${DEAD_PID}-0a1b2c3d/inner`, { recursive: true });
    await writeTextAtomic(`${dir}/done.txt`, "ok");
    assert.deepEqual(await removeStaleTemps(dir), [`${dir}/model.tmp-${DEAD_PID}-0a1b2c3d`]);
    assert.deepEqual(await removeStaleTemps(dir, { recursive: true }), []);
  });
});
