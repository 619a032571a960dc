// Quantized ops on OpenCL (quant.cl): QuantizeLinear, DequantizeLinear, and QLinearMatMul,
// MatMulInteger, QLinearConv, ConvInteger on one integer GEMM with int32 accumulation and a
// requantizing epilogue, bit-exact with the CPU reference kernels.
//
// Two GEMM variants: a portable kernel (scalar int32, any device) and, on PoCL CPU devices with
// AVX2, a u8 x s8 kernel on clang's x86 builtins over weights packed at Prepare (so only for
// constant weights and weight zero points). $OUTPOST_OPENCL_QGEMM=portable|fast forces one
// (read at Prepare); "fast" still runs the portable kernel where weights are not constant.
#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "opencl/conv_geom.h"
#include "outpost/kernels/fusion.h"

namespace outpost::kernels::opencl {
namespace {

bool Is8(DataType t) { return t == DataType::kInt8 || t == DataType::kUInt8; }
int QMin(DataType t) { return t == DataType::kInt8 ? -128 : 0; }
int QMax(DataType t) { return t == DataType::kInt8 ? 127 : 255; }
bool ScaleType(DataType t) { return t == DataType::kFloat || t == DataType::kFloat16; }
std::string TypeName(DataType t) { return std::string(DataTypeName(t)); }

// The reference requantizes in double; without fp64 the device would need a float emulation
// that is not written: such devices leave these ops to the CPU.
Status NeedFp64(const OpCtx& c) {
  return c.rt.fp64 ? Status::Ok()
                   : c.No("device lacks cl_khr_fp64 (requantization runs in double to match the "
                          "reference bit for bit)");
}

// ---------------------------------------------------------------- Quantize / Dequantize

// Scale index of element i (per tensor, per axis, blocked): as the reference's QuantIndexer.
struct QIndex {
  int mode = 0;
  int64_t inner = 1, axis_dim = 1, block = 1, nblocks = 1;
};

Status MakeQIndex(const OpCtx& c, const Shape& x, const Shape& scale, QIndex* q) {
  if (scale.numel() == 1 && scale.rank() <= 1) return Status::Ok();
  const int64_t axis = NormAxis(c.attr_i("axis", 1), x.rank());
  if (axis < 0) return c.No("axis out of range");
  const int64_t block = c.attr_i("block_size", 0);
  q->axis_dim = x[axis];
  for (int i = static_cast<int>(axis) + 1; i < x.rank(); ++i) q->inner *= x[i];
  if (block <= 0) {
    if (scale.rank() != 1 || scale[0] != x[axis]) return c.No("scale shape does not match axis");
    q->mode = 1;
    return Status::Ok();
  }
  q->mode = 2;
  q->block = block;
  q->nblocks = (x[axis] + block - 1) / block;
  bool ok = scale.rank() == x.rank();
  for (int i = 0; ok && i < x.rank(); ++i) ok = scale[i] == (i == axis ? q->nblocks : x[i]);
  return ok ? Status::Ok() : c.No("blocked scale shape does not match");
}

// QuantizeLinear (from float) and DequantizeLinear (to float), int8/uint8; other types run on
// the CPU.
Status QuantDequant(const OpCtx& c) {
  const bool quant = c.node.op_type == "QuantizeLinear";
  if (!c.has(0) || !c.has(1) || !c.has_out(0)) return c.No("missing input/output");
  const Tensor& x = c.input(0);
  const DataType st = c.input(1).dtype();
  const DataType q = quant ? c.output(0).dtype() : x.dtype();
  if (!Is8(q)) return c.No("quantized type " + TypeName(q) + " (int8/uint8 only)");
  if (quant && x.dtype() != DataType::kFloat) return c.No("input type " + TypeName(x.dtype()));
  if (!quant && c.output(0).dtype() != DataType::kFloat)
    return c.No("output type " + TypeName(c.output(0).dtype()));
  if (!ScaleType(st) || (!quant && st != DataType::kFloat))
    return c.No("scale type " + TypeName(st));
  if (quant && c.attr_i("precision", 0) != 0) return c.No("precision attribute");
  const bool has_z = c.has(2) && c.input(2).numel() > 0;
  if (has_z && c.input(2).dtype() != q) return c.No("zero point type");
  if (has_z && c.input(2).shape() != c.input(1).shape() &&
      !(c.input(2).numel() == 1 && c.input(1).numel() == 1))
    return c.No("zero point shape differs from scale shape");
  OP_RETURN_IF_ERROR(NeedFp64(c));
  QIndex qi;
  OP_RETURN_IF_ERROR(MakeQIndex(c, x.shape(), c.input(1).shape(), &qi));
  if (c.check() || x.numel() == 0) return Status::Ok();
  std::string defs = Def(quant ? "QUANTIZE" : "DEQUANTIZE", 1) + Def(quant ? "TY" : "TX", ClType(q)) +
                     Def("SCALE_HALF", st == DataType::kFloat16) + Def("MODE", qi.mode) +
                     Def("HAS_Z", has_z) + Def("QMIN", QMin(q)) + Def("QMAX", QMax(q));
  OP_ASSIGN_OR_RETURN(Step * s, c.AddStep("quant.cl", defs,
                                          quant ? "quantize_linear" : "dequantize_linear"));
  s->Out(0).In(0).In(1).In(has_z ? 2 : 1);
  for (int64_t v : {qi.inner, qi.axis_dim, qi.block, qi.nblocks}) s->Arg(static_cast<int>(v));
  s->Global(static_cast<size_t>(x.numel()));
  return Status::Ok();
}

// ---------------------------------------------------------------- the integer GEMM

// Largest K for which every int32 sum of K products of centred 8-bit values is exact.
constexpr int64_t kMaxK = (int64_t{1} << 31) / (255 * 255);

// A per-output parameter (zero point, bias, scale): its input (-1: absent) and the strides of its
// index over the channel offset, the row and the column of C.
struct Slot {
  int input = -1;
  int sc = 0, sr = 0, sn = 0;
};
enum { kZA, kZB, kBias, kSA, kSB, kSY, kZY, kSlots };

struct QGemm {
  DataType ta = DataType::kUInt8, tb = DataType::kUInt8, tc = DataType::kInt32;
  bool requant = false, scale_half = false;
  int M = 0, N = 0, K = 0, sam = 0, sak = 1, sbk = 0, sbn = 1, scr = 0, scn = 1;
  int qlo = 0, qhi = 0;
  Slot slot[kSlots];
  std::vector<int> table;  // 5 per batch: A, B, C offsets, channel offset, packed column offset

