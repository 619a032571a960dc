// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), slicing-by-8 table implementation.
#pragma once

#include <cstddef>
#include <cstdint>

namespace outpost::telemetry {

// Extends `crc` (the value returned by a previous call, 0 to start) over `n` bytes.
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n);
inline uint32_t Crc32c(const void* data, size_t n) { return Crc32cExtend(0, data, n); }

}  // namespace outpost::telemetry
