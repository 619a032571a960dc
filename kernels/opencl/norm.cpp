// BatchNormalization (inference), InstanceNormalization, LayerNormalization and RMSNormalization
// on OpenCL (float32).
#include "opencl/cl_common.h"

namespace outpost::kernels::opencl {
namespace {

Status AllFloat(const OpCtx& c) {
  for (int i = 0; i < c.nin(); ++i)
    if (c.has(i) && c.input(i).dtype() != DataType::kFloat) return c.No("non-float input");
  if (!c.has(0) || !c.has_out(0)) return c.No("missing input/output");
  return Status::Ok();
}

Status BatchNorm(const OpCtx& c) {
  OP_RETURN_IF_ERROR(AllFloat(c));
  if (c.nin() < 5) return c.No("needs 5 inputs");
  if (c.attr_i("training_mode", 0) || (c.node.opset < 7 && c.attr_i("spatial", 1) == 0))
    return c.No("training mode / non-spatial");
  for (int o = 1; o < static_cast<int>(c.out.size()); ++o)
    if (c.has_out(o)) return c.No("training outputs");
  const Shape& x = c.input(0).shape();
  if (x.rank() < 2) return c.No("rank < 2");
  for (int i = 1; i < 5; ++i)
    if (c.input(i).numel() != x[1]) return c.No("per-channel inputs of the wrong size");
  if (c.check() || x.numel() == 0) return Status::Ok();
  int inner = static_cast<int>(x.numel() / x[0] / x[1]);
  OP_ASSIGN_OR_RETURN(Step * s, c.AddStep("norm.cl", "", "batchnorm"));
  s->Out(0).In(0).In(1).In(2).In(3).In(4).Arg(static_cast<cl_int>(x[1])).Arg(inner);
  s->Arg(c.attr_f("epsilon", 1e-5f)).Global(static_cast<size_t>(x.numel()));
  return Status::Ok();
}

// Layer, RMS and instance normalization: rows of n elements with per-row-group affine params.
Status RowNorm(const OpCtx& c) {
  OP_RETURN_IF_ERROR(AllFloat(c));
  const std::string& op = c.node.op_type;
  const Shape& x = c.input(0).shape();
  bool inst = op == "InstanceNormalization", rms = op == "RMSNormalization";
  int64_t rows = 1, n = 1;
  int cmod = 1, scs = 0, sjs = 1, bcs = 0, bjs = 1;
  bool has_bias = !rms && c.has(2) && c.input(2).numel() > 0;
  if (!c.has(1)) return c.No("missing scale");
  if (inst) {
    if (x.rank() < 3) return c.No("rank < 3");
    rows = x[0] * x[1];
    n = x.numel() / std::max<int64_t>(rows, 1);
    cmod = static_cast<int>(x[1]), scs = 1, sjs = 0, bcs = 1, bjs = 0;
    if (c.input(1).numel() != x[1] || !has_bias || c.input(2).numel() != x[1])
      return c.No("scale/bias size");
  } else {
    int64_t axis = NormAxis(c.attr_i("axis", -1), x.rank());
    if (axis < 0) return c.No("bad axis");
    if (c.attr_i("stash_type", 1) != 1) return c.No("stash_type");
    for (int d = 0; d < x.rank(); ++d) (d < axis ? rows : n) *= x[d];
    int64_t sn = c.input(1).numel();
    if (sn != n && sn != 1) return c.No("scale does not cover the normalized shape");
    sjs = sn == 1 ? 0 : 1;
    if (has_bias) {
      int64_t bn = c.input(2).numel();
      if (bn != n && bn != 1) return c.No("bias does not cover the normalized shape");
      bjs = bn == 1 ? 0 : 1;
    }
  }
  bool stats = !inst && !rms && (c.has_out(1) || c.has_out(2));
  if (c.check() || x.numel() == 0) return Status::Ok();
  std::string defs = Def("RMS", rms ? 1 : 0) + Def("HAS_BIAS", has_bias ? 1 : 0) +
                     Def("WITH_STATS", stats ? 1 : 0);
  OP_ASSIGN_OR_RETURN(Step * s, c.AddStep("norm.cl", defs, "rownorm"));
  s->Out(0).In(0).In(1);
  if (has_bias) s->In(2);
  else s->In(1);
  if (stats) {
    for (int o = 1; o <= 2; ++o) {
      if (c.has_out(o)) {
        s->Out(o);
      } else {
        OP_ASSIGN_OR_RETURN(ClMem m, c.rt.Alloc(static_cast<size_t>(rows) * sizeof(float)));
        s->Mem(m);
      }
    }
  }
  s->Arg(static_cast<cl_int>(n)).Arg(cmod).Arg(scs).Arg(sjs).Arg(bcs).Arg(bjs);
  s->Arg(c.attr_f("epsilon", 1e-5f)).Global(static_cast<size_t>(rows));
  return Status::Ok();
}

}  // namespace

OUTPOST_CL_OP(BatchNormalization, 1, 25, BatchNorm);
OUTPOST_CL_OP(InstanceNormalization, 1, 25, RowNorm);
OUTPOST_CL_OP(LayerNormalization, 17, 25, RowNorm);
OUTPOST_CL_OP(RMSNormalization, 23, 25, RowNorm);

}  // namespace outpost::kernels::opencl
