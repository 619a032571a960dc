// Execution plans: the graph specialised to concrete input shapes, placed on backends, with
// every intermediate buffer assigned an offset in a per-device arena.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "graph.h"
#include "outpost/kernels/backend.h"

namespace outpost {

struct PlannedValue {
  DataType dtype = DataType::kUndefined;
  Shape shape;
  bool known = false;                       // type and shape known before running
  std::shared_ptr<const Tensor> constant;   // initializer or folded (host)
  int graph_value = -1;                     // the graph value this is (or mirrors)
  kernels::Backend* backend = nullptr;      // where it lives
  bool graph_input = false;                 // bound to the caller's tensor at run time
  bool planned = false;                     // has an arena slot
  size_t offset = 0;
  size_t bytes = 0;
  int def_step = -1;
  int last_step = -1;
};

struct Step {
  enum Kind { kNode, kCopy } kind = kNode;
  int node = -1;  // graph node index, for kNode
  kernels::Backend* backend = nullptr;
  std::unique_ptr<kernels::PreparedNode> prepared;
  std::vector<int> inputs;   // planned value ids, -1 for omitted
  std::vector<int> outputs;  // planned value ids, -1 for unused
};

struct Plan {
  std::vector<Shape> input_shapes;  // the key
  std::vector<PlannedValue> values;
  std::vector<Step> steps;
  std::vector<int> output_values;   // planned value ids of graph outputs (host side)
  std::vector<int> input_values;    // planned value ids of graph inputs (in graph order)
  std::vector<kernels::Backend*> arena_backends;
  std::vector<size_t> arena_bytes;  // per arena_backends entry
  std::vector<std::string> backends_used;
  bool uses_accelerator = false;
};

}  // namespace outpost
