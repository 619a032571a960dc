// Reductions on OpenCL: Reduce*, ArgMax/ArgMin, Global*Pool (as reductions), Softmax family.
#include <algorithm>

#include "opencl/cl_common.h"

namespace outpost::kernels::opencl {
namespace {

struct ReduceKind {
  const char* op;
  int opk;
  int axes_input_opset;  // first opset where axes come as input 1
  bool float_only;
};

const ReduceKind kReduce[] = {
    {"ReduceSum", 0, 13, false},       {"ReduceMean", 1, 18, false},
    {"ReduceMax", 2, 18, false},       {"ReduceMin", 3, 18, false},
    {"ReduceProd", 4, 18, false},      {"ReduceL1", 5, 18, false},
    {"ReduceL2", 6, 18, true},         {"ReduceSumSquare", 7, 18, false},
    {"ReduceLogSum", 8, 18, true},     {"ReduceLogSumExp", 9, 18, true},
    {"ArgMax", 10, 1000, false},       {"ArgMin", 11, 1000, false},
    {"GlobalAveragePool", 1, 1000, true}, {"GlobalMaxPool", 2, 1000, true},
    {"GlobalLpPool", 6, 1000, true},
};

const char* AccType(DataType t) {
  if (t == DataType::kFloat) return "float";
  if (t == DataType::kDouble) return "double";
  if (t == DataType::kUInt64) return "ulong";
  return "long";
}

std::string TypeLimit(DataType t, bool max) {
  switch (t) {
    case DataType::kFloat:
    case DataType::kDouble: return max ? "(-INFINITY)" : "INFINITY";
    case DataType::kInt8: return max ? "CHAR_MIN" : "CHAR_MAX";
    case DataType::kInt16: return max ? "SHRT_MIN" : "SHRT_MAX";
    case DataType::kInt32: return max ? "INT_MIN" : "INT_MAX";
    case DataType::kInt64: return max ? "LONG_MIN" : "LONG_MAX";
    case DataType::kUInt8:
    case DataType::kBool: return max ? "0" : "UCHAR_MAX";
    case DataType::kUInt16: return max ? "0" : "USHRT_MAX";
    case DataType::kUInt32: return max ? "0" : "UINT_MAX";
    default: return max ? "0" : "ULONG_MAX";
  }
}

Status Reduce(const OpCtx& c) {
  const std::string& op = c.node.op_type;
  const ReduceKind* k = nullptr;
  for (const auto& r : kReduce)
    if (op == r.op) k = &r;
  if (!k || !c.has(0) || !c.has_out(0)) return c.No("bad reduce");
  DataType t = c.input(0).dtype();
  if (!ClType(t) || (t == DataType::kDouble && !c.rt.fp64)) return c.No("data type");
  bool minmax = k->opk == 2 || k->opk == 3;
  if (t == DataType::kBool && !minmax) return c.No("bool input");
  if (k->float_only && t != DataType::kFloat && t != DataType::kDouble) return c.No("non-float input");
  const Shape& x = c.input(0).shape();
  const int r = x.rank();
  std::vector<bool> red(r, false);
  int opk = k->opk;
  bool last = false;
  if (op.rfind("Global", 0) == 0) {
    if (op == "GlobalLpPool") {
      int64_t p = c.attr_i("p", 2);
      if (p != 1 && p != 2) return c.No("p=" + std::to_string(p));
      opk = p == 1 ? 5 : 6;
    }
    for (int d = 2; d < r; ++d) red[d] = true;
  } else if (opk >= 10) {
    int64_t a = NormAxis(c.attr_i("axis", 0), r);
    if (a < 0) return c.No("bad axis");
    red[a] = true;
    last = c.attr_i("select_last_index", 0) != 0;
    if (x[static_cast<int>(a)] == 0) return c.No("arg reduction over an empty axis");
  } else {
    std::vector<int64_t> axes;
    if (c.node.opset >= k->axes_input_opset) {
      if (c.has(1)) {
        if (!c.is_const(1)) return c.No("non-constant axes");
        axes = ConstInts(c.input(1));
      }
    } else {
      axes = c.node.attrs.Ints("axes");
    }
    if (axes.empty()) {
      if (c.attr_i("noop_with_empty_axes", 0)) {
        if (!c.check() && c.output(0).numel() > 0) c.node_out->aliases.push_back({0, 0});
        return Status::Ok();
      }
      red.assign(r, true);
    }
    for (auto a : axes) {
      int64_t n = NormAxis(a, r);
      if (n < 0) return c.No("bad axis");
      red[n] = true;
    }
  }
  const Shape& y = c.output(0).shape();
  if (c.check() || y.numel() == 0) return Status::Ok();
  auto st = StridesOf(x);
  std::vector<int64_t> kd, ks, rd, rs;
  int64_t rcount = 1;
  for (int d = 0; d < r; ++d) {
    auto& dims = red[d] ? rd : kd;
    auto& strides = red[d] ? rs : ks;
    if (red[d]) rcount *= x[d];
    if (x[d] == 1) continue;
    bool prev_same = !dims.empty() && strides.back() == st[d] * x[d];
    if (prev_same) {
      dims.back() *= x[d];
      strides.back() = st[d];
    } else {
      dims.push_back(x[d]), strides.push_back(st[d]);
    }
  }
  if (kd.empty()) kd = {1}, ks = {0};
  if (rd.empty()) rd = {1}, rs = {0};
  std::vector<int> p(kd.begin(), kd.end());
  p.insert(p.end(), ks.begin(), ks.end());
  p.insert(p.end(), rd.begin(), rd.end());
  p.insert(p.end(), rs.begin(), rs.end());
  DataType to = c.output(0).dtype();
  std::string defs = TypeDefs(c.rt, "T", t) + Def("TO", ClType(to)) + Def("ACC", AccType(t)) +
                     Def("REDUCE", 1) + Def("RK", static_cast<int64_t>(kd.size())) +
                     Def("RR", static_cast<int64_t>(rd.size())) + Def("OPK", opk) +
                     Def("LAST", last ? 1 : 0) + Def("EMPTY_MAX", TypeLimit(t, true)) +
                     Def("EMPTY_MIN", TypeLimit(t, false)) +
                     Def("EMPTY_MEAN", IsFloating(t) ? "NAN" : "0");
  OP_ASSIGN_OR_RETURN(ClMem params, Params(c, p));
  OP_ASSIGN_OR_RETURN(Step * s, c.AddStep("reduce.cl", defs, "reduce_nd"));
  s->Out(0).In(0).Buf(params).Arg(static_cast<cl_int>(rcount)).Global(static_cast<size_t>(y.numel()));
  return Status::Ok();
}

Status Softmax(const OpCtx& c) {
  if (!c.has(0) || !c.has_out(0)) return c.No("missing input/output");
  if (c.input(0).dtype() != DataType::kFloat) return c.No("non-float input");
  const Shape& x = c.input(0).shape();
  bool legacy = c.node.opset < 13;
  int64_t axis = NormAxis(c.attr_i("axis", legacy ? 1 : -1), x.rank());
  if (axis < 0) return c.No("bad axis");
  int64_t outer = 1, n = 1, inner = 1;
  for (int d = 0; d < x.rank(); ++d) {
    if (d < axis) outer *= x[d];
    else if (d == axis || legacy) n *= x[d];
    else inner *= x[d];
  }
  if (c.check() || x.numel() == 0) return Status::Ok();
  const std::string& op = c.node.op_type;
  int mode = op == "Softmax" ? 0 : op == "LogSoftmax" ? 1 : 2;
  std::string defs = Def("SOFTMAX", 1) + Def("T", "float") + Def("MODE", mode);
  OP_ASSIGN_OR_RETURN(Step * s, c.AddStep("reduce.cl", defs, "softmax"));
  s->Out(0).In(0).Arg(static_cast<cl_int>(n)).Arg(static_cast<cl_int>(inner));
  s->Global(static_cast<size_t>(outer * inner));
  return Status::Ok();
}

}  // namespace

OUTPOST_CL_OP(ReduceSum, 1, 25, Reduce);
OUTPOST_CL_OP(ReduceMean, 1, 25, Reduce);
OUTPOST_CL_OP(ReduceMax, 1, 25, Reduce);
OUTPOST_CL_OP(ReduceMin, 1, 25, Reduce);
OUTPOST_CL_OP(ReduceProd, 1, 25, Reduce);
OUTPOST_CL_OP(ReduceL1, 1, 25, Reduce);
OUTPOST_CL_OP(ReduceL2, 1, 25, Reduce);
OUTPOST_CL_OP(ReduceSumSquare, 1, 25, Reduce);
OUTPOST_CL_OP(ReduceLogSum, 1, 25, Reduce);
OUTPOST_CL_OP(ReduceLogSumExp, 1, 25, Reduce);
OUTPOST_CL_OP(ArgMax, 1, 25, Reduce);
OUTPOST_CL_OP(ArgMin, 1, 25, Reduce);
OUTPOST_CL_OP(GlobalAveragePool, 1, 25, Reduce);
OUTPOST_CL_OP(GlobalMaxPool, 1, 25, Reduce);
OUTPOST_CL_OP(GlobalLpPool, 2, 25, Reduce);
OUTPOST_CL_OP(Softmax, 1, 25, Softmax);
OUTPOST_CL_OP(LogSoftmax, 1, 25, Softmax);
OUTPOST_CL_OP(Hardmax, 1, 25, Softmax);

}  // namespace outpost::kernels::opencl
