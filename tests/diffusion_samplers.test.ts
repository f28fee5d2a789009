import assert from "node:assert/strict";
import {
  classifierFreeGuidance,
  ddimInvert,
  getSampler,
  makeSchedule,
  type ModelFn,
  type NoiseSchedule,
  type PredictionType,
  sampleDdim,
  sampleDdpm,
  sampleDpmSolverPP2M,
  sampleEuler,
  samplePndm,
  SAMPLERS,
  SD_SCHEDULER_CONFIG,
  timesteps,
} from "../lib/diffusion/mod.ts";
import { Rng, STREAM } from "../lib/util/rng.ts";
import { assertClose, maxAbsDiff } from "./helpers/assert_close.ts";

const SD = SD_SCHEDULER_CONFIG;

/** Alpha-bar at (possibly fractional) t, recomputed here from the SD closed form. */
function sdAlphaBar(): (t: number) => number {
  const r0 = Math.sqrt(0.00085), r1 = Math.sqrt(0.012);
  const ab: number[] = [];
  let p = 1;
  for (let i = 0; i < 1000; i++) ab.push(p *= 1 - (r0 + (r1 - r0) * i / 999) ** 2);
  const sig = ab.map((a) => Math.sqrt((1 - a) / a));
  return (t: number) => {
    if (Number.isInteger(t)) return ab[t];
    const lo = Math.floor(t), w = t - lo; // np.interp on sigma, as diffusers' Euler
    const s = sig[lo] * (1 - w) + sig[lo + 1] * w;
    return 1 / (1 + s * s);
  };
}
const abar = sdAlphaBar();

/**
 * Exact predictor for data ~ N(mu, s^2) elementwise: E[eps | x_t] = sqrt(1-a)(x - sqrt(a) mu) /
 * (a s^2 + 1 - a), E[x0 | x_t] = mu + sqrt(a) s^2 (x - sqrt(a) mu) / (a s^2 + 1 - a).
 */
function gaussianModel(mu: number, s: number, pt: PredictionType): ModelFn {
  return (x, t) => {
    const a = abar(t);
    const d = a * s * s + 1 - a;
    const out = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const r = x[i] - Math.sqrt(a) * mu;
      const eps = Math.sqrt(1 - a) * r / d;
      const x0 = mu + Math.sqrt(a) * s * s * r / d;
      out[i] = pt === "epsilon" ? eps : Math.sqrt(a) * eps - Math.sqrt(1 - a) * x0;
    }
    return Promise.resolve(out);
  };
}

function meanStd(y: ArrayLike<number>): [number, number] {
  let m = 0;
  for (let i = 0; i < y.length; i++) m += y[i];
  m /= y.length;
  let v = 0;
  for (let i = 0; i < y.length; i++) v += (y[i] - m) ** 2;
  return [m, Math.sqrt(v / y.length)];
}

Deno.test("every sampler recovers N(mu, s^2) from the exact Gaussian predictor (eps and v, 50 steps)", async () => {
  const mu = 0.7, s = 0.5, n = 20000;
  // Deterministic samplers start from N(0, 1) instead of the true x_T marginal
  // N(sqrt(a_T) mu, ~1): the flow carries that offset to a mean bias of
  // -s sqrt(a_T) mu / sqrt(a_T s^2 + 1 - a_T) ~ -0.026, hence the mean tolerances.
  // Ancestral DDPM with 50 big jumps under-disperses (~-0.045 std; it shrinks with more steps).
  const tol: Record<string, [number, number]> = {
    ddpm: [0.02, 0.06],
    ddim: [0.04, 0.035],
    pndm: [0.05, 0.025],
    euler: [0.04, 0.04],
    dpmpp_2m: [0.04, 0.03],
  };
  for (const pt of ["epsilon", "v_prediction"] as const) {
    const schedule = makeSchedule({ ...SD, predictionType: pt });
    const model = gaussianModel(mu, s, pt);
    for (const [name, sample] of Object.entries(SAMPLERS)) {
      const x = Rng.stream(11, [1]).normal(n);
      const y = await sample(model, x, schedule, { steps: 50, seed: 5 });
      const [m, sd] = meanStd(y);
      const [tm, ts] = tol[name];
      assert.ok(Math.abs(m - mu) < tm, `${pt} ${name}: mean ${m}`);
      assert.ok(Math.abs(sd - s) < ts, `${pt} ${name}: std ${sd}`);
    }
  }
});

