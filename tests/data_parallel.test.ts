/**
 * Data-parallel plumbing (lib/data_parallel) and trainLoop across ranks: the one-process world,
 * Open MPI collectives through FFI under `mpirun -np 2`, two ranks training exactly like one
 * process on the same global batch, and a two-rank run resumed from a checkpoint continuing with the same
 * losses (every rank's RNG restored).
 */
import assert from "node:assert/strict";
import {
  allGather,
  allreduceMean,
  assertSameOnAllRanks,
  findMpirun,
  mpiCommand,
  singleProcess,
} from "../lib/data_parallel/mod.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

const mpirun = await findMpirun();
const here = new URL(".", import.meta.url).pathname;

async function runMpi(procs: number, script: string, args: string[]): Promise<string> {
  const argv = mpiCommand({ procs, script: `${here}helpers/${script}`, args });
  const out = await new Deno.Command(argv[0], { args: argv.slice(1), stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`mpirun failed (${out.code}): ${new TextDecoder().decode(out.stderr)}`);
  }
  return text;
}

async function runAlone(script: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${here}helpers/${script}`, ...args],
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
}

Deno.test("a world of one: collectives are the identity, gather returns one row", async () => {
  const comm = singleProcess();
  assert.equal(comm.size, 1);
  const g = Float32Array.from([1.5, -2]);
  await comm.allreduceSum(g);
  await allreduceMean(comm, g);
  await comm.broadcast(g, 0);
  await comm.barrier();
  assert.deepEqual(Array.from(g), [1.5, -2]);
  assert.deepEqual(await allGather(comm, [3, 4]), [[3, 4]]);
  await assertSameOnAllRanks(comm, "x", 1);
  await assert.rejects(() => comm.broadcast(g, 1), /broadcast root 1 outside \[0, 1\)/);
  await comm.close();
  await assert.rejects(async () => await comm.barrier(), /barrier after close/);
});

Deno.test("mpiCommand: local ranks, one BLAS thread each, the script and its arguments", () => {
  const argv = mpiCommand({ procs: 3, script: "job.ts", args: ["--x", "1"], mpirun: "/m" });
  assert.equal(argv[0], "/m");
  assert.equal(argv[argv.indexOf("-np") + 1], "3");
  assert.ok(argv.includes("OPENBLAS_NUM_THREADS=1"));
  assert.deepEqual(argv.slice(-5), ["run", "-A", "job.ts", "--x", "1"]);
  assert.throws(() => mpiCommand({ procs: 0, script: "a.ts", args: [] }), /positive integer/);
});

Deno.test({
  name: "Open MPI collectives on two ranks: sums, mean, broadcast, gather, mismatch check",
  ignore: !mpirun,
  fn: async () => {
    const lines = (await runMpi(2, "mpi_collectives.ts", [])).trim().split("\n")
      .filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
    assert.equal(lines.length, 2);
    for (const o of lines) {
      assert.equal(o.size, 2);
      assert.deepEqual(o.sum32, [3, 30, -1]);
      assert.deepEqual(o.sum64, [2 ** 41 + 1]); // float64 sums stay exact above 2^32
      assert.deepEqual(o.mean, [0.5, 4]);
      assert.deepEqual(o.bcast, [7.5, -1]);
      assert.deepEqual(o.gathered, [[0.25, -1], [10.25, -2]]);
      assert.match(o.mismatch, /probe differs across ranks: rank 0 has 0, rank 1 has 1/);
    }
  },
});

Deno.test({
  name: "two ranks train like one process on the same global batch; resumes are exact",
  ignore: !mpirun,
  fn: async () => {
    await withTempDir("xgen_data_parallel_", async (dir) => {
      const read = async (f: string) => JSON.parse(await Deno.readTextFile(`${dir}/${f}`));
      // Noise-free loss: the averaged gradient of two half-batches is the full-batch gradient.
      await runMpi(2, "dp_worker.ts", [`${dir}/two`, "6", `${dir}/two.json`, "8", "0"]);
      await runAlone("dp_worker.ts", [`${dir}/one`, "6", `${dir}/one.json`, "8", "0"]);
      const two = await read("two.json"), one = await read("one.json");
      assert.equal(two.size, 2);
      assert.equal(one.size, 1);
      assert.equal(two.losses.length, 6);
      two.losses.forEach((l: number, i: number) =>
        assert.ok(Math.abs(l - one.losses[i]) <= 1e-5 * Math.abs(one.losses[i]), `step ${i + 1}`)
      );
      two.w.forEach((w: number, i: number) => assert.ok(Math.abs(w - one.w[i]) < 1e-5));
      assert.ok(two.losses[5] < two.losses[0], "the regression must learn");

      // With per-rank label noise: stop after the step-3 checkpoint, resume to 6, compare.
      await runMpi(2, "dp_worker.ts", [`${dir}/full`, "6", `${dir}/full.json`, "8", "0.3"]);
      await runMpi(2, "dp_worker.ts", [`${dir}/cut`, "3", `${dir}/cut1.json`, "8", "0.3"]);
      await runMpi(2, "dp_worker.ts", [`${dir}/cut`, "6", `${dir}/cut2.json`, "8", "0.3"]);
      const full = await read("full.json"), cut2 = await read("cut2.json");
      assert.deepEqual(cut2.losses, full.losses.slice(3));
      assert.deepEqual(cut2.w, full.w);
      const state = JSON.parse(await Deno.readTextFile(`${dir}/cut/ckpt-00000003/state.json`));
      assert.equal(state.rng.ranks.length, 2);
      assert.notDeepEqual(state.rng.ranks[0], state.rng.ranks[1]);
    });
  },
});

Deno.test({
  name: "deno task train --procs 2: the tiny preset trains data-parallel into one run folder",
  ignore: !mpirun,
  fn: async () => {
    await withTempDir("xgen_data_parallel_", async (dir) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          `${here}../lib/cli/train.ts`,
          "--preset",
          "tiny",
          "--out",
          `${dir}/run`,
          "--procs",
          "2",
          "--skip-eval",
        ],
        stderr: "piped",
        stdout: "piped",
      }).output();
      assert.ok(out.success, new TextDecoder().decode(out.stderr));
      const summary = JSON.parse(await Deno.readTextFile(`${dir}/run/summary.json`));
      assert.equal(summary.worldSize, 2);
      for (const part of ["autoencoder", "clip", "unet"]) {
        assert.ok((await Deno.stat(`${dir}/run/${part}/model/model.json`)).isFile, part);
      }
      const ckpts = [...Deno.readDirSync(`${dir}/run/unet`)].filter((e) =>
        e.name.startsWith("ckpt-")
      );
      const state = JSON.parse(
        await Deno.readTextFile(`${dir}/run/unet/${ckpts[0].name}/state.json`),
      );
      assert.equal(state.rng.ranks.length, 2);
      assert.equal(state.config.worldSize, 2);
      // Only rank 0 printed the final JSON line.
      const lines = new TextDecoder().decode(out.stdout).trim().split("\n").filter((l) =>
        l.startsWith("{")
      );
      assert.equal(lines.length, 1);
    });
  },
});
