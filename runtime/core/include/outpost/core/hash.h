// Small non-cryptographic hashes for checksums and cache keys (not for anything an attacker
// chooses: use SHA-256 there).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace outpost {

// 64-bit FNV-1a; `seed` other than the standard offset basis gives an independent second hash.
inline uint64_t Fnv1a64(std::string_view s, uint64_t seed = 1469598103934665603ull) {
  uint64_t h = seed;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// 16 lower-case hex digits.
inline std::string Hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace outpost