Deno.test("deterministic samplers follow the exact probability-flow map; DPM++ and PLMS are higher order", async () => {
  // For Gaussian data the PF-ODE keeps z = (x_t - sqrt(a) mu) / sqrt(a s^2 + 1 - a) constant, so
  // the exact endpoint of each x_T is known per element.
  const mu = 0.7, s = 3, n = 2000;
  const schedule = makeSchedule(SD);
  const model = gaussianModel(mu, s, "epsilon");
  const err = async (name: "ddim" | "pndm" | "euler" | "dpmpp_2m", steps: number) => {
    const x = Rng.stream(2, [7]).normal(n);
    const y = await SAMPLERS[name](model, x, schedule, { steps });
    const ts = timesteps(name, steps, SD);
    const aT = abar(ts[0]);
    // Euler starts at x * sigma_max in sigma space = x * sqrt(1 - a_T) in VP space.
    const k = name === "euler" ? Math.sqrt(1 - aT) : 1;
    const af = name === "ddim" || name === "pndm" ? abar(0) : 1; // set_alpha_to_one = false
    let e = 0;
    for (let i = 0; i < n; i++) {
      const z = (k * x[i] - Math.sqrt(aT) * mu) / Math.sqrt(aT * s * s + 1 - aT);
      e = Math.max(e, Math.abs(y[i] - (Math.sqrt(af) * mu + Math.sqrt(af * s * s + 1 - af) * z)));
    }
    return e;
  };
  const e10 = {
    ddim: await err("ddim", 10),
    pndm: await err("pndm", 10),
    dpm: await err("dpmpp_2m", 10),
  };
  const e25 = {
    ddim: await err("ddim", 25),
    pndm: await err("pndm", 25),
    dpm: await err("dpmpp_2m", 25),
  };
  // Order from the error ratio 10 -> 25 steps: first order ~2.5, second order ~6.
  assert.ok(e10.ddim / e25.ddim < 3, `ddim ratio ${e10.ddim / e25.ddim}`);
  assert.ok(e10.dpm / e25.dpm > 4, `dpm++ ratio ${e10.dpm / e25.dpm}`);
  assert.ok(e10.pndm / e25.pndm > 4, `pndm ratio ${e10.pndm / e25.pndm}`);
  assert.ok(await err("pndm", 50) < 5e-3);
  assert.ok(await err("dpmpp_2m", 50) < 2e-2);
  // DDIM and Euler are first order: doubling the steps halves the error. Measured order
  // log2(e50 / e100) is 0.97 (DDIM) and 1.00 (Euler); 50 and 100 divide 1000, so DDIM's grid
  // is exactly halved. (Their endpoints are pinned to diffusers' update in the next test.)
  for (const name of ["ddim", "euler"] as const) {
    const e50 = await err(name, 50), e100 = await err(name, 100);
    const order = Math.log2(e50 / e100);
    assert.ok(order > 0.9 && order < 1.1, `${name}: order ${order} (errors ${e50}, ${e100})`);
  }
});

/**
 * diffusers' `DDIMScheduler` (eta 0) written out from its `set_timesteps` and `step` in float64:
 * "leading" spacing `t_i = i * (N // steps) + steps_offset` descending, `prev_t = t - N // steps`,
 * the final alpha-bar `alphas_cumprod[0]` (set_alpha_to_one false).
 */
async function ddimByHand(model: ModelFn, x: Float32Array, steps: number, pt: PredictionType) {
  const r = Math.floor(1000 / steps);
  let cur = Array.from(x);
  for (let i = steps - 1; i >= 0; i--) {
    const t = i * r + 1, prev = t - r;
    const a = abar(t), ap = prev >= 0 ? abar(prev) : abar(0);
    const out = await model(Float32Array.from(cur), t);
    cur = cur.map((v, k) => {
      const x0 = pt === "epsilon"
        ? (v - Math.sqrt(1 - a) * out[k]) / Math.sqrt(a)
        : Math.sqrt(a) * v - Math.sqrt(1 - a) * out[k];
      const eps = pt === "epsilon" ? out[k] : Math.sqrt(a) * out[k] + Math.sqrt(1 - a) * v;
      return Math.sqrt(ap) * x0 + Math.sqrt(1 - ap) * eps;
    });
  }
  return cur;
}