  std::string Defines() const {
    auto has = [&](int s) { return slot[s].input >= 0; };
    return Def("QGEMM", 1) + Def("TA", ClType(ta)) + Def("TB", ClType(tb)) +
           Def("TC", requant ? ClType(tc) : "int") + Def("REQUANT", requant) +
           Def("TC8", std::string(requant ? ClType(tc) : "int") + "8") +
           Def("CONVERT_TC8", std::string("convert_") + (requant ? ClType(tc) : "int") + "8") +
           Def("CONVERT_TC16", std::string("convert_") + (requant ? ClType(tc) : "int") + "16") +
           Def("SCALE_HALF", scale_half) + Def("QMIN", requant ? QMin(tc) : 0) +
           Def("QMAX", requant ? QMax(tc) : 0) + Def("HAS_ZA", has(kZA)) + Def("HAS_ZB", has(kZB)) +
           Def("HAS_BIAS", has(kBias)) + Def("HAS_ZY", has(kZY)) + Def("MULT_TABLE", !!mult);
  }
  ClMem mult;  // MULT_TABLE: multipliers at mc * co + mr * r + mn * n
  int mc = 0, mr = 0, mn = 0;
  std::vector<int> SlotParams() const {
    std::vector<int> p;
    for (const Slot& s : slot) p.insert(p.end(), {s.sc, s.sr, s.sn});
    p.insert(p.end(), {mc, mr, mn});
    return p;
  }
  Binding MultBinding() const {
    return mult ? Binding{Binding::kMem, 0, mult} : Binding{Binding::kIn, 0, nullptr};
  }
  Binding SlotBinding(int s) const { return {Binding::kIn, std::max(slot[s].input, 0), nullptr}; }
};

// Strides along the row and column (last two dims) of `target` of a tensor of shape `s`
// broadcast to it numpy-style; false when it varies along a leading dim or does not broadcast.
bool BcastRC(const Shape& s, const Shape& target, int* sr, int* sc) {
  *sr = *sc = 0;
  const int tr = target.rank();
  if (s.rank() > tr) return false;
  const auto st = StridesOf(s);
  for (int d = 0; d < s.rank(); ++d) {
    const int od = tr - s.rank() + d;
    if (s[d] == 1) continue;
    if (s[d] != target[od]) return false;
    if (od == tr - 1)
      *sc = static_cast<int>(st[d]);
    else if (od == tr - 2)
      *sr = static_cast<int>(st[d]);
    else
      return false;
  }
  return true;
}

// Which kernel: $OUTPOST_OPENCL_QGEMM=portable|fast|vnni, else on PoCL CPU devices the VNNI
// convolution where the host CPU has AVX-512 VNNI, and the u8 x s8 AVX2 kernel for the rest (where
// the x86 builtins compile; elsewhere the fast kernels do not exist and the portable one runs).
// "vnni" concerns convolutions (their other kernels as in auto); "portable" also selects the
// scalar depthwise kernel, which otherwise runs on non-CPU devices only.
enum class Variant { kPortable, kFast, kVnni, kAuto };
Variant RequestedVariant() {
  const char* e = std::getenv("OUTPOST_OPENCL_QGEMM");
  if (e && std::string(e) == "portable") return Variant::kPortable;
  if (e && std::string(e) == "fast") return Variant::kFast;
  if (e && std::string(e) == "vnni") return Variant::kVnni;
  return Variant::kAuto;
}
bool IsPocl(const ClRuntime& rt) {
  std::string k = rt.device_key;
  for (char& ch : k) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return k.find("pocl") != std::string::npos;
}
// PoCL's CPU device runs on the host CPU: its features are the host's.
bool HostHasVnni() {
#if defined(__x86_64__) || defined(__i386__)
  return __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

Status AddPortable(const OpCtx& c, const QGemm& q, Binding a, Binding b) {
  OP_ASSIGN_OR_RETURN(ClMem bt, Params(c, q.table));
  OP_ASSIGN_OR_RETURN(ClMem ps, Params(c, q.SlotParams()));
  OP_ASSIGN_OR_RETURN(Step * st, c.AddStep("quant.cl", q.Defines(), "qgemm_portable"));
  st->Out(0).Bind(std::move(a)).Bind(std::move(b));
  for (int s = 0; s < kSlots; ++s) st->Bind(q.SlotBinding(s));
  st->Bind(q.MultBinding());
  st->Buf(bt).Buf(ps).Arg(q.M).Arg(q.N).Arg(q.K).Arg(q.sam).Arg(q.sak).Arg(q.sbk).Arg(q.sbn);
  st->Arg(q.scr).Arg(q.scn).Arg(q.qlo).Arg(q.qhi);
  st->Global((q.N + 3) / 4, (q.M + 3) / 4, q.table.size() / 5);
  return Status::Ok();
}

// The fast kernel's packed weights: B'(k, n) = B(k, n) - 128 for uint8 B, as s8.
struct PackedB {
  std::vector<int32_t> bp;  // per B batch: panels x ceil(K / 4) x S x NV int8 vectors
  std::vector<int32_t> cp, zbp;  // per B batch and padded column: K * zb' - colsum, zb'
  bool split = false, need_rowsum = false;
  int64_t per_b = 0, per_c = 0;
};
constexpr int kNV = 2, kMR = 4, kNR = 8 * kNV;

// B(k, n) = b[off + k * sbk + n * sbn] for each batch offset; its zero point (or null) at
// co * sc + n * sn of `zb` with the batch's channel offset co.
PackedB PackFast(const Tensor& b, const Tensor* zb, const Slot& zs, int K, int N, int sbk,
                 int sbn, const std::vector<std::pair<int64_t, int>>& batches) {
  PackedB p;
  const bool u8 = b.dtype() == DataType::kUInt8;
  auto val = [&](int64_t i) { return static_cast<int>(ReadInt(b, i)) - (u8 ? 128 : 0); };
  for (auto [off, co] : batches)
    for (int k = 0; k < K; ++k)
      for (int n = 0; n < N; ++n) {
        const int v = val(off + int64_t{k} * sbk + int64_t{n} * sbn);
        p.split = p.split || v < -64 || v > 63;
      }
  const int S = p.split ? 2 : 1, K4 = (K + 3) / 4, panels = (N + kNR - 1) / kNR;
  p.per_b = int64_t{panels} * K4 * S * kNR;
  p.per_c = int64_t{panels} * kNR;
  p.bp.assign(p.per_b * batches.size(), 0);
  p.cp.assign(p.per_c * batches.size(), 0);
  p.zbp.assign(p.per_c * batches.size(), 0);
  for (size_t bi = 0; bi < batches.size(); ++bi) {
    auto [off, co] = batches[bi];
    auto* bytes = reinterpret_cast<int8_t*>(p.bp.data() + bi * p.per_b);
    for (int n = 0; n < N; ++n) {
      const int jb = n / kNR, v = (n % kNR) / 8, j = n % 8;
      int64_t colsum = 0;
      for (int k = 0; k < K; ++k) {
        const int x = val(off + int64_t{k} * sbk + int64_t{n} * sbn);
        colsum += x;
        for (int s = 0; s < S; ++s) {
          const int part = !p.split ? x : s == 0 ? (x >> 1) : (x & 1);
          const int64_t vec = ((int64_t{jb} * K4 + k / 4) * S + s) * kNV + v;
          bytes[(vec * 8 + j) * 4 + k % 4] = static_cast<int8_t>(part);
        }
      }
      const int z = (zb ? static_cast<int>(ReadInt(*zb, co * zs.sc + n * zs.sn)) : 0) -
                    (u8 ? 128 : 0);
      p.zbp[bi * p.per_c + n] = z;
      p.cp[bi * p.per_c + n] = static_cast<int32_t>(int64_t{K} * z - colsum);
      p.need_rowsum = p.need_rowsum || z != 0;
    }
  }
  return p;
}

// The fast kernel when the device has it: false (nothing added) when it does not.
Expected<bool> AddFast(const OpCtx& c, const QGemm& q, Binding a, const PackedB& p) {
  const bool a8 = q.ta == DataType::kInt8;
  std::string defs = q.Defines() + Def("FAST", 1) + Def("NV", kNV) + Def("MR", kMR) +
                     Def("SPLIT", p.split) + Def("AXOR", a8 ? 0x80 : 0) + Def("DA", a8 ? 128 : 0) +
                     Def("NEED_RS", p.need_rowsum);
  OP_ASSIGN_OR_RETURN(cl_kernel built, c.rt.Kernel("quant.cl", defs, "qrowsum"));
  clReleaseKernel(built);  // the program builds; the fast kernel is in it where AVX2 is
  Expected<cl_kernel> probe = c.rt.Kernel("quant.cl", defs, "qgemm_u8s8");
  if (!probe.ok()) return false;
  clReleaseKernel(*probe);
  const size_t batches = q.table.size() / 5;
  OP_ASSIGN_OR_RETURN(ClMem bt, Params(c, q.table));
  OP_ASSIGN_OR_RETURN(ClMem ps, Params(c, q.SlotParams()));
  OP_ASSIGN_OR_RETURN(ClMem bp, c.rt.Upload(p.bp));
  OP_ASSIGN_OR_RETURN(ClMem cp, c.rt.Upload(p.cp));
  OP_ASSIGN_OR_RETURN(ClMem zbp, c.rt.Upload(p.zbp));
  ClMem rs = cp;
  if (p.need_rowsum) {
    OP_ASSIGN_OR_RETURN(rs, c.rt.Alloc(batches * q.M * sizeof(int32_t)));
    OP_ASSIGN_OR_RETURN(Step * st, c.AddStep("quant.cl", defs, "qrowsum"));
    st->Mem(rs).Bind(a).Buf(bt).Arg(q.M).Arg(q.K).Arg(q.sam).Arg(static_cast<cl_uchar>(a8 ? 0x80 : 0));
    st->Global(q.M, batches);
  }
  OP_ASSIGN_OR_RETURN(Step * st, c.AddStep("quant.cl", defs, "qgemm_u8s8"));
  st->Out(0).Bind(std::move(a)).Mem(bp).Bind(q.SlotBinding(kZA)).Mem(cp).Mem(zbp).Mem(rs);
  for (int s = kBias; s < kSlots; ++s) st->Bind(q.SlotBinding(s));
  st->Bind(q.MultBinding());
  st->Buf(bt).Buf(ps).Arg(q.M).Arg(q.N).Arg(q.K).Arg(q.sam).Arg(q.scr).Arg(q.scn);
  // About 16K multiply-adds per work-item where there are enough, keeping 64 work-items.
  const int row_blocks = (q.M + kMR - 1) / kMR, panels = (q.N + kNR - 1) / kNR;
  const int64_t per_block = int64_t{kMR} * kNR * q.K;
  int jp = static_cast<int>(std::clamp<int64_t>(16384 / per_block, 1, panels));
  int rp = static_cast<int>(std::clamp<int64_t>(16384 / (per_block * jp), 1, row_blocks));
  auto items = [&] {
    return int64_t{(row_blocks + rp - 1) / rp} * ((panels + jp - 1) / jp) * int64_t(batches);
  };
  while (rp > 1 && items() < 64) rp /= 2;
  while (jp > 1 && items() < 64) jp /= 2;
  st->Arg(q.qlo).Arg(q.qhi).Arg(rp).Arg(jp);
  st->Global((row_blocks + rp - 1) / rp, (panels + jp - 1) / jp, batches);
  st->local[0] = st->local[1] = st->local[2] = 1;
  return true;
}

// With constant scales that vary along at most one of the output channel / row / column, the
// multipliers are computed here once, in the reference's order (each step rounded to the scales'
// type), instead of per output element on the device.
Status MultTable(const OpCtx& c, QGemm* q) {
  if (!q->requant) return Status::Ok();
  for (int s : {kSA, kSB, kSY})
    if (!c.is_const(q->slot[s].input)) return Status::Ok();
  int co_max = 0;
  for (size_t b = 3; b < q->table.size(); b += 5) co_max = std::max(co_max, q->table[b]);
  int dir = 0;  // 1: along rows, 2: along columns
  for (int s : {kSA, kSB, kSY}) {
    const Slot& t = q->slot[s];
    if (!t.sc && !t.sr && !t.sn) continue;
    const int d = t.sr == 1 && t.sn == 0 ? 1 : t.sn == 1 && t.sr == 0 ? 2 : -1;
    if (d < 0 || (dir && dir != d) || (co_max > 0 && t.sc != 1)) return Status::Ok();
    dir = d;
  }
  const int len = dir == 0 ? 1 : co_max + (dir == 1 ? q->M : q->N);
  std::vector<double> m(len);
  auto round = [&](float v) { return q->scale_half ? static_cast<float>(Float16(v)) : v; };
  auto scale = [&](int s, int j) {
    const Slot& t = q->slot[s];
    return static_cast<float>(ReadDouble(c.input(t.input), t.sc || t.sr || t.sn ? j : 0));
  };
  for (int j = 0; j < len; ++j)
    m[j] = round(round(scale(kSA, j) * scale(kSB, j)) / scale(kSY, j));
  OP_ASSIGN_OR_RETURN(q->mult, c.rt.Upload(m));
  q->mc = dir != 0, q->mr = dir == 1, q->mn = dir == 2;
  return Status::Ok();
}

// Scales: all of one type, float or float16. Sets q->scale_half.
Status CheckScales(const OpCtx& c, std::initializer_list<int> inputs, QGemm* q) {
  const DataType t = c.input(*inputs.begin()).dtype();
  for (int i : inputs)
    if (c.input(i).dtype() != t || !ScaleType(t)) return c.No("scale types");
  q->scale_half = t == DataType::kFloat16;
  return Status::Ok();
}

// Output bounds: the type's range, narrowed by a fused clamp [lo, hi] to zp + round(bound / ys)
// (y_scale and y_zero_point must then be constants).
Status OutputBounds(const OpCtx& c, int ys, int yzp, QGemm* q) {
  q->qlo = q->requant ? QMin(q->tc) : 0;
  q->qhi = q->requant ? QMax(q->tc) : 0;
  const FusedClamp f = GetFusedClamp(c.node.attrs);
  if (!f.active) return Status::Ok();
  if (!q->requant) return c.No("fused clamp on an int32 output");
  const bool zc = !c.has(yzp) || c.is_const(yzp);
  if (!c.is_const(ys) || !zc || c.input(ys).numel() != 1)
    return c.No("fused clamp needs constant per-tensor y_scale and y_zero_point");
  if (c.check()) return Status::Ok();
  const double s = ReadDouble(c.input(ys), 0);
  const double z = c.has(yzp) ? static_cast<double>(ReadInt(c.input(yzp), 0)) : 0.0;
  auto bound = [&](float b, int dflt) {
    if (std::isinf(b)) return dflt;
    const double v = z + std::nearbyint(static_cast<double>(b) / s);
    return static_cast<int>(std::clamp(v, -1e9, 1e9));
  };
  q->qlo = std::max(q->qlo, bound(f.lo, q->qlo));
  q->qhi = std::min(q->qhi, bound(f.hi, q->qhi));
  return Status::Ok();
}

// QLinearMatMul (inputs a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp) and MatMulInteger
// (a, b, a_zp, b_zp).
Status QMatMul(const OpCtx& c) {
  const bool ql = c.node.op_type == "QLinearMatMul";
  const int ia = 0, ib = ql ? 3 : 1, iza = 2, izb = ql ? 5 : 3;
  for (int i : ql ? std::vector<int>{0, 1, 3, 4, 6} : std::vector<int>{0, 1})
    if (!c.has(i)) return c.No("missing input");
  if (!c.has_out(0)) return c.No("missing output");
  QGemm q;
  q.ta = c.input(ia).dtype(), q.tb = c.input(ib).dtype(), q.tc = c.output(0).dtype();
  q.requant = ql;
  if (!Is8(q.ta) || !Is8(q.tb)) return c.No("operand types (int8/uint8 only)");
  if (ql ? !Is8(q.tc) : q.tc != DataType::kInt32) return c.No("output type " + TypeName(q.tc));
  auto present = [&](int i) { return c.has(i) && c.input(i).numel() > 0; };
  if (present(iza) && c.input(iza).dtype() != q.ta) return c.No("a zero point type");
  if (present(izb) && c.input(izb).dtype() != q.tb) return c.No("b zero point type");
  if (ql && present(7) && c.input(7).dtype() != q.tc) return c.No("y zero point type");
  if (ql) OP_RETURN_IF_ERROR(CheckScales(c, {1, 4, 6}, &q));
  OP_RETURN_IF_ERROR(NeedFp64(c));
  Shape a = c.input(ia).shape(), b = c.input(ib).shape();
  const Shape& y = c.output(0).shape();
  if (a.rank() == 0 || b.rank() == 0) return c.No("scalar operand");
  const bool vec = a.rank() == 1 || b.rank() == 1;
  if (a.rank() == 1) a = Shape{1, a[0]};
  if (b.rank() == 1) b = Shape{b[0], 1};
  q.M = static_cast<int>(a[a.rank() - 2]);
  q.K = static_cast<int>(a[a.rank() - 1]);
  q.N = static_cast<int>(b[b.rank() - 1]);
  if (b[b.rank() - 2] != q.K) return c.No("inner dimensions differ");
  if (q.K > kMaxK) return c.No("K above " + std::to_string(kMaxK) + " could overflow int32");
  q.sam = q.K, q.sak = 1, q.sbk = q.N, q.sbn = 1, q.scr = q.N, q.scn = 1;
  // Zero points: per row of A, per column of B; scales and y_zp: over the rows and columns of Y.
  if (present(iza)) {
    Shape zs = c.input(iza).shape();
    if (!ql && zs.rank() == 1 && zs[0] > 1) zs = Shape{zs[0], 1};  // MatMulInteger: per row
    int sr, sk;
    if (!BcastRC(zs, a, &sr, &sk) || sk != 0) return c.No("a zero point shape");
    q.slot[kZA] = {iza, 0, sr, 0};
  }
  if (present(izb)) {
    int sk, sn;
    if (!BcastRC(c.input(izb).shape(), b, &sk, &sn) || sk != 0) return c.No("b zero point shape");
    q.slot[kZB] = {izb, 0, 0, sn};
  }
  if (ql) {
    Shape y2 = Shape{q.M, q.N};
    for (auto [s, i] : {std::pair{kSA, 1}, {kSB, 4}, {kSY, 6}, {kZY, 7}}) {
      if (!present(i)) continue;
      if (vec && c.input(i).numel() != 1) return c.No("per-axis scale with a 1-D operand");
      int sr, sn;
      if (!BcastRC(c.input(i).shape(), vec ? y2 : y, &sr, &sn)) return c.No("scale shape");
      q.slot[s] = {i, 0, sr, sn};
    }
  }
  OP_RETURN_IF_ERROR(OutputBounds(c, 6, 7, &q));
  // Batches broadcast to the output's: (A offset, B batch, C offset).
  const int br = std::max(a.rank(), b.rank()) - 2;
  std::vector<int64_t> bdims(br, 1), ast(br, 0), bst(br, 0);
  for (int side = 0; side < 2; ++side) {
    const Shape& t = side ? b : a;
    auto& st = side ? bst : ast;
    const int tr = t.rank() - 2;
    int64_t acc = side ? int64_t{q.K} * q.N : int64_t{q.M} * q.K;
    for (int d = tr - 1; d >= 0; --d) {
      const int od = br - tr + d;
      if (t[d] != 1) {
        if (bdims[od] != 1 && bdims[od] != t[d]) return c.No("batch dims do not broadcast");
        bdims[od] = t[d];
        st[od] = acc;
      }
      acc *= t[d];
    }
  }
  if (c.check() || y.numel() == 0) return Status::Ok();
  int64_t nb = 1, nbb = 1;
  for (auto d : bdims) nb *= d;
  for (int d = 0; d < b.rank() - 2; ++d) nbb *= b[d];
  const int64_t bunit = int64_t{q.K} * q.N;
  std::vector<std::array<int64_t, 3>> batches;  // A offset, B batch, C offset
  for (int64_t i = 0; i < nb; ++i) {
    int64_t rem = i, ao = 0, bo = 0;
    for (int d = br - 1; d >= 0; --d) {
      const int64_t x = rem % bdims[d];
      rem /= bdims[d];
      ao += x * ast[d];
      bo += x * bst[d];
    }
    batches.push_back({ao, bo / bunit, i * q.M * q.N});
  }
  const Variant want = RequestedVariant();
  const bool fast_ok = c.is_const(ib) && (!present(izb) || c.is_const(izb));
  const bool automatic = want == Variant::kAuto || want == Variant::kVnni;
  if (fast_ok && (want == Variant::kFast || (automatic && c.rt.is_cpu && IsPocl(c.rt)))) {
    std::vector<std::pair<int64_t, int>> bb;
    for (int64_t i = 0; i < nbb; ++i) bb.emplace_back(i * bunit, 0);
    PackedB p = PackFast(c.input(ib), present(izb) ? &c.input(izb) : nullptr, q.slot[kZB], q.K,
                         q.N, q.N, 1, bb);
    QGemm f = q;
    for (auto& [ao, bbi, co] : batches)
      f.table.insert(f.table.end(), {static_cast<int>(ao), static_cast<int>(bbi * p.per_b),
                                     static_cast<int>(co), 0, static_cast<int>(bbi * p.per_c)});
    OP_RETURN_IF_ERROR(MultTable(c, &f));
    OP_ASSIGN_OR_RETURN(bool done, AddFast(c, f, {Binding::kIn, ia, nullptr}, p));
    if (done) return Status::Ok();
    if (want == Variant::kFast) return c.No("the fast int8 kernel does not build on this device");
  }
  for (auto& [ao, bbi, co] : batches)
    q.table.insert(q.table.end(), {static_cast<int>(ao), static_cast<int>(bbi * bunit),
                                   static_cast<int>(co), 0, 0});
  OP_RETURN_IF_ERROR(MultTable(c, &q));
  return AddPortable(c, q, {Binding::kIn, ia, nullptr}, {Binding::kIn, ib, nullptr});
}

// The compile-time geometry of the tiled depthwise kernel (quant.cl qconv_dwt, after dwconv.cl):
// 16 outputs per vector, rows per work-item for about 256 work-items with a private tile of at
// most 8K ints. Empty when the geometry does not fit it.
std::string DepthwiseTile(const Geometry& g, int planes, int* rows) {
  auto I = [](int64_t v) { return static_cast<int>(v); };
  const int OH = I(g.out[0]), OW = I(g.out[1]), KH = I(g.k[0]), KW = I(g.k[1]);
  const int SH = I(g.stride[0]), SW = I(g.stride[1]), DH = I(g.dil[0]), DW = I(g.dil[1]);
  const int nb = (OW + 15) / 16;
  const int tw = std::max(nb * 16 * SW + (KW - 1) * DW, I(g.pb[1] + g.in[1]));
  auto tile_rows = [&](int r) { return (r - 1) * SH + (KH - 1) * DH + 1; };
  int r = std::clamp((planes * OH + 255) / 256, 1, OH);
  while (r > 1 && tile_rows(r) * tw > 8192) --r;
  if (KH * KW > 64 || nb > 16 || tile_rows(r) * tw > 8192) return {};
  *rows = r;
  const std::pair<const char*, int> geometry[] = {
      {"GH", I(g.in[0])}, {"GW", I(g.in[1])}, {"GOH", OH},           {"GOW", OW},
      {"GKH", KH},        {"GKW", KW},        {"GSH", SH},           {"GSW", SW},
      {"GDH", DH},        {"GDWL", DW},       {"GPT", I(g.pb[0])},   {"GPL", I(g.pb[1])},
      {"GR", r},          {"GNB", nb},        {"GTR", tile_rows(r)}, {"GTW", tw}};
  std::string defs = Def("QDWT", 1);
  for (auto [n, value] : geometry) defs += Def(n, value);
  return defs;
}

// QLinearConv (x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, B) and ConvInteger (x, w, x_zp,
// w_zp), 1-D and 2-D, grouped: im2col (padded with x's zero point) + the integer GEMM.
Status QConv(const OpCtx& c) {
  const bool ql = c.node.op_type == "QLinearConv";
  const int ix = 0, iw = ql ? 3 : 1, ixz = 2, iwz = ql ? 5 : 3, ibias = 8;
  for (int i : ql ? std::vector<int>{0, 1, 3, 4, 6} : std::vector<int>{0, 1})
    if (!c.has(i)) return c.No("missing input");
  if (!c.has_out(0)) return c.No("missing output");
  auto present = [&](int i) { return c.has(i) && c.input(i).numel() > 0; };
  const DataType tx = c.input(ix).dtype(), tw = c.input(iw).dtype(), ty = c.output(0).dtype();
  if (!Is8(tx) || !Is8(tw)) return c.No("operand types (int8/uint8 only)");
  if (ql ? !Is8(ty) : ty != DataType::kInt32) return c.No("output type " + TypeName(ty));
  const Shape& x = c.input(ix).shape();
  const Shape& w = c.input(iw).shape();
  const Shape& y = c.output(0).shape();
  Geometry g;
  g.sd = x.rank() - 2;
  if (g.sd < 1 || g.sd > 2 || w.rank() != x.rank() || y.rank() != x.rank())
    return c.No("needs 1 or 2 spatial dims");
  for (int d = 0; d < g.sd; ++d) g.in.push_back(x[d + 2]), g.out.push_back(y[d + 2]), g.k.push_back(w[d + 2]);
  OP_RETURN_IF_ERROR(ResolvePads(c, &g, false));
  const int G = static_cast<int>(c.attr_i("group", 1));
  const int N = static_cast<int>(x[0]), C = static_cast<int>(x[1]), M = static_cast<int>(y[1]);
  if (G <= 0 || C % G || M % G || w[1] * G != C) return c.No("bad group");
  const int Cg = C / G, Mg = M / G;
  int K = Cg, P = 1;
  for (int d = 0; d < g.sd; ++d) K *= static_cast<int>(g.k[d]), P *= static_cast<int>(g.out[d]);
  if (K > kMaxK) return c.No("K above " + std::to_string(kMaxK) + " could overflow int32");
  if (present(ixz) && (c.input(ixz).numel() != 1 || c.input(ixz).dtype() != tx))
    return c.No("x zero point must be a scalar of x's type");
  if (present(iwz) && ((c.input(iwz).numel() != 1 && c.input(iwz).numel() != M) ||
                       c.input(iwz).dtype() != tw))
    return c.No("w zero point must be a scalar or [M] of w's type");
  QGemm q;
  q.requant = ql;
  q.tc = ty;
  bool ws_per_channel = false;
  if (ql) {
    OP_RETURN_IF_ERROR(CheckScales(c, {1, 4, 6}, &q));
    if (c.input(1).numel() != 1 || c.input(6).numel() != 1) return c.No("x/y scale not scalar");
    if (present(7) && (c.input(7).numel() != 1 || c.input(7).dtype() != ty))
      return c.No("y zero point must be a scalar of y's type");
    ws_per_channel = c.input(4).numel() != 1;
    if (ws_per_channel && c.input(4).numel() != M) return c.No("w scale must be scalar or [M]");
    if (present(ibias) && (c.input(ibias).numel() != M || c.input(ibias).dtype() != DataType::kInt32))
      return c.No("bias must be int32 [M]");
  }
  OP_RETURN_IF_ERROR(NeedFp64(c));
  OP_RETURN_IF_ERROR(OutputBounds(c, 6, 7, &q));
  if (c.check() || y.numel() == 0) return Status::Ok();
  const Variant want = RequestedVariant();
  const bool fast_ok = c.is_const(iw) && (!present(iwz) || c.is_const(iwz));
  const bool pocl_cpu = c.rt.is_cpu && IsPocl(c.rt);
  const bool fast = fast_ok && (want == Variant::kFast || (want == Variant::kAuto && pocl_cpu));
  const bool vnni =
      fast_ok && (want == Variant::kVnni || (want == Variant::kAuto && pocl_cpu && HostHasVnni()));
  const bool wz_pc = present(iwz) && c.input(iwz).numel() != 1;
  // Channel-indexed slots follow the output channel: the GEMM row (portable) or column (fast).
  auto channel = [&](int input, bool per_channel, bool transposed) {
    if (!per_channel) return Slot{input, 0, 0, 0};
    return transposed ? Slot{input, 1, 0, 1} : Slot{input, 1, 1, 0};
  };
  auto scale_slots = [&](QGemm* t, bool transposed) {
    if (!ql) return;
    t->slot[kSA] = {1, 0, 0, 0};
    t->slot[kSB] = channel(4, ws_per_channel, transposed);
    t->slot[kSY] = {6, 0, 0, 0};
    if (present(7)) t->slot[kZY] = {7, 0, 0, 0};
    if (present(ibias)) t->slot[kBias] = channel(ibias, true, transposed);
  };
  const int batches = N * G;
  auto at = [&](const std::vector<int64_t>& v, int64_t def) {
    return static_cast<int>(g.sd == 2 ? v[0] : def);
  };
  std::vector<int> qp = {C, at(g.in, 1), static_cast<int>(g.in.back()), at(g.out, 1),
                         static_cast<int>(g.out.back())};
  for (const auto* v : {&g.k, &g.stride, &g.dil, &g.pb})
    qp.insert(qp.end(), {at(*v, v == &g.pb ? 0 : 1), static_cast<int>(v->back())});
  qp.push_back(G);
  OP_ASSIGN_OR_RETURN(ClMem qm, Params(c, qp));
  ClMem col;
  auto im2col = [&](bool trans) -> Status {
    OP_ASSIGN_OR_RETURN(col, c.rt.Alloc(static_cast<size_t>(batches) * K * P));
    std::string defs = Def("QIM2COL", 1) + Def("XT", ClType(tx)) + Def("HAS_XZ", present(ixz)) +
                       Def("TRANS", trans);
    OP_ASSIGN_OR_RETURN(Step * st, c.AddStep("quant.cl", defs, "qim2col"));
    // Fixed work-groups of 64: PoCL would otherwise pick small ones (about a microsecond each).
    st->Mem(col).In(ix).In(present(ixz) ? ixz : ix).Buf(qm).Arg(K).Arg(P);
    st->Global((P + 63) / 64 * 64, batches);
    st->local[0] = 64, st->local[1] = 1;
    return Status::Ok();
  };
  if (Cg == 1) {
    // Depthwise (any channel multiplier): the direct kernel, for either variant.
    q.ta = tw, q.tb = tx;
    q.M = M, q.N = 1, q.K = K;
    scale_slots(&q, false);
    if (present(ixz)) q.slot[kZB] = {ixz, 0, 0, 0};
    q.table = {0, 0, 0, 0, 0};
    OP_RETURN_IF_ERROR(MultTable(c, &q));
    const int planes = N * M;
    std::string defs = q.Defines() + Def("QDW", 1) + Def("XT", ClType(tx)) + Def("WT", ClType(tw)) +
                       Def("HAS_XZ", present(ixz)) + Def("HAS_WZ", present(iwz)) +
                       Def("WZ_PC", wz_pc);
    OP_ASSIGN_OR_RETURN(ClMem ps, Params(c, q.SlotParams()));
    // CPU devices: the tiled vector kernel where the geometry fits it; else (and on other
    // devices) the scalar one, one output row per work-item.
    std::string tiled;
    int rows = 1;
    if (g.sd == 2 && (want == Variant::kFast || want == Variant::kVnni ||
                      (want == Variant::kAuto && c.rt.is_cpu)))
      tiled = DepthwiseTile(g, planes, &rows);
    OP_ASSIGN_OR_RETURN(
        Step * st, c.AddStep("quant.cl", defs + tiled, tiled.empty() ? "qconv_dw" : "qconv_dwt"));
    st->Out(0).In(ix).In(iw).In(present(ixz) ? ixz : ix).In(present(iwz) ? iwz : iw);
    for (int s = kBias; s < kSlots; ++s) st->Bind(q.SlotBinding(s));
    st->Bind(q.MultBinding());
    st->Buf(ps);
    if (!tiled.empty()) {
      st->Arg(M).Arg(C).Arg(q.qlo).Arg(q.qhi);
      st->Global((at(g.out, 1) + rows - 1) / rows, planes);
      st->local[0] = st->local[1] = 1;
    } else {
      st->Buf(qm).Arg(M).Arg(planes).Arg(q.qlo).Arg(q.qhi);
      st->Global((planes + 15) / 16 * 16, at(g.out, 1));
      st->local[0] = 16, st->local[1] = 1;
    }
    return Status::Ok();
  }
  if (vnni) {
    // The VNNI convolution (quant.cl, qpack + qconv_vnni): K over (tap, channel) with the
    // group's channels padded to CQ groups of 4.
    constexpr int kVMR = 8, kVNP = 2;
    const int KHW = K / Cg, CQ = (Cg + 3) / 4, K4 = KHW * CQ, MB = (Mg + kVMR - 1) / kVMR;
    const int Pp = (P + 16 * kVNP - 1) / (16 * kVNP) * (16 * kVNP), PB = Pp / (16 * kVNP);
    const Tensor& wt = c.input(iw);
    const int wd = tw == DataType::kUInt8 ? 128 : 0;
    std::vector<int32_t> wp(static_cast<size_t>(G) * MB * K4 * kVMR, 0), cw(M), zwp(M);
    auto* wb = reinterpret_cast<int8_t*>(wp.data());
    bool need_rs = false;
    for (int oc = 0; oc < M; ++oc) {
      const int gr = oc / Mg, m = oc % Mg;
      int64_t colsum = 0;
      for (int ci = 0; ci < Cg; ++ci)
        for (int tap = 0; tap < KHW; ++tap) {
          const int v = static_cast<int>(ReadInt(wt, (int64_t{oc} * Cg + ci) * KHW + tap)) - wd;
          colsum += v;
          const int64_t kb = int64_t{tap} * CQ + ci / 4;
          wb[(((int64_t{gr} * MB + m / kVMR) * K4 + kb) * kVMR + m % kVMR) * 4 + ci % 4] =
              static_cast<int8_t>(v);
        }
      const int zw =
          (present(iwz) ? static_cast<int>(ReadInt(c.input(iwz), wz_pc ? oc : 0)) : 0) - wd;
      zwp[oc] = zw;
      cw[oc] = static_cast<int32_t>(int64_t{4} * K4 * zw - colsum);
      need_rs = need_rs || zw != 0;
    }
    QGemm v = q;
    scale_slots(&v, false);
    v.M = Mg, v.N = 1, v.K = K;
    for (int gr = 0; gr < G; ++gr) v.table.insert(v.table.end(), {0, 0, 0, gr * Mg, 0});
    OP_RETURN_IF_ERROR(MultTable(c, &v));
    const bool x8 = tx == DataType::kInt8;
    // qpack's private input rows: every vector read of the (last, partial) 16-pixel block fits.
    const int sw = static_cast<int>(g.stride.back()), dw = static_cast<int>(g.dil.back());
    const int64_t row_w = std::max<int64_t>(
        (g.out.back() + 15) / 16 * 16 * sw + (g.k.back() - 1) * dw + 16, g.pb.back() + g.in.back());
    const int prw = static_cast<int>((row_w + 15) / 16 * 16);
    const std::string defs =
        v.Defines() + Def("QPACK", 1) + Def("QVNNI", 1) + Def("XT", ClType(tx)) +
        Def("HAS_XZ", present(ixz)) + Def("AXOR", x8 ? 0x80 : 0) + Def("DA", x8 ? 128 : 0) +
        Def("MR", kVMR) + Def("NP", kVNP) + Def("NEED_RS", need_rs) + Def("PRW", prw);
    Expected<cl_kernel> probe = prw <= 4096 ? c.rt.Kernel("quant.cl", defs, "qconv_vnni")
                                            : Expected<cl_kernel>(c.No("input rows too wide"));
    if (probe.ok()) {
      clReleaseKernel(*probe);
      OP_ASSIGN_OR_RETURN(col, c.rt.Alloc(static_cast<size_t>(batches) * K4 * Pp * 4));
      OP_ASSIGN_OR_RETURN(Step * pk, c.AddStep("quant.cl", defs, "qpack"));
      // Channel groups per work-item: all of them where there are 16 rows x batches or more.
      const int OH = at(g.out, 1), splits = (16 + OH * batches - 1) / (OH * batches);
      const int cqp = (CQ + splits - 1) / splits;
      pk->Mem(col).In(ix).In(present(ixz) ? ixz : ix).Buf(qm).Arg(CQ).Arg(Pp).Arg(cqp);
      pk->Global(OH, (CQ + cqp - 1) / cqp, batches);
      pk->local[0] = pk->local[1] = pk->local[2] = 1;
      OP_ASSIGN_OR_RETURN(ClMem wpm, c.rt.Upload(wp));
      OP_ASSIGN_OR_RETURN(ClMem cwm, c.rt.Upload(cw));
      OP_ASSIGN_OR_RETURN(ClMem zwm, c.rt.Upload(zwp));
      OP_ASSIGN_OR_RETURN(ClMem ps, Params(c, v.SlotParams()));
      OP_ASSIGN_OR_RETURN(Step * st, c.AddStep("quant.cl", defs, "qconv_vnni"));
      st->Out(0).Mem(col).Mem(wpm).In(present(ixz) ? ixz : ix).Mem(cwm).Mem(zwm);
      for (int s = kBias; s < kSlots; ++s) st->Bind(v.SlotBinding(s));
      st->Bind(v.MultBinding());
      // About a million multiply-adds per work-item where there are enough, keeping 32 of them
      // (a work-group costs about a microsecond on PoCL).
      const int64_t per_pb = int64_t{16 * kVNP} * Mg * 4 * K4;
      int pp = static_cast<int>(std::clamp<int64_t>((int64_t{1} << 20) / per_pb, 1, PB));
      int mp = MB;
      auto items = [&] {
        return int64_t{(PB + pp - 1) / pp} * ((MB + mp - 1) / mp) * int64_t{batches};
      };
      while (pp > 1 && items() < 32) pp = (pp + 1) / 2;
      while (mp > 1 && items() < 32) mp = (mp + 1) / 2;
      st->Buf(ps).Arg(M).Arg(Mg).Arg(MB).Arg(K4).Arg(P).Arg(Pp).Arg(G).Arg(pp).Arg(mp);
      st->Arg(v.qlo).Arg(v.qhi);
      st->Global((PB + pp - 1) / pp, (MB + mp - 1) / mp, batches);
      st->local[0] = st->local[1] = st->local[2] = 1;
      return Status::Ok();
    }
    if (want == Variant::kVnni)
      return c.No(
          "the VNNI int8 convolution kernel does not build on this device (or the "
          "input rows are wider than its packing kernel takes)");
  }
  if (fast) {
    // Y^T per (image, group): rows = output pixels (im2col^T, the activations), columns = the
    // group's output channels (the packed weights).
    QGemm f = q;
    scale_slots(&f, true);
    f.ta = tx, f.tb = tw;
    f.M = P, f.N = Mg, f.K = K, f.sam = K, f.scr = 1, f.scn = P;
    if (present(ixz)) f.slot[kZA] = {ixz, 0, 0, 0};
    const Slot wzs = channel(iwz, wz_pc, true);
    std::vector<std::pair<int64_t, int>> bb;
    for (int gr = 0; gr < G; ++gr) bb.emplace_back(int64_t{gr} * Mg * K, gr * Mg);
    PackedB p = PackFast(c.input(iw), present(iwz) ? &c.input(iwz) : nullptr, wzs, K, Mg, 1, K, bb);
    for (int i = 0; i < batches; ++i) {
      const int img = i / G, gr = i % G;
      f.table.insert(f.table.end(), {i * K * P, static_cast<int>(gr * p.per_b),
                                     (img * M + gr * Mg) * P, gr * Mg,
                                     static_cast<int>(gr * p.per_c)});
    }
    OP_RETURN_IF_ERROR(MultTable(c, &f));
    OP_RETURN_IF_ERROR(im2col(true));
    OP_ASSIGN_OR_RETURN(bool done, AddFast(c, f, {Binding::kMem, 0, col}, p));
    if (done) return Status::Ok();
    if (want == Variant::kFast) return c.No("the fast int8 kernel does not build on this device");
    clReleaseKernel(c.node_out->steps.back().kernel);  // the portable kernels instead
    c.node_out->steps.pop_back();
  }
  // Y per (image, group) = W_g [Mg][K] x col [K][P].
  scale_slots(&q, false);
  q.ta = tw, q.tb = tx;
  q.M = Mg, q.N = P, q.K = K, q.sam = K, q.sak = 1, q.sbk = P, q.sbn = 1, q.scr = P, q.scn = 1;
  if (present(iwz)) q.slot[kZA] = channel(iwz, wz_pc, false);
  if (present(ixz)) q.slot[kZB] = {ixz, 0, 0, 0};
  for (int i = 0; i < batches; ++i) {
    const int img = i / G, gr = i % G;
    q.table.insert(q.table.end(), {gr * Mg * K, i * K * P, (img * M + gr * Mg) * P, gr * Mg, 0});
  }
  OP_RETURN_IF_ERROR(MultTable(c, &q));
  OP_RETURN_IF_ERROR(im2col(false));
  return AddPortable(c, q, {Binding::kIn, iw, nullptr}, {Binding::kMem, 0, col});
}

// com.microsoft QLinearAdd / QLinearMul (a, a_scale, a_zp, b, b_scale, b_zp, c_scale, c_zp):
// same-shape operands (residual adds) with constant per-tensor scales and zero points, read here
// as the CPU kernel reads them; broadcasting ones run on the CPU.
Status QBinary(const OpCtx& c) {
  for (int i : {0, 1, 3, 4, 6})
    if (!c.has(i)) return c.No("missing input");
  if (!c.has_out(0)) return c.No("missing output");
  const DataType t = c.input(0).dtype();
  if (!Is8(t) || c.input(3).dtype() != t || c.output(0).dtype() != t)
    return c.No("operand types (int8/uint8, all the same)");
  const Shape& y = c.output(0).shape();
  if (c.input(0).shape() != y || c.input(3).shape() != y) return c.No("broadcasting");
  for (int i = 1; i < 8; ++i) {
    if (i == 3 || !c.has(i)) continue;
    if (!c.is_const(i) || c.input(i).numel() != 1)
      return c.No("scales and zero points must be constant scalars");
    const bool scale = i == 1 || i == 4 || i == 6;
    if (!scale && c.input(i).dtype() != t) return c.No("zero point type");
    if (scale && !ScaleType(c.input(i).dtype())) return c.No("scale type");
  }
  if (GetFusedClamp(c.node.attrs).active) return c.No("fused clamp");
  OP_RETURN_IF_ERROR(NeedFp64(c));
  if (c.check() || y.numel() == 0) return Status::Ok();
  auto value = [&](int i, double dflt) {
    if (!c.has(i)) return static_cast<float>(dflt);
    const Tensor& v = c.input(i);
    return static_cast<float>(ScaleType(v.dtype()) ? ReadDouble(v, 0)
                                                   : static_cast<double>(ReadInt(v, 0)));
  };
  const std::string defs = Def("QBINARY", 1) + Def("TY", ClType(t)) + Def("QMIN", QMin(t)) +
                           Def("QMAX", QMax(t)) +
                           Def("OP", c.node.op_type == "QLinearAdd" ? "+" : "*");
  OP_ASSIGN_OR_RETURN(Step * st, c.AddStep("quant.cl", defs, "qlinear_binary"));
  st->Out(0).In(0).In(3);
  for (auto [i, dflt] : {std::pair{1, 1.0}, {2, 0.0}, {4, 1.0}, {5, 0.0}, {6, 1.0}, {7, 0.0}})
    st->Arg(value(i, dflt));
  st->Global(static_cast<size_t>(y.numel()));
  return Status::Ok();
}

}  // namespace

std::string QuantPathDescription(const ClRuntime& rt) {
  if (!rt.is_cpu || !IsPocl(rt))
    return "8-bit convolutions on the portable kernels (no integer kernel tuned for this device: "
           "they may be slower than float32)";
  if (HostHasVnni()) return "8-bit convolutions on the AVX-512 VNNI kernel";
  return "8-bit convolutions on the u8 x s8 AVX2 kernel (no VNNI: 8-bit weights take two steps, "
         "slower than float32 on this CPU)";
}

OUTPOST_CL_DOMAIN_OP("com.microsoft", QLinearAdd, 1, 1, QBinary);
OUTPOST_CL_DOMAIN_OP("com.microsoft", QLinearMul, 1, 1, QBinary);
OUTPOST_CL_OP(QuantizeLinear, 10, 25, QuantDequant);
OUTPOST_CL_OP(DequantizeLinear, 10, 25, QuantDequant);
OUTPOST_CL_OP(QLinearMatMul, 10, 25, QMatMul);
OUTPOST_CL_OP(MatMulInteger, 10, 25, QMatMul);
OUTPOST_CL_OP(QLinearConv, 10, 25, QConv);
OUTPOST_CL_OP(ConvInteger, 10, 25, QConv);

}  // namespace outpost::kernels::opencl
