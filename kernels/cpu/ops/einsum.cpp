// Einsum: general Einstein summation (explicit/implicit output, ellipsis, repeated labels).
#include <algorithm>
#include <cctype>
#include <string_view>

#include "cpu/common.h"
#include "cpu/scratch.h"

namespace outpost::kernels::cpu {
namespace {

// Labels are letters (0..51); the ellipsis dims get labels 52.. (one per broadcast dim).
constexpr int kLabels = 52 + Shape::kMaxRank;
using Labels = SmallVector<int, kLabels>;

// Parses one term (spaces ignored) into `out`. Allocation-free but for error messages.
Status ParseTerm(KernelContext& ctx, std::string_view s, int rank, int* ell_rank, Labels* out) {
  out->clear();
  const size_t dots = s.find("...");
  int named = 0;
  for (char c : s) named += std::isalpha(static_cast<unsigned char>(c)) ? 1 : 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (std::isalpha(static_cast<unsigned char>(c))) {
      out->push_back(std::islower(static_cast<unsigned char>(c)) ? c - 'a' : 26 + c - 'A');
    } else if (c == '.' && i == dots) {
      int er = rank < 0 ? *ell_rank : rank - named;
      if (er < 0) return ctx.Fail("einsum term '" + std::string(s) + "' has more labels than dims");
      if (rank >= 0) *ell_rank = std::max(*ell_rank, er);
      // Right-aligned broadcast: the last ellipsis dim always gets label 52 + kMax - 1.
      for (int k = 0; k < er; ++k) out->push_back(52 + Shape::kMaxRank - er + k);
      i += 2;
    } else if (c != ' ') {
      return ctx.Fail("bad character in einsum equation: '" + std::string(s) + "'");
    }
  }
  if (static_cast<int>(out->size()) > kLabels) return ctx.Fail("einsum term has too many labels");
  if (rank >= 0 && static_cast<int>(out->size()) != rank)
    return ctx.Fail("einsum term '" + std::string(s) + "' does not match input rank " +
                    std::to_string(rank));
  return Status::Ok();
}

Status EinsumKernel(KernelContext& ctx) {
  const Attribute* ea = ctx.attrs().Find("equation");
  const std::string_view eq = ea ? std::string_view(ea->s) : std::string_view();
  const int n = ctx.num_inputs();
  if (n == 0) return ctx.Fail("Einsum needs inputs");
  for (int i = 0; i < n; ++i)
    if (!ctx.has_input(i) || ctx.input(i).dtype() != ctx.input(0).dtype())
      return ctx.Fail("inputs must be present and of one type");
  const size_t arrow = eq.find("->");
  const std::string_view lhs = eq.substr(0, arrow);
  int terms = 1;
  for (char c : lhs) terms += c == ',';
  if (terms != n) return ctx.Fail("equation term count != inputs");
  int64_t dim_of[kLabels];
  std::fill(dim_of, dim_of + kLabels, -1);
  int count[kLabels] = {};
  int ell_rank = 0;
  // Labels of input i: in_flat[i * kLabels ...], in_len[i] of them.
  ScratchVec<int> in_flat(static_cast<size_t>(n) * kLabels), in_len(n);
  Labels term;
  size_t p = 0;
  for (int i = 0; i < n; ++i) {
    const size_t c = lhs.find(',', p);
    const std::string_view ts = lhs.substr(p, c == std::string_view::npos ? lhs.size() - p : c - p);
    p = c + 1;
    OP_RETURN_IF_ERROR(ParseTerm(ctx, ts, ctx.input(i).rank(), &ell_rank, &term));
    in_len[i] = static_cast<int>(term.size());
    for (size_t k = 0; k < term.size(); ++k) {
      const int l = term[k];
      in_flat[i * kLabels + k] = l;
      int64_t d = ctx.input(i).dim(static_cast<int>(k));
      ++count[l];
      if (dim_of[l] == -1 || dim_of[l] == 1) dim_of[l] = d;
      else if (d != 1 && d != dim_of[l]) return ctx.Fail("einsum dims of one label differ");
    }
  }
  Labels out_labels;
  if (arrow != std::string_view::npos) {
    OP_RETURN_IF_ERROR(ParseTerm(ctx, eq.substr(arrow + 2), -1, &ell_rank, &out_labels));
    for (int l : out_labels)
      if (dim_of[l] < 0) return ctx.Fail("output label not in inputs");
  } else {  // implicit: ellipsis dims, then labels seen once, alphabetically
    for (int l = 52; l < kLabels; ++l)
      if (dim_of[l] >= 0) out_labels.push_back(l);
    for (int l = 0; l < 52; ++l)
      if (count[l] == 1) out_labels.push_back(l);
  }
  Shape out_shape;
  bool in_out[kLabels] = {};
  for (int l : out_labels) {
    out_shape.push_back(dim_of[l]);
    in_out[l] = true;
  }
  Labels sum_labels;
  for (int l = 0; l < kLabels; ++l)
    if (dim_of[l] >= 0 && !in_out[l]) sum_labels.push_back(l);
  return DispatchNumeric(ctx, ctx.input(0).dtype(), [&]<typename T>() -> Status {
    OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, ctx.input(0).dtype(), out_shape));
    if (ctx.infer_only() || !y) return Status::Ok();
    // Per-input stride of each label (summed for repeated labels: diagonals; 0 if broadcast):
    // lstride[i * kLabels + label].
    ScratchVec<int64_t> lstride(static_cast<size_t>(n) * kLabels, 0);
    for (int i = 0; i < n; ++i) {
      int64_t st[Shape::kMaxRank];
      Strides(ctx.input(i).shape(), st);
      for (int k = 0; k < in_len[i]; ++k)
        if (ctx.input(i).dim(k) != 1) lstride[i * kLabels + in_flat[i * kLabels + k]] += st[k];
    }
    ScratchVec<const T*> ptr(n);
    for (int i = 0; i < n; ++i) ptr[i] = ctx.input(i).data<T>();
    int64_t sum_total = 1;
    for (int l : sum_labels) sum_total *= dim_of[l];
    T* py = y->data<T>();
    const int64_t out_total = out_shape.numel();
    const int ns = static_cast<int>(sum_labels.size()), no = static_cast<int>(out_labels.size());
    ctx.pool().ParallelFor(out_total, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, sum_total)),
                           [&](int64_t ob, int64_t oe) {
      ScratchVec<int64_t> base(n), off(n), sc(ns);
      for (int64_t o = ob; o < oe; ++o) {
        std::fill(base.begin(), base.end(), 0);
        int64_t rem = o;
        for (int k = no - 1; k >= 0; --k) {
          int64_t c = rem % dim_of[out_labels[k]];
          rem /= dim_of[out_labels[k]];
          for (int i = 0; i < n; ++i) base[i] += c * lstride[i * kLabels + out_labels[k]];
        }
        Acc<T> acc = 0;
        std::copy(base.begin(), base.end(), off.begin());
        std::fill(sc.begin(), sc.end(), 0);
        for (int64_t s = 0; s < sum_total; ++s) {
          Acc<T> p = Acc<T>(ptr[0][off[0]]);
          for (int i = 1; i < n; ++i) p = static_cast<Acc<T>>(p * Acc<T>(ptr[i][off[i]]));
          acc = static_cast<Acc<T>>(acc + p);
          for (int k = ns - 1; k >= 0; --k) {  // odometer over summed labels
            const int l = sum_labels[k];
            for (int i = 0; i < n; ++i) off[i] += lstride[i * kLabels + l];
            if (++sc[k] < dim_of[l]) break;
            for (int i = 0; i < n; ++i) off[i] -= lstride[i * kLabels + l] * dim_of[l];
            sc[k] = 0;
          }
        }
        py[o] = FromAcc<T>(acc);
      }
    });
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(Einsum, "", 12, 25, EinsumKernel);

}  // namespace outpost::kernels::cpu
