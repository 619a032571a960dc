// Resize (and the older Upsample): nearest, linear and cubic interpolation, separable per axis.
#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

enum class Mode { kNearest, kLinear, kCubic };

struct Params {
  Mode mode = Mode::kNearest;
  std::string ctm = "half_pixel";            // coordinate_transformation_mode
  std::string nearest = "round_prefer_floor";
  double cubic_a = -0.75;
  bool exclude_outside = false;
  bool antialias = false;
  double extrapolation = 0;
};

// The input taps of each output coordinate along one axis.
struct Taps {
  int n = 0;                     // taps per output coordinate
  std::vector<int64_t> idx;      // [out * n], clamped into the input
  std::vector<double> w;         // [out * n]
  std::vector<uint8_t> extrap;   // [out]: the coordinate falls outside the crop box
  bool identity = true;
};

double CubicCoeff(double x, double a) {
  x = std::abs(x);
  if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}

// Follows the ONNX reference implementation (onnx/reference/ops/op_resize.py).
Expected<Taps> BuildTaps(KernelContext& ctx, const Params& p, int64_t in, int64_t out,
                         double scale, double roi0, double roi1) {
  Taps t;
  const double out_w = scale * static_cast<double>(in);
  for (int64_t x = 0; x < out; ++x) {
    const double xr = static_cast<double>(x);
    double xo;
    if (p.ctm == "half_pixel") {
      xo = (xr + 0.5) / scale - 0.5;
    } else if (p.ctm == "align_corners") {
      xo = out_w == 1 ? 0.0 : xr * (in - 1) / (out_w - 1);
    } else if (p.ctm == "asymmetric") {
      xo = xr / scale;
    } else if (p.ctm == "pytorch_half_pixel") {
      xo = out_w == 1 ? -0.5 : (xr + 0.5) / scale - 0.5;
    } else if (p.ctm == "half_pixel_symmetric") {
      const double adjustment = static_cast<double>(out) / out_w;
      xo = in / 2.0 * (1 - adjustment) + (xr + 0.5) / scale - 0.5;
    } else if (p.ctm == "tf_half_pixel_for_nn") {
      xo = (xr + 0.5) / scale;
    } else if (p.ctm == "tf_crop_and_resize") {
      const double span = (roi1 - roi0) * (in - 1);
      xo = out_w == 1 ? span / 2 : xr * span / (out_w - 1);
      xo += roi0 * (in - 1);
    } else {
      return ctx.NotSupported("coordinate_transformation_mode '" + p.ctm + "'");
    }
    std::vector<double> c;
    int64_t start = 0;
    const double fl = std::floor(xo);
    const double ratio = xo == fl ? 1.0 : xo - fl;
    const double s = std::min(scale, 1.0);
    if (p.mode == Mode::kNearest) {
      bool right;
      if (ratio == 1.0) right = true;
      else if (p.nearest == "round_prefer_floor") right = ratio > 0.5;
      else if (p.nearest == "round_prefer_ceil") right = ratio >= 0.5;
      else if (p.nearest == "floor") right = false;
      else if (p.nearest == "ceil") right = true;
      else return ctx.NotSupported("nearest_mode '" + p.nearest + "'");
      c = {right ? 0.0 : 1.0, right ? 1.0 : 0.0};
    } else if (p.mode == Mode::kLinear && !p.antialias) {
      c = {1 - ratio, ratio};
    } else if (p.mode == Mode::kLinear) {
      start = static_cast<int64_t>(std::floor(-1 / s) + 1);
      for (int64_t i = start; i < 2 - start; ++i)
        c.push_back(std::clamp(1 - std::abs((i - ratio) * s), 0.0, 1.0));
    } else if (!p.antialias) {
      start = -1;
      for (int64_t i = -1; i < 3; ++i) c.push_back(CubicCoeff(i - ratio, p.cubic_a));
    } else {
      start = static_cast<int64_t>(std::floor(-2 / s) + 1);
      for (int64_t i = start; i < 2 - start; ++i)
        c.push_back(CubicCoeff(s * (i - ratio), p.cubic_a));
    }
    if (p.antialias && p.mode != Mode::kNearest) {
      double sum = 0;
      for (double v : c) sum += v;
      for (double& v : c) v /= sum;
    }
    const int64_t first = static_cast<int64_t>(std::llround(xo - ratio)) + start;
    t.n = static_cast<int>(c.size());
    if (p.exclude_outside) {
      double sum = 0;
      for (size_t j = 0; j < c.size(); ++j) {
        const int64_t i = first + static_cast<int64_t>(j);
        if (i < 0 || i >= in) c[j] = 0;
        sum += c[j];
      }
      if (sum != 0)
        for (double& v : c) v /= sum;
    }
    const bool ext = p.ctm == "tf_crop_and_resize" && (xo < 0 || xo > in - 1);
    t.extrap.push_back(ext);
    if (ext || out != in) t.identity = false;
    for (size_t j = 0; j < c.size(); ++j) {
      const int64_t i = std::clamp<int64_t>(first + static_cast<int64_t>(j), 0, in - 1);
      t.idx.push_back(i);
      t.w.push_back(c[j]);
      if (c[j] != 0 && (i != x || c[j] != 1)) t.identity = false;
    }
  }
  return t;
}

