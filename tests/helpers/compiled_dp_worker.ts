/**
 * One rank of the compiled engine's `mpirun -np 2` check (tests/compiled_data_parallel.test.ts),
 * started by `mpirun` or alone: trains with `trainCompiledRank` and, on rank 0, writes the losses
 * and the final weights (flattened in name order) as JSON.
 *
 * Usage: deno run -A tests/helpers/compiled_dp_worker.ts RUN_DIR STEPS OUT.json GLOBAL_BATCH
 */
import { worldCommunicator } from "../../lib/data_parallel/mod.ts";
import { trainCompiledRank } from "./compiled_dp.ts";

const [runDir, steps, out, batch] = Deno.args;
const comm = worldCommunicator();
const r = await trainCompiledRank({
  comm,
  runDir,
  steps: Number(steps),
  globalBatch: Number(batch),
});
if (comm.rank === 0) {
  const names = Object.keys(r.params).sort();
  await Deno.writeTextFile(
    out,
    JSON.stringify({
      size: comm.size,
      losses: r.losses,
      params: Object.fromEntries(names.map((n) => [n, Array.from(r.params[n])])),
    }),
  );
}
await comm.close();
