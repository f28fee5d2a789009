import assert from "node:assert/strict";
import {
  latestCheckpoint,
  listCheckpoints,
  loadCheckpoint,
  MetricsLog,
  parseMetrics,
  pruneCheckpoints,
  readMetrics,
  saveCheckpoint,
  truncateMetrics,
} from "../lib/train/mod.ts";
import { type CheckpointStore, LocalStore, StoreNotFoundError } from "../lib/storage/mod.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

function model(step: number) {
  return {
    "w": { shape: [2, 2], data: new Float32Array([step, 1, 2, 3]) },
    "b": { shape: [2], data: new Float32Array([-step, 0.5]) },
  };
}

async function save(run: string | CheckpointStore, step: number, rank = 0) {
  return await saveCheckpoint(run, {
    step,
    rank,
    tensors: { model: model(step), ema: model(step + 0.5), optimizer: { "m.w": model(0).w } },
    state: { rng: { s: [1, 2, 3, step], spare: null }, position: { epoch: 0, index: step * 4 } },
  });
}

/** An in-memory object store without rename, like gs://: exercises the manifest-last path. */
class MemStore implements CheckpointStore {
  readonly location = "mem://run";
  readonly map = new Map<string, Uint8Array>();
  readonly log: string[] = [];
  put(k: string, d: Uint8Array) {
    this.map.set(k, d.slice());
    this.log.push(k);
    return Promise.resolve();
  }
  get(k: string) {
    const v = this.map.get(k);
    return v ? Promise.resolve(v) : Promise.reject(new StoreNotFoundError(this.location, k));
  }
  list(prefix = "") {
    return Promise.resolve([...this.map.keys()].filter((k) => k.startsWith(prefix)).sort());
  }
  delete(k: string) {
    this.map.delete(k);
    return Promise.resolve();
  }
}

Deno.test("save/load round trip; layout and manifest written last", async () => {
  await withTempDir("xgen_train_checkpoint_", async (run) => {
    assert.equal(await save(run, 7, 1), null, "rank 1 writes nothing");
    assert.deepEqual([...Deno.readDirSync(run)], []);
    assert.equal(await save(run, 7), "ckpt-00000007");
    const names = [...Deno.readDirSync(`${run}/ckpt-00000007`)].map((e) => e.name).sort();
    assert.deepEqual(names, [
      "ema.safetensors",
      "manifest.json",
      "model.safetensors",
      "optimizer.safetensors",
      "state.json",
    ]);
    const ck = await loadCheckpoint(`${run}/ckpt-00000007/`);
    assert.equal(ck.step, 7);
    assert.equal(ck.state.step, 7);
    assert.deepEqual(ck.state.position, { epoch: 0, index: 28 });
    assert.deepEqual(Array.from(ck.tensors.model.w.data), [7, 1, 2, 3]);
    assert.deepEqual(ck.tensors.model.b.shape, [2]);
    assert.deepEqual(Array.from(ck.tensors.ema!.b.data), [-7.5, 0.5]);
    assert.deepEqual(Object.keys(ck.tensors.optimizer!), ["m.w"]);
    // Manifest sizes match the files on disk.
    for (const f of ck.manifest.files) {
      assert.equal((await Deno.stat(`${run}/ckpt-00000007/${f.name}`)).size, f.size);
    }

    const mem = new MemStore();
    await save(mem, 3);
    assert.equal(mem.log.at(-1), "ckpt-00000003/manifest.json", "manifest is the last object");
    const back = await loadCheckpoint({ store: mem, name: "ckpt-00000003" });
    assert.deepEqual(Array.from(back.tensors.model.w.data), [3, 1, 2, 3]);
  });
});