// Nearest: a gather through one input index per output coordinate and axis (-1 = extrapolate).
Status Nearest(KernelContext& ctx, const Tensor& x, Tensor* y, const std::vector<Taps>& taps,
               double extrapolation) {
  const int r = x.rank();
  const Shape& out = y->shape();
  std::vector<std::vector<int64_t>> maps(r);
  for (int k = 0; k < r; ++k) {
    for (int64_t j = 0; j < out[k]; ++j) {
      const Taps& t = taps[k];
      int64_t i = -1;
      for (int q = 0; q < t.n && !t.extrap[j]; ++q)
        if (t.w[j * t.n + q] != 0) i = t.idx[j * t.n + q];
      maps[k].push_back(i);
    }
  }
  OP_ASSIGN_OR_RETURN(auto value, Tensor::Allocate(x.dtype(), Shape{}));
  if (x.dtype() != DataType::kString && x.dtype() != DataType::kBool) {
    OP_RETURN_IF_ERROR(DispatchNumeric(ctx, x.dtype(), [&]<typename T>() {
      value.data<T>()[0] = FromAcc<T>(static_cast<Acc<T>>(extrapolation));
      return Status::Ok();
    }));
  }
  IntList xs = StridesOf(x.shape());
  return DispatchStorage(ctx, x.dtype(), [&]<typename S>() {
    const S* src = x.data<S>();
    S* dst = y->data<S>();
    const S ev = value.data<S>()[0];
    const int64_t inner = r ? out[r - 1] : 1;
    const int64_t rows = inner ? out.numel() / inner : 0;
    auto body = [&](int64_t b, int64_t e) {
      for (int64_t row = b; row < e; ++row) {
        int64_t off = 0, rem = row;
        bool pad = false;
        for (int k = r - 2; k >= 0; --k) {
          const int64_t m = maps[k][rem % out[k]];
          rem /= out[k];
          pad |= m < 0;
          off += m * xs[k];
        }
        S* d = dst + row * inner;
        for (int64_t i = 0; i < inner; ++i) {
          const int64_t m = r ? maps[r - 1][i] : 0;
          d[i] = pad || m < 0 ? ev : src[off + m];
        }
      }
    };
    ParallelRows(ctx, rows, inner, body);
    return Status::Ok();
  });
}

