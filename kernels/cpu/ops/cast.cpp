// Cast and CastLike: numeric, bool, string, float16/bfloat16, the four float8 formats, float4e2m1
// and the sub-byte integers (int4, uint4, int2, uint2; wrapped as numpy does).
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <vector>

#include "cpu/elementwise.h"
#include "cpu/minifloat.h"

namespace outpost::kernels::cpu {
namespace {
using namespace ew;  // NOLINT(build/namespaces)

// ---- scalar conversions ---------------------------------------------------------------------
template <typename S>
std::string ToString(const S& v) {
  if constexpr (std::is_same_v<S, bool>) {
    return v ? "True" : "False";
  } else if constexpr (std::is_integral_v<S>) {
    return std::to_string(v);
  } else {
    // Shortest round-trip form, as numpy prints: "1.5", "100.0", "1e-05", "nan", "inf".
    Acc<S> f = Load(v);
    if (std::isnan(f)) return "nan";
    if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof(buf), f);
    std::string s(buf, r.ptr);
    if (s.find_first_of(".e") == std::string::npos) s += ".0";
    return s;
  }
}

template <typename D>
D FromString(const std::string& s) {
  if constexpr (std::is_same_v<D, std::string>) {
    return s;
  } else if constexpr (std::is_integral_v<D> && !std::is_same_v<D, bool>) {
    if constexpr (std::is_signed_v<D>) return static_cast<D>(std::strtoll(s.c_str(), nullptr, 10));
    else return static_cast<D>(std::strtoull(s.c_str(), nullptr, 10));
  } else {
    double d = std::strtod(s.c_str(), nullptr);  // accepts inf, -INF, NaN, 1e-5 ...
    if constexpr (std::is_same_v<D, bool>) return d != 0;
    else return Store<D>(d);
  }
}

// Float -> integer without UB: in-range values truncate (narrow types wrap through int64, as
// numpy does); NaN and out-of-range values give the type's minimum.
template <typename D, typename F>
D FloatToInt(F x) {
  double t = std::trunc(static_cast<double>(x));
  if constexpr (std::is_same_v<D, uint64_t>) {
    if (t >= 0 && t < 18446744073709551616.0) return static_cast<uint64_t>(t);
    if (t < 0 && t >= -9223372036854775808.0) return static_cast<uint64_t>(static_cast<int64_t>(t));
    return 0;
  } else {
    if (t >= -9223372036854775808.0 && t < 9223372036854775808.0)
      return static_cast<D>(static_cast<int64_t>(t));
    return std::numeric_limits<D>::min();
  }
}

template <typename D, typename S>
D Convert(const S& v) {
  if constexpr (std::is_same_v<D, S>) {
    return v;
  } else if constexpr (std::is_same_v<D, std::string>) {
    return ToString(v);
  } else if constexpr (std::is_same_v<S, std::string>) {
    return FromString<D>(v);
  } else if constexpr (std::is_same_v<D, bool>) {
    return Load(v) != 0;
  } else if constexpr (std::is_integral_v<D> && !std::is_integral_v<Acc<S>>) {
    return FloatToInt<D>(Load(v));
  } else if constexpr (kIsHalf<D> && std::is_same_v<S, double>) {
    return D(static_cast<float>(v));
  } else {
    return Store<D>(Load(v));
  }
}

// ---- kernels --------------------------------------------------------------------------------
template <typename F>
Status DispatchCastable(KernelContext& ctx, DataType t, F&& f) {
  if (MiniFloatFormatOf(t)) return f.template operator()<uint8_t>();  // staged through float
  // int4 / int2 (uint4 / uint2) are held as int8 (uint8): converted as those, then wrapped.
  if (t == DataType::kInt4 || t == DataType::kInt2) return f.template operator()<int8_t>();
  if (t == DataType::kUInt4 || t == DataType::kUInt2) return f.template operator()<uint8_t>();
  return DispatchAll(ctx, t, f);
}

// A conversion to int4 / uint4 / int2 / uint2 wraps modulo 2^bits as numpy's astype does
// (the values were converted to 8 bits first, which wraps modulo 256: the same residue).
void WrapSubByte(DataType t, Tensor* y) {
  const int bits = t == DataType::kInt2 || t == DataType::kUInt2 ? 2 : 4;
  const bool is_signed = t == DataType::kInt4 || t == DataType::kInt2;
  const int mask = (1 << bits) - 1, half = 1 << (bits - 1);
  uint8_t* p = static_cast<uint8_t*>(y->raw());
  for (int64_t i = 0; i < y->numel(); ++i) {
    const int v = p[i] & mask;
    p[i] = static_cast<uint8_t>(is_signed && v >= half ? v - (1 << bits) : v);
  }
}

// Converts `x` to `to` into `y` (or only checks the types when y is null); sub-byte integers
// are left to wrap.
Status CastValues(KernelContext& ctx, const Tensor& x, DataType to, bool saturate, Tensor* y) {
  const MiniFloatFormat* f8_in = MiniFloatFormatOf(x.dtype());
  const MiniFloatFormat* f8_out = MiniFloatFormatOf(to);
  if ((f8_in || f8_out) && (x.dtype() == DataType::kString || to == DataType::kString))
    return ctx.NotSupported("cast between float8 and string");
  return DispatchCastable(ctx, x.dtype(), [&]<typename S>() -> Status {
    return DispatchCastable(ctx, to, [&]<typename D>() -> Status {
      if (!y) return Status::Ok();
      const int64_t n = x.numel();
      if (!f8_in && !f8_out) {
        const S* in = x.data<S>();
        D* out = y->data<D>();
        ForRange(ctx, n, [&](int64_t b, int64_t e) {
          Blocked(b, e, [&](int64_t i) { out[i] = Convert<D>(in[i]); });
        });
        return Status::Ok();
      }
      // float8 on either side: stage through float.
      std::vector<float> mid(n);
      const uint8_t* in8 = static_cast<const uint8_t*>(x.raw());
      if (f8_in) {
        for (int64_t i = 0; i < n; ++i) mid[i] = MiniFloatDecode(*f8_in, in8[i]);
      } else if constexpr (!std::is_same_v<S, std::string>) {
        const S* in = x.data<S>();
        for (int64_t i = 0; i < n; ++i) mid[i] = Convert<float>(in[i]);
      }
      if (f8_out) {
        std::vector<float> table = MiniFloatTable(*f8_out);
        uint8_t* out = static_cast<uint8_t*>(y->raw());
        for (int64_t i = 0; i < n; ++i) out[i] = MiniFloatEncode(*f8_out, table.data(), mid[i], saturate);
      } else if constexpr (!std::is_same_v<D, std::string>) {
        D* out = y->data<D>();
        for (int64_t i = 0; i < n; ++i) out[i] = Convert<D>(mid[i]);
      }
      return Status::Ok();
    });
  });
}

Status CastTo(KernelContext& ctx, const Tensor& x, DataType to, bool saturate, Tensor* y) {
  OP_RETURN_IF_ERROR(CastValues(ctx, x, to, saturate, y));
  if (y && IsSubByteInteger(to)) WrapSubByte(to, y);
  return Status::Ok();
}

Status CastCommon(KernelContext& ctx, DataType to) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input 0");
  const Tensor& x = ctx.input(0);
  bool saturate = ctx.attrs().Int("saturate", 1) != 0;
  OP_RETURN_IF_ERROR(CastTo(ctx, x, to, saturate, nullptr));  // type check, also at inference
  OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, to, x.shape()));
  if (ctx.infer_only() || !y) return Status::Ok();
  return CastTo(ctx, x, to, saturate, y);
}

