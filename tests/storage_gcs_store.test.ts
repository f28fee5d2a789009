import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { Storage } from "@google-cloud/storage";
import {
  latestCheckpoint,
  listCheckpoints,
  loadCheckpoint,
  pruneCheckpoints,
  saveCheckpoint,
  snapshotParams,
  trainLoop,
} from "../lib/train/mod.ts";
import {
  type CheckpointStore,
  type GcsClientLike,
  type GcsListQuery,
  GcsStore,
  type GcsStoreOptions,
  isTransientGcsError,
  LocalStore,
  parseGsUrl,
  storeFor,
  StoreNotFoundError,
} from "../lib/storage/mod.ts";
import { startGcsEmulator } from "./helpers/gcs_emulator.ts";
import { initTinyMlp, tinyMlpLoopOptions } from "./helpers/tiny_mlp.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

await tf.setBackend("cpu");

const BUCKET = "xgen-test";

/** Index of the first differing byte, or -1 when equal (assert.deepEqual is slow on MBs). */
function firstDiff(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
  return out;
}

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("gs:// URLs, storeFor, and retries of transient errors only (fake client)", async () => {
  assert.deepEqual(parseGsUrl("gs://my-bucket/runs/exp1/"), {
    bucket: "my-bucket",
    prefix: "runs/exp1",
  });
  assert.deepEqual(parseGsUrl("gs://b.example.com"), { bucket: "b.example.com", prefix: "" });
  assert.throws(() => parseGsUrl("gs://Bad_Bucket/x"), /invalid bucket name "Bad_Bucket"/);
  assert.throws(() => parseGsUrl("gs://bkt/a/../b"), /invalid object prefix "a\/\.\.\/b"/);
  assert.throws(() => parseGsUrl("s3://bkt/x"), /not a gs:\/\/ URL/);
  const s = storeFor("gs://my-bucket/runs/exp1/");
  assert.ok(s instanceof GcsStore);
  assert.equal(s.location, "gs://my-bucket/runs/exp1");
  assert.equal(storeFor("gs://my-bucket").location, "gs://my-bucket");
  assert.throws(() => storeFor("s3://bkt/run"), /"s3:\/\/bkt\/run": no built-in store/);
  assert.ok(storeFor("runs/x") instanceof LocalStore);

  assert.equal(isTransientGcsError({ code: 503 }), true);
  assert.equal(isTransientGcsError({ code: 429 }), true);
  assert.equal(isTransientGcsError({ code: "ECONNRESET" }), true);
  assert.equal(isTransientGcsError({ response: { status: 502 } }), true);
  assert.equal(isTransientGcsError({ code: 403 }), false);
  assert.equal(isTransientGcsError(new Error("bad request")), false);

  // A fake bucket whose uploads fail from a queue of errors, then succeed.
  const calls: string[] = [];
  const failures: unknown[] = [];
  const objects = new Map<string, Uint8Array>();
  const client: GcsClientLike = {
    bucket: (name) => ({
      file: (obj) => ({
        save(data) {
          calls.push(`save ${name}/${obj}`);
          const f = failures.shift();
          if (f) return Promise.reject(f);
          objects.set(obj, data.slice());
          return Promise.resolve();
        },
        download: () => Promise.reject(Object.assign(new Error("No such object"), { code: 404 })),
        delete: () => Promise.resolve(),
      }),
      getFiles: () => Promise.resolve([[], null]),
    }),
  };
  const store = new GcsStore("gs://bkt/run", { client, retryDelayMs: 1, tries: 3 });
  failures.push(
    Object.assign(new Error("Service Unavailable"), { code: 503 }),
    Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }),
  );
  await store.put("a/b.bin", new Uint8Array([1, 2, 3]));
  assert.deepEqual(calls, new Array(3).fill("save bkt/run/a/b.bin"), "two retries, then success");
  assert.deepEqual(Array.from(objects.get("run/a/b.bin")!), [1, 2, 3]);

  calls.length = 0;
  failures.push(Object.assign(new Error("Forbidden"), { code: 403 }));
  await assert.rejects(store.put("x.bin", new Uint8Array([9])), (e: Error) => {
    assert.equal(e.message, "gs://bkt/run/x.bin: put failed (HTTP 403: Forbidden)");
    return true;
  });
  assert.equal(calls.length, 1, "a permanent error is not retried");

  calls.length = 0;
  for (let i = 0; i < 3; i++) failures.push(Object.assign(new Error("Oops"), { code: 500 }));
  await assert.rejects(
    store.put("y.bin", new Uint8Array([9])),
    /^Error: gs:\/\/bkt\/run\/y\.bin: put failed after 3 tries \(HTTP 500: Oops\)$/,
  );
  assert.equal(calls.length, 3);
  await assert.rejects(store.get("nope.bin"), (e: Error) => {
    assert.ok(e instanceof StoreNotFoundError);
    assert.equal(e.message, "gs://bkt/run/nope.bin: not found");
    return true;
  });
  await assert.rejects(store.put("../up", new Uint8Array()), /invalid key "\.\.\/up"/);
});