// Linear and cubic: one weighted pass per resized axis over a float (or double) buffer.
template <typename T>
Status Interpolate(KernelContext& ctx, const Tensor& x, Tensor* y, const std::vector<Taps>& taps,
                   double extrapolation) {
  using C = std::conditional_t<std::is_same_v<T, double>, double, float>;
  const T* src = x.data<T>();
  std::vector<C> cur(x.numel()), next;
  for (int64_t i = 0; i < x.numel(); ++i) cur[i] = static_cast<C>(static_cast<Acc<T>>(src[i]));
  Shape cs = x.shape();
  const Shape& out = y->shape();
  for (int a = 0; a < x.rank(); ++a) {
    const Taps& t = taps[a];
    if (t.identity) continue;
    int64_t outer = 1, after = 1;
    for (int k = 0; k < a; ++k) outer *= cs[k];
    for (int k = a + 1; k < cs.rank(); ++k) after *= cs[k];
    const int64_t in_a = cs[a], out_a = out[a];
    next.assign(outer * out_a * after, C(0));
    auto body = [&](int64_t b, int64_t e) {
      for (int64_t row = b; row < e; ++row) {
        const int64_t o = row / out_a, j = row % out_a;
        C* d = next.data() + row * after;
        if (t.extrap[j]) {
          std::fill_n(d, after, static_cast<C>(extrapolation));
          continue;
        }
        for (int q = 0; q < t.n; ++q) {
          const C w = static_cast<C>(t.w[j * t.n + q]);
          if (w == 0) continue;
          const C* s = cur.data() + (o * in_a + t.idx[j * t.n + q]) * after;
          for (int64_t i = 0; i < after; ++i) d[i] += w * s[i];
        }
      }
    };
    ParallelRows(ctx, outer * out_a, after * t.n, body);
    cur.swap(next);
    cs[a] = out_a;
  }
  T* dst = y->data<T>();
  for (int64_t i = 0; i < y->numel(); ++i) {
    if constexpr (std::is_integral_v<T>) {
      constexpr double kLo = static_cast<double>(std::numeric_limits<T>::lowest());
      constexpr double kHi = static_cast<double>(std::numeric_limits<T>::max());
      const double v = std::clamp<double>(cur[i], kLo, kHi);
      dst[i] = static_cast<T>(v);
    } else {
      dst[i] = FromAcc<T>(static_cast<Acc<T>>(cur[i]));
    }
  }
  return Status::Ok();
}

// Reads a float tensor input (scales or roi) as doubles.
Expected<std::vector<double>> FloatsInput(KernelContext& ctx, int i) {
  const Tensor& t = ctx.input(i);
  if (!IsFloating(t.dtype())) return ctx.Fail("input " + std::to_string(i) + " must be float");
  std::vector<double> v(t.numel());
  for (int64_t k = 0; k < t.numel(); ++k) v[k] = ReadDouble(t, k);
  return v;
}

