/**
 * The subset of ONNX's protobuf schema (`onnx/onnx.proto`, IR version 8) that the kit writes and
 * reads: models, graphs, nodes, attributes, tensors and value infos. Field numbers follow the ONNX
 * specification; messages the kit never emits (sparse tensors, functions, training info) are left
 * out, and protobuf skips their fields when decoding files that have them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { onnxSchema } from "./schema.ts";
 *
 * const { ModelProto } = onnxSchema();
 * const bytes = ModelProto.encode({ ir_version: 8, producer_name: "xgen-kit" }).finish();
 * const model = ModelProto.toObject(ModelProto.decode(bytes), { longs: Number });
 * assert.deepEqual([model.ir_version, model.producer_name], [8, "xgen-kit"]);
 * ```
 * @module
 */
import protobuf from "npm:protobufjs@8.8.1";

/** ONNX `TensorProto.DataType` codes. */
export const ONNX_DATA_TYPE = {
  float32: 1,
  uint8: 2,
  int8: 3,
  uint16: 4,
  int16: 5,
  int32: 6,
  int64: 7,
  string: 8,
  bool: 9,
  float16: 10,
  float64: 11,
  uint32: 12,
  uint64: 13,
} as const;

/** Element types the kit can write (names as onnxruntime-node's `Tensor.type`). */
export type OnnxDType = keyof typeof ONNX_DATA_TYPE;

/** ONNX `AttributeProto.AttributeType` codes. */
export const ONNX_ATTRIBUTE_TYPE = {
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
  TENSORS: 9,
  GRAPHS: 10,
} as const;

// Written from the ONNX IR specification (onnx.proto, proto2 like the original: a field that is set
// is written even when it holds its default, which onnxruntime relies on, e.g. an attribute
// `i = 0`). snake_case names are kept so decoded objects read like the spec.
const ONNX_PROTO = `
syntax = "proto2";
package onnx;

message StringStringEntryProto { optional string key = 1; optional string value = 2; }

message OperatorSetIdProto { optional string domain = 1; optional int64 version = 2; }

message TensorShapeProto {
  message Dimension {
    oneof value { int64 dim_value = 1; string dim_param = 2; }
    optional string denotation = 3;
  }
  repeated Dimension dim = 1;
}

message TypeProto {
  message Tensor { optional int32 elem_type = 1; optional TensorShapeProto shape = 2; }
  oneof value { Tensor tensor_type = 1; }
  optional string denotation = 6;
}

message ValueInfoProto {
  optional string name = 1;
  optional TypeProto type = 2;
  optional string doc_string = 3;
}

message TensorProto {
  repeated int64 dims = 1;
  optional int32 data_type = 2;
  repeated float float_data = 4 [packed = true];
  repeated int32 int32_data = 5 [packed = true];
  repeated bytes string_data = 6;
  repeated int64 int64_data = 7 [packed = true];
  optional string name = 8;
  optional bytes raw_data = 9;
  repeated double double_data = 10 [packed = true];
  repeated uint64 uint64_data = 11 [packed = true];
  optional string doc_string = 12;
  repeated StringStringEntryProto external_data = 13;
  optional int32 data_location = 14;
}

message AttributeProto {
  optional string name = 1;
  optional float f = 2;
  optional int64 i = 3;
  optional bytes s = 4;
  optional TensorProto t = 5;
  optional GraphProto g = 6;
  repeated float floats = 7;
  repeated int64 ints = 8;
  repeated bytes strings = 9;
  repeated TensorProto tensors = 10;
  repeated GraphProto graphs = 11;
  optional string doc_string = 13;
  optional int32 type = 20;
  optional string ref_attr_name = 21;
}

message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  optional string name = 3;
  optional string op_type = 4;
  repeated AttributeProto attribute = 5;
  optional string doc_string = 6;
  optional string domain = 7;
}

message GraphProto {
  repeated NodeProto node = 1;
  optional string name = 2;
  repeated TensorProto initializer = 5;
  optional string doc_string = 10;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
  repeated ValueInfoProto value_info = 13;
}

message ModelProto {
  optional int64 ir_version = 1;
  optional string producer_name = 2;
  optional string producer_version = 3;
  optional string domain = 4;
  optional int64 model_version = 5;
  optional string doc_string = 6;
  optional GraphProto graph = 7;
  repeated OperatorSetIdProto opset_import = 8;
  repeated StringStringEntryProto metadata_props = 14;
}
`;

/** The protobuf message types of {@link onnxSchema}. */
export interface OnnxSchema {
  /** `onnx.ModelProto`. */
  ModelProto: protobuf.Type;
  /** `onnx.GraphProto`. */
  GraphProto: protobuf.Type;
  /** `onnx.TensorProto`. */
  TensorProto: protobuf.Type;
}

let cached: OnnxSchema | undefined;

/**
 * The parsed schema (parsed once, then cached).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { onnxSchema } from "./schema.ts";
 *
 * const bytes = onnxSchema().ModelProto.encode({ ir_version: 8 }).finish();
 * assert.deepEqual([...bytes], [8, 8]); // field 1 (varint), value 8
 * assert.equal(onnxSchema(), onnxSchema()); // parsed once, then cached

 * ```
 */
export function onnxSchema(): OnnxSchema {
  if (!cached) {
    const root = protobuf.parse(ONNX_PROTO, { keepCase: true }).root;
    cached = {
      ModelProto: root.lookupType("onnx.ModelProto"),
      GraphProto: root.lookupType("onnx.GraphProto"),
      TensorProto: root.lookupType("onnx.TensorProto"),
    };
  }
  return cached;
}
