/**
 * The study report's training section, read from a finished run folder (`trainRun`): the three
 * stages' loss curves, the sample grid, and caption following (colour and shape read back from
 * the pixels, held-out and seen pairs) with Wilson intervals.
 *
 * @example
 * ```ts
 * import { trainingSection, trainingStep } from "./report_training.ts";
 *
 * async function example() {
 *   const s = trainingSection(await trainingStep("runs/tiny")); // a run trained with its eval
 *   console.log(s.headlines); // held-out colour and shape accuracy with Wilson intervals
 * }
 * ```
 * @module
 */
import { decodePngRgb, wilsonInterval } from "../data/mod.ts";
import { readMetrics } from "../train/metrics.ts";
import { imageFromJson, imageToJson, type JsonImage } from "./report_steps.ts";
import { formatNumber, type Headline, type StudySection } from "./report.ts";
import type { PlotlyFigure } from "../plot/mod.ts";
import { percentileInterval } from "../math/quantile.ts";
import { Rng } from "../util/rng.ts";

/** Caption following of one pair set, as the run's `eval/caption_following.json` holds it. */
interface PairResult {
  n: number;
  colorAccuracy: number;
  shapeAccuracy: number;
  bothAccuracy: number;
}

/** What the section needs from the run folder. */
export interface TrainingStepResult {
  /** Per stage: steps and losses. */
  losses: Record<string, { step: number[]; loss: number[] }>;
  samples: JsonImage;
  /** The grid's prompts, one per row. */
  sampleRows: string[];
  /** Absent for a run on an SD folder's parts (its data has no colour/shape ground truth). */
  captionFollowing?: { heldout: PairResult; seen: PairResult };
  seconds: Record<string, number>;
}

/**
 * Read what the section shows from a finished run folder (trained with its eval).
 *
 * @example
 * ```ts
 * import { trainingStep } from "./report_training.ts";
 *
 * async function example(runDir: string) { // a run trained by trainRun with its eval
 *   const r = await trainingStep(runDir);
 *   console.log(r.captionFollowing?.heldout);
 * }
 * ```
 */
export async function trainingStep(runDir: string): Promise<TrainingStepResult> {
  const losses: TrainingStepResult["losses"] = {};
  for (const stage of ["autoencoder", "clip", "unet"]) {
    const rows = (await readMetrics(`${runDir}/${stage}/metrics.jsonl`))
      .filter((r) => typeof r.loss === "number");
    losses[stage] = { step: rows.map((r) => r.step), loss: rows.map((r) => r.loss as number) };
  }
  const png = decodePngRgb(await Deno.readFile(`${runDir}/samples.png`), `${runDir}/samples.png`);
  const rows = (await Deno.readTextFile(`${runDir}/samples.txt`)).trim().split("\n")
    .map((l) => l.replace(/^row \d+: /, ""));
  const cf = JSON.parse(await Deno.readTextFile(`${runDir}/eval/caption_following.json`));
  const summary = JSON.parse(await Deno.readTextFile(`${runDir}/summary.json`));
  const pick = (r: PairResult): PairResult => ({
    n: r.n,
    colorAccuracy: r.colorAccuracy,
    shapeAccuracy: r.shapeAccuracy,
    bothAccuracy: r.bothAccuracy,
  });
  return {
    losses,
    samples: imageToJson({ data: png.image, width: png.width, height: png.height }),
    sampleRows: rows,
    captionFollowing: { heldout: pick(cf.heldout), seen: pick(cf.seen) },
    seconds: summary.seconds ?? {},
  };
}

/**
 * {@link trainingStep} for a run trained on an SD folder's parts (`trainOnParts`): the UNet's
 * loss curve and the run's sample grid (`samples.png`, rows in `samples.txt`); no caption
 * following (real captions carry no colour/shape ground truth).
 *
 * @example
 * ```ts
 * import { partsTrainingStep } from "./report_training.ts";
 *
 * async function example() { // a finished `deno task train --parts` run
 *   const r = await partsTrainingStep("runs/sd_parts");
 *   console.log(r.losses.unet.loss.at(-1), r.sampleRows);
 * }
 * ```
 */
export async function partsTrainingStep(runDir: string): Promise<TrainingStepResult> {
  const rows = (await readMetrics(`${runDir}/unet/metrics.jsonl`))
    .filter((r) => typeof r.loss === "number");
  const png = decodePngRgb(await Deno.readFile(`${runDir}/samples.png`), `${runDir}/samples.png`);
  const sampleRows = (await Deno.readTextFile(`${runDir}/samples.txt`)).trim().split("\n")
    .map((l) => l.replace(/^row \d+: /, ""));
  const summary = JSON.parse(await Deno.readTextFile(`${runDir}/summary.json`));
  const seconds = summary.seconds ?? {};
  return {
    losses: { unet: { step: rows.map((r) => r.step), loss: rows.map((r) => r.loss as number) } },
    samples: imageToJson({ data: png.image, width: png.width, height: png.height }),
    sampleRows,
    seconds: {
      ...seconds,
      total: seconds.total ??
        Object.values(seconds as Record<string, number>).reduce((a, b) => a + b, 0),
    },
  };
}

/**
 * Wilson interval of k of n, with the float dust of its closed form removed at the ends (k = 0
 * gives exactly 0, k = n exactly 1).
 */
function wilson(k: number, n: number): [number, number] {
  const [lo, hi] = wilsonInterval(k, n);
  return [k === 0 ? 0 : lo, k === n ? 1 : hi];
}

