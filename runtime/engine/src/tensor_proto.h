// onnx::TensorProto <-> Tensor, and the .npy format.
#pragma once

#include <string>

#include "outpost/core/tensor.h"

namespace onnx {
class TensorProto;
}

namespace outpost {

// Converts a TensorProto (inline or external data under `base_dir`) to an owned host tensor.
Expected<Tensor> TensorFromProto(const onnx::TensorProto& tp, const std::string& base_dir);

}  // namespace outpost
