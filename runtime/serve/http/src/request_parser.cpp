#include "request_parser.h"

#include <algorithm>
#include <cstring>

namespace outpost::serve::http {
namespace {

constexpr size_t kMaxChunkLine = 4096;           // chunk-size + extensions + CRLF
constexpr uint64_t kMaxBodyReserve = 16u << 20;  // never reserve more up front than this

// tchar (RFC 9110 5.6.2).
constexpr bool IsTchar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

// field-vchar / obs-text / SP / HTAB: everything but controls (and DEL).
constexpr bool IsValueChar(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

constexpr unsigned char Lower(unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<unsigned char>(c | 0x20) : c;
}

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(static_cast<unsigned char>(a[i])) != Lower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

bool AllTchar(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (!IsTchar(c)) return false;
  }
  return true;
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

int HexValue(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = Lower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Calls f(token) for each non-empty element of a comma-separated list.
template <typename F>
void ForEachListElement(std::string_view list, F&& f) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view elem = TrimOws(list.substr(0, comma));
    if (!elem.empty()) f(elem);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

enum LineResult { kLineFound, kLineNeedMore, kLineTooLong, kLineBareLf };

}  // namespace

std::string_view Request::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (IEquals(k, name)) return v;
  }
  return {};
}

bool Request::HasHeader(std::string_view name) const {
  for (const auto& kv : headers) {
    if (IEquals(kv.first, name)) return true;
  }
  return false;
}

bool PercentDecode(std::string_view in, std::string* out) {
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (in.size() - i < 3) return false;
      int hi = HexValue(static_cast<unsigned char>(in[i + 1]));
      int lo = HexValue(static_cast<unsigned char>(in[i + 2]));
      if (hi < 0 || lo < 0) return false;
      c = static_cast<char>(hi * 16 + lo);
      if (c == '\0') return false;
      i += 2;
    }
    out->push_back(c);
  }
  return true;
}

RequestParser::RequestParser(const ParserLimits& limits) : limits_(limits) {}

void RequestParser::Reset() {
  state_ = State::kStartLine;
  req_ = Request{};
  error_ = ParseError{};
  started_ = false;
  scanned_ = 0;
  header_bytes_ = 0;
  trailer_bytes_ = 0;
  fields_ = 0;
  content_length_ = 0;
  have_content_length_ = false;
  chunked_ = false;
  expect_continue_ = false;
  host_count_ = 0;
  te_.clear();
  connection_.clear();
  remaining_ = 0;
}

Request RequestParser::TakeRequest() {
  Request r = std::move(req_);
  Reset();
  return r;
}

RequestParser::Event RequestParser::Fail(int status, const char* reason, const char* message) {
  state_ = State::kError;
  error_ = ParseError{status, reason, message};
  return Event::kError;
}

// `budget` is the most bytes the line may take, CRLF included.
static LineResult FindLine(const char* data, size_t len, size_t pos, size_t budget, size_t* scanned,
                           std::string_view* line, size_t* next) {
  size_t avail = len - pos;
  size_t region = std::min(avail, budget);
  size_t from = std::min(*scanned, region);
  const void* p = region > from ? std::memchr(data + pos + from, '\n', region - from) : nullptr;
  if (p == nullptr) {
    if (avail >= budget) return kLineTooLong;
    *scanned = region;
    return kLineNeedMore;
  }
  *scanned = 0;
  size_t nl = static_cast<const char*>(p) - (data + pos);
  if (nl == 0 || data[pos + nl - 1] != '\r') return kLineBareLf;
  *line = std::string_view(data + pos, nl - 1);
  *next = pos + nl + 1;
  return kLineFound;
}

