// DFT (opset 17 axis attribute, opset 20 axis input) and STFT, computed directly in double.
#include <cmath>

#include "cpu/common.h"

namespace outpost::kernels::cpu {
namespace {

// One transform of `n` points from a strided complex (or real, c == 1) line, zero-padded or
// truncated to n; writes `bins` outputs (re, im) with stride `os` (in complex elements).
template <typename T>
void Transform(const T* in, int64_t len, int64_t is, int c, const T* window, int64_t n,
               bool inverse, int64_t bins, T* out, int64_t os) {
  const double sign = inverse ? 1.0 : -1.0;
  const int64_t m = std::min(len, n);
  for (int64_t k = 0; k < bins; ++k) {
    double re = 0, im = 0;
    for (int64_t t = 0; t < m; ++t) {
      double xr = double(in[t * is * c]), xi = c == 2 ? double(in[t * is * c + 1]) : 0.0;
      if (window) xr *= double(window[t]), xi *= double(window[t]);
      const double a = sign * 2 * M_PI * static_cast<double>((k * t) % n) / static_cast<double>(n);
      const double cr = std::cos(a), ci = std::sin(a);
      re += xr * cr - xi * ci;
      im += xr * ci + xi * cr;
    }
    if (inverse) re /= static_cast<double>(n), im /= static_cast<double>(n);
    out[k * os * 2] = T(static_cast<Acc<T>>(re));
    out[k * os * 2 + 1] = T(static_cast<Acc<T>>(im));
  }
}

// Inverse of a one-sided (Hermitian) spectrum of `len` bins into `n` real samples (numpy irfft).
template <typename T>
void InverseReal(const T* in, int64_t len, int64_t is, int c, int64_t n, T* out, int64_t os) {
  const int64_t half = n / 2;
  for (int64_t t = 0; t < n; ++t) {
    double acc = 0;
    for (int64_t k = 0; k < n; ++k) {
      const int64_t src = k <= half ? k : n - k;
      if (src >= len) continue;
      const double xr = double(in[src * is * c]);
      const double xi = (c == 2 ? double(in[src * is * c + 1]) : 0.0) * (k <= half ? 1 : -1);
      const double a = 2 * M_PI * static_cast<double>((k * t) % n) / static_cast<double>(n);
      acc += xr * std::cos(a) - xi * std::sin(a);
    }
    out[t * os] = T(static_cast<Acc<T>>(acc / static_cast<double>(n)));
  }
}

Status DftKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input");
  const Tensor& x = ctx.input(0);
  const int r = x.rank();
  if (r < 2 || (x.dim(r - 1) != 1 && x.dim(r - 1) != 2)) return ctx.Fail("last dim must be 1 or 2");
  int64_t axis = ctx.attrs().Int("axis", 1);
  if (ctx.opset() >= 20) {
    axis = -2;
    if (ctx.has_input(2)) {
      if (!ctx.input_known(2)) return ctx.DataDependent();
      axis = ReadInt(ctx.input(2), 0);
    }
  }
  if (axis < 0) axis += r;
  if (axis < 0 || axis >= r - 1) return ctx.BadInput("axis out of range");
  const bool inverse = ctx.attrs().Int("inverse", 0) != 0;
  const bool onesided = ctx.attrs().Int("onesided", 0) != 0;
  const bool irfft = inverse && onesided;
  int64_t n = irfft ? 2 * (x.dim(static_cast<int>(axis)) - 1) : x.dim(static_cast<int>(axis));
  if (ctx.has_input(1)) {
    if (!ctx.input_known(1)) return ctx.DataDependent();
    n = ReadInt(ctx.input(1), 0);
    if (n <= 0) return ctx.BadInput("dft_length must be positive");
  }
  if (n <= 0) return ctx.BadInput("empty transform");
  const int64_t bins = irfft ? n : onesided ? n / 2 + 1 : n;
  Shape out = x.shape();
  out[static_cast<int>(axis)] = bins;
  out[r - 1] = irfft ? 1 : 2;
  return DispatchFloat(ctx, x.dtype(), [&]<typename T>() -> Status {
    OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), out));
    if (ctx.infer_only() || !y) return Status::Ok();
    const int c = static_cast<int>(x.dim(r - 1));
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; ++i) outer *= x.dim(i);
    for (int i = static_cast<int>(axis) + 1; i < r - 1; ++i) inner *= x.dim(i);
    const int64_t len = x.dim(static_cast<int>(axis));
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i)
        if (irfft)
          InverseReal<T>(x.data<T>() + (o * len * inner + i) * c, len, inner, c, n,
                         y->data<T>() + o * bins * inner + i, inner);
        else
          Transform<T>(x.data<T>() + (o * len * inner + i) * c, len, inner, c, nullptr, n, inverse,
                     bins, y->data<T>() + (o * bins * inner + i) * 2, inner);
    return Status::Ok();
  });
}

Status StftKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("missing input");
  const Tensor& x = ctx.input(0);
  if (x.rank() != 3 || (x.dim(2) != 1 && x.dim(2) != 2)) return ctx.Fail("signal must be [B,L,1|2]");
  const Tensor* window = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  if (!ctx.input_known(1) || (ctx.has_input(3) && !ctx.input_known(3))) return ctx.DataDependent();
  const int64_t step = ReadInt(ctx.input(1), 0);
  int64_t flen = window ? window->numel() : 0;
  if (ctx.has_input(3)) flen = ReadInt(ctx.input(3), 0);
  if (window && window->numel() != flen) return ctx.Fail("window length != frame_length");
  if (step <= 0 || flen <= 0 || flen > x.dim(1)) return ctx.BadInput("bad frame_step/frame_length");
  const bool onesided = ctx.attrs().Int("onesided", 1) != 0;
  if (onesided && x.dim(2) == 2) return ctx.Fail("onesided STFT needs a real signal");
  const int64_t frames = (x.dim(1) - flen) / step + 1, bins = onesided ? flen / 2 + 1 : flen;
  return DispatchFloat(ctx, x.dtype(), [&]<typename T>() -> Status {
    if (window && window->dtype() != x.dtype()) return ctx.Fail("window type != signal type");
    OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), Shape{x.dim(0), frames, bins, 2}));
    if (ctx.infer_only() || !y) return Status::Ok();
    const int c = static_cast<int>(x.dim(2));
    for (int64_t b = 0; b < x.dim(0); ++b)
      for (int64_t f = 0; f < frames; ++f)
        Transform<T>(x.data<T>() + (b * x.dim(1) + f * step) * c, flen, 1, c,
                     window ? window->data<T>() : nullptr, flen, false, bins,
                     y->data<T>() + (b * frames + f) * bins * 2, 1);
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(DFT, "", 17, 25, DftKernel);
OUTPOST_REGISTER_OP(STFT, "", 17, 25, StftKernel);

}  // namespace outpost::kernels::cpu