Deno.test("partial and corrupt checkpoints are skipped with warnings; load errors name the file", async () => {
  await withTempDir("xgen_train_checkpoint_", async (run) => {
    for (const s of [1, 2, 3, 4]) await save(run, s);
    // 5: a partial folder left by a kill; 4: corrupted byte; 3: manifest removed.
    await Deno.mkdir(`${run}/ckpt-00000005.partial-deadbeef`);
    await Deno.writeTextFile(`${run}/ckpt-00000005.partial-deadbeef/state.json`, "{}");
    const f4 = `${run}/ckpt-00000004/model.safetensors`;
    const bytes = await Deno.readFile(f4);
    bytes[bytes.length - 1] ^= 1;
    await Deno.writeFile(f4, bytes);
    await Deno.remove(`${run}/ckpt-00000003/manifest.json`);

    const warnings: string[] = [];
    const latest = await latestCheckpoint(run, { warn: (m) => warnings.push(m) });
    assert.equal(latest?.name, "ckpt-00000002");
    assert.equal(warnings.length, 3);
    assert.match(warnings[0], /ckpt-00000005\.partial-deadbeef: skipped \(partial write/);
    assert.match(
      warnings[1],
      /ckpt-00000004\/model\.safetensors: sha256 .* does not match manifest/,
    );
    assert.match(warnings[2], /ckpt-00000003\/manifest\.json: missing \(checkpoint incomplete\)/);

    const all = await listCheckpoints(run);
    assert.deepEqual(all.map((c) => [c.name, c.complete]), [
      ["ckpt-00000001", true],
      ["ckpt-00000002", true],
      ["ckpt-00000003", false],
      ["ckpt-00000004", false],
      ["ckpt-00000005.partial-deadbeef", false],
    ]);

    await assert.rejects(loadCheckpoint(`${run}/ckpt-00000004`), (e: Error) => {
      assert.equal(e.message.split("\n").length, 1, "one line");
      assert.match(e.message, /ckpt-00000004\/model\.safetensors: sha256/);
      return true;
    });
    // Truncated file: the size check names it.
    await Deno.truncate(`${run}/ckpt-00000002/state.json`, 5);
    await assert.rejects(
      loadCheckpoint(`${run}/ckpt-00000002`),
      /ckpt-00000002\/state\.json: size 5 bytes, manifest says \d+/,
    );
  });
});

/** Rewrite one file of a checkpoint and re-hash it in the manifest, so only its content is bad. */
async function replaceRehashed(dir: string, name: string, bytes: Uint8Array): Promise<void> {
  await Deno.writeFile(`${dir}/${name}`, bytes);
  const m = JSON.parse(await Deno.readTextFile(`${dir}/manifest.json`));
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  const f = m.files.find((x: { name: string }) => x.name === name);
  f.size = bytes.length;
  f.sha256 = Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
  await Deno.writeTextFile(`${dir}/manifest.json`, JSON.stringify(m));
}

Deno.test("every corruption of the newest checkpoint falls back to the previous one with a warning", async () => {
  const cases: [string, (dir: string) => Promise<void>, RegExp][] = [
    ["bit flip", async (dir) => {
      const b = await Deno.readFile(`${dir}/model.safetensors`);
      b[b.length - 1] ^= 1;
      await Deno.writeFile(`${dir}/model.safetensors`, b);
    }, /ckpt-00000003\/model\.safetensors: sha256 [0-9a-f]{12}\.\.\. does not match manifest/],
    [
      "truncated",
      (dir) => Deno.truncate(`${dir}/ema.safetensors`, 20),
      /ckpt-00000003\/ema\.safetensors: size 20 bytes, manifest says \d+/,
    ],
    [
      "manifest removed",
      (dir) => Deno.remove(`${dir}/manifest.json`),
      /ckpt-00000003\/manifest\.json: missing \(checkpoint incomplete\)/,
    ],
    [
      "header length 2^63-1, manifest re-hashed",
      async (dir) => {
        const b = await Deno.readFile(`${dir}/model.safetensors`);
        new DataView(b.buffer).setBigUint64(0, 2n ** 63n - 1n, true);
        await replaceRehashed(dir, "model.safetensors", b);
      },
      /safetensors .*ckpt-00000003\/model\.safetensors: header length 9223372036854775807 exceeds/,
    ],
    ["header not JSON, manifest re-hashed", async (dir) => {
      const b = await Deno.readFile(`${dir}/optimizer.safetensors`);
      b[8] = 0x5b; // "[" where "{" was
      await replaceRehashed(dir, "optimizer.safetensors", b);
    }, /safetensors .*ckpt-00000003\/optimizer\.safetensors: header is not valid UTF-8 JSON/],
    [
      "state.json not JSON, manifest re-hashed",
      (dir) => replaceRehashed(dir, "state.json", new TextEncoder().encode('{"step":\n x}')),
      /ckpt-00000003\/state\.json: not valid JSON/,
    ],
    ["manifest names a file outside the folder", async (dir) => {
      const m = JSON.parse(await Deno.readTextFile(`${dir}/manifest.json`));
      m.files[0].name = "../ckpt-00000002/model.safetensors";
      await Deno.writeTextFile(`${dir}/manifest.json`, JSON.stringify(m));
    }, /ckpt-00000003\/manifest\.json: field "files\[0\]\.name" must be a file name inside/],
  ];
  for (const [what, corrupt, re] of cases) {
    await withTempDir("xgen_train_checkpoint_", async (run) => {
      for (const s of [1, 2, 3]) await save(run, s);
      await corrupt(`${run}/ckpt-00000003`);
      const warnings: string[] = [];
      const latest = await latestCheckpoint(run, { warn: (m) => warnings.push(m) });
      assert.equal(latest?.name, "ckpt-00000002", what);
      assert.equal(warnings.length, 1, what);
      assert.match(warnings[0], /^checkpoint .*ckpt-00000003: skipped \(/, what);
      assert.match(warnings[0], re, what);
      assert.equal(warnings[0].split("\n").length, 1, `${what}: one line`);
      const all = await listCheckpoints(run);
      assert.deepEqual(all.map((c) => c.complete), [true, true, false], what);
      await assert.rejects(loadCheckpoint(`${run}/ckpt-00000003`), re, what);
      const ck = await loadCheckpoint(`${run}/${latest!.name}`);
      assert.deepEqual(Array.from(ck.tensors.model.w.data), [2, 1, 2, 3], what);
    });
  }
});

Deno.test("re-saving a step replaces a corrupt folder; prune keeps newest complete", async () => {
  await withTempDir("xgen_train_checkpoint_", async (run) => {
    for (const s of [10, 20, 30, 40]) await save(run, s);
    await Deno.remove(`${run}/ckpt-00000040/manifest.json`);
    await Deno.mkdir(`${run}/ckpt-00000050.partial-abc123`);
    await Deno.writeTextFile(`${run}/ckpt-00000050.partial-abc123/x`, "x");
    await Deno.writeTextFile(`${run}/notes.txt`, "not a checkpoint");

    const deleted = await pruneCheckpoints(run, 1);
    assert.deepEqual(deleted.sort(), [
      "ckpt-00000010",
      "ckpt-00000020",
      "ckpt-00000050.partial-abc123",
    ]);
    const left = [...Deno.readDirSync(run)].map((e) => e.name).sort();
    // 40 is incomplete but NEWER than the newest complete one, so it is kept for inspection.
    assert.deepEqual(left, ["ckpt-00000030", "ckpt-00000040", "notes.txt"]);

    await save(run, 40); // replaces the broken folder
    assert.equal((await latestCheckpoint(run, { warn: () => {} }))?.name, "ckpt-00000040");
    assert.deepEqual(await pruneCheckpoints(run, 5), []);
    assert.deepEqual(await pruneCheckpoints(run, 1), ["ckpt-00000030"]);
    await assert.rejects(pruneCheckpoints(run, 0), /keepLast must be an integer >= 1, got 0/);

    // Object store: corrupt newest, prune must keep it only while complete ones remain newest.
    const mem = new MemStore();
    for (const s of [1, 2, 3]) await save(mem, s);
    mem.delete("ckpt-00000003/manifest.json");
    assert.deepEqual(await pruneCheckpoints(mem, 1), ["ckpt-00000001"]);
    assert.equal((await latestCheckpoint(mem, { warn: () => {} }))?.name, "ckpt-00000002");
  });
});

Deno.test("LocalStore lists recursively and rejects escaping keys", async () => {
  await withTempDir("xgen_train_checkpoint_", async (dir) => {
    const s = new LocalStore(dir);
    await s.put("a/b/c.bin", new Uint8Array([1, 2]));
    await s.put("a/d.bin", new Uint8Array([3]));
    await s.put("z.bin", new Uint8Array([4]));
    assert.deepEqual(await s.list(), ["a/b/c.bin", "a/d.bin", "z.bin"]);
    assert.deepEqual(await s.list("a/b"), ["a/b/c.bin"]);
    assert.deepEqual(Array.from(await s.get("a/d.bin")), [3]);
    await assert.rejects(s.get("nope"), StoreNotFoundError);
    await assert.rejects(s.put("../x", new Uint8Array()), /invalid key "\.\.\/x"/);
  });
});

Deno.test("metrics: round trip, truncated last line, truncate on resume", async () => {
  await withTempDir("xgen_train_checkpoint_", async (dir) => {
    const path = `${dir}/metrics.jsonl`;
    assert.deepEqual(await readMetrics(path), []);
    const log = new MetricsLog(path);
    for (let s = 1; s <= 5; s++) await log.append({ step: s, loss: 1 / s, lr: 1e-3, tag: "x" });
    // A kill mid-write leaves a partial line.
    await Deno.writeTextFile(path, '{"step":6,"lo', { append: true });
    const rows = await readMetrics(path);
    assert.deepEqual(rows.map((r) => r.step), [1, 2, 3, 4, 5]);
    assert.equal(rows[2].loss, 1 / 3);
    assert.equal(rows[0].tag, "x");
    assert.equal(await truncateMetrics(path, 3), 3);
    assert.equal(
      await Deno.readTextFile(path),
      [1, 2, 3].map((s) => JSON.stringify({ step: s, loss: 1 / s, lr: 1e-3, tag: "x" }) + "\n")
        .join(
          "",
        ),
    );
    await log.append({ step: 4, loss: 9 });
    assert.deepEqual((await readMetrics(path)).map((r) => r.step), [1, 2, 3, 4]);
    assert.throws(
      () => parseMetrics('{"step":1}\nnot json\n{"step":2}\n', "m.jsonl"),
      /m\.jsonl:2: not a JSON/,
    );
    assert.throws(
      () => parseMetrics('{"loss":1}\n', "m.jsonl"),
      /m\.jsonl:1: expected an object with an integer "step"/,
    );
    await assert.rejects(log.append({ step: 1.5 }), /needs an integer "step"/);
  });
});
