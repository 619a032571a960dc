#include "outpost/core/dtype.h"

#include <cassert>
#include <cmath>
#include <cstdint>

namespace outpost {

size_t DataTypeSize(DataType t) {
  switch (t) {
    case DataType::kFloat: return 4;
    case DataType::kUInt8: return 1;
    case DataType::kInt8: return 1;
    case DataType::kUInt16: return 2;
    case DataType::kInt16: return 2;
    case DataType::kInt32: return 4;
    case DataType::kInt64: return 8;
    case DataType::kString: return sizeof(std::string);
    case DataType::kBool: return 1;
    case DataType::kFloat16: return 2;
    case DataType::kDouble: return 8;
    case DataType::kUInt32: return 4;
    case DataType::kUInt64: return 8;
    case DataType::kBFloat16: return 2;
    case DataType::kFloat8E4M3FN:
    case DataType::kFloat8E4M3FNUZ:
    case DataType::kFloat8E5M2:
    case DataType::kFloat8E5M2FNUZ: return 1;
    case DataType::kUInt4:
    case DataType::kInt4:
    case DataType::kUInt2:
    case DataType::kInt2:
    case DataType::kFloat4E2M1: return 1;  // unpacked, see dtype.h
    default: return 0;
  }
}

std::string_view DataTypeName(DataType t) {
  switch (t) {
    case DataType::kUndefined: return "undefined";
    case DataType::kFloat: return "float32";
    case DataType::kUInt8: return "uint8";
    case DataType::kInt8: return "int8";
    case DataType::kUInt16: return "uint16";
    case DataType::kInt16: return "int16";
    case DataType::kInt32: return "int32";
    case DataType::kInt64: return "int64";
    case DataType::kString: return "string";
    case DataType::kBool: return "bool";
    case DataType::kFloat16: return "float16";
    case DataType::kDouble: return "float64";
    case DataType::kUInt32: return "uint32";
    case DataType::kUInt64: return "uint64";
    case DataType::kComplex64: return "complex64";
    case DataType::kComplex128: return "complex128";
    case DataType::kBFloat16: return "bfloat16";
    case DataType::kFloat8E4M3FN: return "float8e4m3fn";
    case DataType::kFloat8E4M3FNUZ: return "float8e4m3fnuz";
    case DataType::kFloat8E5M2: return "float8e5m2";
    case DataType::kFloat8E5M2FNUZ: return "float8e5m2fnuz";
    case DataType::kUInt4: return "uint4";
    case DataType::kInt4: return "int4";
    case DataType::kFloat4E2M1: return "float4e2m1";
    case DataType::kFloat8E8M0: return "float8e8m0";
    case DataType::kUInt2: return "uint2";
    case DataType::kInt2: return "int2";
  }
  return "unknown";
}

std::string_view DataTypeV2Name(DataType t) {
  switch (t) {
    case DataType::kBool: return "BOOL";
    case DataType::kUInt8: return "UINT8";
    case DataType::kUInt16: return "UINT16";
    case DataType::kUInt32: return "UINT32";
    case DataType::kUInt64: return "UINT64";
    case DataType::kInt8: return "INT8";
    case DataType::kInt16: return "INT16";
    case DataType::kInt32: return "INT32";
    case DataType::kInt64: return "INT64";
    case DataType::kFloat16: return "FP16";
    case DataType::kFloat: return "FP32";
    case DataType::kDouble: return "FP64";
    case DataType::kBFloat16: return "BF16";
    case DataType::kString: return "BYTES";
    default: return "";
  }
}

bool IsFloating(DataType t) {
  return t == DataType::kFloat || t == DataType::kDouble || t == DataType::kFloat16 ||
         t == DataType::kBFloat16;
}

bool IsInteger(DataType t) {
  switch (t) {
    case DataType::kUInt8:
    case DataType::kInt8:
    case DataType::kUInt16:
    case DataType::kInt16:
    case DataType::kInt32:
    case DataType::kInt64:
    case DataType::kUInt32:
    case DataType::kUInt64: return true;
    default: return false;
  }
}

bool IsSigned(DataType t) {
  return t == DataType::kInt8 || t == DataType::kInt16 || t == DataType::kInt32 ||
         t == DataType::kInt64 || IsFloating(t);
}

bool IsStorable(DataType t) { return DataTypeSize(t) != 0; }

bool IsSubByteInteger(DataType t) {
  return t == DataType::kInt4 || t == DataType::kUInt4 || t == DataType::kInt2 ||
         t == DataType::kUInt2;
}

int PackedBits(DataType t) {
  if (t == DataType::kInt2 || t == DataType::kUInt2) return 2;
  if (t == DataType::kInt4 || t == DataType::kUInt4 || t == DataType::kFloat4E2M1) return 4;
  return 0;
}

void UnpackSubByte(DataType t, const uint8_t* packed, int64_t n, uint8_t* out) {
  const int bits = PackedBits(t), per_byte = 8 / bits;
  const bool is_signed = t == DataType::kInt4 || t == DataType::kInt2;
  const int mask = (1 << bits) - 1, half = 1 << (bits - 1);
  for (int64_t i = 0; i < n; ++i) {
    const int v = (packed[i / per_byte] >> ((i % per_byte) * bits)) & mask;
    out[i] = static_cast<uint8_t>(is_signed && v >= half ? v - (1 << bits) : v);
  }
}

void IntegerRange(DataType t, int64_t* lo, int64_t* hi) {
  switch (t) {
    case DataType::kInt2: *lo = -2, *hi = 1; return;
    case DataType::kUInt2: *lo = 0, *hi = 3; return;
    case DataType::kInt4: *lo = -8, *hi = 7; return;
    case DataType::kUInt4: *lo = 0, *hi = 15; return;
    case DataType::kInt8: *lo = -128, *hi = 127; return;
    case DataType::kUInt8: *lo = 0, *hi = 255; return;
    case DataType::kInt16: *lo = -32768, *hi = 32767; return;
    case DataType::kUInt16: *lo = 0, *hi = 65535; return;
    case DataType::kInt32: *lo = INT32_MIN, *hi = INT32_MAX; return;
    case DataType::kUInt32: *lo = 0, *hi = UINT32_MAX; return;
    default: assert(false && "IntegerRange of a type that is not a small integer"); *lo = *hi = 0;
  }
}

uint16_t Float16::FromFloat(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t exp = (x >> 23) & 0xffu;
  uint32_t mant = x & 0x7fffffu;
  if (exp == 0xff) return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0));
  int32_t e = static_cast<int32_t>(exp) - 127 + 15;
  if (e >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  if (e <= 0) {
    if (e < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1u))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = sign | (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) ++half;  // may carry into exponent
  return static_cast<uint16_t>(half);
}

float Float16::ToFloat(uint16_t h) {
  uint32_t sign = (static_cast<uint32_t>(h) & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t x;
  if (exp == 0) {
    if (mant == 0) {
      x = sign;
    } else {
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      x = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    x = sign | 0x7f800000u | (mant << 13);
  } else {
    x = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

uint16_t BFloat16::FromFloat(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if (std::isnan(f)) return static_cast<uint16_t>((x >> 16) | 0x40u);
  uint32_t lsb = (x >> 16) & 1u;
  x += 0x7fffu + lsb;
  return static_cast<uint16_t>(x >> 16);
}

}  // namespace outpost
