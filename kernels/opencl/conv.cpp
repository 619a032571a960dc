// Conv, ConvTranspose and MaxPool/AveragePool/LpPool on OpenCL. Conv runs as im2col into the
// packed GEMM layout + the shared GEMM kernel when channels per group are many, else directly.
#include <algorithm>

#include "opencl/conv_geom.h"
#include "opencl/gemm.h"
#include "outpost/kernels/fusion.h"

namespace outpost::kernels::opencl {

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
  bool explicit_pads =
      ap == "NOTSET" && !pads.empty() && !(transpose && c.node.attrs.Has("output_shape"));
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
      total = g->stride[d] * (g->in[d] - 1) + (d < static_cast<int>(opad.size()) ? opad[d] : 0) +
              ext - g->out[d];
    else
      total = std::max<int64_t>(0, (g->out[d] - 1) * g->stride[d] + ext - g->in[d]);
    bool upper = ap == "SAME_UPPER";
    g->pb[d] = upper ? total / 2 : total - total / 2;
    g->pe[d] = total - g->pb[d];
  }
  return Status::Ok();
}

namespace {

// Whether the CPU-style kernels run (else the GPU-style ones, as for the GEMM).
bool CpuStyle(const ClRuntime& rt) { return rt.is_cpu && !rt.force_tiled_gemm; }

// The bias argument of a conv kernel (the weights stand in when there is none).
Binding BiasOf(bool has_bias) { return {Binding::kIn, has_bias ? 2 : 1, nullptr}; }

// Conv as GEMM per (image, group): Y[Mg][P] = W[Mg][K] * B[K][P]. B is the input itself for a
// 1x1 stride-1 unpadded conv on a CPU device (read in place), else im2col into the packed layout.
Status ConvGemm(const OpCtx& c, const Geometry& g, int G, bool has_bias, const FusedClamp& clamp) {
  const Shape& x = c.input(0).shape();
  int N = static_cast<int>(x[0]), C = static_cast<int>(x[1]);
  int M = static_cast<int>(c.output(0).shape()[1]), Cg = C / G, Mg = M / G;
  bool two = g.sd == 2;
  auto at = [&](const std::vector<int64_t>& v, int64_t def) {
    return static_cast<int>(two ? v[0] : def);
  };
  int H = at(g.in, 1), W = static_cast<int>(g.in.back());
  int OH = at(g.out, 1), OW = static_cast<int>(g.out.back());
  int P = OH * OW, K = Cg * at(g.k, 1) * static_cast<int>(g.k.back());
  GemmConfig gc = ChooseGemm(c.rt);
  const int nr = gc.nr();
  GemmShape s;
  s.M = Mg, s.N = P, s.K = K, s.sam = K, s.sak = 1, s.ldc = P, s.sbm = 1, s.sbn = 0;
  s.has_bias = has_bias;
  s.beta = 1.f;
  s.lo = clamp.lo, s.hi = clamp.hi;
  bool in_place = !gc.tiled && K == Cg && P == H * W;
  for (int d = 0; d < g.sd; ++d) in_place = in_place && g.stride[d] == 1 && g.pb[d] == 0;
  Binding b{Binding::kIn, 0, nullptr};
  size_t per = in_place ? static_cast<size_t>(Cg) * P : static_cast<size_t>(Panels(P, nr) * K * nr);
  if (in_place) {
    s.ldb = P;
  } else {
    std::vector<int> q = {C, H, W, OH, OW};  // then k, stride, dil, pad_begin as (y, x), G
    for (const auto* v : {&g.k, &g.stride, &g.dil, &g.pb})
      q.insert(q.end(), {at(*v, v == &g.pb ? 0 : 1), static_cast<int>(v->back())});
    q.push_back(G);
    OP_ASSIGN_OR_RETURN(ClMem qm, Params(c, q));
    OP_ASSIGN_OR_RETURN(ClMem scratch, c.rt.Alloc(per * N * G * sizeof(float)));
    OP_ASSIGN_OR_RETURN(Step * st, c.AddStep("gemm.cl", gc.Defines(), "im2col_pack"));
    st->Mem(scratch).In(0).Buf(qm).Arg(K).Global(K, N * G);
    st->local[0] = st->local[1] = 1;  // each work-item loops over the whole image
    b = {Binding::kMem, 0, scratch};
  }
  std::vector<int> table;
  for (int i = 0; i < N * G; ++i) {
    int img = i / G, gr = i % G;
    int boff = in_place ? (img * C + gr * Cg) * P : static_cast<int>(i * per);
    table.insert(table.end(), {gr * Mg * K, boff, (img * M + gr * Mg) * P, gr * Mg});
  }
  return AddGemmStep(c, gc, s, {Binding::kIn, 1, nullptr}, b, BiasOf(has_bias), 0, table);
}

// CPU-style depthwise conv (one input channel per group, 2-D), or 2-D max pool with `pool` (float,
// int8 or uint8): false when the geometry is too large for its private tile or unrolled taps (the
// caller then runs the generic kernel).
Expected<bool> Depthwise(const OpCtx& c, const Geometry& g, bool has_bias, const FusedClamp& clamp,
                         bool pool) {
  auto I = [](int64_t v) { return static_cast<int>(v); };
  const int OH = I(g.out[0]), OW = I(g.out[1]), KH = I(g.k[0]), KW = I(g.k[1]);
  const int SH = I(g.stride[0]), SW = I(g.stride[1]), DH = I(g.dil[0]), DW = I(g.dil[1]);
  const int fw = c.rt.float_width;
  auto waste = [&](int vw) { return (OW + vw - 1) / vw * vw - OW; };
  const int vw = fw == 16 && waste(8) < waste(16) ? 8 : fw, nb = (OW + vw - 1) / vw;
  const int tw = std::max(nb * vw * SW + (KW - 1) * DW, I(g.pb[1] + g.in[1]));
  auto rows = [&](int r) { return (r - 1) * SH + (KH - 1) * DH + 1; };
  const int M = I(c.output(0).shape()[1]), planes = I(c.input(0).shape()[0]) * M;
  // Rows per work-item: about 256 work-items in all, with a tile of at most 8K floats.
  int r = std::clamp((planes * OH + 255) / 256, 1, OH);
  while (r > 1 && rows(r) * tw > 8192) --r;
  if (KH * KW > 64 || nb > 16 || rows(r) * tw > 8192) return false;
  const std::vector<std::pair<const char*, int>> geometry = {
      {"H", I(g.in[0])}, {"W", I(g.in[1])},  {"OH", OH},
      {"OW", OW},        {"KH", KH},         {"KW", KW},
      {"SH", SH},        {"SW", SW},         {"DH", DH},
      {"DWL", DW},       {"PT", I(g.pb[0])}, {"PL", I(g.pb[1])},
      {"R", r},          {"VW", vw},         {"NB", nb},
      {"TR", rows(r)},   {"TW", tw},         {"HAS_BIAS", has_bias},
      {"POOL_MAX", pool}};
  std::string v = std::to_string(vw);
  const DataType t = c.input(0).dtype();
  const std::string dt = ClType(t);
  std::string defs = Def("FLOATV", "float" + v) + Def("VLOADV", "vload" + v) +
                     Def("VSTOREV", "vstore" + v) + Def("DT", dt) + Def("LOADT", "vload" + v) +
                     Def("STORET", "vstore" + v) +
                     Def("TO_F", t == DataType::kFloat ? "" : "convert_float" + v) +
                     Def("TO_T", t == DataType::kFloat ? "" : "convert_" + dt + v);
  FusedClamp bounds = clamp;
  if (t == DataType::kInt8 || t == DataType::kUInt8)
    bounds.lo = t == DataType::kInt8 ? -128.0f : 0.0f, bounds.hi = t == DataType::kInt8 ? 127 : 255;
  for (auto [n, value] : geometry) defs += Def(n, value);
  OP_ASSIGN_OR_RETURN(Step * st, c.AddStep("dwconv.cl", defs, "conv_dw"));
  const int C = I(c.input(0).shape()[1]);
  Binding bias = pool ? Binding{Binding::kIn, 0, nullptr} : BiasOf(has_bias);
  st->Out(0).In(0).In(pool ? 0 : 1).Bind(bias);
  st->Arg(M).Arg(M / C).Arg(bounds.lo).Arg(bounds.hi);
  st->Global((OH + r - 1) / r, planes);
  st->local[0] = st->local[1] = 1;
  return true;
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
  const FusedClamp clamp = GetFusedClamp(c.node.attrs);
  int Cg = C / G, Mg = M / G;
  int64_t K = Cg;
  for (auto k : g.k) K *= k;
  if (!transpose && g.sd <= 2 && Mg >= 8 && K >= 4) return ConvGemm(c, g, G, has_bias, clamp);
  if (!transpose && Cg == 1 && g.sd == 2 && CpuStyle(c.rt)) {
    Expected<bool> done = Depthwise(c, g, has_bias, clamp, false);
    if (!done.ok() || *done) return done.status();
  }
  OP_ASSIGN_OR_RETURN(ClMem pm, Params(c, g.Params()));
  std::string defs = Def("CONV", 1) + Def("SD", g.sd) + Def("HAS_BIAS", has_bias ? 1 : 0);
  OP_ASSIGN_OR_RETURN(Step * st,
                      c.AddStep("conv.cl", defs, transpose ? "conv_transpose" : "conv_direct"));
  st->Out(0).In(0).In(1).Bind(BiasOf(has_bias)).Buf(pm);
  st->Arg(C).Arg(M).Arg(G).Arg(clamp.lo).Arg(clamp.hi);
  st->Global(static_cast<size_t>(y.numel()));
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
  if (g.sd < 1 || g.sd > 3 || static_cast<int>(g.k.size()) != g.sd)
    return c.No("kernel_shape/rank");
  for (int d = 0; d < g.sd; ++d) g.in.push_back(x[d + 2]), g.out.push_back(y[d + 2]);
  OP_RETURN_IF_ERROR(ResolvePads(c, &g, false));
  bool with_index = c.has_out(1);
  if (with_index && c.output(1).dtype() != DataType::kInt64) return c.No("index type");
  int64_t storage = c.attr_i("storage_order", 0);
  float lp = static_cast<float>(c.attr_i("p", 2));
  if (c.check() || y.numel() == 0) return Status::Ok();
  if (is_max && !with_index && g.sd == 2 && CpuStyle(c.rt)) {
    Expected<bool> done = Depthwise(c, g, false, {}, true);
    if (!done.ok() || *done) return done.status();
  }
  int mode = is_max ? 0 : op == "AveragePool" ? 1 : 2;
  std::string defs = Def("POOL", 1) + Def("SD", g.sd) + Def("MODE", mode) + Def("T", ClType(t)) +
                     Def("WITH_INDEX", with_index ? 1 : 0) + Def("COLMAJOR", storage ? 1 : 0);
  OP_ASSIGN_OR_RETURN(ClMem pm, Params(c, g.Params()));
  OP_ASSIGN_OR_RETURN(Step * st, c.AddStep("conv.cl", defs, "pool"));
  st->Out(0).In(0);
  if (with_index) st->Out(1);
  st->Buf(pm)
      .Arg(static_cast<cl_int>(x[1]))
      .Arg(static_cast<cl_int>(c.attr_i("count_include_pad", 0)));
  st->Arg(lp).Global(static_cast<size_t>(y.numel()));
  return Status::Ok();
}

}  // namespace

OUTPOST_CL_OP(Conv, 1, 25, Conv);
OUTPOST_CL_OP(ConvTranspose, 1, 25, Conv);
OUTPOST_CL_OP(MaxPool, 1, 25, Pool);
OUTPOST_CL_OP(AveragePool, 1, 25, Pool);
OUTPOST_CL_OP(LpPool, 2, 25, Pool);

}  // namespace outpost::kernels::opencl
