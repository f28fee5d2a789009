/**
 * Run by tests/dist.test.ts under `mpirun -np 2`: exercises every collective and prints one JSON
 * line per rank with what it received.
 */
import {
  allGather,
  allreduceMean,
  assertSameOnAllRanks,
  worldCommunicator,
} from "../../lib/data_parallel/mod.ts";

const comm = worldCommunicator();
const r = comm.rank;
const sum32 = Float32Array.from([r + 1, 10 * (r + 1), -r]);
await comm.allreduceSum(sum32);
const sum64 = Float64Array.from([2 ** 40 + r]);
await comm.allreduceSum(sum64);
const mean = Float32Array.from([r, 4]);
await allreduceMean(comm, mean);
const bcast = Float32Array.from([r === 1 ? 7.5 : 0, r === 1 ? -1 : 0]);
await comm.broadcast(bcast, 1);
const gathered = await allGather(comm, [r * 10 + 0.25, -r - 1]);
let mismatch = "";
try {
  await assertSameOnAllRanks(comm, "probe", r);
} catch (e) {
  mismatch = (e as Error).message;
}
await assertSameOnAllRanks(comm, "equal probe", 5);
await comm.barrier();
console.log(JSON.stringify({
  rank: r,
  size: comm.size,
  sum32: Array.from(sum32),
  sum64: Array.from(sum64),
  mean: Array.from(mean),
  bcast: Array.from(bcast),
  gathered,
  mismatch,
}));
await comm.close();