/**
 * diffusers' `EulerDiscreteScheduler` (no churn) in float64: float32 timesteps
 * `linspace(0, 999, steps)` descending, sigmas interpolated there and 0 appended, the noise
 * scaled by the largest sigma, the model fed `x / sqrt(sigma^2 + 1)`, then
 * `x += (x - x0) / sigma * (sigma_next - sigma)`.
 */
async function eulerByHand(model: ModelFn, x: Float32Array, steps: number, pt: PredictionType) {
  const ts = Array.from({ length: steps }, (_, i) => Math.fround(999 * i / (steps - 1))).reverse();
  const sg = ts.map((t) => Math.sqrt((1 - abar(t)) / abar(t))).concat(0);
  let cur = Array.from(x, (v) => v * sg[0]);
  for (let i = 0; i < steps; i++) {
    const s = sg[i], c = 1 / Math.sqrt(s * s + 1);
    const out = await model(Float32Array.from(cur, (v) => v * c), ts[i]);
    cur = cur.map((v, k) => {
      const x0 = pt === "epsilon" ? v - s * out[k] : out[k] * (-s * c) + v * c * c;
      return v + (v - x0) / s * (sg[i + 1] - s);
    });
  }
  return cur;
}

Deno.test("DDIM and Euler equal diffusers' update written out by hand (50 steps, eps and v)", async () => {
  // The same Gaussian predictor as above (an x-dependent model, so every step's input matters).
  // Both sides keep float64 state and hand the model float32, so they agree to rounding.
  const x = Rng.stream(2, [7]).normal(500);
  for (const pt of ["epsilon", "v_prediction"] as const) {
    const schedule = makeSchedule({ ...SD, predictionType: pt });
    const model = gaussianModel(0.7, 3, pt);
    for (const [name, byHand] of [["ddim", ddimByHand], ["euler", eulerByHand]] as const) {
      const want = await byHand(model, x, 50, pt);
      const got = await SAMPLERS[name](model, x, schedule, { steps: 50 });
      const scale = Math.max(...want.map(Math.abs));
      assert.ok(scale > 1, `${name} ${pt}: output scale ${scale}`);
      assertClose(got, want, 1e-6, `${name} ${pt}: vs diffusers`);
    }
  }
});

Deno.test("PNDM reproduces diffusers' PLMS warm-up by hand (4 steps, x-independent model)", async () => {
  const schedule = makeSchedule(SD);
  const pattern = Float64Array.from({ length: 6 }, (_, i) => Math.sin(i + 1));
  const e = (t: number) => pattern.map((p) => p * (0.5 + t / 1000));
  const seen: number[] = [];
  const inputs: Float32Array[] = [];
  const model: ModelFn = (x, t) => {
    seen.push(t);
    inputs.push(x);
    return Promise.resolve(Float32Array.from(e(t)));
  };
  const x0 = Rng.stream(3).normal(6);
  const y = await samplePndm(model, x0, schedule, { steps: 4 });
  assert.deepEqual(seen, [751, 501, 501, 251, 1]);
  // DDIM-form transfer (PNDM eq. 9 is algebraically the eta=0 DDIM step).
  const step = (x: ArrayLike<number>, t: number, tp: number, eps: ArrayLike<number>) => {
    const a = abar(t), ap = tp >= 0 ? abar(tp) : abar(0);
    return Array.from(
      x,
      (v, i) =>
        Math.sqrt(ap) * (v - Math.sqrt(1 - a) * eps[i]) / Math.sqrt(a) + Math.sqrt(1 - ap) * eps[i],
    );
  };
  const comb = (ws: number[], es: Float64Array[], d: number) =>
    es[0].map((_, i) => es.reduce((acc, ek, k) => acc + ws[k] * ek[i], 0) / d);
  const [e0, e1, e2, e3, e4] = [e(751), e(501), e(501), e(251), e(1)];
  // Call 1 runs at x_501 = step(x0, 751 -> 501, e0); then the same step is redone from the saved
  // x0 with the mean of both predictions.
  assertClose(inputs[1], step(x0, 751, 501, e0), 1e-6, "call 1 input", { scale: "absolute" });
  const x1 = step(x0, 751, 501, comb([1, 1], [e0, e1], 2));
  assertClose(inputs[2], x1, 1e-6, "call 2 input", { scale: "absolute" });
  const x2 = step(x1, 501, 251, comb([-1, 3], [e0, e2], 2)); // AB2
  const x3 = step(x2, 251, 1, comb([5, -16, 23], [e0, e2, e3], 12)); // AB3
  const x4 = step(x3, 1, -249, comb([-9, 37, -59, 55], [e0, e2, e3, e4], 24)); // AB4
  assertClose(y, x4, 1e-5, "pndm vs hand", { scale: "absolute" });
});

