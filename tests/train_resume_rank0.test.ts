/**
 * Only rank 0 touches the checkpoint store, also on resume: rank 0 lists and reads the newest
 * complete checkpoint and broadcasts it (state, weights, optimizer moments, EMA, every rank's RNG
 * state); the other ranks make no store call at all, and the resumed run stays bit-identical to
 * the uninterrupted one. Checked with counting stores (two ranks in one process, and under
 * `mpirun -np 2` on a folder and on the Cloud Storage emulator) and with one counting HTTP proxy
 * per rank in front of the emulator for `deno task train --checkpoints gs://... --resume`.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { broadcastBytes, findMpirun, singleProcess } from "../lib/data_parallel/mod.ts";
import { readMetrics, trainLoop } from "../lib/train/mod.ts";
import { type CheckpointStore, GcsStore, LocalStore } from "../lib/storage/mod.ts";
import type { Communicator } from "../lib/data_parallel/comm.ts";
import { ROOT } from "./helpers/cli.ts";
import { countingStore } from "./helpers/counting_store.ts";
import { type RankReport, rankReport } from "./helpers/rank_report.ts";
import { startCountingProxy } from "./helpers/counting_proxy.ts";
import { startGcsEmulator } from "./helpers/gcs_emulator.ts";
import { localWorld } from "./helpers/local_world.ts";
import { initTinyMlp, tinyMlpBatch, tinyMlpLoopOptions } from "./helpers/tiny_mlp.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

await tf.setBackend("cpu");
const mpirun = await findMpirun();
const here = new URL(".", import.meta.url).pathname;
const CUT = "ckpt-00000004";

/** Fail with `what` instead of waiting forever when ranks deadlock. */
async function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(`${what}: still waiting after ${ms} ms (hang)`)), ms);
  });
  try {
    return await Promise.race([p, hang]);
  } finally {
    clearTimeout(timer);
  }
}

/** Train the tiny MLP to `steps` with `resume: true` on every rank of `world`, in one process. */
async function runInProcess(
  world: Communicator[],
  runDir: string,
  steps: number,
): Promise<RankReport[]> {
  const counted = world.map(() => countingStore(new LocalStore(runDir)));
  const params = world.map(() => initTinyMlp());
  const results = await within(
    60_000,
    "in-process ranks",
    Promise.all(world.map((comm, r) => {
      counted[r].phase = "resume";
      return trainLoop({
        ...tinyMlpLoopOptions(params[r], { runDir, steps, store: counted[r].store }),
        comm,
        resume: true,
        nextBatch: (pos) => {
          counted[r].phase = "train";
          return tinyMlpBatch(pos);
        },
      });
    })),
  );
  const out: RankReport[] = [];
  for (const [r, res] of results.entries()) {
    out.push(await rankReport(r, res, params[r], counted[r]));
    res.dispose();
    tf.dispose(Object.values(params[r]));
  }
  return out;
}

/** A save killed before its manifest: parts of step 5 are in the store, no manifest. */
async function tornSave(store: CheckpointStore): Promise<void> {
  await store.put("ckpt-00000005/model.safetensors", new TextEncoder().encode("torn"));
}

/**
 * The checks every two-rank resume test makes: rank 1 made no store call in any run, rank 0 read
 * the checkpoint it resumed from, and the resumed run equals the uninterrupted one bit for bit.
 */
function assertRank0ReadsAndExact(full: RankReport[], cut: RankReport[], resumed: RankReport[]) {
  for (const run of [full, cut, resumed]) {
    assert.deepEqual(run[1].calls, [], "rank 1 never touches the checkpoint store");
  }
  const reads = resumed[0].calls.filter((c) => c.phase === "resume");
  assert.ok(reads.length > 0, "rank 0 reads the checkpoint");
  assert.ok(reads.some((c) => c.op === "list"), "rank 0 lists the checkpoints");
  for (const f of ["model", "ema", "optimizer"]) {
    assert.ok(
      reads.some((c) => c.op === "get" && c.key === `${CUT}/${f}.safetensors`),
      `rank 0 reads ${CUT}/${f}.safetensors`,
    );
  }
  assert.ok(reads.every((c) => c.op === "get" || c.op === "list"), "resuming only reads");
  for (const r of [0, 1]) {
    assert.equal(resumed[r].startStep, 4, `rank ${r} resumes at step 4`);
    assert.equal(resumed[r].resumedFrom, CUT);
    assert.deepEqual(resumed[r].losses, full[r].losses.slice(4), `rank ${r}: losses 5..7`);
    assert.deepEqual(resumed[r].weights, full[r].weights, `rank ${r}: weights`);
    assert.deepEqual(resumed[r].ema, full[r].ema, `rank ${r}: EMA weights`);
  }
  assert.deepEqual(resumed[1].weights, resumed[0].weights, "both ranks hold the same weights");
}

