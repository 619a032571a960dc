// Constant: outputs the tensor (or scalar/list) held in one of its value attributes.
#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status ConstantKernel(KernelContext& ctx) {
  const Attributes& a = ctx.attrs();
  if (a.Has("sparse_value")) return ctx.NotSupported("sparse_value");
  Tensor made;
  const Tensor* src = a.TensorAttr("value");
  auto make = [&](DataType t, Shape s) -> Status {
    auto m = Tensor::Allocate(t, s);
    if (!m.ok()) return m.status();
    made = std::move(m).value();
    src = &made;
    return Status::Ok();
  };
  if (src) {
    // A tensor value: used as it is.
  } else if (a.Has("value_float")) {
    OP_RETURN_IF_ERROR(make(DataType::kFloat, Shape{}));
    made.data<float>()[0] = a.Float("value_float", 0);
  } else if (a.Has("value_floats")) {
    auto v = a.Floats("value_floats");
    OP_RETURN_IF_ERROR(make(DataType::kFloat, Shape{static_cast<int64_t>(v.size())}));
    std::copy(v.begin(), v.end(), made.data<float>());
  } else if (a.Has("value_int")) {
    OP_RETURN_IF_ERROR(make(DataType::kInt64, Shape{}));
    made.data<int64_t>()[0] = a.Int("value_int", 0);
  } else if (a.Has("value_ints")) {
    auto v = a.Ints("value_ints");
    OP_RETURN_IF_ERROR(make(DataType::kInt64, Shape{static_cast<int64_t>(v.size())}));
    std::copy(v.begin(), v.end(), made.data<int64_t>());
  } else if (a.Has("value_string")) {
    OP_RETURN_IF_ERROR(make(DataType::kString, Shape{}));
    made.data<std::string>()[0] = a.String("value_string", "");
  } else if (a.Has("value_strings")) {
    auto v = a.Strings("value_strings");
    OP_RETURN_IF_ERROR(make(DataType::kString, Shape{static_cast<int64_t>(v.size())}));
    std::copy(v.begin(), v.end(), made.data<std::string>());
  } else {
    return ctx.Fail("Constant has no value attribute");
  }
  OP_RETURN_IF_ERROR(CheckStorable(ctx, src->dtype()));
  if (!src->on_host()) return ctx.NotSupported("value not in host memory");
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, src->dtype(), src->shape()));
  if (ctx.infer_only() || !y) return Status::Ok();
  CopyTensor(*src, y);
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(Constant, "", 1, 25, ConstantKernel);

}  // namespace outpost::kernels::cpu