Deno.test("DPM-Solver++(2M) matches Lu et al. Algorithm 2 written out by hand (3 steps)", async () => {
  const schedule = makeSchedule(SD);
  // A linear x-dependent eps model.
  const model: ModelFn = (x, t) =>
    Promise.resolve(x.map((v, i) => 0.3 * v + 0.1 * Math.cos(i) * (t / 999)));
  const x = Rng.stream(4).normal(5);
  const y = await sampleDpmSolverPP2M(model, x, schedule, { steps: 3 });
  // timesteps [999, 666, 333], then sigma = 0.
  const ts = [999, 666, 333];
  const al = ts.map((t) => Math.sqrt(abar(t))).concat(1);
  const sg = ts.map((t) => Math.sqrt(1 - abar(t))).concat(0);
  const lam = al.map((a, i) => Math.log(a / sg[i]));
  const x0hat = async (v: number[], k: number) => {
    const e = await model(Float32Array.from(v), ts[k]);
    return v.map((vi, i) => (vi - sg[k] * e[i]) / al[k]);
  };
  let cur = Array.from(x);
  const d0 = await x0hat(cur, 0);
  let h = lam[1] - lam[0];
  cur = cur.map((v, i) => sg[1] / sg[0] * v - al[1] * (Math.exp(-h) - 1) * d0[i]);
  const d1 = await x0hat(cur, 1);
  h = lam[2] - lam[1];
  const r = (lam[1] - lam[0]) / h;
  const D = d1.map((v, i) => (1 + 1 / (2 * r)) * v - (1 / (2 * r)) * d0[i]);
  cur = cur.map((v, i) => sg[2] / sg[1] * v - al[2] * (Math.exp(-h) - 1) * D[i]);
  const d2 = await x0hat(cur, 2); // final step to sigma 0 is first order: returns x0-hat
  assertClose(y, d2, 1e-5, "dpm++ vs hand", { scale: "absolute" });
});

Deno.test("Euler: init_noise_sigma, scale_model_input and sigma steps by hand", async () => {
  const schedule = makeSchedule(SD);
  const sig = (t: number) => Math.sqrt((1 - abar(t)) / abar(t));
  const e = Float32Array.from([0.3, -1.2, 0.8]);
  const inputs: Float32Array[] = [];
  const model: ModelFn = (xin) => {
    inputs.push(xin);
    return Promise.resolve(e);
  };
  const x = Float32Array.from([1, -0.5, 2]);
  // linspace, 2 steps: timesteps [999, 0]; init noise sigma = sigma(999).
  let y = await sampleEuler(model, x, schedule, { steps: 2 });
  const [s0, s1] = [sig(999), sig(0)];
  for (let i = 0; i < 3; i++) {
    const xa = x[i] * s0;
    assert.ok(Math.abs(inputs[0][i] - xa / Math.sqrt(s0 * s0 + 1)) < 1e-5);
    const xb = xa - (s0 - s1) * e[i];
    assert.ok(Math.abs(inputs[1][i] - xb / Math.sqrt(s1 * s1 + 1)) < 1e-5);
    assert.ok(Math.abs(y[i] - (xb - s1 * e[i])) < 1e-4);
  }
  // leading spacing: init is sqrt(sigma_max^2 + 1) (diffusers), timesteps [501, 1].
  inputs.length = 0;
  y = await sampleEuler(model, x, schedule, { steps: 2, timestepSpacing: "leading" });
  const [l0, l1] = [sig(501), sig(1)];
  const init = Math.sqrt(l0 * l0 + 1);
  for (let i = 0; i < 3; i++) {
    assert.ok(Math.abs(inputs[0][i] - x[i] * init / Math.sqrt(l0 * l0 + 1)) < 1e-5);
    assert.ok(Math.abs(y[i] - (x[i] * init - (l0 - l1) * e[i] - l1 * e[i])) < 1e-4);
  }
});

