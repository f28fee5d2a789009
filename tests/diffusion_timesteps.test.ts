// Reference lists derived by hand from diffusers' set_timesteps (PNDMScheduler, DDIMScheduler,
// DDPMScheduler, EulerDiscreteScheduler, DPMSolverMultistepScheduler) for SD v1's config.
import assert from "node:assert/strict";
import {
  DEFAULT_SPACING,
  makeSchedule,
  SD_SCHEDULER_CONFIG,
  timesteps,
} from "../lib/diffusion/mod.ts";
import { arange, linspace, roundHalfEven } from "../lib/diffusion/numpy_compat.ts";

const SD = SD_SCHEDULER_CONFIG;
const down = (from: number, step: number, n: number) =>
  Array.from({ length: n }, (_, k) => from - step * k);

Deno.test("PNDM 50 steps (SD): [981, 961, 961, 941, ..., 21, 1], 51 entries", () => {
  const ts = timesteps("pndm", 50, SD);
  // leading: arange(50)*20 + 1 = 1..981; plms = concat(ts[:-1], ts[-2:-1], ts[-1:])[::-1].
  const expected = [981, ...down(961, 20, 49).flatMap((t, k) => k === 0 ? [t, t] : [t])];
  assert.equal(expected.length, 51);
  assert.deepEqual(ts, expected);
  assert.deepEqual(ts.slice(0, 4), [981, 961, 961, 941]);
  assert.deepEqual(ts.slice(-2), [21, 1]);
  // 4 steps: ratio 250 -> [1, 251, 501, 751] -> [751, 501, 501, 251, 1].
  assert.deepEqual(timesteps("pndm", 4, SD), [751, 501, 501, 251, 1]);
  assert.deepEqual(timesteps("pndm", 1, SD), [1]);
  assert.throws(() => timesteps("pndm", 10, { ...SD, skipPrkSteps: false }), /skipPrkSteps=false/);
});

Deno.test("DDIM/DDPM: leading, linspace and trailing spacing", () => {
  assert.deepEqual(timesteps("ddim", 50, SD), down(981, 20, 50));
  assert.deepEqual(timesteps("ddpm", 50, SD), down(981, 20, 50));
  assert.deepEqual(timesteps("ddim", 50, { ...SD, stepsOffset: 0 }), down(980, 20, 50));
  // 1000 // 30 = 33: 33*29 + 1 = 958.
  assert.deepEqual(timesteps("ddim", 30, SD).slice(0, 3), [958, 925, 892]);
  const trailing = { ...SD, timestepSpacing: "trailing" as const };
  assert.deepEqual(timesteps("ddim", 50, trailing), down(999, 20, 50));
  // arange(1000, 0, -62.5) has .5 ties; numpy rounds half to even (937.5 -> 938, 812.5 -> 812).
  assert.deepEqual(
    timesteps("ddim", 16, trailing),
    [999, 937, 874, 811, 749, 687, 624, 561, 499, 437, 374, 311, 249, 187, 124, 61],
  );
  const lin = timesteps("ddim", 50, { ...SD, timestepSpacing: "linspace" });
  // round(j * 999/49): 978.61 -> 979, 958.22 -> 958, 937.84 -> 938 ... 40.78 -> 41, 20.39 -> 20.
  assert.deepEqual(lin.slice(0, 4), [999, 979, 958, 938]);
  assert.deepEqual(lin.slice(-5), [82, 61, 41, 20, 0]);
  assert.equal(lin.length, 50);
});

Deno.test("Euler: linspace default with float32 timesteps; leading and trailing", () => {
  assert.equal(DEFAULT_SPACING.euler, "linspace");
  const ts = timesteps("euler", 50, SD);
  assert.equal(ts.length, 50);
  assert.equal(ts[0], 999);
  assert.equal(ts[49], 0);
  assert.ok(Math.abs(ts[1] - 48 * 999 / 49) < 1e-4, `${ts[1]}`); // 978.6122...
  assert.equal(ts[1], Math.fround(ts[1]), "float32 value");
  assert.notEqual(ts[1], Math.round(ts[1]), "not rounded to an integer");
  assert.deepEqual(
    timesteps("euler", 50, { ...SD, timestepSpacing: "leading" }),
    down(981, 20, 50),
  );
  assert.deepEqual(
    timesteps("euler", 50, { ...SD, timestepSpacing: "trailing" }),
    down(999, 20, 50),
  );
});

Deno.test("DPM-Solver++: linspace default over steps+1 points, leading, trailing", () => {
  assert.equal(DEFAULT_SPACING.dpmpp_2m, "linspace");
  // round(j * 39.96) for j = 25..1: 519.48 -> 519, 479.52 -> 480.
  assert.deepEqual(timesteps("dpmpp_2m", 25, SD), [
    999,
    959,
    919,
    879,
    839,
    799,
    759,
    719,
    679,
    639,
    599,
    559,
    519,
    480,
    440,
    400,
    360,
    320,
    280,
    240,
    200,
    160,
    120,
    80,
    40,
  ]);
  // leading: 1000 // 26 = 38, arange(26)*38 reversed, last dropped, + steps_offset 1.
  const lead = timesteps("dpmpp_2m", 25, { ...SD, timestepSpacing: "leading" });
  assert.deepEqual(lead, down(951, 38, 25));
  assert.deepEqual(
    timesteps("dpmpp_2m", 25, { ...SD, timestepSpacing: "trailing" }),
    down(999, 40, 25),
  );
  assert.deepEqual(timesteps("dpmpp_2m", 3, SD), [999, 666, 333]);
});

Deno.test("timesteps accepts a NoiseSchedule and rejects bad arguments", () => {
  assert.deepEqual(timesteps("ddim", 10, makeSchedule()), timesteps("ddim", 10, SD));
  assert.throws(() => timesteps("ddim", 0, SD), /steps must be an integer in \[1, 1000\]/);
  assert.throws(() => timesteps("ddim", 1001, SD), /steps must be/);
  assert.throws(() => timesteps("heun" as never, 10, SD), /unknown sampler "heun"/);
});

Deno.test("numpy helpers: round half to even, linspace, arange", () => {
  assert.deepEqual([0.5, 1.5, 2.5, -1.5, 2.4, 2.6].map(roundHalfEven), [0, 2, 2, -2, 2, 3]);
  assert.deepEqual(linspace(0, 1, 5), [0, 0.25, 0.5, 0.75, 1]);
  assert.deepEqual(linspace(3, 7, 1), [3]);
  assert.deepEqual(arange(10, 0, -2.5), [10, 7.5, 5, 2.5]);
  assert.equal(arange(1000, 0, -1000 / 30).length, 30);
  assert.deepEqual(arange(0, 3, 1), [0, 1, 2]);
});
