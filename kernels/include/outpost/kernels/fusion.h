// Activations the engine fuses into the op that produces their input (Conv, Gemm): the
// attribute names that carry them and the one way kernels read them.
//
// The engine rewrites Conv -> Relu/Clip into one Conv node with a clamp [min, max] (Relu is
// [0, +inf)). Attribute names with the reserved prefix are refused by the ONNX loader, so only
// the engine sets them. A backend that supports the op supports the clamp too: it is applied to
// the op's float output before it is stored.
#pragma once

#include <limits>

#include "outpost/kernels/attributes.h"

namespace outpost::kernels {

inline constexpr const char kReservedAttrPrefix[] = "_outpost_";
inline constexpr const char kFusedMin[] = "_outpost_clamp_min";
inline constexpr const char kFusedMax[] = "_outpost_clamp_max";
inline constexpr const char kFusedName[] = "_outpost_fused";  // e.g. "Relu", for inspect

struct FusedClamp {
  bool active = false;
  float lo = -std::numeric_limits<float>::infinity();
  float hi = std::numeric_limits<float>::infinity();
};

inline FusedClamp GetFusedClamp(const Attributes& a) {
  FusedClamp c;
  if (!a.Has(kFusedMin) && !a.Has(kFusedMax)) return c;
  c.active = true;
  c.lo = a.Float(kFusedMin, c.lo);
  c.hi = a.Float(kFusedMax, c.hi);
  return c;
}

}  // namespace outpost::kernels