Deno.test("DDIM eta=0 inversion round-trips: exactly for an x-independent model, closely for a linear one", async () => {
  const schedule = makeSchedule(SD);
  const x0 = Rng.stream(8).normal(4096).map((v) => 0.2 + 0.8 * v); // data of the linear model below
  const field: ModelFn = (x, t) =>
    Promise.resolve(x.map((_, i) => Math.sin(0.01 * i) * Math.cos(t / 300)));
  const z = await ddimInvert(field, x0, schedule, { steps: 50 });
  assert.ok(maxAbsDiff(z, x0) > 0.1, "inversion moved the sample");
  const back = await sampleDdim(field, z, schedule, { steps: 50 });
  assertClose(back, x0, 1e-5, "x-independent round trip", { scale: "absolute" });

  // Linear, smooth in x: the model is evaluated at a neighbouring state, so only approximate.
  const lin = gaussianModel(0.2, 0.8, "epsilon");
  const z2 = await ddimInvert(lin, x0, schedule, { steps: 50 });
  const [, zs] = meanStd(z2);
  assert.ok(Math.abs(zs - 1) < 0.15, `inverted noise std ${zs}`);
  const back2 = await sampleDdim(lin, z2, schedule, { steps: 50 });
  assertClose(back2, x0, 0.05, "linear round trip", { scale: "absolute" });
  await assert.rejects(
    () => ddimInvert(field, x0, schedule, { steps: 50, strength: 0.5 }),
    /strength/,
  );
});

Deno.test("same seed gives identical samples; DDPM and DDIM(eta=1) differ across seeds", async () => {
  const schedule = makeSchedule(SD);
  const model = gaussianModel(0, 1, "epsilon");
  const x = Rng.stream(1).normal(256);
  for (const [f, eta] of [[sampleDdpm, undefined], [sampleDdim, 1]] as const) {
    const a = await f(model, x, schedule, { steps: 20, seed: 1, eta });
    const b = await f(model, x, schedule, { steps: 20, seed: 1, eta });
    const c = await f(model, x, schedule, { steps: 20, seed: 2, eta });
    const d = await f(model, x, schedule, { steps: 20, rng: Rng.stream(1, [STREAM.sampler]), eta });
    assert.deepEqual(a, b);
    assert.deepEqual(a, d); // seed s means Rng.stream(s, [STREAM.sampler])
    assert.ok(maxAbsDiff(a, c) > 0.1);
  }
  // eta = 0 draws nothing: the seed is irrelevant.
  assert.deepEqual(
    await sampleDdim(model, x, schedule, { steps: 20, seed: 1 }),
    await sampleDdim(model, x, schedule, { steps: 20, seed: 2 }),
  );
});

Deno.test("img2img: strength 1 equals txt2img on the noised latent; strength sets the step count", async () => {
  const schedule = makeSchedule(SD);
  const model = gaussianModel(0.1, 0.9, "epsilon");
  const n = 64;
  const init = Rng.stream(6).normal(n);
  const seed = 9;
  const noise = Rng.stream(seed, [STREAM.sampler]).normal(n);
  // diffusers: add_noise(init, noise, timesteps[t_start]) then the usual loop.
  const a = abar(981);
  const noised = init.map((v, i) => Math.sqrt(a) * v + Math.sqrt(1 - a) * noise[i]);
  const full = await sampleDdim(model, Float32Array.from(noised), schedule, { steps: 50 });
  const i2i = await sampleDdim(model, init, schedule, { steps: 50, strength: 1, seed });
  assertClose(full, i2i, 1e-6, "strength 1 vs full DDIM", { scale: "absolute" });

  const record = async (name: keyof typeof SAMPLERS, strength: number, steps = 50) => {
    const ts: number[] = [];
    const xs: Float32Array[] = [];
    const m: ModelFn = (x, t) => (ts.push(t), xs.push(x), model(x, t));
    await SAMPLERS[name](m, init, schedule, { steps, strength, seed });
    return { ts, xs };
  };
  // init = floor(50 * 0.6) = 30, t_start = 20: DDIM starts at 981 - 20*20 = 581.
  const d = await record("ddim", 0.6);
  assert.equal(d.ts.length, 30);
  assert.equal(d.ts[0], 581);
  const a581 = abar(581);
  assertClose(
    d.xs[0],
    init.map((v, i) => Math.sqrt(a581) * v + Math.sqrt(1 - a581) * noise[i]),
    1e-6,
    "ddim noised init",
    { scale: "absolute" },
  );
  // PNDM slices its 51-entry list at t_start = 25: 26 calls from 501.
  const p = await record("pndm", 0.5);
  assert.equal(p.ts.length, 26);
  assert.deepEqual(p.ts.slice(0, 3), [501, 481, 461]);
  assert.equal((await record("ddpm", 0.2)).ts.length, 10);
  assert.equal((await record("dpmpp_2m", 0.3)).ts.length, 15);
  // Euler noises in sigma space (x0 + sigma noise), the model sees it scaled by 1/sqrt(sigma^2+1).
  const e = await record("euler", 0.3);
  assert.equal(e.ts.length, 15);
  const sg = schedule.sigmaAt(e.ts[0]);
  const c = 1 / Math.sqrt(sg * sg + 1);
  assertClose(e.xs[0], init.map((v, i) => (v + sg * noise[i]) * c), 1e-6, "euler noised init", {
    scale: "absolute",
  });
  await assert.rejects(
    () => sampleDdim(model, init, schedule, { steps: 50, strength: 0.01 }),
    /0 denoising steps/,
  );
  await assert.rejects(
    () => sampleDdim(model, init, schedule, { steps: 50, strength: 1.5 }),
    /strength must be in/,
  );
});

