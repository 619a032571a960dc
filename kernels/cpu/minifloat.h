// The 8-bit and 4-bit float formats of ONNX (float8e4m3fn/fnuz, float8e5m2/fnuz, float4e2m1),
// one code per byte: decode to float, and encode by round to nearest, ties to even, over the
// table of finite magnitudes. Shared by Cast and the quantize ops.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "outpost/core/dtype.h"

namespace outpost::kernels::cpu {

struct MiniFloatFormat {
  int mbits;
  int bias;
  int finite;    // codes 0..finite-1 of the magnitude are finite, ascending
  bool has_inf;  // E5M2: 0x7C is infinity
  bool uz;       // FNUZ: no negative zero, 0x80 is NaN
  uint8_t sign;  // the sign bit: 0x80, or 0x08 for the 4-bit format
  bool has_nan;  // float4e2m1 has neither NaN nor infinity: it always saturates
};

inline const MiniFloatFormat* MiniFloatFormatOf(DataType t) {
  static const MiniFloatFormat e4m3fn{3, 7, 127, false, false, 0x80, true},
      e4m3fnuz{3, 8, 128, false, true, 0x80, true}, e5m2{2, 15, 124, true, false, 0x80, true},
      e5m2fnuz{2, 16, 128, false, true, 0x80, true}, e2m1{1, 1, 8, false, false, 0x08, false};
  switch (t) {
    case DataType::kFloat8E4M3FN: return &e4m3fn;
    case DataType::kFloat8E4M3FNUZ: return &e4m3fnuz;
    case DataType::kFloat8E5M2: return &e5m2;
    case DataType::kFloat8E5M2FNUZ: return &e5m2fnuz;
    case DataType::kFloat4E2M1: return &e2m1;
    default: return nullptr;
  }
}

inline float MiniFloatMagnitude(const MiniFloatFormat& f, int code) {
  const int e = code >> f.mbits, m = code & ((1 << f.mbits) - 1);
  if (e == 0) return std::ldexp(static_cast<float>(m), 1 - f.bias - f.mbits);
  return std::ldexp(static_cast<float>((1 << f.mbits) + m), e - f.bias - f.mbits);
}

inline float MiniFloatDecode(const MiniFloatFormat& f, uint8_t b) {
  const int mag = b & (f.sign - 1);
  const bool neg = b & f.sign;
  if (f.uz && b == 0x80) return std::numeric_limits<float>::quiet_NaN();
  if (mag >= f.finite) {
    if (f.has_inf && mag == f.finite) return neg ? -INFINITY : INFINITY;
    return std::numeric_limits<float>::quiet_NaN();
  }
  const float v = MiniFloatMagnitude(f, mag);
  return neg ? -v : v;
}

// The finite magnitudes, plus one virtual step above the largest (rounding there overflows).
inline std::vector<float> MiniFloatTable(const MiniFloatFormat& f) {
  std::vector<float> t(f.finite + 1);
  for (int c = 0; c < f.finite; ++c) t[c] = MiniFloatMagnitude(f, c);
  t[f.finite] = 2 * t[f.finite - 1] - t[f.finite - 2];
  return t;
}

// Round to nearest, ties to even. Overflow saturates to the largest finite magnitude when
// `saturate` (always for float4e2m1), else gives infinity (E5M2) or NaN. NaN in gives NaN, or
// for float4e2m1 (no NaN code) the largest positive magnitude.
inline uint8_t MiniFloatEncode(const MiniFloatFormat& f, const float* table, float x,
                               bool saturate) {
  const uint8_t sign = std::signbit(x) ? f.sign : 0;
  const uint8_t nan = f.uz ? 0x80 : static_cast<uint8_t>(sign | (f.sign - 1));
  if (!f.has_nan) saturate = true;
  if (std::isnan(x)) return f.has_nan ? nan : static_cast<uint8_t>(f.finite - 1);
  const float a = std::fabs(x);
  int code;
  if (std::isinf(a)) {
    code = f.finite;
  } else {
    int lo = 0, hi = f.finite;  // table has finite + 1 entries
    while (lo < hi) {
      const int mid = (lo + hi) / 2;
      if (table[mid] < a) lo = mid + 1;
      else hi = mid;
    }
    code = lo;
    if (code > 0 && table[code] != a) {
      const float dl = a - table[code - 1], dh = table[code] - a;
      if (dl < dh || (dl == dh && ((code - 1) & 1) == 0)) --code;
    }
  }
  if (code >= f.finite) {
    if (saturate) code = f.finite - 1;
    else return f.has_inf ? static_cast<uint8_t>(sign | f.finite) : nan;
  }
  if (code == 0 && f.uz) return 0;
  return static_cast<uint8_t>(sign | code);
}

}  // namespace outpost::kernels::cpu
