/**
 * The sizes of `deno task study`: every setting of every step in one table, so a report says
 * exactly what it measured and a size is changed in one place.
 *
 * | setting                         | test        | quick            | default                   |
 * | ------------------------------- | ----------- | ---------------- | ------------------------- |
 * | preset, UNet steps              | tiny, 40    | tiny, 200        | default, 2500             |
 * | kept UNet checkpoints           | 10,20,30,40 | 50,100,150,200   | 500,1000,1500,2000,2500   |
 * | rank seeds: steps, images       | 12, 64      | 48, 256          | 200, 256 (tiny preset)    |
 * | CLIP-FID: images, scales        | 16; 1,3,5   | 32; 1,2,3,5      | 256; 1,1.5,2,3,4,6        |
 * | best-of-N: prompts x M          | 6 x 4       | 12 x 8           | 24 x 16                   |
 * | touch-ups: images               | 4           | 12               | 32                        |
 * | human eval: trials per prompt   | 2           | 4                | 6                         |
 * | bootstrap resamples             | 200         | 1000             | 2000                      |
 *
 * `quick` runs in about a minute on 2 CPU cores, `test` in well under one (for the test suite),
 * `default` trains the embedded default (about 15 minutes) and takes under 45 in all.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { studySize } from "./report_sizes.ts";
 *
 * const s = studySize("quick");
 * assert.deepEqual([s.preset, s.unetSteps, s.keepAt], ["tiny", 200, [50, 100, 150]]);
 * assert.throws(() => studySize("huge"), /size "huge": expected one of test, quick, default/);
 * ```
 * @module
 */

/** Every setting of one study size. */
export interface StudySize {
  name: "test" | "quick" | "default";
  /** Recipe preset of the run every step evaluates. */
  preset: "tiny" | "default";
  /** UNet steps of the run (the other stages scale with them, as `--steps` does). */
  unetSteps: number;
  /** UNet checkpoint interval. */
  checkpointEvery: number;
  /** Steps kept for the CLIP-FID curves (the last step is the finished model, kept anyway). */
  keepAt: number[];
  rankSeeds: { preset: "tiny" | "default"; steps: number; images: number; ranks: number };
  clipFid: { n: number; guidance: number[]; steps: number };
  bestOfN: { prompts: number; candidates: number };
  touchUps: { images: number; strength: number };
  human: { trials: number; raters: number };
  /** Bootstrap resamples of every interval the study computes itself. */
  resamples: number;
  /** Seed of everything. */
  seed: number;
}

/**
 * The sizes, smallest first; see the module table.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { STUDY_SIZES } from "./report_sizes.ts";
 *
 * assert.deepEqual(Object.keys(STUDY_SIZES), ["test", "quick", "default"]);
 * ```
 */
export const STUDY_SIZES: Readonly<Record<StudySize["name"], StudySize>> = {
  test: {
    name: "test",
    preset: "tiny",
    unetSteps: 40,
    checkpointEvery: 10,
    keepAt: [10, 20, 30],
    rankSeeds: { preset: "tiny", steps: 12, images: 64, ranks: 2 },
    clipFid: { n: 16, guidance: [1, 3, 5], steps: 8 },
    bestOfN: { prompts: 6, candidates: 4 },
    touchUps: { images: 4, strength: 0.7 },
    human: { trials: 2, raters: 20 },
    resamples: 200,
    seed: 0,
  },
  quick: {
    name: "quick",
    preset: "tiny",
    unetSteps: 200,
    checkpointEvery: 50,
    keepAt: [50, 100, 150],
    rankSeeds: { preset: "tiny", steps: 48, images: 256, ranks: 2 },
    clipFid: { n: 32, guidance: [1, 2, 3, 5], steps: 8 },
    bestOfN: { prompts: 12, candidates: 8 },
    touchUps: { images: 12, strength: 0.7 },
    human: { trials: 4, raters: 40 },
    resamples: 1000,
    seed: 0,
  },
  default: {
    name: "default",
    preset: "default",
    unetSteps: 2500,
    checkpointEvery: 500,
    keepAt: [500, 1000, 1500, 2000],
    rankSeeds: { preset: "tiny", steps: 200, images: 256, ranks: 2 },
    clipFid: { n: 256, guidance: [1, 1.5, 2, 3, 4, 6], steps: 25 },
    bestOfN: { prompts: 24, candidates: 16 },
    touchUps: { images: 32, strength: 0.7 },
    human: { trials: 6, raters: 40 },
    resamples: 2000,
    seed: 0,
  },
};

/**
 * A size by name; unknown names list the known ones.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { studySize } from "./report_sizes.ts";
 *
 * assert.equal(studySize("default").clipFid.n, 256);
 * ```
 */
export function studySize(name: string): StudySize {
  const s = STUDY_SIZES[name as StudySize["name"]];
  if (!s) {
    throw new Error(
      `size "${name}": expected one of ${Object.keys(STUDY_SIZES).join(", ")}`,
    );
  }
  return structuredClone(s);
}

/**
 * The sizes as a Markdown table (for the README and `--help`), one row per setting.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { studySizesTable } from "./report_sizes.ts";
 *
 * assert.match(studySizesTable(), /^\| setting +\| test/);
 * ```
 */
export function studySizesTable(): string {
  const sizes = Object.values(STUDY_SIZES);
  const rows: [string, (s: StudySize) => string][] = [
    ["preset, UNet steps", (s) => `${s.preset}, ${s.unetSteps}`],
    ["kept UNet checkpoints", (s) => [...s.keepAt, s.unetSteps].join(",")],
    ["rank seeds: steps, images", (s) => `${s.rankSeeds.steps}, ${s.rankSeeds.images}`],
    ["CLIP-FID: images; scales", (s) => `${s.clipFid.n}; ${s.clipFid.guidance.join(",")}`],
    ["best-of-N: prompts x M", (s) => `${s.bestOfN.prompts} x ${s.bestOfN.candidates}`],
    ["touch-ups: images", (s) => String(s.touchUps.images)],
    ["human eval: trials per prompt", (s) => String(s.human.trials)],
    ["bootstrap resamples", (s) => String(s.resamples)],
  ];
  const cells = [
    ["setting", ...sizes.map((s) => s.name)],
    ...rows.map(([k, f]) => [
      k,
      ...sizes.map(f),
    ]),
  ];
  const widths = cells[0].map((_, j) => Math.max(...cells.map((r) => r[j].length)));
  const line = (r: string[]) => `| ${r.map((c, j) => c.padEnd(widths[j])).join(" | ")} |`;
  return [
    line(cells[0]),
    `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`,
    ...cells.slice(1).map(line),
  ].join("\n");
}
