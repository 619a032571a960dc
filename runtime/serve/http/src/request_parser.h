// RequestParser: a pure, incremental HTTP/1.1 request parser (RFC 9112). No sockets, no clocks,
// no logging, no metrics: the server and the fuzzer drive it the same way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "outpost/serve/http/server.h"

namespace outpost::serve::http {

struct ParserLimits {
  size_t max_header_bytes = 16384;  // request line + fields, CRLFs included
  size_t max_headers = 100;         // fields (trailer fields count against the same limit)
  size_t max_body_bytes = 64u << 20;
};

// Why a request was refused. `reason` is the metric label; `message` goes into {"error": ...}.
struct ParseError {
  int status = 0;  // 400, 413, 414, 417, 431, 501, 505
  const char* reason = "";
  const char* message = "";
};

// Feed it the bytes received so far that it has not consumed yet; it consumes what it can and
// reports one event per call. Bytes not consumed (an incomplete line) must be presented again, at
// the start of the next call, followed by whatever arrived since. Line scanning resumes where the
// previous call stopped, so byte-at-a-time input costs O(n), not O(n^2).
//
// Choices (RFC 9112 leaves them to the recipient):
// - Lines end with CRLF. A bare LF (no CR before it) is rejected with 400, in the request line, the
//   fields, chunk-size lines, after chunk data and in trailers; so is a bare CR anywhere.
// - Empty lines (CRLF) before the request line are skipped (section 2.2), within the header limit.
// - obs-fold (a field line starting with SP/HTAB) is rejected with 400; so is whitespace between a
//   field name and its colon, a NUL or other control character in a name or value.
// - Content-Length must be digits only; repeated fields must agree (else 400). Content-Length
//   together with Transfer-Encoding is rejected (400, request smuggling). Transfer-Encoding must
//   be exactly "chunked" (501 for any other coding, 400 for "chunked" twice or in HTTP/1.0).
// - HTTP/1.1 requires exactly one Host field (400).
class RequestParser {
 public:
  enum class Event {
    kNeedMore,         // consumed what it could; call again with more bytes
    kHeadersComplete,  // request line and fields parsed; call again for the body
    kMessageComplete,  // whole request parsed: TakeRequest(), then parse the next one
    kError,            // see error(); the connection must be answered and closed
  };

  explicit RequestParser(const ParserLimits& limits);

  Event Parse(const char* data, size_t len, size_t* consumed);
  Event Parse(std::string_view in, size_t* consumed) {
    return Parse(in.data(), in.size(), consumed);
  }

  // The request being parsed (fields valid after kHeadersComplete, body after kMessageComplete).
  const Request& request() const { return req_; }
  // After kMessageComplete: moves the request out and readies the parser for the next one.
  Request TakeRequest();
  // Forgets everything (including an error).
  void Reset();

  const ParseError& error() const { return error_; }
  // Some byte of the current request has been consumed or is pending in an incomplete line
  // (as of the last Parse call): the header deadline should be running.
  bool started() const { return started_; }
  bool headers_complete() const { return state_ > State::kHeaders && state_ != State::kError; }
  bool has_body() const { return chunked_ || content_length_ > 0; }
  bool chunked() const { return chunked_; }
  uint64_t content_length() const { return content_length_; }
  // HTTP/1.1 request with "Expect: 100-continue" (only meaningful when has_body()).
  bool expect_continue() const { return expect_continue_; }
  // Bytes of the header block (including the request line and skipped leading CRLFs).
  size_t header_bytes() const { return header_bytes_; }

 private:
  enum class State {
    kStartLine,
    kHeaders,
    kHeadersDone,  // kHeadersComplete reported; next call moves to the body
    kBody,
    kChunkSize,
    kChunkData,
    kChunkDataEnd,
    kTrailers,
    kComplete,
    kError,
  };

  Event Fail(int status, const char* reason, const char* message);
  bool ParseRequestLine(std::string_view line);
  bool ParseField(std::string_view line, bool trailer);
  bool FinishHeaders();
  bool ParseChunkSize(std::string_view line);

  ParserLimits limits_;
  State state_ = State::kStartLine;
  Request req_;
  ParseError error_;
  bool started_ = false;
  size_t scanned_ = 0;       // bytes of the pending (incomplete) line already searched for LF
  size_t header_bytes_ = 0;  // consumed bytes of the header block
  size_t trailer_bytes_ = 0;
  size_t fields_ = 0;
  uint64_t content_length_ = 0;
  bool have_content_length_ = false;
  bool chunked_ = false;
  bool expect_continue_ = false;
  int host_count_ = 0;
  std::string te_;          // Transfer-Encoding values, comma-joined
  std::string connection_;  // Connection values, comma-joined
  uint64_t remaining_ = 0;  // body or chunk bytes still to come
};

// Percent-decodes `in` into *out. False on a malformed escape or a decoded NUL.
bool PercentDecode(std::string_view in, std::string* out);

}  // namespace outpost::serve::http
