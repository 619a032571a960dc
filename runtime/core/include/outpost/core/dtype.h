// Element data types. Values match onnx::TensorProto_DataType so conversions are trivial.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace outpost {

enum class DataType : int32_t {
  kUndefined = 0,
  kFloat = 1,
  kUInt8 = 2,
  kInt8 = 3,
  kUInt16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kString = 8,
  kBool = 9,
  kFloat16 = 10,
  kDouble = 11,
  kUInt32 = 12,
  kUInt64 = 13,
  kComplex64 = 14,
  kComplex128 = 15,
  kBFloat16 = 16,
  kFloat8E4M3FN = 17,
  kFloat8E4M3FNUZ = 18,
  kFloat8E5M2 = 19,
  kFloat8E5M2FNUZ = 20,
  kUInt4 = 21,
  kInt4 = 22,
  kFloat4E2M1 = 23,
  kFloat8E8M0 = 24,  // opset 24: named in errors, never stored
  kUInt2 = 25,
  kInt2 = 26,
};

// Bytes per element; 0 for types we do not store (complex, float8e8m0, undefined). The sub-byte
// types (int4, uint4, int2, uint2, float4e2m1) are held unpacked, one value per byte: the
// integers as int8 / uint8 (sign-extended), float4e2m1 as its 4-bit code. ONNX files pack them
// (tensor_proto.cpp unpacks on load).
size_t DataTypeSize(DataType t);
std::string_view DataTypeName(DataType t);
// Name as used by KServe V2 ("FP32", "INT64", "BYTES", ...); empty when there is none.
std::string_view DataTypeV2Name(DataType t);
bool IsFloating(DataType t);  // float, double, float16, bfloat16
bool IsInteger(DataType t);   // signed and unsigned integers, not bool
bool IsSigned(DataType t);
// Types whose tensors this runtime can hold in memory.
bool IsStorable(DataType t);
// int4 / uint4 / int2 / uint2: held as int8 / uint8 with this narrower range.
bool IsSubByteInteger(DataType t);
// The value range of an integer type up to 32 bits, sub-byte ones included.
void IntegerRange(DataType t, int64_t* lo, int64_t* hi);
// Bits per value where files pack a type (int4 / uint4 / float4e2m1: 4; int2 / uint2: 2), else 0.
int PackedBits(DataType t);
// Unpacks n values of such a type, low bits first, one per byte (int4 / int2 sign-extended,
// float4e2m1 as its code). `packed` holds (n * PackedBits(t) + 7) / 8 bytes.
void UnpackSubByte(DataType t, const uint8_t* packed, int64_t n, uint8_t* out);

// IEEE half and bfloat16, stored as their raw bits. Arithmetic goes through float.
struct Float16 {
  uint16_t bits = 0;
  Float16() = default;
  explicit Float16(float f) : bits(FromFloat(f)) {}
  operator float() const { return ToFloat(bits); }  // NOLINT(google-explicit-constructor)
  static uint16_t FromFloat(float f);
  static float ToFloat(uint16_t h);
};

struct BFloat16 {
  uint16_t bits = 0;
  BFloat16() = default;
  explicit BFloat16(float f) : bits(FromFloat(f)) {}
  operator float() const {  // NOLINT(google-explicit-constructor)
    uint32_t u = static_cast<uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  static uint16_t FromFloat(float f);  // round to nearest even, NaN preserved
};

template <typename T>
struct TypeOf;
#define OUTPOST_TYPE_OF(cpp, dt) \
  template <>                    \
  struct TypeOf<cpp> {           \
    static constexpr DataType value = DataType::dt; \
  }
OUTPOST_TYPE_OF(float, kFloat);
OUTPOST_TYPE_OF(double, kDouble);
OUTPOST_TYPE_OF(uint8_t, kUInt8);
OUTPOST_TYPE_OF(int8_t, kInt8);
OUTPOST_TYPE_OF(uint16_t, kUInt16);
OUTPOST_TYPE_OF(int16_t, kInt16);
OUTPOST_TYPE_OF(int32_t, kInt32);
OUTPOST_TYPE_OF(int64_t, kInt64);
OUTPOST_TYPE_OF(uint32_t, kUInt32);
OUTPOST_TYPE_OF(uint64_t, kUInt64);
OUTPOST_TYPE_OF(bool, kBool);
OUTPOST_TYPE_OF(Float16, kFloat16);
OUTPOST_TYPE_OF(BFloat16, kBFloat16);
OUTPOST_TYPE_OF(std::string, kString);
#undef OUTPOST_TYPE_OF

}  // namespace outpost
