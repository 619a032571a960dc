// Data movement ops on OpenCL: copies (Reshape family), Transpose, Concat, Split, Slice, Expand,
// Tile, DepthToSpace/SpaceToDepth, Pad, Gather, GatherElements, Resize.
#include <algorithm>
#include <cstring>

#include "opencl/cl_common.h"

namespace outpost::kernels::opencl {
namespace {

Status CheckMovable(const OpCtx& c, int i) {
  if (!c.has(i)) return c.No("missing input " + std::to_string(i));
  if (!ClBitsType(c.input(i).dtype()))
    return c.No("data type " + std::string(DataTypeName(c.input(i).dtype())));
  return Status::Ok();
}

// Adds a strided copy of input `in` into output `out`: element x (over `dims`) moves from
// in_base + x.in_st to out_base + x.out_st. Dims are collapsed where both sides are contiguous.
Status AddCopy(const OpCtx& c, int in, int out, std::vector<int64_t> dims, std::vector<int64_t> in_st,
               std::vector<int64_t> out_st, int64_t in_base = 0, int64_t out_base = 0) {
  int64_t n = 1;
  for (auto d : dims) n *= d;
  if (c.check() || n == 0) return Status::Ok();
  std::vector<int64_t> d2, is2, os2;
  for (size_t d = 0; d < dims.size(); ++d) {
    if (dims[d] == 1) continue;
    if (!d2.empty() && is2.back() == in_st[d] * dims[d] && os2.back() == out_st[d] * dims[d]) {
      d2.back() *= dims[d];
      is2.back() = in_st[d];
      os2.back() = out_st[d];
    } else {
      d2.push_back(dims[d]), is2.push_back(in_st[d]), os2.push_back(out_st[d]);
    }
  }
  if (d2.empty()) d2 = {1}, is2 = {1}, os2 = {1};
  if (d2.size() == 1 && is2[0] == 1 && os2[0] == 1) {  // one contiguous block: a buffer copy
    const size_t es = DataTypeSize(c.input(in).dtype());
    Step& s = c.node_out->steps.emplace_back();
    s.Out(out).In(in).Global(static_cast<size_t>(n) * es);
    s.copy_src = static_cast<size_t>(in_base) * es, s.copy_dst = static_cast<size_t>(out_base) * es;
    return Status::Ok();
  }
  std::vector<int> p(d2.begin(), d2.end());
  p.insert(p.end(), is2.begin(), is2.end());
  p.insert(p.end(), os2.begin(), os2.end());
  std::string defs = Def("COPY_ND", 1) + Def("T", ClBitsType(c.input(in).dtype())) +
                     Def("R", static_cast<int64_t>(d2.size()));
  OP_ASSIGN_OR_RETURN(ClMem params, Params(c, p));
  OP_ASSIGN_OR_RETURN(Step * s, c.AddStep("movement.cl", defs, "copy_nd"));
  s->Out(out).In(in).Buf(params).Arg(static_cast<cl_int>(in_base)).Arg(static_cast<cl_int>(out_base));
  s->Global(static_cast<size_t>(n));
  return Status::Ok();
}

std::vector<int64_t> Dims(const Shape& s) { return s.vec(); }

// Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout (inference): a plain buffer copy.
Status CopyOp(const OpCtx& c) {
  OP_RETURN_IF_ERROR(CheckMovable(c, 0));
  if (!c.has_out(0)) return c.No("no output");
  if (c.node.op_type == "Dropout") {
    if (c.has_out(1)) return c.No("Dropout mask output");
    if (c.has(2) && (!c.is_const(2) || ReadInt(c.input(2), 0) != 0)) return c.No("training mode");
  }
  if (c.output(0).numel() != c.input(0).numel()) return c.No("element count changes");
  if (!c.check()) c.node_out->aliases.push_back({0, 0});
  return Status::Ok();
}

Status Transpose(const OpCtx& c) {
  OP_RETURN_IF_ERROR(CheckMovable(c, 0));
  const Shape& x = c.input(0).shape();
  std::vector<int64_t> perm = c.node.attrs.Ints("perm");
  if (perm.empty())
    for (int d = x.rank() - 1; d >= 0; --d) perm.push_back(d);
  if (static_cast<int>(perm.size()) != x.rank()) return c.No("perm size");
  auto ist = StridesOf(x);
  std::vector<int64_t> dims, in_st;
  for (auto p : perm) {
    if (p < 0 || p >= x.rank()) return c.No("bad perm");
    dims.push_back(x[static_cast<int>(p)]);
    in_st.push_back(ist[p]);
  }
  return AddCopy(c, 0, 0, dims, in_st, StridesOf(Shape(std::span<const int64_t>(dims))));
}

Status Concat(const OpCtx& c) {
  if (!c.has_out(0)) return c.No("no output");
  const Shape& y = c.output(0).shape();
  int64_t axis = NormAxis(c.attr_i("axis", 0), y.rank());
  if (axis < 0) return c.No("bad axis");
  auto ost = StridesOf(y);
  int64_t off = 0;
  for (int i = 0; i < c.nin(); ++i) {
    OP_RETURN_IF_ERROR(CheckMovable(c, i));
    const Shape& s = c.input(i).shape();
    if (s.rank() != y.rank()) return c.No("rank mismatch");
    OP_RETURN_IF_ERROR(AddCopy(c, i, 0, Dims(s), StridesOf(s), ost, 0, off * ost[axis]));
    off += s[static_cast<int>(axis)];
  }
  return Status::Ok();
}

Status Split(const OpCtx& c) {
  OP_RETURN_IF_ERROR(CheckMovable(c, 0));
  const Shape& x = c.input(0).shape();
  int64_t axis = NormAxis(c.attr_i("axis", 0), x.rank());
  if (axis < 0) return c.No("bad axis");
  auto ist = StridesOf(x);
  int64_t off = 0;
  for (size_t o = 0; o < c.out.size(); ++o) {
    if (!c.out[o]) return c.No("unused Split output (offsets unknown)");
    const Shape& s = c.output(static_cast<int>(o)).shape();
    OP_RETURN_IF_ERROR(
        AddCopy(c, 0, static_cast<int>(o), Dims(s), ist, StridesOf(s), off * ist[axis], 0));
    off += s[static_cast<int>(axis)];
  }
  return Status::Ok();
}

Status Slice(const OpCtx& c) {
  OP_RETURN_IF_ERROR(CheckMovable(c, 0));
  if (!c.has_out(0)) return c.No("no output");
  const Shape& x = c.input(0).shape();
  std::vector<int64_t> starts, ends, axes, steps;
  if (c.node.opset < 10) {
    starts = c.node.attrs.Ints("starts");
    ends = c.node.attrs.Ints("ends");
    axes = c.node.attrs.Ints("axes");
  } else {
    for (int i = 1; i < 5; ++i)
      if (c.has(i) && !c.is_const(i)) return c.No("non-constant starts/ends/axes/steps");
    if (!c.has(1) || !c.has(2)) return c.No("missing starts/ends");
    starts = ConstInts(c.input(1));
    ends = ConstInts(c.input(2));
    if (c.has(3)) axes = ConstInts(c.input(3));
    if (c.has(4)) steps = ConstInts(c.input(4));
  }
  if (axes.empty())
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (axes.size() != starts.size() || steps.size() != starts.size()) return c.No("size mismatch");
  auto ist = StridesOf(x);
  std::vector<int64_t> in_st = ist;
  int64_t base = 0;
  for (size_t k = 0; k < axes.size(); ++k) {
    int64_t a = NormAxis(axes[k], x.rank());
    if (a < 0 || steps[k] == 0) return c.No("bad axis or step");
    int64_t dim = x[static_cast<int>(a)], st = starts[k];
    if (st < 0) st += dim;
    st = steps[k] > 0 ? std::clamp<int64_t>(st, 0, dim) : std::clamp<int64_t>(st, 0, dim - 1);
    base += st * ist[a];
    in_st[a] = ist[a] * steps[k];
  }
  const Shape& y = c.output(0).shape();
  return AddCopy(c, 0, 0, Dims(y), in_st, StridesOf(y), base, 0);
}

// Input strides broadcast (right-aligned) to `out`.
std::vector<int64_t> BroadcastStrides(const Shape& in, const Shape& out) {
  auto ist = StridesOf(in);
  std::vector<int64_t> st(out.rank(), 0);
  for (int d = 0; d < in.rank(); ++d) {
    int od = out.rank() - in.rank() + d;
    st[od] = in[d] == 1 && out[od] != 1 ? 0 : ist[d];
  }
  return st;
}

Status Expand(const OpCtx& c) {
  OP_RETURN_IF_ERROR(CheckMovable(c, 0));
  if (!c.has_out(0)) return c.No("no output");
  const Shape& y = c.output(0).shape();
  if (y.rank() < c.input(0).rank()) return c.No("rank");
  return AddCopy(c, 0, 0, Dims(y), BroadcastStrides(c.input(0).shape(), y), StridesOf(y));
}

Status Tile(const OpCtx& c) {
  OP_RETURN_IF_ERROR(CheckMovable(c, 0));
  if (!c.has_out(0)) return c.No("no output");
  const Shape& x = c.input(0).shape();
  const Shape& y = c.output(0).shape();
  if (x.rank() != y.rank()) return c.No("rank");
  auto ist = StridesOf(x), ost = StridesOf(y);
  std::vector<int64_t> dims, is, os;
  for (int d = 0; d < x.rank(); ++d) {
    if (x[d] == 0) return Status::Ok();
    dims.push_back(y[d] / x[d]), is.push_back(0), os.push_back(x[d] * ost[d]);
    dims.push_back(x[d]), is.push_back(ist[d]), os.push_back(ost[d]);
  }
  return AddCopy(c, 0, 0, dims, is, os);
}

Status DepthSpace(const OpCtx& c) {
  OP_RETURN_IF_ERROR(CheckMovable(c, 0));
  if (!c.has_out(0)) return c.No("no output");
  const Shape& x = c.input(0).shape();
  int64_t b = c.attr_i("blocksize", 0);
  if (x.rank() != 4 || b <= 0) return c.No("needs 4-D input and blocksize");
  int64_t N = x[0], C = x[1], H = x[2], W = x[3];
  if (c.node.op_type == "DepthToSpace") {
    int64_t Co = C / (b * b), Ho = H * b, Wo = W * b, HW = H * W;
    bool crd = c.node.attrs.String("mode", "DCR") == "CRD";
    std::vector<int64_t> dims = {N, Co, H, b, W, b};
    std::vector<int64_t> os = {Co * Ho * Wo, Ho * Wo, b * Wo, Wo, b, 1};
    std::vector<int64_t> is = crd ? std::vector<int64_t>{C * HW, b * b * HW, W, b * HW, 1, HW}
                                  : std::vector<int64_t>{C * HW, HW, W, b * Co * HW, 1, Co * HW};
    return AddCopy(c, 0, 0, dims, is, os);
  }
  if (c.node.attrs.Has("mode")) return c.No("mode");
  int64_t Ho = H / b, Wo = W / b, HWo = Ho * Wo;
  std::vector<int64_t> dims = {N, C, Ho, b, Wo, b};
  std::vector<int64_t> is = {C * H * W, H * W, b * W, W, b, 1};
  std::vector<int64_t> os = {C * b * b * HWo, HWo, Wo, b * C * HWo, 1, C * HWo};
  return AddCopy(c, 0, 0, dims, is, os);
}

Status Pad(const OpCtx& c) {
  OP_RETURN_IF_ERROR(CheckMovable(c, 0));
  if (!c.has_out(0)) return c.No("no output");
  const Shape& x = c.input(0).shape();
  const Shape& y = c.output(0).shape();
  std::string mode = c.node.attrs.String("mode", "constant");
  int m = mode == "constant" ? 0 : mode == "reflect" ? 1 : mode == "edge" ? 2 : mode == "wrap" ? 3 : -1;
  if (m < 0) return c.No("mode " + mode);
  std::vector<int64_t> pads;
  double value = 0;
  const int r = x.rank();
  if (c.node.opset < 11) {
    pads = c.node.attrs.Ints("pads");
    value = c.attr_f("value", 0.f);
  } else {
    if (!c.is_const(1)) return c.No("non-constant pads");
    pads = ConstInts(c.input(1));
    if (c.has(2) && c.input(2).numel() > 0) {
      if (!c.is_const(2)) return c.No("non-constant value");
      value = ReadDouble(c.input(2), 0);
    }
  }
  std::vector<int64_t> begin(r, 0);
  if (c.has(3)) {
    if (!c.is_const(3)) return c.No("non-constant axes");
    auto axes = ConstInts(c.input(3));
    if (pads.size() != 2 * axes.size()) return c.No("pads size");
    for (size_t k = 0; k < axes.size(); ++k) {
      int64_t a = NormAxis(axes[k], r);
      if (a < 0) return c.No("bad axis");
      begin[a] = pads[k];
    }
  } else {
    if (static_cast<int>(pads.size()) != 2 * r) return c.No("pads size");
    for (int d = 0; d < r; ++d) begin[d] = pads[d];
  }
  if (m != 0)
    for (int d = 0; d < r; ++d)
      if (x[d] == 0 && y[d] > 0) return c.No("reflect/edge/wrap of an empty axis");
  if (c.check() || y.numel() == 0) return Status::Ok();
  // The fill value in the element type's bytes.
  DataType t = c.input(0).dtype();
  uint64_t bits = 0;
  auto put = [&](auto v) { std::memcpy(&bits, &v, sizeof v); };
  switch (t) {
    case DataType::kFloat: put(static_cast<float>(value)); break;
    case DataType::kDouble: put(value); break;
    case DataType::kFloat16: put(Float16(static_cast<float>(value)).bits); break;
    case DataType::kBFloat16: put(BFloat16(static_cast<float>(value)).bits); break;
    default:
      if (IsSigned(t)) put(static_cast<int64_t>(value));
      else put(static_cast<uint64_t>(value));
  }
  auto ist = StridesOf(x);
  std::vector<int> p(y.begin(), y.end());
  p.insert(p.end(), x.begin(), x.end());
  p.insert(p.end(), ist.begin(), ist.end());
  p.insert(p.end(), begin.begin(), begin.end());
  std::string defs = Def("PAD_ND", 1) + Def("T", ClBitsType(t)) + Def("R", std::max(r, 1)) +
                     Def("MODE", m);
  if (r == 0) p = {1, 1, 1, 0};
  OP_ASSIGN_OR_RETURN(ClMem params, Params(c, p));
  OP_ASSIGN_OR_RETURN(Step * s, c.AddStep("movement.cl", defs, "pad_nd"));
  s->Out(0).In(0).Buf(params);
  clSetKernelArg(s->kernel, s->next_arg++, DataTypeSize(t), &bits);
  s->Global(static_cast<size_t>(y.numel()));
  return Status::Ok();
}

Status Gather(const OpCtx& c) {
  OP_RETURN_IF_ERROR(CheckMovable(c, 0));
  if (!c.has(1) || !c.has_out(0)) return c.No("missing input/output");
  DataType it = c.input(1).dtype();
  if (it != DataType::kInt32 && it != DataType::kInt64) return c.No("index type");
  const Shape& x = c.input(0).shape();
  bool elements = c.node.op_type == "GatherElements";
  int64_t axis = NormAxis(c.attr_i("axis", 0), x.rank());
  if (axis < 0 || x.rank() == 0) return c.No("bad axis");
  if (elements && c.input(1).rank() != x.rank()) return c.No("rank mismatch");
  const Shape& y = c.output(0).shape();
  if (c.check() || y.numel() == 0) return Status::Ok();
  std::string defs = Def("GATHER", 1) + Def("T", ClBitsType(c.input(0).dtype())) +
                     Def("TI", ClType(it)) + Def("R", std::max(x.rank(), 1)) + Def("AXIS", axis);
  int axis_len = static_cast<int>(x[static_cast<int>(axis)]);
  if (elements) {
    const Shape& is = c.input(1).shape();
    auto dst = StridesOf(x);
    std::vector<int> p(is.begin(), is.end());
    p.insert(p.end(), dst.begin(), dst.end());
    OP_ASSIGN_OR_RETURN(ClMem params, Params(c, p));
    OP_ASSIGN_OR_RETURN(Step * s, c.AddStep("movement.cl", defs, "gather_elements"));
    s->Out(0).In(0).In(1).Buf(params).Arg(axis_len).Global(static_cast<size_t>(y.numel()));
    return Status::Ok();
  }
  int inner = 1;
  for (int d = static_cast<int>(axis) + 1; d < x.rank(); ++d) inner *= static_cast<int>(x[d]);
  int nidx = static_cast<int>(c.input(1).numel());
  OP_ASSIGN_OR_RETURN(Step * s, c.AddStep("movement.cl", defs, "gather"));
  s->Out(0).In(0).In(1).Arg(nidx).Arg(inner).Arg(axis_len).Global(static_cast<size_t>(y.numel()));
  return Status::Ok();
}

Status Resize(const OpCtx& c) {
  OP_RETURN_IF_ERROR(CheckMovable(c, 0));
  if (!c.has_out(0)) return c.No("no output");
  const Shape& x = c.input(0).shape();
  const Shape& y = c.output(0).shape();
  const int r = x.rank();
  std::string mode = c.node.attrs.String("mode", "nearest");
  if (mode != "nearest" && mode != "linear") return c.No("mode " + mode);
  bool linear = mode == "linear";
  if (linear && c.input(0).dtype() != DataType::kFloat) return c.No("linear on non-float");
  if (c.attr_i("antialias", 0)) return c.No("antialias");
  std::string ctm = c.node.attrs.String("coordinate_transformation_mode", "half_pixel");
  const char* ctms[] = {"half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel",
                        "half_pixel_symmetric"};
  int ctm_i = -1;
  for (int i = 0; i < 5; ++i)
    if (ctm == ctms[i]) ctm_i = i;
  if (c.node.opset < 11) ctm_i = 1;
  if (ctm_i < 0) return c.No("coordinate_transformation_mode " + ctm);
  std::string nm = c.node.attrs.String("nearest_mode", "round_prefer_floor");
  const char* nms[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
  int nm_i = -1;
  for (int i = 0; i < 4; ++i)
    if (nm == nms[i]) nm_i = i;
  if (c.node.opset < 11) nm_i = 2;
  if (nm_i < 0) return c.No("nearest_mode " + nm);
  // Per-axis scales: the scales input when given, else output/input sizes.
  std::vector<float> scales(r, 1.f);
  std::vector<int64_t> axes = c.node.attrs.Ints("axes");
  if (axes.empty())
    for (int d = 0; d < r; ++d) axes.push_back(d);
  int scales_in = c.node.opset < 11 ? 1 : 2;
  bool have_scales = c.has(scales_in) && c.input(scales_in).numel() > 0;
  std::string policy = c.node.attrs.String("keep_aspect_ratio_policy", "stretch");
  if (have_scales) {
    if (!c.is_const(scales_in)) return c.No("non-constant scales");
    const Tensor& s = c.input(scales_in);
    if (s.numel() != static_cast<int64_t>(axes.size())) return c.No("scales size");
    for (size_t k = 0; k < axes.size(); ++k) {
      int64_t a = NormAxis(axes[k], r);
      if (a < 0) return c.No("bad axis");
      scales[a] = static_cast<float>(ReadDouble(s, static_cast<int64_t>(k)));
    }
  } else {
    if (c.has(3) && !c.is_const(3)) return c.No("non-constant sizes");
    float uniform = policy == "not_larger" ? 1e30f : 0.f;
    for (auto a : axes) {
      int64_t d = NormAxis(a, r);
      if (d < 0) return c.No("bad axis");
      if (x[static_cast<int>(d)] == 0) return c.No("empty input axis");
      float s = static_cast<float>(y[static_cast<int>(d)]) / static_cast<float>(x[static_cast<int>(d)]);
      scales[d] = s;
      if (policy == "not_larger") uniform = std::min(uniform, s);
      if (policy == "not_smaller") uniform = std::max(uniform, s);
    }
    if (policy != "stretch" && c.has(3)) {
      auto sizes = ConstInts(c.input(3));
      uniform = policy == "not_larger" ? 1e30f : 0.f;
      for (size_t k = 0; k < axes.size() && k < sizes.size(); ++k) {
        int64_t d = NormAxis(axes[k], r);
        float s = static_cast<float>(sizes[k]) / static_cast<float>(x[static_cast<int>(d)]);
        uniform = policy == "not_larger" ? std::min(uniform, s) : std::max(uniform, s);
      }
      for (auto a : axes) scales[NormAxis(a, r)] = uniform;
    }
  }
  for (float s : scales)
    if (!(s > 0)) return c.No("non-positive scale");
  if (c.check() || y.numel() == 0) return Status::Ok();
  auto ist = StridesOf(x);
  std::vector<int> p(x.begin(), x.end());
  p.insert(p.end(), y.begin(), y.end());
  p.insert(p.end(), ist.begin(), ist.end());
  std::string defs = Def("RESIZE", 1) + Def("R", r) + Def("CTM", ctm_i) + Def("NM", nm_i) +
                     Def("LINEAR", linear ? 1 : 0) +
                     Def("T", linear ? "float" : ClBitsType(c.input(0).dtype()));
  OP_ASSIGN_OR_RETURN(ClMem params, Params(c, p));
  OP_ASSIGN_OR_RETURN(ClMem fparams, c.rt.Upload(scales));
  OP_ASSIGN_OR_RETURN(Step * s, c.AddStep("movement.cl", defs, "resize"));
  s->Out(0).In(0).Buf(params).Buf(fparams).Global(static_cast<size_t>(y.numel()));
  return Status::Ok();
}

}  // namespace

OUTPOST_CL_OP(Reshape, 1, 25, CopyOp);
OUTPOST_CL_OP(Flatten, 1, 25, CopyOp);
OUTPOST_CL_OP(Squeeze, 1, 25, CopyOp);
OUTPOST_CL_OP(Unsqueeze, 1, 25, CopyOp);
OUTPOST_CL_OP(Identity, 1, 25, CopyOp);
OUTPOST_CL_OP(Dropout, 1, 25, CopyOp);
OUTPOST_CL_OP(Transpose, 1, 25, Transpose);
OUTPOST_CL_OP(Concat, 1, 25, Concat);
OUTPOST_CL_OP(Split, 1, 25, Split);
OUTPOST_CL_OP(Slice, 1, 25, Slice);
OUTPOST_CL_OP(Expand, 8, 25, Expand);
OUTPOST_CL_OP(Tile, 6, 25, Tile);
OUTPOST_CL_OP(DepthToSpace, 1, 25, DepthSpace);
OUTPOST_CL_OP(SpaceToDepth, 1, 25, DepthSpace);
OUTPOST_CL_OP(Pad, 2, 25, Pad);
OUTPOST_CL_OP(Gather, 1, 25, Gather);
OUTPOST_CL_OP(GatherElements, 11, 25, Gather);
OUTPOST_CL_OP(Resize, 10, 25, Resize);

}  // namespace outpost::kernels::opencl
