/**
 * ONNX: write models from TypeScript (graph builder over the ONNX protobuf schema), read them
 * back, and run them with ONNX Runtime (onnxruntime-node) behind checked sessions; export the
 * kit's trained models and whole runs in Hugging Face Optimum's Stable Diffusion layout, and
 * sample from such folders (kit exports or real SD exports) with the kit's samplers, and touch up
 * regions of an image (mask, crop, img2img, blend back), and upsample or re-upsample images with a
 * pretrained pixel upsampler.
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
export * from "./reader.ts";
export * from "./session.ts";
export * from "./export_nn.ts";
export * from "./export_models.ts";
export * from "./export_run.ts";
export * from "./sd_pipeline.ts";
export * from "./touch_up.ts";
export * from "./upscale.ts";
export * from "./parts/mod.ts";