/** Checkpoint files of two runs that must be equal byte for byte (state.json has timings). */
async function assertSameCheckpoint(a: CheckpointStore, b: CheckpointStore, name: string) {
  for (const f of ["model", "ema", "optimizer"]) {
    const x = await a.get(`${name}/${f}.safetensors`), y = await b.get(`${name}/${f}.safetensors`);
    assert.ok(
      x.length > 0 && x.length === y.length && x.every((v, i) => v === y[i]),
      `${name}/${f}`,
    );
  }
}

/**
 * The scenario every two-rank resume test runs: an uninterrupted run to step 7, a run cut at step
 * 4 whose save of step 5 was torn, and its resume to step 7; then the checks of
 * {@link assertRank0ReadsAndExact} and equal step-7 checkpoints. `train(which, steps, pass)` runs
 * one of the three (`pass` 0, 1, 2 tells them apart); `store(which)` opens that run's store.
 */
async function checkTornResume(
  train: (which: "full" | "cut", steps: number, pass: number) => Promise<RankReport[]>,
  store: (which: "full" | "cut") => CheckpointStore,
): Promise<void> {
  const full = await train("full", 7, 0);
  const cut = await train("cut", 4, 1);
  await tornSave(store("cut"));
  const resumed = await train("cut", 7, 2);
  assertRank0ReadsAndExact(full, cut, resumed);
  await assertSameCheckpoint(store("full"), store("cut"), "ckpt-00000007");
}

Deno.test("broadcastBytes: a world of one hands the bytes back; other roots are refused", async () => {
  const comm = singleProcess();
  const b = new Uint8Array([1, 2, 255]);
  assert.deepEqual(Array.from(await broadcastBytes(comm, b)), [1, 2, 255]);
  await assert.rejects(() => broadcastBytes(comm, b, 1), /broadcast root 1 outside \[0, 1\)/);
  const [r0, r1] = localWorld(2);
  const [x, y] = await Promise.all([
    broadcastBytes(r0, new TextEncoder().encode("héllo")),
    broadcastBytes(r1, null),
  ]);
  assert.equal(new TextDecoder().decode(y), "héllo");
  assert.deepEqual(x, y);
  const [e0, e1] = await Promise.all([
    broadcastBytes(r0, new Uint8Array()),
    broadcastBytes(r1, null),
  ]);
  assert.equal(e0.length + e1.length, 0);
});

Deno.test("two ranks in one process: rank 0 alone reads the checkpoint; resume is bit-identical", async () => {
  await withTempDir("xgen_rank0_", async (dir) => {
    await checkTornResume(
      (which, steps) => runInProcess(localWorld(2), `${dir}/${which}`, steps),
      (which) => new LocalStore(`${dir}/${which}`),
    );
  });
});

/** Run trainLoop on both ranks of a fresh in-process world; settle both, never hang. */
async function settleBoth(
  stores: [CheckpointStore, CheckpointStore],
  runDir: string,
  resume: boolean,
) {
  const world = localWorld(2);
  const params = world.map(() => initTinyMlp());
  const settled = await within(
    10_000,
    "ranks after rank 0's outcome",
    Promise.allSettled(world.map((comm, r) =>
      trainLoop({
        ...tinyMlpLoopOptions(params[r], { runDir, steps: 4, store: stores[r] }),
        comm,
        resume,
      })
    )),
  );
  for (const s of settled) if (s.status === "fulfilled") s.value.dispose();
  for (const p of params) tf.dispose(Object.values(p));
  return settled;
}

/** A temporary run folder trained to step 4 by one process (checkpoints 3 and 4). */
async function withTrainedRun(f: (dir: string) => Promise<void>): Promise<void> {
  await withTempDir("xgen_rank0_outcome_", async (dir) => {
    await runInProcess([singleProcess()], dir, 4);
    await f(dir);
  });
}

