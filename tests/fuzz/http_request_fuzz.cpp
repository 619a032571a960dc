// libFuzzer target: RequestParser (runtime/serve/http/src) on arbitrary bytes.
//
// The first bytes of each input pick the limits and a seed for the split points; the rest is the
// byte stream a client would send. The stream is fed in random pieces the way the server feeds it
// (unconsumed bytes are presented again, followed by new ones) and, separately, in one piece.
// Checked: no crash/UB/leak (sanitizers), bounded buffering, progress, the limits hold for every
// request produced, and the result does not depend on how the stream was split.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "request_parser.h"

using outpost::serve::http::ParserLimits;
using outpost::serve::http::Request;
using outpost::serve::http::RequestParser;

namespace {

#define FUZZ_CHECK(cond)                                                            \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)

struct Result {
  std::vector<Request> requests;
  int error_status = 0;
  std::string leftover;
};

constexpr size_t kMaxChunkLine = 4096;  // the parser's chunk-size line bound

bool IsTchar(unsigned char c) {
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr || (c >= '0' && c <= '9') ||
         ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

void CheckRequest(const Request& r, const ParserLimits& l) {
  FUZZ_CHECK(!r.method.empty());
  for (unsigned char c : r.method) FUZZ_CHECK(c != 0 && IsTchar(c));
  FUZZ_CHECK(!r.target.empty());
  FUZZ_CHECK(!r.raw_path.empty());
  FUZZ_CHECK(r.path.find('\0') == std::string::npos);
  FUZZ_CHECK(r.version_minor == 0 || r.version_minor == 1);
  FUZZ_CHECK(r.body.size() <= l.max_body_bytes);
  FUZZ_CHECK(r.headers.size() <= l.max_headers);
  size_t field_bytes = 0;
  for (const auto& [k, v] : r.headers) {
    FUZZ_CHECK(!k.empty());
    for (unsigned char c : k) FUZZ_CHECK(IsTchar(c));
    for (unsigned char c : v) FUZZ_CHECK(c == '\t' || (c >= 0x20 && c != 0x7f));
    if (!v.empty()) FUZZ_CHECK(v.front() != ' ' && v.back() != ' ');
    field_bytes += k.size() + v.size();
  }
  FUZZ_CHECK(field_bytes + r.target.size() + r.method.size() <= l.max_header_bytes);
  // Framing: a Content-Length body has exactly that length.
  std::string_view cl = r.Header("content-length");
  if (!cl.empty() && !r.HasHeader("transfer-encoding")) {
    FUZZ_CHECK(std::strtoull(std::string(cl).c_str(), nullptr, 10) == r.body.size());
  }
}

// Feeds `in` in pieces chosen by `seed` (seed == 0: all at once).
Result Drive(std::string_view in, const ParserLimits& limits, uint32_t seed) {
  RequestParser p(limits);
  Result res;
  std::string buf;
  size_t fed = 0;
  size_t events = 0;
  uint32_t rng = seed;
  for (;;) {
    size_t n = in.size() - fed;
    if (seed != 0) {
      rng = rng * 1103515245u + 12345u;
      size_t piece = (rng >> 16) % 64 + 1;
      if ((rng >> 8) % 16 == 0) piece = 1;
      n = std::min(n, piece);
    }
    buf.append(in.substr(fed, n));
    fed += n;
    for (;;) {
      size_t consumed = 0;
      auto ev = p.Parse(buf.data(), buf.size(), &consumed);
      FUZZ_CHECK(consumed <= buf.size());
      buf.erase(0, consumed);
      FUZZ_CHECK(++events <= 4 * in.size() + 8);  // progress: no event storm without input
      if (ev == RequestParser::Event::kHeadersComplete) {
        FUZZ_CHECK(p.headers_complete());
        FUZZ_CHECK(p.request().headers.size() <= limits.max_headers);
        FUZZ_CHECK(p.header_bytes() <= limits.max_header_bytes);
        FUZZ_CHECK(!(p.chunked() && p.content_length() > 0));
        FUZZ_CHECK(p.content_length() <= limits.max_body_bytes);
        continue;
      }
      if (ev == RequestParser::Event::kMessageComplete) {
        Request r = p.TakeRequest();
        CheckRequest(r, limits);
        res.requests.push_back(std::move(r));
        continue;
      }
      if (ev == RequestParser::Event::kError) {
        int s = p.error().status;
        FUZZ_CHECK(s == 400 || s == 413 || s == 414 || s == 417 || s == 431 || s == 501 ||
                   s == 505);
        FUZZ_CHECK(p.error().reason[0] != '\0' && p.error().message[0] != '\0');
        // Sticky: the parser stays in error.
        size_t again = 1;
        FUZZ_CHECK(p.Parse(buf.data(), buf.size(), &again) == RequestParser::Event::kError);
        FUZZ_CHECK(again == 0);
        res.error_status = s;
        res.leftover = buf;
        return res;
      }
      // kNeedMore: what is left unconsumed is one partial line (or a CR after chunk data).
      FUZZ_CHECK(buf.size() < std::max(limits.max_header_bytes, kMaxChunkLine));
      break;
    }
    if (fed == in.size()) break;
  }
  res.leftover = buf;
  return res;
}

struct Bytes {
  const uint8_t* p;
  size_t n;
  uint32_t Take(int k) {
    uint32_t v = 0;
    for (int i = 0; i < k && n > 0; ++i, ++p, --n) v = (v << 8) | *p;
    return v;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Bytes b{data, size};
  ParserLimits limits;
  limits.max_header_bytes = 64 + b.Take(2) % 8192;
  limits.max_headers = 1 + b.Take(1) % 64;
  limits.max_body_bytes = b.Take(2) % 65536;
  uint32_t seed = b.Take(4) | 1;
  std::string_view stream(reinterpret_cast<const char*>(b.p), b.n);

  Result whole = Drive(stream, limits, 0);
  Result split = Drive(stream, limits, seed);

  // The outcome must not depend on how the bytes were split.
  FUZZ_CHECK(whole.error_status == split.error_status);
  FUZZ_CHECK(whole.requests.size() == split.requests.size());
  for (size_t i = 0; i < whole.requests.size(); ++i) {
    const Request& a = whole.requests[i];
    const Request& c = split.requests[i];
    FUZZ_CHECK(a.method == c.method && a.target == c.target && a.path == c.path &&
               a.query == c.query && a.body == c.body && a.headers == c.headers &&
               a.keep_alive == c.keep_alive && a.version_minor == c.version_minor);
  }
  if (whole.error_status == 0) FUZZ_CHECK(whole.leftover == split.leftover);
  return 0;
}
