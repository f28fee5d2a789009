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
  captionFollowing: { heldout: PairResult; seen: PairResult };
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
 *   console.log(r.captionFollowing.heldout);
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
