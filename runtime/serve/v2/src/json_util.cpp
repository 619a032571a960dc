#include "json_util.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <system_error>

namespace outpost::serve::v2::internal {

namespace {

using json = nlohmann::json;

// nlohmann's DOM builder with a nesting limit checked as each array or object opens, so that a
// hostile `[[[[...` is refused after max_depth levels instead of being built in full. (nlohmann's
// parser and destructor are iterative, so this bounds memory and work rather than stack.)
class BoundedDomParser : public nlohmann::detail::json_sax_dom_parser<json> {
 public:
  BoundedDomParser(json& root, size_t max_depth)
      : nlohmann::detail::json_sax_dom_parser<json>(root, /*allow_exceptions_=*/false),
        max_depth_(max_depth) {}

  bool start_object(std::size_t len) {
    if (++depth_ > max_depth_) return TooDeep();
    return nlohmann::detail::json_sax_dom_parser<json>::start_object(len);
  }
  bool end_object() {
    --depth_;
    return nlohmann::detail::json_sax_dom_parser<json>::end_object();
  }
  bool start_array(std::size_t len) {
    if (++depth_ > max_depth_) return TooDeep();
    return nlohmann::detail::json_sax_dom_parser<json>::start_array(len);
  }
  bool end_array() {
    --depth_;
    return nlohmann::detail::json_sax_dom_parser<json>::end_array();
  }
  template <class Exception>
  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const Exception& ex) {
    error_ = ex.what();
    // nlohmann prefixes "[json.exception.parse_error.101] "; the rest is the useful part.
    if (auto p = error_.find("] ");
        error_.rfind("[json.exception.", 0) == 0 && p != std::string::npos)
      error_.erase(0, p + 2);
    return false;
  }

  bool too_deep() const { return too_deep_; }
  const std::string& error() const { return error_; }

 private:
  bool TooDeep() {
    too_deep_ = true;
    return false;
  }
  size_t max_depth_;
  size_t depth_ = 0;
  bool too_deep_ = false;
  std::string error_;
};

constexpr char kHex[] = "0123456789abcdef";

// Length of the valid UTF-8 sequence at s[i], or 0 when it is not one (RFC 3629: no overlongs, no
// surrogates, nothing above U+10FFFF).
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  size_t n = s.size() - i;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) return n >= 2 && (b(i + 1) & 0xc0) == 0x80 ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if (n < 3) return 0;
    unsigned char c1 = b(i + 1);
    unsigned char lo = c == 0xe0 ? 0xa0 : 0x80;
    unsigned char hi = c == 0xed ? 0x9f : 0xbf;
    if (c1 < lo || c1 > hi || (b(i + 2) & 0xc0) != 0x80) return 0;
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (n < 4) return 0;
    unsigned char c1 = b(i + 1);
    unsigned char lo = c == 0xf0 ? 0x90 : 0x80;
    unsigned char hi = c == 0xf4 ? 0x8f : 0xbf;
    if (c1 < lo || c1 > hi || (b(i + 2) & 0xc0) != 0x80 || (b(i + 3) & 0xc0) != 0x80) return 0;
    return 4;
  }
  return 0;
}

// Rounds a finite, non-negative `ax` to a binary format with `mant` fraction bits and normal
// exponents in [emin, emax]; returns the bits without sign (infinity on overflow). Scaling by a
// power of two is exact, so nearbyint (round-half-even in the default mode) rounds exactly once.
uint32_t RoundToSmallFloat(double ax, int mant, int emin, int emax) {
  const int bias = 1 - emin;
  const uint32_t one = 1u << mant;
  if (ax < std::ldexp(1.0, emin)) {
    // Subnormal range: count units of 2^(emin - mant). A result of `one` is the smallest normal,
    // whose encoding (exponent field 1, fraction 0) is the same number.
    return static_cast<uint32_t>(std::nearbyint(std::ldexp(ax, mant - emin)));
  }
  int e = std::ilogb(ax);
  if (e > emax) return static_cast<uint32_t>(emax + bias + 1) << mant;
  double m = std::nearbyint(std::ldexp(ax, mant - e));  // in [one, 2 * one]
  uint32_t mi = static_cast<uint32_t>(m);
  if (mi == 2 * one) {
    ++e;
    mi = one;
  }
  if (e > emax) return static_cast<uint32_t>(emax + bias + 1) << mant;
  return (static_cast<uint32_t>(e + bias) << mant) | (mi - one);
}

bool AppendNonFinite(std::string* out, double v, bool literals) {
  if (std::isfinite(v)) return false;
  if (!literals) {
    *out += "null";
  } else if (std::isnan(v)) {
    *out += "NaN";
  } else {
    *out += v > 0 ? "Infinity" : "-Infinity";
  }
  return true;
}

// Shortest decimal (1..max_digits significant digits) that `round` maps back to `bits`.
template <typename Round>
void AppendShortestSmall(std::string* out, uint16_t bits, float value, int max_digits,
                         Round round) {
  char buf[48];
  for (int p = 1; p <= max_digits; ++p) {
    auto r = std::to_chars(buf, buf + sizeof(buf), static_cast<double>(value),
                           std::chars_format::general, p);
    double back = 0;
    std::from_chars(buf, r.ptr, back);
    if (round(back) == bits || p == max_digits) {
      out->append(buf, r.ptr);
      return;
    }
  }
}

}  // namespace

