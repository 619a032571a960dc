// Internals of the V2 codec: bounded JSON parsing, a small JSON writer, IEEE conversions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "outpost/core/metrics.h"
#include "outpost/core/status.h"

namespace outpost::serve::v2::internal {

// Parses `text` into `out` without exceptions escaping. Nesting deeper than `max_depth` arrays or
// objects is refused while parsing (before the document is built), as is anything that is not
// exactly one JSON value. `what` names the document in messages ("request JSON").
Status ParseJson(std::string_view text, size_t max_depth, std::string_view what,
                 nlohmann::json* out);

// Appends `s` as a JSON string literal. Returns false (leaving a partial literal) when `s` is not
// valid UTF-8, unless `replace_invalid`, in which case each bad sequence becomes U+FFFD.
bool AppendJsonString(std::string* out, std::string_view s, bool replace_invalid);
// Escaped literal, invalid UTF-8 replaced.
std::string JsonString(std::string_view s);
bool IsValidUtf8(std::string_view s);

void AppendInt(std::string* out, int64_t v);
void AppendUInt(std::string* out, uint64_t v);
// Shortest decimal that reads back as the same value; non-finite values as null or as the
// NaN/Infinity/-Infinity literals.
void AppendFloat(std::string* out, float v, bool literals);
void AppendDouble(std::string* out, double v, bool literals);
// Shortest decimal that reads back (through RoundToFloat16/BFloat16) as the same bits.
void AppendFloat16(std::string* out, uint16_t bits, bool literals);
void AppendBFloat16(std::string* out, uint16_t bits, bool literals);

// Round-to-nearest-even of a finite double to IEEE binary16 / bfloat16 bits, directly from double
// (no double rounding through float). Magnitudes beyond the format round to infinity.
uint16_t RoundToFloat16(double x);
uint16_t RoundToBFloat16(double x);
float Float16BitsToFloat(uint16_t bits);
float BFloat16BitsToFloat(uint16_t bits);

// Metrics: malformed requests by reason, and responses that could not be encoded.
Counter& RequestErrors(const char* reason);
Counter& EncodeErrors();

}  // namespace outpost::serve::v2::internal