RequestParser::Event RequestParser::Parse(const char* data, size_t len, size_t* consumed) {
  size_t pos = 0;
  *consumed = 0;
  for (;;) {
    switch (state_) {
      case State::kStartLine:
      case State::kHeaders: {
        if (len > pos) started_ = true;
        size_t budget = limits_.max_header_bytes - header_bytes_;
        std::string_view line;
        size_t next = 0;
        LineResult r = FindLine(data, len, pos, budget, &scanned_, &line, &next);
        *consumed = pos;
        if (r == kLineNeedMore) return Event::kNeedMore;
        if (r == kLineTooLong) {
          if (state_ == State::kStartLine && header_bytes_ == 0) {
            return Fail(414, "uri_too_long", "request line too long");
          }
          return Fail(431, "header_too_large", "request header block too large");
        }
        if (r == kLineBareLf) return Fail(400, "malformed", "bare LF (lines must end with CRLF)");
        header_bytes_ += next - pos;
        pos = next;
        *consumed = pos;
        if (state_ == State::kStartLine) {
          if (line.empty()) continue;  // RFC 9112 2.2: ignore empty lines before the request
          if (!ParseRequestLine(line)) return Event::kError;
          state_ = State::kHeaders;
          continue;
        }
        if (line.empty()) {
          if (!FinishHeaders()) return Event::kError;
          state_ = State::kHeadersDone;
          return Event::kHeadersComplete;
        }
        if (!ParseField(line, /*trailer=*/false)) return Event::kError;
        continue;
      }
      case State::kHeadersDone:
        if (chunked_) {
          state_ = State::kChunkSize;
        } else if (content_length_ > 0) {
          state_ = State::kBody;
          remaining_ = content_length_;
        } else {
          state_ = State::kComplete;
        }
        continue;
      case State::kBody:
      case State::kChunkData: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, len - pos));
        req_.body.append(data + pos, n);
        pos += n;
        remaining_ -= n;
        *consumed = pos;
        if (remaining_ > 0) return Event::kNeedMore;
        state_ = state_ == State::kBody ? State::kComplete : State::kChunkDataEnd;
        continue;
      }
      case State::kChunkDataEnd: {
        *consumed = pos;
        if (len - pos < 1) return Event::kNeedMore;
        if (data[pos] != '\r') {
          return Fail(
              400, "malformed",
              data[pos] == '\n' ? "bare LF after chunk data" : "chunk data longer than its size");
        }
        if (len - pos < 2) return Event::kNeedMore;
        if (data[pos + 1] != '\n') return Fail(400, "malformed", "bare CR after chunk data");
        pos += 2;
        *consumed = pos;
        state_ = State::kChunkSize;
        continue;
      }
      case State::kChunkSize: {
        std::string_view line;
        size_t next = 0;
        LineResult r = FindLine(data, len, pos, kMaxChunkLine, &scanned_, &line, &next);
        *consumed = pos;
        if (r == kLineNeedMore) return Event::kNeedMore;
        if (r == kLineTooLong) return Fail(400, "malformed", "chunk-size line too long");
        if (r == kLineBareLf) return Fail(400, "malformed", "bare LF in chunk-size line");
        if (!ParseChunkSize(line)) return Event::kError;
        pos = next;
        *consumed = pos;
        state_ = remaining_ == 0 ? State::kTrailers : State::kChunkData;
        continue;
      }
      case State::kTrailers: {
        size_t budget = limits_.max_header_bytes - trailer_bytes_;
        std::string_view line;
        size_t next = 0;
        LineResult r = FindLine(data, len, pos, budget, &scanned_, &line, &next);
        *consumed = pos;
        if (r == kLineNeedMore) return Event::kNeedMore;
        if (r == kLineTooLong) return Fail(431, "header_too_large", "trailer section too large");
        if (r == kLineBareLf) return Fail(400, "malformed", "bare LF in trailer section");
        trailer_bytes_ += next - pos;
        pos = next;
        *consumed = pos;
        if (line.empty()) {
          state_ = State::kComplete;
          continue;
        }
        if (!ParseField(line, /*trailer=*/true)) return Event::kError;
        continue;
      }
      case State::kComplete:
        *consumed = pos;
        return Event::kMessageComplete;
      case State::kError:
        *consumed = pos;
        return Event::kError;
    }
  }
}