Deno.test("nothing to resume: every rank starts at step 0; rank 0 alone lists", async () => {
  await withTempDir("xgen_rank0_outcome_", async (dir) => {
    const a = countingStore(new LocalStore(dir)), b = countingStore(new LocalStore(dir));
    const fresh = await settleBoth([a.store, b.store], dir, true);
    assert.deepEqual(fresh.map((s) => s.status === "fulfilled" && s.value.startStep), [0, 0]);
    assert.deepEqual(a.calls[0], { phase: "", op: "list", key: "ckpt-" });
    assert.deepEqual(b.calls, []);
  });
});

Deno.test("rank 0 cannot read the store: every rank fails with its reason, none hangs", async () => {
  await withTrainedRun(async (dir) => {
    const local = new LocalStore(dir);
    const broken: CheckpointStore = {
      location: "gs://bkt/run",
      list: () =>
        Promise.reject(new Error("gs://bkt/run/ckpt-: list failed (HTTP 403: Forbidden)")),
      get: (k) => local.get(k),
      put: (k, d) => local.put(k, d),
      delete: (k) => local.delete(k),
    };
    const c = countingStore(local);
    const failed = await settleBoth([broken, c.store], dir, true);
    assert.equal(failed[0].status, "rejected");
    assert.match(String((failed[0] as PromiseRejectedResult).reason), /HTTP 403: Forbidden/);
    assert.equal(failed[1].status, "rejected");
    assert.equal(
      ((failed[1] as PromiseRejectedResult).reason as Error).message,
      `rank 0 could not prepare the start from ${dir}: ` +
        "gs://bkt/run/ckpt-: list failed (HTTP 403: Forbidden)",
    );
    assert.deepEqual(c.calls, [], "rank 1 made no call");
  });
});

Deno.test("a fresh run over existing checkpoints is refused on every rank, not only rank 0", async () => {
  await withTrainedRun(async (dir) => {
    const refused = await settleBoth([new LocalStore(dir), new LocalStore(dir)], dir, false);
    for (const s of refused) {
      assert.equal(s.status, "rejected");
      assert.match(String((s as PromiseRejectedResult).reason), /already has checkpoints/);
    }
  });
});

Deno.test("a world of one still reads and resumes by itself, bit-identically", async () => {
  await withTempDir("xgen_rank0_single_", async (dir) => {
    const [full] = await runInProcess([singleProcess()], `${dir}/full`, 7);
    await runInProcess([singleProcess()], `${dir}/cut`, 4);
    await tornSave(new LocalStore(`${dir}/cut`));
    const [resumed] = await runInProcess([singleProcess()], `${dir}/cut`, 7);
    assert.equal(resumed.startStep, 4);
    assert.deepEqual(resumed.losses, full.losses.slice(4));
    assert.deepEqual(resumed.weights, full.weights);
    assert.deepEqual(resumed.ema, full.ema);
    const reads = resumed.calls.filter((c) => c.phase === "resume").map((c) => `${c.op} ${c.key}`);
    for (const f of ["manifest.json", "model.safetensors", "state.json"]) {
      assert.ok(reads.includes(`get ${CUT}/${f}`), f);
    }
  });
});

