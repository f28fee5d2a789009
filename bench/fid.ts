/**
 * Benchmark: Frechet distance of two 2048-d feature statistics, the kit (float64 eigensolver +
 * OpenBLAS dgemm/dsymv) against NumPy/SciPy with pytorch-fid's formula (`scipy.linalg.sqrtm`),
 * on the same matrices in the same run.
 *
 * The covariances have realistic spectra: `S = W^T diag(s^2) W / N` with Gaussian `W` (`N = 2d`
 * rows) and power-law weights `s_i = (i+1)^-alpha`, so eigenvalues decay like a power law over
 * about four decades, as Inception and CLIP features do; means have scale 0.1. They go to SciPy
 * through a raw float64 file.
 *
 * Run: `deno run -A bench/fid.ts [--d 2048] [--python /usr/bin/python3] [--kernels ts]`
 * (`--kernels ts` times the TypeScript fallback kernels instead of OpenBLAS). Needs Debian's
 * `python3-scipy python3-numpy` for the reference. Prints both timings and the relative
 * difference, then exactly one line `RESULT fid d=<d> ms=<kit ms> speedup=<scipy ms / kit ms>`.
 * OPENBLAS_CORETYPE is printed and never changed.
 *
 * @module
 */
import { type FeatureStats, frechetDistanceDetailed } from "../lib/eval/clip_fid/mod.ts";
import { blas64Info, gemm, setBlas64Enabled } from "../lib/math/mod.ts";
import { Rng, STREAM } from "../lib/util/rng.ts";

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < Deno.args.length ? Deno.args[i + 1] : fallback;
}

/** Random statistics with a power-law covariance spectrum. */
function makeStats(d: number, alpha: number, seed: number): FeatureStats {
  const rng = Rng.stream(seed, [0, STREAM.eval]);
  // N = 2d weighted rank-one terms: well-conditioned directions, power-law weights.
  const rows = 2 * d;
  const w = new Float64Array(rows * d);
  for (let i = 0; i < rows; i++) {
    const s = (i + 1) ** -alpha / Math.sqrt(rows);
    for (let j = 0; j < d; j++) w[i * d + j] = rng.gaussian() * s;
  }
  const sigma = new Float64Array(d * d);
  gemm({ m: d, n: d, k: rows, a: w, transA: true, b: w, c: sigma });
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < i; j++) {
      const v = 0.5 * (sigma[i * d + j] + sigma[j * d + i]);
      sigma[i * d + j] = v;
      sigma[j * d + i] = v;
    }
  }
  const mu = new Float64Array(d);
  for (let i = 0; i < d; i++) mu[i] = 0.1 * rng.gaussian();
  return { mu, sigma, n: 50_000 };
}

const d = Number(flag("d", "2048"));
const python = flag("python", "/usr/bin/python3");
const a = makeStats(d, 0.6, 1), b = makeStats(d, 0.55, 2);
if (flag("kernels", "openblas") === "ts") setBlas64Enabled(false);
console.log(`OPENBLAS_CORETYPE=${Deno.env.get("OPENBLAS_CORETYPE") ?? "<unset>"}`);
console.log(`kit kernels: ${blas64Info()}`);

// Warm the JIT on a small problem so the timing is the algorithm, not compilation.
frechetDistanceDetailed(makeStats(128, 0.6, 3), makeStats(128, 0.55, 4));

const t0 = performance.now();
const kit = frechetDistanceDetailed(a, b);
const kitMs = performance.now() - t0;
console.log(
  `kit:   ${kitMs.toFixed(0)} ms  distance=${kit.distance}  regularized=${kit.regularized}  ` +
    `rcond=${kit.rcond.toExponential(2)}`,
);

const dir = await Deno.makeTempDir({ prefix: "xgen-fid-bench-" });
try {
  const path = `${dir}/stats.f64`;
  const raw = new Float64Array(2 * d + 2 * d * d);
  raw.set(a.mu, 0);
  raw.set(b.mu, d);
  raw.set(a.sigma, 2 * d);
  raw.set(b.sigma, 2 * d + d * d);
  await Deno.writeFile(path, new Uint8Array(raw.buffer));
  const out = await new Deno.Command(python, {
    args: [new URL("./fid_scipy.py", import.meta.url).pathname, path, String(d)],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    console.error(new TextDecoder().decode(out.stderr));
    throw new Error(
      `${python} bench/fid_scipy.py failed (install Debian python3-scipy python3-numpy)`,
    );
  }
  const ref = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!);
  const rel = Math.abs(kit.distance - ref.fid) / Math.abs(ref.fid);
  console.log(
    `scipy: ${ref.ms.toFixed(0)} ms  distance=${ref.fid}  eps_fallback=${ref.eps_fallback}  ` +
      `(scipy ${ref.scipy}, numpy ${ref.numpy}, sqrtm as in pytorch-fid)`,
  );
  console.log(
    `relative difference: ${rel.toExponential(2)} (goal <= 1e-6: ${
      rel <= 1e-6 ? "met" : "NOT met"
    })`,
  );
  console.log(`RESULT fid d=${d} ms=${kitMs.toFixed(0)} speedup=${(ref.ms / kitMs).toFixed(2)}`);
} finally {
  await Deno.remove(dir, { recursive: true });
}