Status ParseJson(std::string_view text, size_t max_depth, std::string_view what, json* out) {
  *out = json();
  BoundedDomParser sax(*out, max_depth);
  bool ok = false;
  try {
    ok = json::sax_parse(text.begin(), text.end(), &sax);
  } catch (const std::bad_alloc&) {
    *out = json();
    return ResourceExhausted("out of memory parsing the " + std::string(what));
  } catch (const std::exception& e) {
    *out = json();
    return InvalidArgument("invalid " + std::string(what) + ": " + e.what());
  }
  if (!ok) {
    *out = json();
    if (sax.too_deep())
      return InvalidArgument(std::string(what) + " nests arrays/objects deeper than " +
                             std::to_string(max_depth) + " levels");
    return InvalidArgument("invalid " + std::string(what) + ": " +
                           (sax.error().empty() ? std::string("parse error") : sax.error()));
  }
  return Status::Ok();
}

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t n = Utf8SequenceLength(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

bool AppendJsonString(std::string* out, std::string_view s, bool replace_invalid) {
  out->push_back('"');
  size_t run = 0;  // start of the pending run of bytes that need no escaping
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      size_t n = Utf8SequenceLength(s, i);
      if (n != 0) {
        i += n;
        continue;
      }
      if (!replace_invalid) return false;
      out->append(s.data() + run, i - run);
      *out += "\xef\xbf\xbd";  // U+FFFD
      run = ++i;
      continue;
    }
    out->append(s.data() + run, i - run);
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      case '\b':
        *out += "\\b";
        break;
      case '\f':
        *out += "\\f";
        break;
      default: {
        char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        out->append(esc, 6);
      }
    }
    run = ++i;
  }
  out->append(s.data() + run, s.size() - run);
  out->push_back('"');
  return true;
}

std::string JsonString(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  AppendJsonString(&out, s, /*replace_invalid=*/true);
  return out;
}

void AppendInt(std::string* out, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, r.ptr);
}

void AppendUInt(std::string* out, uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, r.ptr);
}

// "-0" would read back as the integer 0 in most parsers (nlohmann, Python): keep the sign.
bool AppendNegativeZero(std::string* out, double v) {
  if (v != 0 || !std::signbit(v)) return false;
  *out += "-0.0";
  return true;
}

void AppendFloat(std::string* out, float v, bool literals) {
  if (AppendNonFinite(out, v, literals) || AppendNegativeZero(out, v)) return;
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);  // shortest round-trip form
  out->append(buf, r.ptr);
}

void AppendDouble(std::string* out, double v, bool literals) {
  if (AppendNonFinite(out, v, literals) || AppendNegativeZero(out, v)) return;
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, r.ptr);
}

void AppendFloat16(std::string* out, uint16_t bits, bool literals) {
  float f = Float16BitsToFloat(bits);
  if (AppendNonFinite(out, f, literals) || AppendNegativeZero(out, f)) return;
  // binary16 has 11 significant bits: 5 decimal digits always suffice.
  AppendShortestSmall(out, bits, f, 5, [](double d) { return RoundToFloat16(d); });
}

void AppendBFloat16(std::string* out, uint16_t bits, bool literals) {
  float f = BFloat16BitsToFloat(bits);
  if (AppendNonFinite(out, f, literals) || AppendNegativeZero(out, f)) return;
  // bfloat16 has 8 significant bits: 4 decimal digits always suffice.
  AppendShortestSmall(out, bits, f, 4, [](double d) { return RoundToBFloat16(d); });
}

uint16_t RoundToFloat16(double x) {
  uint16_t sign = std::signbit(x) ? 0x8000u : 0;
  if (std::isnan(x)) return static_cast<uint16_t>(sign | 0x7e00u);
  if (std::isinf(x)) return static_cast<uint16_t>(sign | 0x7c00u);
  return static_cast<uint16_t>(sign | RoundToSmallFloat(std::fabs(x), 10, -14, 15));
}

uint16_t RoundToBFloat16(double x) {
  uint16_t sign = std::signbit(x) ? 0x8000u : 0;
  if (std::isnan(x)) return static_cast<uint16_t>(sign | 0x7fc0u);
  if (std::isinf(x)) return static_cast<uint16_t>(sign | 0x7f80u);
  return static_cast<uint16_t>(sign | RoundToSmallFloat(std::fabs(x), 7, -126, 127));
}

float Float16BitsToFloat(uint16_t bits) {
  uint32_t sign = (static_cast<uint32_t>(bits) & 0x8000u) << 16;
  uint32_t exp = (bits >> 10) & 0x1fu;
  uint32_t mant = bits & 0x3ffu;
  if (exp == 31) {
    uint32_t x = sign | 0x7f800000u | (mant << 13);
    float f;
    std::memcpy(&f, &x, 4);
    return f;
  }
  // Normal: (1024 + mant) * 2^(exp - 25); subnormal: mant * 2^-24. Both exact in float.
  float mag = exp == 0 ? std::ldexp(static_cast<float>(mant), -24)
                       : std::ldexp(static_cast<float>(1024 + mant), static_cast<int>(exp) - 25);
  return sign ? -mag : mag;
}

float BFloat16BitsToFloat(uint16_t bits) {
  uint32_t x = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

Counter& RequestErrors(const char* reason) {
  return MetricsRegistry::Global().GetCounter(
      "outpost_v2_request_errors_total", "V2 inference requests refused by the codec, by reason",
      {{"reason", reason}});
}

Counter& EncodeErrors() {
  static Counter& c = MetricsRegistry::Global().GetCounter(
      "outpost_v2_encode_errors_total", "V2 responses the codec could not encode");
  return c;
}

}  // namespace outpost::serve::v2::internal
