// ONNX protobuf -> Graph. The only code in Outpost that touches protobuf.
#pragma once

#include <string>

#include "graph.h"

namespace outpost {

// Parses and validates a serialized ModelProto. External data is resolved under `base_dir`
// (never outside it). Fails with kInvalidModel / kUnsupported naming what is wrong.
Expected<Graph> LoadOnnxGraph(const std::string& bytes, const std::string& base_dir);

}  // namespace outpost