// ---------------------------------------------------------------------------------------------
// Against the firebase-tools Cloud Storage emulator.

function ckptModel(step: number) {
  return {
    "w": { shape: [2, 2], data: new Float32Array([step, 1, 2, 3]) },
    "b": { shape: [2], data: new Float32Array([-step, 0.5]) },
  };
}

async function saveStep(run: CheckpointStore, step: number, rank = 0) {
  return await saveCheckpoint(run, {
    step,
    rank,
    tensors: {
      model: ckptModel(step),
      ema: ckptModel(step + 0.5),
      optimizer: { "m.w": ckptModel(0).w },
    },
    state: { rng: { s: [1, 2, 3, step] }, position: { epoch: 0, index: step * 4 } },
  });
}

// The resumed-trainLoop step trains the shared tiny MLP without its output bias, as this file
// always has: its losses are only compared with its own uninterrupted reference run.
const initMlp = () => initTinyMlp({ outputBias: false });

Deno.test({
  name: "GcsStore on the Cloud Storage emulator: round trips, checkpoints, resumed trainLoop",
  fn: async (t) => {
    const emu = await startGcsEmulator();
    await withTempDir("xgen_storage_gcs_store_", async (tmp) => {
      const gcs = (prefix: string, extra: GcsStoreOptions = {}) =>
        new GcsStore(`gs://${BUCKET}/${prefix}`, { apiEndpoint: emu.endpoint, ...extra });
      try {
        console.log(`emulator ready in ${emu.startMs.toFixed(0)} ms at ${emu.endpoint}`);

        await t.step("put/get/list/delete/deletePrefix round trips with exact bytes", async () => {
          const s = gcs("rt/run1");
          const big = randomBytes(5 * 2 ** 20 + 7);
          const files: Record<string, Uint8Array> = {
            "a/b/c.bin": new Uint8Array([1, 2, 3]),
            "a/d.bin": enc("d"),
            "ab/x.bin": enc("not under a/"),
            "a.bin": enc("also not under a/"),
            "deep/1/2/3/4/leaf.json": enc('{"k":[1,2]}'),
            "empty.bin": new Uint8Array(0),
            "big.bin": big,
          };
          for (const [k, v] of Object.entries(files)) await s.put(k, v);
          const keys = Object.keys(files).sort();
          assert.deepEqual(await s.list(), keys);
          for (const k of keys) {
            const got = await s.get(k);
            assert.equal(got.length, files[k].length, k);
            assert.equal(firstDiff(got, files[k]), -1, `${k}: same bytes`);
          }
          assert.deepEqual(await s.list("a/"), ["a/b/c.bin", "a/d.bin"]);
          assert.deepEqual(await s.list("a/b"), ["a/b/c.bin"]);
          assert.deepEqual(await s.list("zzz"), []);

          // The prefix isolates runs; a bucket-root store sees everything with the prefix in front.
          assert.deepEqual(await gcs("rt/run2").list(), []);
          assert.deepEqual(await gcs("rt").list("run1/a/"), ["run1/a/b/c.bin", "run1/a/d.bin"]);
          const root = new GcsStore(`gs://${BUCKET}`, { apiEndpoint: emu.endpoint });
          assert.deepEqual(Array.from(await root.get("rt/run1/a/b/c.bin")), [1, 2, 3]);

          // Overwrite replaces the whole object.
          await s.put("a/d.bin", enc("dd-longer"));
          assert.equal(new TextDecoder().decode(await s.get("a/d.bin")), "dd-longer");

          // Above `resumableAbove` the resumable upload path is used; same bytes back.
          const r = gcs("rt/resumable", { resumableAbove: 2 ** 20 });
          const mid = randomBytes(3 * 2 ** 20 + 1);
          await r.put("ckpt-00000001/model.safetensors", mid);
          assert.equal(firstDiff(await r.get("ckpt-00000001/model.safetensors"), mid), -1);

          await s.delete("a/d.bin");
          await s.delete("a/d.bin"); // a missing key is not an error
          await assert.rejects(s.get("a/d.bin"), (e: Error) => {
            assert.ok(e instanceof StoreNotFoundError);
            assert.equal(e.message, `gs://${BUCKET}/rt/run1/a/d.bin: not found`);
            return true;
          });
          await s.deletePrefix("a/");
          assert.deepEqual(await s.list(), [
            "a.bin",
            "ab/x.bin",
            "big.bin",
            "deep/1/2/3/4/leaf.json",
            "empty.bin",
          ]);
          await s.deletePrefix("deep");
          await s.deletePrefix("nothing-here");
          assert.deepEqual(await s.list(), ["a.bin", "ab/x.bin", "big.bin", "empty.bin"]);
          assert.equal((s as CheckpointStore).renamePrefix, undefined, "object stores: no rename");
        });

        await t.step("list pages through many keys", async () => {
          // Count the page requests by wrapping the real client's bucket.
          const pages: GcsListQuery[] = [];
          const real = new Storage({ apiEndpoint: emu.endpoint, projectId: "xgen-kit-test" });
          const client: GcsClientLike = {
            bucket: (name) => {
              const b = real.bucket(name);
              return {
                file: (n) => b.file(n),
                getFiles: (q) => {
                  pages.push(q);
                  return b.getFiles(q);
                },
              };
            },
          };
          const s = new GcsStore(`gs://${BUCKET}/paging`, { client, pageSize: 25 });
          const keys = Array.from({ length: 130 }, (_, i) => `k/${String(i).padStart(3, "0")}.bin`);
          for (let i = 0; i < keys.length; i += 10) {
            await Promise.all(keys.slice(i, i + 10).map((k) => s.put(k, enc(k))));
          }
          await s.put("other/x.bin", enc("x"));
          assert.deepEqual(await s.list("k/"), keys);
          assert.equal(pages.length, 6, "130 keys in pages of 25");
          assert.ok(pages.every((q) => q.maxResults === 25 && q.prefix === "paging/k/"));
          assert.equal(pages[0].pageToken, undefined);
          assert.ok(pages.slice(1).every((q) => typeof q.pageToken === "string"));
          assert.equal(new TextDecoder().decode(await s.get("k/129.bin")), "k/129.bin");
          pages.length = 0;
          await s.deletePrefix("k");
          assert.deepEqual(await s.list(), ["other/x.bin"]);
        });

        await t.step("checkpoints on gs:// equal a LocalStore run, byte for byte", async () => {
          const local = new LocalStore(`${tmp}/ckpt-local`);
          const remote = gcs("ckpt/run");
          assert.equal(await saveStep(remote, 1, 1), null, "rank 1 writes nothing");
          assert.deepEqual(await remote.list(), []);
          for (const s of [1, 2, 3]) {
            assert.equal(await saveStep(local, s), await saveStep(remote, s));
          }
          const keys = await local.list();
          assert.equal(keys.length, 15);
          assert.deepEqual(await remote.list(), keys);
          for (const k of keys) {
            assert.equal(firstDiff(await remote.get(k), await local.get(k)), -1, k);
          }
          const latest = await latestCheckpoint(remote, { warn: () => {} });
          assert.equal(latest?.name, "ckpt-00000003");
          assert.deepEqual(latest, await latestCheckpoint(local, { warn: () => {} }));
          assert.deepEqual(await listCheckpoints(remote), await listCheckpoints(local));
          const a = await loadCheckpoint({ store: remote, name: "ckpt-00000003" });
          const b = await loadCheckpoint({ store: local, name: "ckpt-00000003" });
          assert.deepEqual(a, b);
          assert.deepEqual(Array.from(a.tensors.model.w.data), [3, 1, 2, 3]);
          assert.deepEqual(a.state.position, { epoch: 0, index: 12 });
          assert.deepEqual(await pruneCheckpoints(remote, 2), ["ckpt-00000001"]);
          assert.deepEqual(await pruneCheckpoints(local, 2), ["ckpt-00000001"]);
          assert.deepEqual(await remote.list(), await local.list());
        });

        await t.step(
          "a save killed before its manifest is ignored; the previous one is used",
          async () => {
            const remote = gcs("killed/run");
            for (const s of [1, 2]) await saveStep(remote, s);
            // The process "dies" at the manifest upload of step 3: its parts are in the bucket.
            const dying: CheckpointStore = {
              location: remote.location,
              put: (k, d) =>
                k.endsWith("ckpt-00000003/manifest.json")
                  ? Promise.reject(new Error("killed"))
                  : remote.put(k, d),
              get: (k) => remote.get(k),
              list: (p) => remote.list(p),
              delete: (k) => remote.delete(k),
            };
            await assert.rejects(saveStep(dying, 3), /killed/);
            assert.deepEqual(
              (await remote.list("ckpt-00000003/")).sort(),
              [
                "ckpt-00000003/ema.safetensors",
                "ckpt-00000003/model.safetensors",
                "ckpt-00000003/optimizer.safetensors",
                "ckpt-00000003/state.json",
              ],
            );
            const warnings: string[] = [];
            const latest = await latestCheckpoint(remote, { warn: (m) => warnings.push(m) });
            assert.equal(latest?.name, "ckpt-00000002");
            assert.deepEqual(warnings, [
              `checkpoint gs://${BUCKET}/killed/run/ckpt-00000003: skipped ` +
              `(gs://${BUCKET}/killed/run/ckpt-00000003/manifest.json: missing (checkpoint incomplete))`,
            ]);
            await assert.rejects(
              loadCheckpoint({ store: remote, name: "ckpt-00000003" }),
              /gs:\/\/xgen-test\/killed\/run\/ckpt-00000003\/manifest\.json: missing/,
            );
            const ck = await loadCheckpoint({ store: remote, name: latest!.name });
            assert.deepEqual(Array.from(ck.tensors.model.w.data), [2, 1, 2, 3]);
            // Saving step 3 again completes it.
            await saveStep(remote, 3);
            assert.equal(
              (await latestCheckpoint(remote, { warn: () => {} }))?.name,
              "ckpt-00000003",
            );
          },
        );

        await t.step(
          "trainLoop resumed from gs:// continues with the uninterrupted losses",
          async () => {
            // Reference: 10 uninterrupted steps, checkpoints on local disk.
            const p0 = initMlp();
            const ref = await trainLoop(
              tinyMlpLoopOptions(p0, {
                runDir: `${tmp}/ref`,
                store: new LocalStore(`${tmp}/ref`),
                steps: 10,
              }),
            );
            const refLosses = ref.history.map((h) => h.loss);
            const refParams = await snapshotParams(p0);
            ref.dispose();
            tf.dispose(Object.values(p0));

            // The gs:// store comes from storeFor, configured the way a user would for an emulator.
            const prevHost = Deno.env.get("STORAGE_EMULATOR_HOST");
            Deno.env.set("STORAGE_EMULATOR_HOST", emu.endpoint);
            try {
              const url = `gs://${BUCKET}/loop/run`;
              const p1 = initMlp();
              const runDir = `${tmp}/loop`;
              const r1 = await trainLoop(
                tinyMlpLoopOptions(p1, { runDir, store: storeFor(url), steps: 6 }),
              );
              assert.deepEqual(r1.history.map((h) => h.loss), refLosses.slice(0, 6));
              r1.dispose();
              tf.dispose(Object.values(p1));
              // Killed during the step-6 save: its manifest never arrived.
              const store = storeFor(url);
              await store.delete("ckpt-00000006/manifest.json");

              // Fresh params and a fresh store object, as in a new process.
              const p2 = initMlp();
              const warn = console.warn;
              const warnings: string[] = [];
              console.warn = (m: string) => warnings.push(m);
              let r2;
              try {
                r2 = await trainLoop({
                  ...tinyMlpLoopOptions(p2, { runDir, store: storeFor(url), steps: 10 }),
                  resume: true,
                });
              } finally {
                console.warn = warn;
              }
              assert.equal(r2.resumedFrom, "ckpt-00000003");
              assert.equal(warnings.length, 1);
              assert.match(warnings[0], /gs:\/\/xgen-test\/loop\/run\/ckpt-00000006: skipped/);
              assert.deepEqual(r2.history.map((h) => h.step), [4, 5, 6, 7, 8, 9, 10]);
              assert.deepEqual(r2.history.map((h) => h.loss), refLosses.slice(3));
              const pf = await snapshotParams(p2);
              for (const k of Object.keys(pf)) {
                assert.deepEqual(Array.from(pf[k].data), Array.from(refParams[k].data), k);
              }
              r2.dispose();
              tf.dispose(Object.values(p2));
              // keepLast 2 pruned the bucket too (including the broken step-6 folder).
              const folders = new Set((await store.list()).map((k) => k.split("/")[0]));
              assert.deepEqual([...folders], ["ckpt-00000009", "ckpt-00000010"]);
            } finally {
              if (prevHost === undefined) Deno.env.delete("STORAGE_EMULATOR_HOST");
              else Deno.env.set("STORAGE_EMULATOR_HOST", prevHost);
            }
          },
        );
      } finally {
        await emu.stop();
      }
    });
  },
});
