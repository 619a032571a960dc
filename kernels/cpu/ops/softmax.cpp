// Softmax, LogSoftmax, Hardmax: along one axis (opset >= 13) or over the input coerced to 2-D at
// `axis` (opset < 13).
#include <cmath>
#include <vector>

#include "cpu/common.h"
#include "cpu/vec_math.h"

namespace outpost::kernels::cpu {
namespace {

enum class SoftKind { kSoftmax, kLogSoftmax, kHardmax };

template <SoftKind K, typename T>
void SoftmaxRow(const T* x, T* y, int64_t len, int64_t stride, Acc<T>* buf) {
  using A = Acc<T>;
  A mx = -std::numeric_limits<A>::infinity();
  int64_t arg = 0;
  for (int64_t i = 0; i < len; ++i) {
    const A v = static_cast<A>(x[i * stride]);
    buf[i] = v;
    if (v > mx) mx = v, arg = i;
  }
  if constexpr (K == SoftKind::kHardmax) {
    for (int64_t i = 0; i < len; ++i) y[i * stride] = FromAcc<T>(A(i == arg ? 1 : 0));
    return;
  }
  A sum = 0;
  if constexpr (K == SoftKind::kSoftmax) {
    int64_t i = 0;
    if constexpr (std::is_same_v<A, float>) {  // 8 at a time; the sum order differs slightly
      __m256 vs = _mm256_setzero_ps();
      const __m256 vm = _mm256_set1_ps(mx);
      for (; i + 8 <= len; i += 8) {
        const __m256 e = Exp8(_mm256_sub_ps(_mm256_loadu_ps(buf + i), vm));
        _mm256_storeu_ps(buf + i, e);
        vs = _mm256_add_ps(vs, e);
      }
      alignas(32) float lanes[8];
      _mm256_store_ps(lanes, vs);
      for (float l : lanes) sum += l;
    }
    for (; i < len; ++i) {
      buf[i] = std::exp(buf[i] - mx);  // one exp per element, kept for the output pass
      sum += buf[i];
    }
    const A inv = A(1) / sum;
    for (int64_t i = 0; i < len; ++i) y[i * stride] = FromAcc<T>(buf[i] * inv);
  } else {
    for (int64_t i = 0; i < len; ++i) {
      buf[i] -= mx;
      sum += std::exp(buf[i]);
    }
    const A ls = std::log(sum);
    for (int64_t i = 0; i < len; ++i) y[i * stride] = FromAcc<T>(buf[i] - ls);
  }
}

template <SoftKind K>
Status SoftmaxKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input");
  const Tensor& x = ctx.input(0);
  if (!IsFloating(x.dtype()))
    return ctx.NotSupported("data type " + std::string(DataTypeName(x.dtype())));
  const bool legacy = ctx.opset() < 13;
  const int rank = x.rank();
  OP_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx, ctx.attrs().Int("axis", legacy ? 1 : -1),
                                              std::max(rank, 1)));
  OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x.dtype(), x.shape()));
  if (ctx.infer_only() || !y || y->numel() == 0) return Status::Ok();
  int64_t outer = 1, len = 1, inner = 1;
  for (int i = 0; i < rank; ++i) {
    if (i < axis) outer *= x.dim(i);
    else if (i == axis || legacy) len *= x.dim(i);
    else inner *= x.dim(i);
  }
  return DispatchFloat(ctx, x.dtype(), [&]<typename T>() {
    const T* xp = x.data<T>();
    T* yp = y->data<T>();
    ctx.pool().ParallelFor(outer * inner, std::max<int64_t>(1, 4096 / len), [&](int64_t r0, int64_t r1) {
      // A row's scratch: on the stack for the usual lengths, on the heap for very long rows.
      constexpr int64_t kStackRow = 2048;
      Acc<T> stack_row[kStackRow];
      std::vector<Acc<T>> heap_row;
      Acc<T>* buf = stack_row;
      if (len > kStackRow) {
        heap_row.resize(len);
        buf = heap_row.data();
      }
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t o = r / inner, in = r % inner, base = o * len * inner + in;
        SoftmaxRow<K, T>(xp + base, yp + base, len, inner, buf);
      }
    });
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(Softmax, "", 1, 25, SoftmaxKernel<SoftKind::kSoftmax>);
OUTPOST_REGISTER_OP(LogSoftmax, "", 1, 25, SoftmaxKernel<SoftKind::kLogSoftmax>);
OUTPOST_REGISTER_OP(Hardmax, "", 1, 25, SoftmaxKernel<SoftKind::kHardmax>);

}  // namespace outpost::kernels::cpu