bool RequestParser::ParseRequestLine(std::string_view line) {
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) {
    Fail(400, "malformed", "malformed request line");
    return false;
  }
  std::string_view method = line.substr(0, sp1);
  std::string_view rest = line.substr(sp1 + 1);
  size_t sp2 = rest.find(' ');
  if (sp2 == std::string_view::npos) {
    Fail(400, "malformed", "malformed request line");
    return false;
  }
  std::string_view target = rest.substr(0, sp2);
  std::string_view version = rest.substr(sp2 + 1);
  if (!AllTchar(method)) {
    Fail(400, "malformed", "invalid method");
    return false;
  }
  if (target.empty()) {
    Fail(400, "malformed", "malformed request line");
    return false;
  }
  for (unsigned char c : target) {
    if (c <= 0x20 || c >= 0x7f || c == '#') {
      Fail(400, "malformed", "invalid character in request target");
      return false;
    }
  }
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[5] < '0' ||
      version[5] > '9' || version[6] != '.' || version[7] < '0' || version[7] > '9') {
    Fail(400, "malformed", "malformed HTTP version");
    return false;
  }
  if (version[5] != '1') {
    Fail(505, "bad_version", "HTTP version not supported");
    return false;
  }
  req_.version_minor = version[7] == '0' ? 0 : 1;

  // Target forms (RFC 9112 3.2): origin-form, absolute-form, asterisk-form (OPTIONS only).
  std::string_view path_and_query;
  if (target[0] == '/') {
    path_and_query = target;
  } else if (target == "*") {
    if (method != "OPTIONS") {
      Fail(400, "malformed", "asterisk-form target is only for OPTIONS");
      return false;
    }
    path_and_query = target;
  } else {
    size_t scheme_len = 0;
    if (target.size() > 7 && IEquals(target.substr(0, 7), "http://")) {
      scheme_len = 7;
    } else if (target.size() > 8 && IEquals(target.substr(0, 8), "https://")) {
      scheme_len = 8;
    } else {
      Fail(400, "malformed", "unsupported request target form");
      return false;
    }
    std::string_view after = target.substr(scheme_len);
    size_t end = after.find_first_of("/?");
    if (end == 0) {
      Fail(400, "malformed", "absolute-form target without authority");
      return false;
    }
    path_and_query = end == std::string_view::npos ? std::string_view() : after.substr(end);
  }
  size_t q = path_and_query.find('?');
  std::string_view raw_path = path_and_query.substr(0, q);
  req_.method.assign(method);
  req_.target.assign(target);
  req_.raw_path.assign(raw_path.empty() ? std::string_view("/") : raw_path);
  if (q != std::string_view::npos) req_.query.assign(path_and_query.substr(q + 1));
  if (!PercentDecode(req_.raw_path, &req_.path)) {
    Fail(400, "malformed", "malformed percent-encoding in path");
    return false;
  }
  return true;
}

bool RequestParser::ParseField(std::string_view line, bool trailer) {
  if (line[0] == ' ' || line[0] == '\t') {
    Fail(400, "malformed", "obsolete line folding is not accepted");
    return false;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) {
    Fail(400, "malformed", "header field without colon");
    return false;
  }
  std::string_view name = line.substr(0, colon);
  if (!AllTchar(name)) {
    Fail(400, "malformed", "invalid header field name");
    return false;
  }
  std::string_view value = TrimOws(line.substr(colon + 1));
  for (unsigned char c : value) {
    if (!IsValueChar(c)) {
      Fail(400, "malformed", "invalid character in header field value");
      return false;
    }
  }
  if (++fields_ > limits_.max_headers) {
    Fail(431, "too_many_headers", "too many header fields");
    return false;
  }
  if (trailer) return true;  // trailer fields are checked, counted and dropped

  if (IEquals(name, "content-length")) {
    if (value.empty()) {
      Fail(400, "malformed", "invalid Content-Length");
      return false;
    }
    uint64_t v = 0;
    for (unsigned char c : value) {
      if (c < '0' || c > '9') {
        Fail(400, "malformed", "invalid Content-Length");
        return false;
      }
      uint64_t d = c - '0';
      if (v > (UINT64_MAX - d) / 10) {
        Fail(400, "malformed", "Content-Length overflows");
        return false;
      }
      v = v * 10 + d;
    }
    if (have_content_length_ && v != content_length_) {
      Fail(400, "malformed", "conflicting Content-Length fields");
      return false;
    }
    have_content_length_ = true;
    content_length_ = v;
  } else if (IEquals(name, "transfer-encoding")) {
    te_.append(value);
    te_.push_back(',');
  } else if (IEquals(name, "connection")) {
    connection_.append(value);
    connection_.push_back(',');
  } else if (IEquals(name, "host")) {
    ++host_count_;
  } else if (IEquals(name, "expect") && req_.version_minor >= 1) {
    // RFC 9110 10.1.1: 100-continue is the only expectation; HTTP/1.0 requests' Expect is ignored.
    if (!IEquals(value, "100-continue")) {
      Fail(417, "expectation_failed", "unsupported expectation");
      return false;
    }
    expect_continue_ = true;
  }
  req_.headers.emplace_back(name, value);
  return true;
}

