// The engine's graph IR: what the ONNX loader produces and everything after it consumes.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "outpost/core/tensor.h"
#include "outpost/engine/session.h"
#include "outpost/kernels/kernel.h"

namespace outpost {

struct Value {
  std::string name;
  DataType dtype = DataType::kUndefined;   // declared type, if any
  std::vector<int64_t> dims;               // declared dims, -1 = symbolic/unknown
  std::vector<std::string> dim_names;
  bool has_declared_shape = false;
  std::shared_ptr<const Tensor> constant;  // initializer (host)
  int producer = -1;                       // node index, -1 for inputs/initializers
  std::vector<int> consumers;
};

struct Node {
  kernels::NodeInfo info;
  std::vector<int> inputs;   // value ids, -1 for an omitted optional input
  std::vector<int> outputs;  // value ids, -1 for an omitted optional output
};

struct Graph {
  std::vector<Value> values;
  std::vector<Node> nodes;  // topologically sorted after loading
  std::vector<int> inputs;  // graph inputs that are not initializers
  std::vector<int> outputs;
  std::map<std::string, int> opsets;
  std::string producer;
  int ValueId(const std::string& name) const;
};

}  // namespace outpost