// Opset 1 names the target type with a string.
DataType TypeFromName(const std::string& s) {
  static const std::pair<const char*, DataType> kNames[] = {
      {"FLOAT", DataType::kFloat},   {"UINT8", DataType::kUInt8},   {"INT8", DataType::kInt8},
      {"UINT16", DataType::kUInt16}, {"INT16", DataType::kInt16},   {"INT32", DataType::kInt32},
      {"INT64", DataType::kInt64},   {"STRING", DataType::kString}, {"BOOL", DataType::kBool},
      {"FLOAT16", DataType::kFloat16}, {"DOUBLE", DataType::kDouble},
      {"UINT32", DataType::kUInt32}, {"UINT64", DataType::kUInt64}};
  for (auto& [n, t] : kNames)
    if (s == n) return t;
  return DataType::kUndefined;
}

Status CastKernel(KernelContext& ctx) {
  const Attribute* to = ctx.attrs().Find("to");
  if (!to) return ctx.Fail("missing attribute 'to'");
  DataType t = to->kind == Attribute::Kind::kString ? TypeFromName(to->s)
                                                     : static_cast<DataType>(to->i);
  if (t == DataType::kUndefined) return ctx.Fail("bad 'to' attribute");
  return CastCommon(ctx, t);
}

Status CastLikeKernel(KernelContext& ctx) {
  if (!ctx.has_input(1)) return ctx.Fail("missing target_type input");
  return CastCommon(ctx, ctx.input(1).dtype());
}

}  // namespace

OUTPOST_REGISTER_OP(Cast, "", 1, 25, CastKernel);
OUTPOST_REGISTER_OP(CastLike, "", 15, 25, CastLikeKernel);

}  // namespace outpost::kernels::cpu