bool RequestParser::FinishHeaders() {
  if (req_.version_minor >= 1 && host_count_ != 1) {
    Fail(400, "malformed", host_count_ == 0 ? "missing Host header" : "multiple Host headers");
    return false;
  }
  if (host_count_ > 1) {
    Fail(400, "malformed", "multiple Host headers");
    return false;
  }
  if (!te_.empty()) {
    if (have_content_length_) {
      Fail(400, "malformed", "both Content-Length and Transfer-Encoding");
      return false;
    }
    if (req_.version_minor == 0) {
      Fail(400, "malformed", "Transfer-Encoding in an HTTP/1.0 request");
      return false;
    }
    int n_chunked = 0;
    bool unknown = false;
    ForEachListElement(te_, [&](std::string_view e) {
      if (IEquals(e, "chunked")) {
        ++n_chunked;
      } else {
        unknown = true;
      }
    });
    if (unknown) {
      Fail(501, "unsupported_transfer_coding", "unsupported transfer coding");
      return false;
    }
    if (n_chunked != 1) {
      Fail(400, "malformed", "invalid Transfer-Encoding");
      return false;
    }
    chunked_ = true;
  }
  if (content_length_ > limits_.max_body_bytes) {
    Fail(413, "body_too_large", "request body too large");
    return false;
  }
  bool close = false, keep_alive = false;
  ForEachListElement(connection_, [&](std::string_view e) {
    if (IEquals(e, "close")) close = true;
    if (IEquals(e, "keep-alive")) keep_alive = true;
  });
  req_.keep_alive = req_.version_minor >= 1 ? !close : (keep_alive && !close);
  if (!has_body()) expect_continue_ = false;
  if (content_length_ > 0) {
    req_.body.reserve(static_cast<size_t>(std::min<uint64_t>(content_length_, kMaxBodyReserve)));
  }
  return true;
}

bool RequestParser::ParseChunkSize(std::string_view line) {
  size_t i = 0;
  uint64_t size = 0;
  int significant = 0;
  while (i < line.size()) {
    int v = HexValue(static_cast<unsigned char>(line[i]));
    if (v < 0) break;
    if (size != 0 || v != 0) {
      if (++significant > 15) {  // 2^60: far beyond any body limit, and no uint64 overflow
        Fail(400, "malformed", "chunk size overflows");
        return false;
      }
    }
    size = size * 16 + static_cast<uint64_t>(v);
    ++i;
  }
  if (i == 0) {
    Fail(400, "malformed", "invalid chunk size");
    return false;
  }
  std::string_view rest = line.substr(i);
  if (!rest.empty()) {
    std::string_view ext = TrimOws(rest);
    if (ext.empty() || ext[0] != ';') {
      Fail(400, "malformed", "invalid chunk size");
      return false;
    }
    for (unsigned char c : ext) {
      if (!IsValueChar(c)) {
        Fail(400, "malformed", "invalid character in chunk extension");
        return false;
      }
    }
  }
  if (size > limits_.max_body_bytes - req_.body.size()) {
    Fail(413, "body_too_large", "request body too large");
    return false;
  }
  remaining_ = size;
  return true;
}

}  // namespace outpost::serve::http