/** An accuracy as a headline with its Wilson interval (k = accuracy x n correct images). */
function accuracy(id: string, label: string, acc: number, n: number): Headline {
  const k = Math.round(acc * n);
  const [lo, hi] = wilson(k, n);
  return { id, label, value: k / n, lo, hi, level: 0.95, method: `Wilson, n = ${n} images` };
}

/**
 * The section: loss curves, sample grid, caption-following table and headlines.
 *
 * @example
 * ```ts
 * import { trainingSection, type TrainingStepResult } from "./report_training.ts";
 *
 * function example(r: TrainingStepResult) { // from trainingStep
 *   console.log(trainingSection(r).headlines); // held-out colour and shape, Wilson intervals
 * }
 * ```
 */
export function trainingSection(r: TrainingStepResult): StudySection {
  const stages = Object.keys(r.losses);
  const figure = {
    data: stages.map((s) => ({
      type: "scatter",
      mode: "lines",
      name: s,
      x: r.losses[s].step,
      y: r.losses[s].loss,
    })),
    layout: {
      title: { text: "Training loss per stage" },
      xaxis: { title: { text: "step" } },
      yaxis: { title: { text: "loss" }, type: "log" },
    },
  };
  if (!r.captionFollowing) return partsTrainingSection(r, figure);
  const { heldout, seen } = r.captionFollowing;
  const pct = (x: number) => `${formatNumber(100 * x)}%`;
  const ci = (acc: number, n: number) => {
    const [lo, hi] = wilson(Math.round(acc * n), n);
    return `${pct(acc)} [${pct(lo)}, ${pct(hi)}]`;
  };
  const caveats: string[] = [];
  if (heldout.n < 50) {
    caveats.push(
      `Caption following reads ${heldout.n} held-out and ${seen.n} seen images: the intervals ` +
        "are wide; chance is 12.5% for colour and 16.7% for shape.",
    );
  }
  return {
    id: "training",
    title: "7. Training: loss curves, samples, caption following",
    figures: [{ id: "training-loss", figure }],
    images: [{
      id: "training-samples",
      image: imageFromJson(r.samples),
      caption: `Sample grid, rows: ${r.sampleRows.join("; ")}.`,
      scale: 3,
    }],
    tables: [{
      caption: "Caption following, read back from the pixels (95% Wilson intervals)",
      header: ["pairs", "images", "colour", "shape", "both"],
      rows: [
        [
          "held-out",
          heldout.n,
          ci(heldout.colorAccuracy, heldout.n),
          ci(heldout.shapeAccuracy, heldout.n),
          ci(heldout.bothAccuracy, heldout.n),
        ],
        [
          "seen",
          seen.n,
          ci(seen.colorAccuracy, seen.n),
          ci(seen.shapeAccuracy, seen.n),
          ci(seen.bothAccuracy, seen.n),
        ],
        ["chance", "", "12.5%", "16.7%", "2.1%"],
      ],
    }],
    headlines: [
      accuracy(
        "training.heldout_colour",
        "held-out pairs: colour",
        heldout.colorAccuracy,
        heldout.n,
      ),
      accuracy("training.heldout_shape", "held-out pairs: shape", heldout.shapeAccuracy, heldout.n),
    ],
    found: "The study trained a UNet on frozen pretrained parts and checked that it draws what " +
      "the caption asks, including combinations never seen in training.",
    measured: `trainRun took ${formatNumber(r.seconds.total ?? NaN)} s (its last call, when ` +
      `resumed); held-out pairs: colour ` +
      `${ci(heldout.colorAccuracy, heldout.n)}, shape ${ci(heldout.shapeAccuracy, heldout.n)}.`,
    caveats,
  };
}

/**
 * The section of a run on an SD folder's parts: the UNet loss curve, the samples and, as the
 * headline, the mean loss over the last tenth of the logged steps with a percentile bootstrap
 * interval over those steps (seeded; 2000 resamples).
 */
function partsTrainingSection(r: TrainingStepResult, figure: PlotlyFigure): StudySection {
  const { step, loss } = r.losses.unet ?? { step: [], loss: [] };
  if (loss.length === 0) throw new Error("training: the UNet logged no loss (unet/metrics.jsonl)");
  const tail = loss.slice(Math.floor(loss.length * 0.9));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const rng = Rng.stream(0);
  const reps = Float64Array.from({ length: 2000 }, () => {
    let acc = 0;
    for (let i = 0; i < tail.length; i++) acc += tail[Math.floor(rng.uniform() * tail.length)];
    return acc / tail.length;
  });
  const { lo, hi } = percentileInterval(reps, 0.95);
  const from = step[loss.length - tail.length], to = step.at(-1);
  return {
    id: "training",
    title: "7. Training: loss curve and samples",
    figures: [{ id: "training-loss", figure }],
    images: [{
      id: "training-samples",
      image: imageFromJson(r.samples),
      caption: `Sample grid, rows: ${r.sampleRows.join("; ")}.`,
      scale: 1,
    }],
    headlines: [{
      id: "training.final_loss",
      label: `UNet loss, mean of steps ${from}-${to}`,
      value: mean(tail),
      lo,
      hi,
      level: 0.95,
      method: `percentile bootstrap over the ${tail.length} logged steps`,
    }],
    found: "The study trained a UNet on frozen pretrained parts (Stable Diffusion's VAE and " +
      "text encoder) at 256 px.",
    measured: `The UNet trained for ${to} steps on the SD folder's parts in ` +
      `${formatNumber(r.seconds.total ?? NaN)} s; its loss over the last tenth of the steps ` +
      `averaged ${formatNumber(mean(tail))} [${formatNumber(lo)}, ${formatNumber(hi)}].`,
    caveats: [
      "Caption following is read back from shapes-world pixels and has no ground truth on real " +
      "captions, so it is not measured here.",
    ],
  };
}
