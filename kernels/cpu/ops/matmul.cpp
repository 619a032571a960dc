// MatMul: numpy-style matrix product with batch broadcasting and 1-D operands.
#include "cpu/common.h"
#include "cpu/gemm.h"
#include "cpu/packed.h"

namespace outpost::kernels::cpu {
namespace {

template <typename T>
void NaiveMatMul(const MatMulPlan& p, const T* a, const T* b, T* y) {
  for (int64_t bi = 0; bi < p.batch; ++bi) {
    const T* ab = a + p.a_off(bi);
    const T* bb = b + p.b_off(bi);
    T* yb = y + bi * p.m * p.n;
    for (int64_t i = 0; i < p.m; ++i) {
      T* yr = yb + i * p.n;
      std::fill(yr, yr + p.n, T(0));
      for (int64_t kk = 0; kk < p.k; ++kk) {
        const T av = ab[i * p.k + kk];
        for (int64_t j = 0; j < p.n; ++j) yr[j] += av * bb[kk * p.n + j];
      }
    }
  }
}

Status MatMulKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("MatMul needs A and B");
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  if (a.dtype() != b.dtype()) return ctx.Fail("A and B types differ");
  const DataType dt = a.dtype();
  const bool is_int = dt == DataType::kInt32 || dt == DataType::kInt64 ||
                      dt == DataType::kUInt32 || dt == DataType::kUInt64;
  if (!IsFloating(dt) && !is_int)
    return ctx.NotSupported("data type " + std::string(DataTypeName(dt)));
  OP_ASSIGN_OR_RETURN(MatMulPlan p, PlanMatMul(ctx, a.shape(), b.shape()));
  OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, dt, p.out));
  if (ctx.infer_only() || !y || y->numel() == 0) return Status::Ok();
  return DispatchNumeric(ctx, dt, [&]<typename T>() {
    if constexpr (std::is_integral_v<T>) {
      NaiveMatMul<T>(p, a.data<T>(), b.data<T>(), y->data<T>());
    } else {
      if constexpr (std::is_same_v<T, float>) {
        // Constant 2-D weights (the usual linear layer): packed once, reused every run.
        if (PackedConvAvailable() && ctx.cache() && ctx.input_constant(1) && b.rank() == 2 &&
            (p.fold_a || p.batch == 1)) {
          const auto& packed = ctx.cache()->Get<PackedMatMulWeights>(
              [&] { return PackMatMulWeights(b.data<float>(), p.k, p.n); });
          PackedMatMul(&ctx.pool(), p.fold_a ? p.batch * p.m : p.m, a.data<float>(), packed,
                       y->data<float>());
          return Status::Ok();
        }
      }
      ComputeBuf<T> ab(&a), bb(&b), yb(y);
      const Compute<T>* ap = ComputeIn<T>(a, &ab);
      const Compute<T>* bp = ComputeIn<T>(b, &bb);
      RunMatMul(&ctx.pool(), p, ap, bp, ComputeOut<T>(y, &yb));
      FinishOut<T>(y, yb);
    }
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(MatMul, "", 1, 25, MatMulKernel);

}  // namespace outpost::kernels::cpu
