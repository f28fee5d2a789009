/**
 * Human evaluation loop of a text-to-image study ("Which image better follows the prompt?"):
 * PartiPrompts loading, study design (task lists for crowdsourcing), answer ingestion (Mechanical
 * Turk batch results, plain CSV/JSONL), analysis (win rates with Wilson and prompt-cluster
 * bootstrap intervals, sign tests with Holm correction, Bradley-Terry, rater agreement), a rater
 * simulator with a calibration check, and Plotly reports.
 *
 * @example
 * ```ts
 * import {
 *   analyzeStudy,
 *   answersToMturkCsv,
 *   designStudy,
 *   ingestResponses,
 *   loadPrompts,
 *   simulateAnswers,
 * } from "./mod.ts";
 * const { prompts } = await loadPrompts("data/parti_prompts_example.tsv");
 * const tasks = designStudy(prompts, { models: ["ours", "sd15", "sd21"], trials: 6, seed: 0 });
 * const csv = answersToMturkCsv(
 *   simulateAnswers(tasks, {
 *     seed: 1,
 *     truth: { "ours vs sd15": { default: 0.6 }, "ours vs sd21": { default: 0.55 } },
 *   }),
 * );
 * const summary = analyzeStudy(ingestResponses(csv, { source: "sim.csv" }), {
 *   method: "bootstrap",
 * });
 * ```
 * @module
 */
export * from "./stats.ts";
export * from "./text_input.ts";
export * from "./csv.ts";
export * from "./prompts.ts";
export * from "./design.ts";
export * from "./ingest.ts";
export * from "./simulate.ts";
export * from "./bradley_terry.ts";
export * from "./agreement.ts";
export * from "./analyze.ts";
export * from "./calibration.ts";
export * from "./report.ts";
