// MatMul and Gemm on OpenCL: register-blocked GEMM over pre-packed B (CPU devices) or a
// local-memory tiled kernel (GPUs); constant B is packed at Prepare, others per run.
#include "opencl/gemm.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace outpost::kernels::opencl {

std::string GemmConfig::Defines(bool has_bias, bool b_direct) const {
  return Def("VW", vw) + Def("NV", nv) + Def("MR", mr) + Def("HAS_BIAS", has_bias) +
         Def("B_DIRECT", b_direct);
}

GemmConfig ChooseGemm(const ClRuntime& rt) {
  GemmConfig g;
  g.tiled = !rt.is_cpu || rt.force_tiled_gemm;
  if (g.tiled)
    g.vw = 16, g.nv = 1;
  else
    g.vw = rt.float_width;  // MR 4 x NV 2 vectors: 8 accumulators
  if (const char* e = std::getenv("OUTPOST_OPENCL_GEMM_VW"); e && !g.tiled) {
    // Tuning knob: "VW,NV,MR".
    std::sscanf(e, "%d,%d,%d", &g.vw, &g.nv, &g.mr);
  }
  return g;
}

std::vector<float> PackB(const float* b, int64_t K, int64_t N, int64_t sbk, int64_t sbn, int nr) {
  int64_t panels = Panels(N, nr);
  std::vector<float> p(static_cast<size_t>(panels * K * nr), 0.f);
  for (int64_t jb = 0; jb < panels; ++jb)
    for (int64_t k = 0; k < K; ++k)
      for (int c = 0; c < nr; ++c) {
        int64_t n = jb * nr + c;
        if (n < N) p[(jb * K + k) * nr + c] = b[k * sbk + n * sbn];
      }
  return p;
}

Status AddGemmStep(const OpCtx& c, const GemmConfig& g, const GemmShape& s, Binding a, Binding bp,
                   Binding bias, int out, const std::vector<int>& table) {
  if (s.ldb > 0 && g.tiled) return Internal("in-place B needs the register-blocked GEMM");
  std::string defs = g.Defines(s.has_bias, s.ldb > 0);
  OP_ASSIGN_OR_RETURN(ClMem bt, Params(c, table));
  OP_ASSIGN_OR_RETURN(Step * st, c.AddStep("gemm.cl", defs, g.tiled ? "gemm_tile" : "gemm_rb"));
  st->Out(out).Bind(std::move(a)).Bind(std::move(bp)).Bind(std::move(bias)).Buf(bt);
  st->Arg(s.M).Arg(s.N).Arg(s.K).Arg(s.sam).Arg(s.sak).Arg(s.ldc).Arg(s.sbm).Arg(s.sbn);
  size_t batches = table.size() / 4;
  size_t panels = static_cast<size_t>(Panels(s.N, g.nr()));
  size_t row_blocks = (static_cast<size_t>(s.M) + g.mr - 1) / g.mr;
  // Panels per work-item: about 256 k-steps each (a work-group costs about a microsecond on a
  // CPU device), keeping at least 64 work-items.
  size_t jp = g.tiled ? 1 : std::clamp<size_t>(256 / std::max(s.K, 1), 1, 8);
  while (jp > 1 && row_blocks * ((panels + jp - 1) / jp) * batches < 64) jp /= 2;
  st->Arg(s.alpha).Arg(s.beta).Arg(s.ldb).Arg(s.lo).Arg(s.hi).Arg(static_cast<int>(jp));
  if (g.tiled) {
    st->Global(panels * g.nr(), (static_cast<size_t>(s.M) + 15) / 16 * 16, batches);
    st->local[0] = 16, st->local[1] = 16, st->local[2] = 1;
  } else {
    st->Global(row_blocks, (panels + jp - 1) / jp, batches);
    st->local[0] = st->local[1] = st->local[2] = 1;
  }
  return Status::Ok();
}

