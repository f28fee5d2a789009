/**
 * The CLIP-score vs FID evaluation: streaming feature statistics, the Frechet distance via
 * symmetric eigendecompositions (float64, lib/math's eigensolver), KID, CLIP score, percentile bootstrap
 * intervals, cached reference statistics tied to their feature extractor, the kit CLIP's
 * image tower as the offline feature extractor ("Frechet distance in CLIP space (not Inception
 * FID)"), an Inception-v3 ONNX extractor with clean-fid's preprocessing, PNG/JPEG reference
 * images, and the CLIP-score vs FID guidance sweep.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { featureStats, frechetDistance } from "./mod.ts";
 *
 * const gen = new Float32Array([0, 0, 2, 2, 1, 3]); // [n, d] features of generated images
 * const ref = gen.map((v) => v + 3); // [m, d] reference features: the same, shifted by (3, 3)
 * const fid = frechetDistance(featureStats(gen, 3, 2), featureStats(ref, 3, 2));
 * assert.ok(Math.abs(fid - 18) < 1e-6); // equal covariances: only |mu_gen - mu_ref|^2 = 9 + 9
 * ```
 * @module
 */
export { checkFeatureMatrix, type FeatureMatrix, gatherRows } from "./feature_matrix.ts";
export {
  type FeatureStats,
  featureStats,
  FeatureStatsAccumulator,
  type FeatureStatsState,
} from "./stats.ts";
export {
  type FrechetDetails,
  frechetDistance,
  frechetDistanceDetailed,
  type FrechetOptions,
} from "./frechet.ts";
export { kernelInceptionDistance, type KidOptions, type KidResult, mmdPolynomial } from "./kid.ts";
export { clipScore, type ClipScoreResult } from "./clip_score.ts";
export {
  bootstrap,
  type BootstrapOptions,
  clipScoreWithInterval,
  type Estimate,
  formatEstimate,
  type FrechetEstimate,
  frechetWithInterval,
  quantileSorted,
} from "./bootstrap.ts";
export {
  assertSameExtractor,
  cachedReferenceStats,
  decodeStats,
  encodeStats,
  type ExtractorIdentity,
  loadReferenceStats,
  saveReferenceStats,
  STATS_FORMAT,
  type StoredStats,
} from "./stats_file.ts";
export {
  type ClipTowersExtractor,
  clipTowersExtractor,
  type FeatureExtractor,
  frechetLabel,
  type KitClip,
  type KitClipExtractor,
  type KitClipExtractorOptions,
  kitClipImageExtractor,
  kitClipImageExtractorFromRun,
  type RgbInput,
  toClipInput,
} from "./feature_extractors.ts";
export {
  INCEPTION_DIM,
  INCEPTION_SIZE,
  type InceptionInputRange,
  type InceptionOnnxExtractor,
  inceptionOnnxExtractor,
  type InceptionOnnxOptions,
  inceptionPreprocessing,
  INPUT_RANGES,
  RESIZE_MODES,
  type ResizeMode,
  type ResizeOptions,
  resizeRgb,
} from "./inception_onnx.ts";
export {
  CorruptImageError,
  decodeImageRgb,
  decodeJpegRgb,
  formatSkipped,
  type ImageFormat,
  isJpeg,
  readImageOrSkip,
  readImageRgb,
  type SkippedImage,
  sniffImageFormat,
} from "./image_files.ts";
export {
  cocoPromptSet,
  heldoutPromptSet,
  parseCocoCaptions,
  parsePromptSpec,
  type PartiFilter,
  partiPromptSet,
  type PromptSet,
  promptSetFromSpec,
  type PromptSetOptions,
  textPromptSet,
  withPrefix,
} from "./prompt_sets.ts";
export type { CocoPair } from "./prompt_sets.ts";
export {
  type CheckpointRef,
  type CheckpointSelector,
  guidanceSweep,
  parseCheckpointSelector,
  resolveCheckpoints,
  sha256Hex,
  sweepFigure,
  type SweepOptions,
  type SweepPoint,
  type SweepProgress,
  sweepReport,
  type SweepResult,
  writeSweepOutputs,
} from "./sweep.ts";
export * from "./compare.ts";
export * from "./models_sweep.ts";
export * from "./sweep_figure.ts";
export * from "./npz_stats.ts";
