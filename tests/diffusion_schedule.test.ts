import assert from "node:assert/strict";
import {
  captionDropout,
  fromDiffusersConfig,
  makeSchedule,
  minSnrWeights,
  readDiffusersConfig,
  sampleTimesteps,
  SD_SCHEDULER_CONFIG,
  SD_SCHEDULER_JSON,
  toDiffusersConfig,
} from "../lib/diffusion/mod.ts";
import { Rng } from "../lib/util/rng.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

const close = (a: number, b: number, tol: number, what = "") =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b} (tol ${tol})`);

Deno.test("scaled_linear betas are linspace(sqrt(b0), sqrt(b1))^2 and SD abar[999] ~ 0.0047", () => {
  const s = makeSchedule(SD_SCHEDULER_CONFIG);
  assert.equal(s.betas.length, 1000);
  close(s.betas[0], 0.00085, 1e-15, "first beta");
  close(s.betas[999], 0.012, 1e-15, "last beta");
  // Midpoint of the sqrt-linspace: ((sqrt(b0)+sqrt(b1))/2)^2, not the arithmetic mean.
  const mid = ((Math.sqrt(0.00085) + Math.sqrt(0.012)) / 2) ** 2;
  close((s.betas[499] + s.betas[500]) / 2, mid, 1e-7, "mid beta");
  // Independent float64 loop.
  let prod = 1;
  const r0 = Math.sqrt(0.00085), r1 = Math.sqrt(0.012);
  for (let i = 0; i < 1000; i++) prod *= 1 - (r0 + (r1 - r0) * i / 999) ** 2;
  close(s.alphasCumprod[999], prod, 1e-15, "abar[999]");
  close(s.alphasCumprod[999], 0.0047, 5e-5, "abar[999] ~ 0.0047");
  for (let i = 1; i < 1000; i++) assert.ok(s.alphasCumprod[i] < s.alphasCumprod[i - 1]);
  close(s.finalAlphaCumprod, 1 - 0.00085, 1e-15, "final alpha (set_alpha_to_one=false)");
  close(s.sigmas[999], Math.sqrt((1 - prod) / prod), 1e-12, "sigma");
  close(s.snr(999), prod / (1 - prod), 1e-15, "snr");
  assert.equal(makeSchedule({ setAlphaToOne: true }).finalAlphaCumprod, 1);
});

Deno.test("linear betas hit both ends; squaredcos_cap_v2 telescopes to f(t)/f(0) with the 0.999 cap", () => {
  const lin = makeSchedule({ betaSchedule: "linear", betaStart: 1e-4, betaEnd: 0.02 });
  close(lin.betas[0], 1e-4, 1e-18, "lin b0");
  close(lin.betas[999], 0.02, 1e-17, "lin b1");
  close(lin.betas[1] - lin.betas[0], (0.02 - 1e-4) / 999, 1e-15, "lin step");

  const N = 1000;
  const cos = makeSchedule({ betaSchedule: "squaredcos_cap_v2", numTrainTimesteps: N });
  const f = (t: number) => Math.cos(((t + 0.008) / 1.008) * Math.PI / 2) ** 2;
  // Without the cap, prod(1 - beta_i) = prod f((i+1)/N)/f(i/N) = f((t+1)/N)/f(0).
  for (const t of [0, 10, 500, 900, 990]) {
    close(cos.alphasCumprod[t], f((t + 1) / N) / f(0), 1e-12, `cos abar[${t}]`);
  }
  assert.equal(cos.betas[N - 1], 0.999); // uncapped it would be ~1
  close(cos.betas[0], 1 - f(1 / N) / f(0), 1e-15, "cos beta0");
  for (let i = 1; i < N; i++) assert.ok(cos.alphasCumprod[i] < cos.alphasCumprod[i - 1]);
});

Deno.test("addNoise / vTarget / predToX0Eps round trips, per-sample timesteps", () => {
  const rng = Rng.stream(1, [0]);
  for (const pt of ["epsilon", "v_prediction"] as const) {
    const s = makeSchedule({ predictionType: pt });
    const x0 = rng.normal(12);
    const eps = rng.normal(12);
    const ts = [3, 400, 999];
    const xt = s.addNoise(x0, eps, ts);
    for (let i = 0; i < 12; i++) {
      const a = s.alphasCumprod[ts[Math.floor(i / 4)]];
      close(xt[i], Math.sqrt(a) * x0[i] + Math.sqrt(1 - a) * eps[i], 1e-6, "addNoise");
    }
    const pred = s.target(x0, eps, ts);
    const back = s.predToX0Eps(pred, xt, ts);
    for (let i = 0; i < 12; i++) {
      // x0 at t=999 is amplified by 1/sqrt(abar) ~ 14.6 from float32 x_t.
      close(back.x0[i], x0[i], 2e-5 * 15, `${pt} x0`);
      close(back.eps[i], eps[i], 2e-5, `${pt} eps`);
    }
    // v = sqrt(a) eps - sqrt(1-a) x0 at a scalar t.
    const v = s.vTarget(x0, eps, 400);
    const a = s.alphasCumprod[400];
    close(v[5], Math.sqrt(a) * eps[5] - Math.sqrt(1 - a) * x0[5], 1e-6, "v");
  }
  const s = makeSchedule();
  assert.throws(
    () => s.addNoise(new Float32Array(5), new Float32Array(5), [1, 2]),
    /cannot be split/,
  );
  assert.throws(() => s.addNoise(new Float32Array(2), new Float32Array(2), 1000), /\[0, 999\]/);
});

Deno.test("fractional timesteps interpolate sigma linearly like np.interp", () => {
  const s = makeSchedule();
  const t = 978.5;
  close(s.sigmaAt(t), (s.sigmas[978] + s.sigmas[979]) / 2, 1e-12, "sigma interp");
  close(s.alphaBarAt(t), 1 / (1 + s.sigmaAt(t) ** 2), 1e-15, "abar from sigma");
  close(s.alphaBarAt(978), s.alphasCumprod[978], 0, "integer t exact");
});

Deno.test("fromDiffusersConfig reads SD's scheduler_config.json and round-trips", async () => {
  assert.deepEqual(fromDiffusersConfig(SD_SCHEDULER_JSON), SD_SCHEDULER_CONFIG);
  assert.deepEqual(fromDiffusersConfig(JSON.stringify(SD_SCHEDULER_JSON)), SD_SCHEDULER_CONFIG);
  const v = {
    ...SD_SCHEDULER_CONFIG,
    predictionType: "v_prediction" as const,
    timestepSpacing: "trailing" as const,
  };
  assert.deepEqual(fromDiffusersConfig(toDiffusersConfig(v)), v);
  // Class defaults for missing keys.
  const ddim = fromDiffusersConfig({ _class_name: "DDIMScheduler" });
  assert.equal(ddim.setAlphaToOne, true);
  assert.equal(ddim.clipSample, true);
  assert.equal(ddim.betaSchedule, "linear");
  assert.equal(ddim.timestepSpacing, undefined);
  assert.equal(fromDiffusersConfig({ _class_name: "PNDMScheduler" }).skipPrkSteps, false);

  await withTempDir("xgen_diffusion_schedule_", async (dir) => {
    const path = `${dir}/scheduler_config.json`;
    await Deno.writeTextFile(
      path,
      JSON.stringify({ ...SD_SCHEDULER_JSON, beta_schedule: "cosine" }),
    );
    await assert.rejects(
      () => readDiffusersConfig(path),
      /scheduler_config\.json: "beta_schedule" must be/,
    );
    await assert.rejects(
      () => readDiffusersConfig(`${dir}/missing.json`),
      /missing\.json: cannot read/,
    );
  });
});

Deno.test("fromDiffusersConfig rejects unsupported values with the key named", () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ prediction_type: "sample" }, /"prediction_type".*not supported/],
    [{ timestep_spacing: "karras" }, /"timestep_spacing" must be/],
    [{ use_karras_sigmas: true }, /"use_karras_sigmas" must be false/],
    [{ algorithm_type: "dpmsolver" }, /"algorithm_type"/],
    [{ solver_order: 3 }, /"solver_order"/],
    [{ steps_offset: "1" }, /"steps_offset" must be a number/],
    [{ num_train_timesteps: 1.5 }, /numTrainTimesteps must be an integer/],
    [{ trained_betas: [0.1, 0.2] }, /trainedBetas must be an array of 1000/],
  ];
  for (const [json, re] of bad) {
    assert.throws(() => fromDiffusersConfig({ ...SD_SCHEDULER_JSON, ...json }, "x.json"), re);
  }
  assert.throws(() => fromDiffusersConfig("{oops", "y.json"), /y\.json: not valid JSON/);
  assert.throws(() => fromDiffusersConfig([1], "z.json"), /z\.json: expected a JSON object/);
  assert.throws(
    () => makeSchedule({ betaSchedule: "cosine" as never }),
    /makeSchedule: betaSchedule/,
  );
});

Deno.test("trained_betas override the schedule", () => {
  const betas = Array.from({ length: 10 }, (_, i) => 0.01 * (i + 1));
  const s = makeSchedule({ numTrainTimesteps: 10, trainedBetas: betas });
  let p = 1;
  for (let i = 0; i < 10; i++) p *= 1 - betas[i];
  close(s.alphasCumprod[9], p, 1e-15, "trained abar");
});

Deno.test("min-SNR-gamma weights: closed forms for epsilon and v", () => {
  const s = makeSchedule();
  const ts = [0, 100, 300, 600, 999];
  const we = minSnrWeights(ts, s, 5, "epsilon");
  const wv = minSnrWeights(ts, s, { gamma: 5, predictionType: "v_prediction" });
  for (let i = 0; i < ts.length; i++) {
    const a = s.alphasCumprod[ts[i]];
    const snr = a / (1 - a);
    close(we[i], Math.min(snr, 5) / snr, 1e-6, `eps w t=${ts[i]}`);
    close(wv[i], Math.min(snr, 5) / (snr + 1), 1e-6, `v w t=${ts[i]}`);
  }
  // Low-noise steps (snr >> 5) are down-weighted to 5/snr; noisy ones keep weight 1 (eps).
  assert.ok(we[0] < 0.01);
  close(we[4], 1, 0, "eps weight at high noise");
  // v weight = eps weight * snr/(snr+1).
  assert.deepEqual(
    minSnrWeights([999], makeSchedule({ predictionType: "v_prediction" })),
    wv.slice(4),
  );
  assert.throws(() => minSnrWeights([1], s, 0), /gamma must be positive/);
});

Deno.test("sampleTimesteps is uniform over [0, N) and seeded; captionDropout hits p", () => {
  const t = sampleTimesteps(Rng.stream(5, [3]), 20000, 1000);
  let mn = Infinity, mx = -Infinity, sum = 0;
  for (const v of t) {
    mn = Math.min(mn, v);
    mx = Math.max(mx, v);
    sum += v;
  }
  assert.equal(mn, 0);
  assert.equal(mx, 999);
  close(sum / t.length, 499.5, 6, "mean timestep"); // sd of mean ~ 2
  assert.deepEqual(sampleTimesteps(Rng.stream(5, [3]), 50, 1000), t.slice(0, 50));

  const m = captionDropout(Rng.stream(9, [4]), 20000, 0.1);
  const frac = m.reduce((a, b) => a + b, 0) / m.length;
  close(frac, 0.1, 0.01, "dropout fraction"); // sd ~ 0.002
  assert.ok(m.every((v) => v === 0 || v === 1));
  assert.equal(captionDropout(Rng.stream(1), 100, 0).reduce((a, b) => a + b, 0), 0);
  assert.equal(captionDropout(Rng.stream(1), 100, 1).reduce((a, b) => a + b, 0), 100);
  assert.throws(() => captionDropout(Rng.stream(1), 3, 1.5), /p must be in \[0, 1\]/);
});