/** Run the worker on two ranks under mpirun and read both ranks' reports. */
async function mpiRanks(
  args: [runDir: string, store: string, steps: string, out: string],
  env: Record<string, string> = {},
): Promise<RankReport[]> {
  const out = await new Deno.Command(mpirun!, {
    args: [
      "--allow-run-as-root",
      "--oversubscribe",
      "--bind-to",
      "none",
      "-np",
      "2",
      Deno.execPath(),
      "run",
      "-A",
      `${here}helpers/resume_rank_worker.ts`,
      ...args,
    ],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, `mpirun failed (${out.code}): ${new TextDecoder().decode(out.stderr)}`);
  return await Promise.all(
    [0, 1].map(async (r) => JSON.parse(await Deno.readTextFile(`${args[3]}.rank${r}.json`))),
  );
}

Deno.test({
  name: "mpirun -np 2 on a folder: rank 1 reads no checkpoint file; resume is bit-identical",
  ignore: !mpirun,
  fn: async () => {
    await withTempDir("xgen_rank0_mpi_", async (dir) => {
      await checkTornResume(
        (which, steps, pass) =>
          mpiRanks([`${dir}/${which}`, "-", String(steps), `${dir}/report${pass}`]),
        (which) => new LocalStore(`${dir}/${which}`),
      );
    });
  },
});

/** The `mpirun` argv that runs `deno run -A lib/cli/train.ts ...args` with one endpoint per rank. */
function trainPerRankEndpoints(endpoints: string[], args: string[]): string[] {
  const perRank = endpoints.flatMap((ep, r) => [
    ...(r > 0 ? [":"] : []),
    "-np",
    "1",
    "-x",
    `STORAGE_EMULATOR_HOST=${ep}`,
    "-x",
    "OPENBLAS_NUM_THREADS=1",
    "-x",
    "XGEN_BLAS_THREADS=1",
    Deno.execPath(),
    "run",
    "-A",
    `${ROOT}lib/cli/train.ts`,
    ...args,
  ]);
  return ["--allow-run-as-root", "--oversubscribe", "--bind-to", "none", ...perRank];
}

Deno.test({
  name:
    "mpirun -np 2 on gs://: rank 1 sends the bucket no request, in trainLoop and in train --resume",
  ignore: !mpirun,
  fn: async (t) => {
    const emu = await startGcsEmulator();
    await withTempDir("xgen_rank0_gcs_", async (dir) => {
      const proxies = [startCountingProxy(emu.endpoint), startCountingProxy(emu.endpoint)];
      const gcs = (prefix: string) =>
        new GcsStore(`gs://xgen-test/${prefix}`, { apiEndpoint: emu.endpoint });
      try {
        await t.step("trainLoop: counted per rank at the store", async () => {
          const env = { STORAGE_EMULATOR_HOST: emu.endpoint };
          const url = "gs://xgen-test/loop";
          await checkTornResume(
            (which, steps, pass) =>
              mpiRanks(
                [`${dir}/${which}`, `${url}/${which}`, String(steps), `${dir}/report${pass}`],
                env,
              ),
            (which) => gcs(`loop/${which}`),
          );
        });

        await t.step(
          "deno task train --checkpoints gs://... --resume: counted per rank at a proxy",
          async () => {
            const url = "gs://xgen-test/cli/r1";
            const args = [
              "--preset",
              "tiny",
              "--out",
              `${dir}/run`,
              "--skip-eval",
              "--procs",
              "2",
              "--checkpoints",
              url,
            ];
            const run = async (extra: string[]) => {
              const out = await new Deno.Command(mpirun!, {
                args: trainPerRankEndpoints(proxies.map((p) => p.endpoint), [...args, ...extra]),
                cwd: ROOT,
                env: { NO_COLOR: "1" },
                stdout: "piped",
                stderr: "piped",
              }).output();
              assert.ok(out.success, new TextDecoder().decode(out.stderr));
            };
            await run([]);
            assert.ok(proxies[0].requests.length > 0, "rank 0 wrote the checkpoints");
            assert.deepEqual(proxies[1].requests, [], "a fresh run: rank 1 sends nothing");
            const model = await Deno.readFile(`${dir}/run/unet/model/model.safetensors`);
            const losses = (await readMetrics(`${dir}/run/unet/metrics.jsonl`)).map((m) => m.loss);
            assert.equal(losses.length, 8);

            // Interrupted after the step-4 checkpoint: no step-8 checkpoint, no frozen UNet.
            await gcs("cli/r1/unet").deletePrefix("ckpt-00000008");
            await Deno.remove(`${dir}/run/unet/model`, { recursive: true });
            for (const p of proxies) p.requests.length = 0;
            await run(["--resume"]);
            assert.deepEqual(proxies[1].requests, [], "resume: rank 1 sends the bucket nothing");
            const gets = proxies[0].requests.filter((r) => r.method === "GET").map((r) => r.path);
            assert.ok(
              gets.some((p) => p.includes("prefix=cli%2Fr1%2Funet%2Fckpt-")),
              "rank 0 lists",
            );
            for (const f of ["manifest.json", "model", "ema", "optimizer", "state.json"]) {
              const key = `cli/r1/unet/${CUT}/${f.includes(".") ? f : `${f}.safetensors`}`;
              assert.ok(
                gets.some((p) => p.includes(encodeURIComponent(key))),
                `rank 0 reads ${key}`,
              );
            }
            const again = await Deno.readFile(`${dir}/run/unet/model/model.safetensors`);
            assert.ok(again.length === model.length && again.every((v, i) => v === model[i]));
            const after = (await readMetrics(`${dir}/run/unet/metrics.jsonl`)).map((m) => m.loss);
            assert.deepEqual(after, losses, "the resumed UNet has the uninterrupted losses");
          },
        );
      } finally {
        for (const p of proxies) await p.stop();
        await emu.stop();
      }
    });
  },
});
