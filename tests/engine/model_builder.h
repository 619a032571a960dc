// Builds small ONNX models in memory for engine tests, and fills input tensors.
#pragma once

#include <onnx/onnx_pb.h>

#include <memory>
#include <string>
#include <vector>

#include "outpost/engine/session.h"

namespace outpost::engine::enginetest {

struct ModelBuilder {
  onnx::ModelProto m;
  onnx::GraphProto* g;
  explicit ModelBuilder(int opset = 17) {
    m.set_ir_version(8);
    auto* os = m.add_opset_import();
    os->set_domain("");
    os->set_version(opset);
    g = m.mutable_graph();
    g->set_name("test");
  }
  void Input(const std::string& name, std::vector<int64_t> dims,
             std::vector<std::string> syms = {}) {
    auto* vi = g->add_input();
    vi->set_name(name);
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    auto* sh = tt->mutable_shape();
    for (size_t i = 0; i < dims.size(); ++i) {
      auto* d = sh->add_dim();
      if (dims[i] >= 0)
        d->set_dim_value(dims[i]);
      else
        d->set_dim_param(i < syms.size() ? syms[i] : "N");
    }
  }
  void Output(const std::string& name) { g->add_output()->set_name(name); }
  onnx::NodeProto* Node(const std::string& op, std::vector<std::string> in,
                        std::vector<std::string> out, const std::string& name = "") {
    auto* n = g->add_node();
    n->set_op_type(op);
    n->set_name(name.empty() ? op + "_" + std::to_string(g->node_size()) : name);
    for (auto& i : in) n->add_input(i);
    for (auto& o : out) n->add_output(o);
    return n;
  }
  Expected<std::unique_ptr<Session>> Load(SessionOptions o = {}) {
    if (o.backend_options.threads == 0) o.backend_options.threads = 2;
    return Session::LoadFromBytes(m.SerializeAsString(), "", o);
  }
};

inline Tensor Filled(Shape s, float start) {
  Tensor t = Tensor::Allocate(DataType::kFloat, s).value();
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = start + static_cast<float>(i);
  return t;
}

// A float initializer named `name` with the given dims and values.
inline void AddInitializer(onnx::GraphProto* g, const std::string& name, std::vector<int64_t> dims,
                           const std::vector<float>& values) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) t->add_dims(d);
  for (float v : values) t->add_float_data(v);
}

}  // namespace outpost::engine::enginetest