namespace {

// B for a GEMM: packed at Prepare when constant, else a per-run pack step into a scratch buffer.
// Batch b of B starts at src_offsets[b]; returns the binding of the packed buffer.
Expected<Binding> PrepareB(const OpCtx& c, const GemmConfig& g, int input, int K, int N, int sbk,
                           int sbn, const std::vector<int64_t>& src_offsets) {
  const int nr = g.nr();
  const int64_t per = Panels(N, nr) * K * nr;
  if (c.is_const(input)) {
    std::vector<float> all;
    for (int64_t off : src_offsets) {
      auto p = PackB(c.input(input).data<float>() + off, K, N, sbk, sbn, nr);
      all.insert(all.end(), p.begin(), p.end());
    }
    OP_ASSIGN_OR_RETURN(ClMem m, c.rt.Upload(all));
    return Binding{Binding::kMem, 0, m};
  }
  OP_ASSIGN_OR_RETURN(ClMem scratch, c.rt.Alloc(per * src_offsets.size() * sizeof(float)));
  std::vector<int> pt;
  for (size_t b = 0; b < src_offsets.size(); ++b) {
    pt.push_back(static_cast<int>(src_offsets[b]));
    pt.push_back(static_cast<int>(b * per));
  }
  OP_ASSIGN_OR_RETURN(ClMem ptm, Params(c, pt));
  OP_ASSIGN_OR_RETURN(Step * st, c.AddStep("gemm.cl", g.Defines(), "pack_b"));
  st->Mem(scratch).In(input).Buf(ptm).Arg(N).Arg(K).Arg(sbk).Arg(sbn);
  st->Global(Panels(N, nr) * nr, K, src_offsets.size());
  return Binding{Binding::kMem, 0, scratch};
}

Status Gemm(const OpCtx& c) {
  if (!c.has(0) || !c.has(1) || !c.has_out(0)) return c.No("missing input/output");
  for (int i = 0; i < 3; ++i)
    if (c.has(i) && c.input(i).dtype() != DataType::kFloat) return c.No("non-float input");
  const Shape& a = c.input(0).shape();
  const Shape& b = c.input(1).shape();
  if (a.rank() != 2 || b.rank() != 2) return c.No("non-2-D operands");
  bool ta = c.attr_i("transA", 0) != 0, tb = c.attr_i("transB", 0) != 0;
  GemmShape s;
  s.M = static_cast<int>(ta ? a[1] : a[0]);
  s.K = static_cast<int>(ta ? a[0] : a[1]);
  s.N = static_cast<int>(tb ? b[0] : b[1]);
  s.sam = ta ? 1 : s.K;
  s.sak = ta ? s.M : 1;
  s.ldc = s.N;
  s.alpha = c.attr_f("alpha", 1.f);
  s.beta = c.attr_f("beta", 1.f);
  s.has_bias = c.has(2) && c.input(2).numel() > 0;
  if (s.has_bias) {
    const Shape& cs = c.input(2).shape();
    if (cs.rank() > 2) return c.No("bias rank");
    int64_t cn = cs.rank() >= 1 ? cs[cs.rank() - 1] : 1, cm = cs.rank() == 2 ? cs[0] : 1;
    s.sbn = cn == 1 ? 0 : 1;
    s.sbm = cm == 1 ? 0 : static_cast<int>(cn);
  }
  if (s.K == 0) return c.No("K = 0");
  if (c.check() || c.output(0).numel() == 0) return Status::Ok();
  GemmConfig g = ChooseGemm(c.rt);
  int sbk = tb ? 1 : s.N, sbn = tb ? s.K : 1;
  OP_ASSIGN_OR_RETURN(Binding bp, PrepareB(c, g, 1, s.K, s.N, sbk, sbn, {0}));
  Binding bias = s.has_bias ? Binding{Binding::kIn, 2, nullptr} : bp;
  return AddGemmStep(c, g, s, {Binding::kIn, 0, nullptr}, bp, bias, 0, {0, 0, 0, 0});
}

Status MatMul(const OpCtx& c) {
  if (!c.has(0) || !c.has(1) || !c.has_out(0)) return c.No("missing input/output");
  for (int i = 0; i < 2; ++i)
    if (c.input(i).dtype() != DataType::kFloat) return c.No("non-float input");
  Shape a = c.input(0).shape(), b = c.input(1).shape();
  if (a.rank() == 0 || b.rank() == 0) return c.No("scalar operand");
  if (a.rank() == 1) a = Shape{1, a[0]};
  if (b.rank() == 1) b = Shape{b[0], 1};
  GemmShape s;
  s.M = static_cast<int>(a[a.rank() - 2]);
  s.K = static_cast<int>(a[a.rank() - 1]);
  s.N = static_cast<int>(b[b.rank() - 1]);
  if (b[b.rank() - 2] != s.K) return c.No("inner dimensions differ");
  s.sam = s.K, s.sak = 1, s.ldc = s.N;
  // Batch dims broadcast to the output's.
  int br = std::max(a.rank(), b.rank()) - 2;
  std::vector<int64_t> bdims(br, 1), ast(br, 0), bst(br, 0);
  int64_t aoff_unit = int64_t{s.M} * s.K, boff_unit = int64_t{s.K} * s.N;
  for (int side = 0; side < 2; ++side) {
    const Shape& t = side ? b : a;
    auto& st = side ? bst : ast;
    int tr = t.rank() - 2;
    int64_t acc = side ? boff_unit : aoff_unit;
    for (int d = tr - 1; d >= 0; --d) {
      int od = br - tr + d;
      if (t[d] != 1) {
        if (bdims[od] != 1 && bdims[od] != t[d]) return c.No("batch dims do not broadcast");
        bdims[od] = t[d];
        st[od] = acc;
      }
      acc *= t[d];
    }
  }
  if (s.K == 0) return c.No("K = 0");
  if (c.check() || c.output(0).numel() == 0) return Status::Ok();
  GemmConfig g = ChooseGemm(c.rt);
  int64_t nb = 1, nbb = 1;
  for (auto d : bdims) nb *= d;
  for (int d = 0; d < b.rank() - 2; ++d) nbb *= b[d];
  std::vector<int64_t> bsrc;
  for (int64_t i = 0; i < nbb; ++i) bsrc.push_back(i * boff_unit);
  OP_ASSIGN_OR_RETURN(Binding bp, PrepareB(c, g, 1, s.K, s.N, s.N, 1, bsrc));
  const int64_t per = Panels(s.N, g.nr()) * s.K * g.nr();
  std::vector<int> table;
  for (int64_t i = 0; i < nb; ++i) {
    int64_t rem = i, ao = 0, bo = 0;
    for (int d = br - 1; d >= 0; --d) {
      int64_t x = rem % bdims[d];
      rem /= bdims[d];
      ao += x * ast[d];
      bo += x * bst[d];
    }
    table.insert(table.end(), {static_cast<int>(ao), static_cast<int>(bo / boff_unit * per),
                               static_cast<int>(i * s.M * s.N), 0});
  }
  return AddGemmStep(c, g, s, {Binding::kIn, 0, nullptr}, bp, bp, 0, table);
}

}  // namespace

OUTPOST_CL_OP(Gemm, 7, 25, Gemm);
OUTPOST_CL_OP(MatMul, 1, 25, MatMul);

}  // namespace outpost::kernels::opencl