Status ResizeKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input 0");
  const Tensor& x = ctx.input(0);
  OP_RETURN_IF_ERROR(CheckStorable(ctx, x.dtype()));
  const Attributes& at = ctx.attrs();
  const bool upsample = ctx.node().op_type == "Upsample";
  const bool legacy = upsample || ctx.opset() < 11;  // Upsample and Resize-10: no roi, no sizes
  const int r = x.rank();
  Params p;
  const std::string mode = at.String("mode", "nearest");
  if (mode == "nearest") p.mode = Mode::kNearest;
  else if (mode == "linear" || mode == "bilinear" || mode == "trilinear") p.mode = Mode::kLinear;
  else if (mode == "cubic" && !legacy) p.mode = Mode::kCubic;
  else return ctx.NotSupported("mode '" + mode + "'");
  if (legacy) {
    p.ctm = "asymmetric";
    p.nearest = "floor";
  } else {
    p.ctm = at.String("coordinate_transformation_mode", "half_pixel");
    p.nearest = at.String("nearest_mode", "round_prefer_floor");
    p.cubic_a = at.Float("cubic_coeff_a", -0.75f);
    p.exclude_outside = at.Int("exclude_outside", 0) != 0;
    p.extrapolation = at.Float("extrapolation_value", 0.f);
    p.antialias = at.Int("antialias", 0) != 0;
  }
  // Scales or sizes, over `axes` (opset 18) or all dims.
  std::vector<int64_t> axes;
  for (int64_t a : at.Ints("axes")) {
    OP_ASSIGN_OR_RETURN(int ax, NormalizeAxis(ctx, a, r));
    axes.push_back(ax);
  }
  if (axes.empty()) {
    for (int k = 0; k < r; ++k) axes.push_back(k);
  }
  const size_t na = axes.size();
  std::vector<double> scales, roi;
  IntList sizes;
  if (upsample && ctx.opset() < 9) {
    for (float f : at.Floats("scales")) scales.push_back(f);
  } else {
    const int si = legacy ? 1 : 2;
    for (int i = 1; i < 4; ++i)
      if (ctx.has_input(i) && !ctx.input_known(i)) return ctx.DataDependent();
    if (ctx.has_input(si)) {
      OP_ASSIGN_OR_RETURN(scales, FloatsInput(ctx, si));
    }
    if (!legacy && ctx.has_input(3)) {
      OP_ASSIGN_OR_RETURN(sizes, IntsInput(ctx, 3));
    }
    if (!legacy && ctx.has_input(1) && ctx.input(1).numel() > 0) {
      OP_ASSIGN_OR_RETURN(roi, FloatsInput(ctx, 1));
    }
  }
  if (scales.empty() == sizes.empty()) return ctx.Fail("give exactly one of scales and sizes");
  if (scales.size() != (scales.empty() ? 0 : na) || sizes.size() != (sizes.empty() ? 0 : na))
    return ctx.Fail("scales/sizes need one entry per resized axis");
  std::vector<double> scale(r, 1.0), roi0(r, 0.0), roi1(r, 1.0);
  Shape out = x.shape();
  if (!roi.empty()) {
    if (roi.size() != 2 * na) return ctx.Fail("roi needs two entries per resized axis");
    for (size_t i = 0; i < na; ++i) {
      roi0[axes[i]] = roi[i];
      roi1[axes[i]] = roi[na + i];
    }
  }
  if (!scales.empty()) {
    for (size_t i = 0; i < na; ++i) {
      if (!(scales[i] > 0)) return ctx.BadInput("scales must be positive");
      scale[axes[i]] = scales[i];
      out[axes[i]] = static_cast<int64_t>(scales[i] * static_cast<double>(x.dim(axes[i])));
    }
  } else {
    for (size_t i = 0; i < na; ++i) {
      if (sizes[i] < 0) return ctx.BadInput("negative size");
      out[axes[i]] = sizes[i];
      scale[axes[i]] = static_cast<double>(sizes[i]) / static_cast<double>(x.dim(axes[i]));
    }
    const std::string policy = at.String("keep_aspect_ratio_policy", "stretch");
    if (policy != "stretch") {
      if (policy != "not_larger" && policy != "not_smaller")
        return ctx.NotSupported("keep_aspect_ratio_policy '" + policy + "'");
      double s = scale[axes[0]];
      for (int64_t a : axes)
        s = policy == "not_larger" ? std::min(s, scale[a]) : std::max(s, scale[a]);
      for (int64_t a : axes) {
        scale[a] = s;
        out[a] = static_cast<int64_t>(s * static_cast<double>(x.dim(static_cast<int>(a))) + 0.5);
      }
    }
  }
  for (int k = 0; k < r; ++k)
    if (x.dim(k) == 0 && out[k] != 0) return ctx.BadInput("cannot resize an empty dim");
  if (p.mode != Mode::kNearest && !IsFloating(x.dtype()) && !IsInteger(x.dtype()))
    return ctx.NotSupported("mode '" + mode + "' on " + std::string(DataTypeName(x.dtype())));
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), out));
  if (ctx.infer_only() || !y || out.numel() == 0) return Status::Ok();
  std::vector<Taps> taps;
  for (int k = 0; k < r; ++k) {
    OP_ASSIGN_OR_RETURN(Taps t, BuildTaps(ctx, p, x.dim(k), out[k], scale[k], roi0[k], roi1[k]));
    taps.push_back(std::move(t));
  }
  if (p.mode == Mode::kNearest) return Nearest(ctx, x, y, taps, p.extrapolation);
  return DispatchNumeric(ctx, x.dtype(), [&]<typename T>() {
    return Interpolate<T>(ctx, x, y, taps, p.extrapolation);
  });
}

}  // namespace

OUTPOST_REGISTER_OP(Resize, "", 10, 25, ResizeKernel);
OUTPOST_REGISTER_OP(Upsample, "", 7, 9, ResizeKernel);

}  // namespace outpost::kernels::cpu
