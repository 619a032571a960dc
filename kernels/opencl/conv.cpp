// Conv, ConvTranspose and MaxPool/AveragePool/LpPool on OpenCL. Conv runs as im2col into the
// packed GEMM layout + the shared GEMM kernel when channels per group are many, else directly.
#include <algorithm>

#include "opencl/gemm.h"

namespace outpost::kernels::opencl {
namespace {

// Spatial geometry shared by convolutions and pools.
struct Geometry {
  int sd = 0;
  std::vector<int64_t> in, out, k, stride, dil, pb, pe;
  std::vector<int> Params() const {
    std::vector<int> p;
    for (const auto* v : {&in, &out, &k, &stride, &dil, &pb, &pe}) p.insert(p.end(), v->begin(), v->end());
    return p;
  }
};

// Fills strides, dilations and pads from the attributes; `in`, `out` and `k` must be set.
Status ResolvePads(const OpCtx& c, Geometry* g, bool transpose) {
  const int sd = g->sd;
  g->stride = c.node.attrs.Ints("strides", std::vector<int64_t>(sd, 1));
  g->dil = c.node.attrs.Ints("dilations", std::vector<int64_t>(sd, 1));
  if (static_cast<int>(g->stride.size()) != sd || static_cast<int>(g->dil.size()) != sd)
    return c.No("strides/dilations size");
  std::string ap = c.node.attrs.String("auto_pad", "NOTSET");
  std::vector<int64_t> pads = c.node.attrs.Ints("pads");
  g->pb.assign(sd, 0);
  g->pe.assign(sd, 0);
  bool explicit_pads = ap == "NOTSET" && !pads.empty() &&
                       !(transpose && c.node.attrs.Has("output_shape"));
  if (explicit_pads) {
    if (static_cast<int>(pads.size()) != 2 * sd) return c.No("pads size");
    for (int d = 0; d < sd; ++d) g->pb[d] = pads[d], g->pe[d] = pads[sd + d];
    return Status::Ok();
  }
  if (ap == "VALID" || (ap == "NOTSET" && !transpose)) return Status::Ok();
  if (ap != "SAME_UPPER" && ap != "SAME_LOWER" && ap != "NOTSET") return c.No("auto_pad " + ap);
  auto opad = c.node.attrs.Ints("output_padding", std::vector<int64_t>(sd, 0));
  for (int d = 0; d < sd; ++d) {
    int64_t ext = (g->k[d] - 1) * g->dil[d] + 1, total;
    if (transpose)
      total = g->stride[d] * (g->in[d] - 1) + (d < static_cast<int>(opad.size()) ? opad[d] : 0) + ext -
              g->out[d];
    else
      total = std::max<int64_t>(0, (g->out[d] - 1) * g->stride[d] + ext - g->in[d]);
    bool upper = ap == "SAME_UPPER";
    g->pb[d] = upper ? total / 2 : total - total / 2;
    g->pe[d] = total - g->pb[d];
  }
  return Status::Ok();
}

Status Conv(const OpCtx& c) {
  bool transpose = c.node.op_type == "ConvTranspose";
  if (!c.has(0) || !c.has(1) || !c.has_out(0)) return c.No("missing input/output");
  // The padding rule for an explicit output_shape is not implemented here: the CPU runs it.
  if (transpose && c.node.attrs.Has("output_shape")) return c.No("ConvTranspose with output_shape");
  for (int i = 0; i < 3; ++i)
    if (c.has(i) && c.input(i).dtype() != DataType::kFloat) return c.No("non-float input");
  const Shape& x = c.input(0).shape();
  const Shape& w = c.input(1).shape();
  const Shape& y = c.output(0).shape();
  Geometry g;
  g.sd = x.rank() - 2;
  if (g.sd < 1 || g.sd > 3 || w.rank() != x.rank() || y.rank() != x.rank())
    return c.No("needs 1-3 spatial dims");
  for (int d = 0; d < g.sd; ++d) {
    g.in.push_back(x[d + 2]), g.out.push_back(y[d + 2]), g.k.push_back(w[d + 2]);
  }
  OP_RETURN_IF_ERROR(ResolvePads(c, &g, transpose));
  int G = static_cast<int>(c.attr_i("group", 1));
  int C = static_cast<int>(x[1]), M = static_cast<int>(y[1]);
  if (G <= 0 || C % G || M % G) return c.No("bad group");
  bool has_bias = c.has(2) && c.input(2).numel() > 0;
  if (c.check() || y.numel() == 0) return Status::Ok();
  int Cg = C / G, Mg = M / G;
  int64_t ksz = 1;
  for (auto k : g.k) ksz *= k;
  int K = static_cast<int>(Cg * ksz);
  Binding bias = has_bias ? Binding{Binding::kIn, 2, nullptr} : Binding{Binding::kIn, 1, nullptr};
  if (!transpose && g.sd <= 2 && Mg >= 8 && K >= 4) {
    GemmConfig gc = ChooseGemm(c.rt);
    const int nr = gc.nr();
    int N = static_cast<int>(x[0]);
    bool two = g.sd == 2;
    int H = two ? static_cast<int>(g.in[0]) : 1, W = static_cast<int>(g.in[g.sd - 1]);
    int OH = two ? static_cast<int>(g.out[0]) : 1, OW = static_cast<int>(g.out[g.sd - 1]);
    int P = OH * OW;
    int64_t panels = Panels(P, nr);
    auto at = [&](const std::vector<int64_t>& v, int64_t def) { return two ? v[0] : def; };
    std::vector<int> q = {C, H, W, OH, OW, static_cast<int>(at(g.k, 1)), static_cast<int>(g.k.back()),
                          static_cast<int>(at(g.stride, 1)), static_cast<int>(g.stride.back()),
                          static_cast<int>(at(g.dil, 1)), static_cast<int>(g.dil.back()),
                          static_cast<int>(at(g.pb, 0)), static_cast<int>(g.pb.back()), G};
    OP_ASSIGN_OR_RETURN(ClMem qm, Params(c, q));
    size_t per = static_cast<size_t>(panels * K * nr);
    OP_ASSIGN_OR_RETURN(ClMem scratch, c.rt.Alloc(per * N * G * sizeof(float)));
    OP_ASSIGN_OR_RETURN(Step * st, c.AddStep("gemm.cl", gc.Defines(), "im2col_pack"));
    st->Mem(scratch).In(0).Buf(qm).Arg(K).Global(panels, K, N * G);
    GemmShape s;
    s.M = Mg, s.N = P, s.K = K, s.sam = K, s.sak = 1, s.ldc = P, s.sbm = 1, s.sbn = 0;
    s.has_bias = has_bias;
    s.beta = 1.f;
    std::vector<int> table;
    for (int b = 0; b < N * G; ++b) {
      int img = b / G, gr = b % G;
      table.insert(table.end(), {gr * Mg * K, static_cast<int>(b * per), (img * M + gr * Mg) * P,
                                 gr * Mg});
    }
    return AddGemmStep(c, gc, s, {Binding::kIn, 1, nullptr}, {Binding::kMem, 0, scratch}, bias, 0,
                       table);
  }
  OP_ASSIGN_OR_RETURN(ClMem pm, Params(c, g.Params()));
  std::string defs = Def("CONV", 1) + Def("SD", g.sd) + Def("HAS_BIAS", has_bias ? 1 : 0);
  OP_ASSIGN_OR_RETURN(Step * st, c.AddStep("conv.cl", defs, transpose ? "conv_transpose" : "conv_direct"));
  st->Out(0).In(0).In(1).Bind(bias).Buf(pm).Arg(C).Arg(M).Arg(G).Global(static_cast<size_t>(y.numel()));
  return Status::Ok();
}

Status Pool(const OpCtx& c) {
  const std::string& op = c.node.op_type;
  if (!c.has(0) || !c.has_out(0)) return c.No("missing input/output");
  DataType t = c.input(0).dtype();
  bool is_max = op == "MaxPool";
  if (t != DataType::kFloat && !(is_max && (t == DataType::kInt8 || t == DataType::kUInt8)))
    return c.No("data type " + std::string(DataTypeName(t)));
  const Shape& x = c.input(0).shape();
  const Shape& y = c.output(0).shape();
  Geometry g;
  g.sd = x.rank() - 2;
  g.k = c.node.attrs.Ints("kernel_shape");
  if (g.sd < 1 || g.sd > 3 || static_cast<int>(g.k.size()) != g.sd) return c.No("kernel_shape/rank");
  for (int d = 0; d < g.sd; ++d) g.in.push_back(x[d + 2]), g.out.push_back(y[d + 2]);
  OP_RETURN_IF_ERROR(ResolvePads(c, &g, false));
  bool with_index = c.has_out(1);
  if (with_index && c.output(1).dtype() != DataType::kInt64) return c.No("index type");
  int64_t storage = c.attr_i("storage_order", 0);
  float lp = static_cast<float>(c.attr_i("p", 2));
  if (c.check() || y.numel() == 0) return Status::Ok();
  int mode = is_max ? 0 : op == "AveragePool" ? 1 : 2;
  std::string defs = Def("POOL", 1) + Def("SD", g.sd) + Def("MODE", mode) + Def("T", ClType(t)) +
                     Def("WITH_INDEX", with_index ? 1 : 0) + Def("COLMAJOR", storage ? 1 : 0);
  OP_ASSIGN_OR_RETURN(ClMem pm, Params(c, g.Params()));
  OP_ASSIGN_OR_RETURN(Step * st, c.AddStep("conv.cl", defs, "pool"));
  st->Out(0).In(0);
  if (with_index) st->Out(1);
  st->Buf(pm).Arg(static_cast<cl_int>(x[1])).Arg(static_cast<cl_int>(c.attr_i("count_include_pad", 0)));
  st->Arg(lp).Global(static_cast<size_t>(y.numel()));
  return Status::Ok();
}

}  // namespace

OUTPOST_CL_OP(Conv, 1, 23, Conv);
OUTPOST_CL_OP(ConvTranspose, 1, 23, Conv);
OUTPOST_CL_OP(MaxPool, 1, 23, Pool);
OUTPOST_CL_OP(AveragePool, 1, 23, Pool);
OUTPOST_CL_OP(LpPool, 2, 23, Pool);

}  // namespace outpost::kernels::opencl
