/**
 * ONNX: write models from TypeScript (graph builder over the ONNX protobuf schema), read them
 * back, and run them with ONNX Runtime (onnxruntime-node) behind checked sessions (with the input
 * and output checks every ONNX model loader shares); export the kit's models, layer by layer; and
 * load ONNX Stable Diffusion folders in Hugging Face Optimum's layout (kit exports or real SD
 * exports) as a pipeline that samples with the kit's samplers (`txt2img`, `img2img`). Exporting a
 * whole trained run is lib/recipe's `exportRun`; the helper models that run on top of any image
 * generator (CLIP towers, preference, segmenter, upsampler) are lib/inference's.
 *
 * @example
 * ```ts
 * import { OnnxGraph, openSession } from "./mod.ts";
 * const g = new OnnxGraph("relu");
 * g.output(g.node("Relu", [g.input("x", "float32", [4])]), "float32", [4]);
 * const s = await openSession(g.toBytes());
 * const { [s.outputs[0].name]: y } = await s.run({ x: { data: new Float32Array([-1, 2, -3, 4]), shape: [4] } });
 * ```
 * @module
 */
export * from "./schema.ts";
export * from "./writer.ts";
export * from "./external_data.ts";
export * from "./reader.ts";
export * from "./session.ts";
export * from "./providers.ts";
export * from "./web_session.ts";
export type { ModelSessionOptions, ModelSource, OpenedModel } from "./io_check.ts";
export * from "./onnx_ops.ts";
export * from "./export_models.ts";
export * from "./sd_folder.ts";
export * from "./sd_pipeline.ts";
