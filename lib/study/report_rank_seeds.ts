/**
 * The study report's rank-seeds section: from a {@link RankSeedsResult}, the loss of each step
 * with shared and per-rank loss streams, the timesteps each drew over all steps, and the shared /
 * per-rank step-to-step variance ratio with its moving-block bootstrap interval.
 *
 * @example
 * ```ts
 * import { rankSeedsExperiment } from "./rank_seeds.ts";
 * import { rankSeedsSection } from "./report_rank_seeds.ts";
 *
 * async function example() {
 *   const r = await rankSeedsExperiment({ steps: 24, preset: "tiny", images: 64, progress: false });
 *   console.log(rankSeedsSection(r).headlines[0]); // the ratio with its interval
 * }
 * ```
 * @module
 */
import type { RankSeedsResult } from "./rank_seeds.ts";
import { formatNumber, type Headline, type StudySection } from "./report.ts";

/**
 * The section built from the experiment's result.
 *
 * @example
 * ```ts
 * import { rankSeedsSection } from "./report_rank_seeds.ts";
 * import type { RankSeedsResult } from "./rank_seeds.ts";
 *
 * function example(r: RankSeedsResult) { // from rankSeedsExperiment
 *   console.log(rankSeedsSection(r).headlines[0]); // shared / per-rank ratio
 * }
 * ```
 */
export function rankSeedsSection(r: RankSeedsResult): StudySection {
  const level = r.bootstrap.confidence;
  const method = `moving-block bootstrap over steps (block ${r.bootstrap.blockLength}, ` +
    `${r.bootstrap.resamples} resamples)`;
  const h = (id: string, label: string, e: { estimate: number; lo: number; hi: number }) =>
    ({ id, label, value: e.estimate, lo: e.lo, hi: e.hi, level, method }) as Headline;
  const runs = [["shared streams", r.shared], ["per-rank streams", r.perRank]] as const;
  const lossFigure = {
    data: runs.map(([name, run]) => ({
      type: "scatter",
      mode: "lines",
      name,
      x: run.losses.map((_, i) => i + 1),
      y: run.losses,
    })),
    layout: {
      title: { text: `UNet loss per step, ${r.ranks} ranks, global batch ${r.batchSize}` },
      xaxis: { title: { text: "step" } },
      yaxis: { title: { text: "loss" } },
    },
  };
  const width = r.numTrainTimesteps / r.bins;
  const centers = Array.from({ length: r.bins }, (_, i) => (i + 0.5) * width);
  const histFigure = {
    data: runs.map(([name, run]) => ({
      type: "bar",
      name: `${name} (${formatNumber(run.meanDistinctTimesteps)} distinct per step)`,
      x: centers,
      y: centers.map((_, b) => run.steps.reduce((a, s) => a + s.histogram[b], 0)),
    })),
    layout: {
      title: { text: "Timesteps drawn over all steps (global batch)" },
      barmode: "group",
      xaxis: { title: { text: "timestep" } },
      yaxis: { title: { text: "draws" } },
    },
  };
  const ratio = r.ratio;
  const caveats: string[] = [];
  if (r.steps < 100) {
    caveats.push(
      `${r.steps} steps give few step-to-step differences, so the ratio's interval is wide.`,
    );
  }
  return {
    id: "rank_seeds",
    title: "2. Rank seeds: shared vs per-rank noise streams",
    figures: [
      { id: "rank-seeds-loss", figure: lossFigure },
      { id: "rank-seeds-timesteps", figure: histFigure },
    ],
    headlines: [
      h("rank_seeds.variance_ratio", "step-to-step loss variance, shared / per-rank", ratio),
      h("rank_seeds.shared_variance", "step-to-step loss variance, shared", r.shared.stepVariance),
      h(
        "rank_seeds.per_rank_variance",
        "step-to-step loss variance, per-rank",
        r.perRank.stepVariance,
      ),
    ],
    found:
      "The study's loss swung wildly while every worker ran on the same seed: each rank drew " +
      "the same timesteps and noise, so a global batch held few distinct noise levels.",
    measured: `On ${r.ranks} in-process ranks (${r.preset} preset, ${r.steps} steps), shared ` +
      `streams drew ${formatNumber(r.shared.meanDistinctTimesteps)} distinct timesteps per step ` +
      `against ${formatNumber(r.perRank.meanDistinctTimesteps)} and their loss swung ` +
      `${formatNumber(ratio.estimate)}x as much [${formatNumber(ratio.lo)}, ` +
      `${formatNumber(ratio.hi)}].`,
    caveats,
  };
}
