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
 * import { featureStats, frechetDistance } from "./mod.ts";
 *
 * function example(
 *   gen: Float32Array, // [n, d] features of generated images
 *   ref: Float32Array, // [m, d] features of reference images
 *   n: number,
 *   m: number,
 *   d: number,
 * ) {
 *   const fid = frechetDistance(featureStats(gen, n, d), featureStats(ref, m, d));
 * }
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