Deno.test("classifier-free guidance: one batched call, [uncond, cond] halves, scale 0/1/7.5", async () => {
  let calls = 0;
  const batched = (x2: Float32Array, t: number) => {
    calls++;
    const n = x2.length / 2;
    assert.deepEqual(x2.subarray(0, n), x2.subarray(n));
    const out = new Float32Array(2 * n);
    for (let i = 0; i < n; i++) {
      out[i] = 0.5 * x2[i] + t / 1000; // uncond
      out[n + i] = -0.25 * x2[n + i] + Math.sin(i); // cond
    }
    return Promise.resolve(out);
  };
  const x = Rng.stream(2).normal(33);
  const u = x.map((v) => 0.5 * v + 0.4);
  const c = x.map((v, i) => -0.25 * v + Math.sin(i));
  assert.deepEqual(await classifierFreeGuidance(batched, 1)(x, 400), c);
  assert.deepEqual(await classifierFreeGuidance(batched, 0)(x, 400), u);
  const g = await classifierFreeGuidance(batched, 7.5)(x, 400);
  assertClose(g, u.map((v, i) => v + 7.5 * (c[i] - v)), 1e-5, "guidance 7.5", {
    scale: "absolute",
  });
  assert.equal(calls, 3);
  calls = 0;
  const schedule = makeSchedule(SD);
  const steps: number[] = [];
  await samplePndm(classifierFreeGuidance(batched, 5), x, schedule, {
    steps: 10,
    onStep: (i, total) => steps.push(i, total),
  });
  assert.equal(calls, 11); // PLMS: steps + 1 model evaluations, each one batched call
  assert.deepEqual(steps.slice(0, 4), [0, 11, 1, 11]);
  const bad = classifierFreeGuidance(() => Promise.resolve(new Float32Array(3)), 2);
  await assert.rejects(() => bad(x, 1), /expected a Float32Array of 66/);
});

Deno.test("registry, onStep and model-output checks", async () => {
  assert.deepEqual(Object.keys(SAMPLERS), ["ddpm", "ddim", "pndm", "euler", "dpmpp_2m"]);
  assert.equal(getSampler("euler"), sampleEuler);
  assert.throws(() => getSampler("lms"), /unknown sampler "lms"; expected one of ddpm, ddim/);
  const schedule: NoiseSchedule = makeSchedule(SD);
  const x = new Float32Array(8);
  for (const [name, f] of Object.entries(SAMPLERS)) {
    const seen: number[] = [];
    await f((v) => Promise.resolve(new Float32Array(v.length)), x, schedule, {
      steps: 7,
      onStep: (i, total) => seen.push(total - i),
    });
    const calls = name === "pndm" ? 8 : 7;
    assert.deepEqual(seen, Array.from({ length: calls }, (_, i) => calls - i), name);
    await assert.rejects(
      () => f(() => Promise.resolve(new Float32Array(3)), x, schedule, { steps: 7 }),
      new RegExp(
        `${name}: model returned 3 values at t=\\d+(\\.\\d+)?, expected a Float32Array of 8`,
      ),
    );
  }
});
