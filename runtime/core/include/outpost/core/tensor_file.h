// Tensor files without protobuf or the engine: NumPy `.npy` and ONNX `TensorProto` `.pb` (the
// ONNX node test suite's format, read here straight from the protobuf wire format). For readers
// below or beside the engine (the OTA health gate); the engine's ReadTensorFile uses libonnx for
// `.pb` (external data) and ParseNpy below for `.npy`.
#pragma once

#include <string>
#include <string_view>

#include "outpost/core/status.h"
#include "outpost/core/tensor.h"

namespace outpost {

// NumPy format 1.x-3.x, C order, little-endian (or single-byte) f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 u8
// b1. `what` names the source in errors (kInvalidArgument, kUnsupported).
Expected<Tensor> ParseNpy(std::string_view bytes, const std::string& what);

// A serialized onnx.TensorProto with raw_data or the typed fields (float_data, int32_data,
// int64_data, double_data, uint64_data), storable fixed-size types. Strings, segments and
// external data: kUnsupported. Malformed wire data: kInvalidArgument.
Expected<Tensor> ParseTensorProtoWire(std::string_view bytes, const std::string& what);

// A regular file: `.npy` by its extension, anything else as a TensorProto. kNotFound when missing.
Expected<Tensor> ReadNpyOrTensorProto(const std::string& path);

}  // namespace outpost
