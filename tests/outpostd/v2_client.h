// A small blocking KServe V2 / Open Inference Protocol client for the outpostd integration tests,
// written from the specs (RFC 9112 message framing; the Open Inference Protocol REST API and its
// binary tensor data extension), independently of the daemon's code: raw sockets, HTTP/1.1 with
// keep-alive (reconnects when the server closed), nlohmann::json for bodies.
#pragma once

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace outpost::testing {

using Json = nlohmann::json;

struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  std::optional<std::string> Header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (k.size() != name.size()) continue;
      bool eq = true;
      for (size_t i = 0; i < k.size() && eq; ++i)
        eq = std::tolower(static_cast<unsigned char>(k[i])) ==
             std::tolower(static_cast<unsigned char>(name[i]));
      if (eq) return v;
    }
    return std::nullopt;
  }
  // The body as JSON (null when it is not JSON). With the binary extension, only its JSON part.
  Json JsonBody() const {
    size_t n = body.size();
    if (auto h = Header("Inference-Header-Content-Length"))
      n = std::strtoull(h->c_str(), nullptr, 10);
    return Json::parse(body.substr(0, n), nullptr, /*allow_exceptions=*/false);
  }
  // The bytes after the JSON part (binary tensor data extension).
  std::string BinaryPart() const {
    auto h = Header("Inference-Header-Content-Length");
    if (!h) return "";
    size_t n = std::strtoull(h->c_str(), nullptr, 10);
    return n <= body.size() ? body.substr(n) : "";
  }
  // The "error" member of a JSON error body ("" when there is none).
  std::string Error() const {
    Json j = JsonBody();
    if (j.is_object() && j.contains("error") && j["error"].is_string()) return j["error"];
    return "";
  }
};

// Connects to host:port over TCP (IPv4 or IPv6 literal, or a name). -1 on failure; errno kept.
inline int ConnectTcp(const std::string& host, uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) return -1;
  int fd = -1;
  int saved = ECONNREFUSED;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
    saved = errno;
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  if (fd >= 0) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  } else {
    errno = saved;
  }
  return fd;
}

class HttpClient {
 public:
  explicit HttpClient(uint16_t port, std::string host = "127.0.0.1")
      : host_(std::move(host)), port_(port) {}
  ~HttpClient() { Close(); }
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  bool Connect() {
    Close();
    fd_ = ConnectTcp(host_, port_);
    return fd_ >= 0;
  }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    buf_.clear();
  }
  bool connected() const { return fd_ >= 0; }
  // Requests sent over a connection that was already open (keep-alive reuse).
  int reused() const { return reused_; }

  // Sends one request and reads its response; reconnects first when needed. nullopt on a
  // transport error or timeout (last_error() says which).
  std::optional<HttpResponse> Request(
      const std::string& method, const std::string& target, const std::string& body = "",
      const std::vector<std::pair<std::string, std::string>>& headers = {},
      int timeout_ms = 10000) {
    std::string req = Serialize(method, target, body, headers);
    if (fd_ >= 0) {
      ++reused_;
    } else if (!Connect()) {
      error_ = std::string("connect: ") + std::strerror(errno);
      return std::nullopt;
    }
    if (!SendAll(req)) {
      error_ = std::string("send: ") + std::strerror(errno);
      Close();
      return std::nullopt;
    }
    return ReadResponse(method == "HEAD", timeout_ms);
  }

  // Writes raw bytes (for tests that build requests by hand).
  bool SendAll(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  std::optional<HttpResponse> ReadResponse(bool head = false, int timeout_ms = 10000) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      size_t end;
      while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
        if (!Fill(until)) return Fail("no complete response head");
      HttpResponse r;
      std::string_view headblock(buf_.data(), end);
      size_t eol = headblock.find("\r\n");
      std::string_view status_line = headblock.substr(0, eol);
      // status-line = HTTP-version SP status-code SP [ reason-phrase ]
      if (status_line.size() < 12 || status_line.substr(0, 7) != "HTTP/1." || status_line[8] != ' ')
        return Fail("bad status line: " + std::string(status_line));
      r.status = std::atoi(std::string(status_line.substr(9, 3)).c_str());
      std::string_view rest = eol == std::string_view::npos ? "" : headblock.substr(eol + 2);
      while (!rest.empty()) {
        size_t e = rest.find("\r\n");
        std::string_view line = rest.substr(0, e);
        size_t colon = line.find(':');
        if (colon == std::string_view::npos) return Fail("bad header line");
        std::string_view v = line.substr(colon + 1);
        while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
        while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
        r.headers.emplace_back(std::string(line.substr(0, colon)), std::string(v));
        if (e == std::string_view::npos) break;
        rest.remove_prefix(e + 2);
      }
      buf_.erase(0, end + 4);
      const bool no_body = head || r.status < 200 || r.status == 204 || r.status == 304;
      if (no_body) {
        if (r.status < 200) continue;  // interim response: read the final one
      } else if (auto te = r.Header("Transfer-Encoding"); te && Lower(*te) == "chunked") {
        if (!ReadChunked(&r.body, until)) return Fail("bad chunked body");
      } else if (auto cl = r.Header("Content-Length")) {
        const size_t len = std::strtoull(cl->c_str(), nullptr, 10);
        while (buf_.size() < len)
          if (!Fill(until)) return Fail("short body");
        r.body = buf_.substr(0, len);
        buf_.erase(0, len);
      } else {
        while (Fill(until)) {  // read until close
        }
        r.body.swap(buf_);
        Close();
      }
      if (auto c = r.Header("Connection"); c && Lower(*c) == "close") Close();
      return r;
    }
  }

  const std::string& last_error() const { return error_; }

 private:
  static std::string Lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }

  std::string Serialize(const std::string& method, const std::string& target,
                        const std::string& body,
                        const std::vector<std::pair<std::string, std::string>>& headers) const {
    std::string r = method + " " + target + " HTTP/1.1\r\nHost: " + host_ + ":" +
                    std::to_string(port_) + "\r\n";
    bool has_type = false;
    for (const auto& [k, v] : headers) {
      r += k + ": " + v + "\r\n";
      has_type = has_type || Lower(k) == "content-type";
    }
    if (!body.empty() || method == "POST" || method == "PUT") {
      if (!has_type) r += "Content-Type: application/json\r\n";
      r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    }
    r += "\r\n";
    r += body;
    return r;
  }

  std::optional<HttpResponse> Fail(const std::string& why) {
    error_ = why;
    Close();
    return std::nullopt;
  }

  bool Fill(std::chrono::steady_clock::time_point until) {
    if (fd_ < 0) return false;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            until - std::chrono::steady_clock::now())
                            .count();
      if (left <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      int r = ::poll(&p, 1, static_cast<int>(left));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      char tmp[65536];
      ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      buf_.append(tmp, static_cast<size_t>(n));
      return true;
    }
  }

  bool ReadChunked(std::string* out, std::chrono::steady_clock::time_point until) {
    for (;;) {
      size_t eol;
      while ((eol = buf_.find("\r\n")) == std::string::npos)
        if (!Fill(until)) return false;
      const size_t size = std::strtoull(buf_.substr(0, eol).c_str(), nullptr, 16);
      buf_.erase(0, eol + 2);
      if (size == 0) {  // trailers, then an empty line
        for (;;) {
          while ((eol = buf_.find("\r\n")) == std::string::npos)
            if (!Fill(until)) return false;
          const bool last = eol == 0;
          buf_.erase(0, eol + 2);
          if (last) return true;
        }
      }
      while (buf_.size() < size + 2)
        if (!Fill(until)) return false;
      out->append(buf_, 0, size);
      buf_.erase(0, size + 2);
    }
  }

  std::string host_;
  uint16_t port_;
  int fd_ = -1;
  std::string buf_;
  std::string error_;
  int reused_ = 0;
};

// The Open Inference Protocol on top of HttpClient.
class V2Client {
 public:
  explicit V2Client(uint16_t port, std::string host = "127.0.0.1") : http_(port, std::move(host)) {}

  HttpClient& http() { return http_; }

  std::optional<HttpResponse> Get(const std::string& path) { return http_.Request("GET", path); }
  std::optional<HttpResponse> Post(const std::string& path, const std::string& body,
                                   const std::vector<std::pair<std::string, std::string>>& h = {},
                                   int timeout_ms = 10000) {
    return http_.Request("POST", path, body, h, timeout_ms);
  }

  // POST /v2/models/{model}[/versions/{version}]/infer with a JSON body.
  std::optional<HttpResponse> Infer(const std::string& model, const Json& request,
                                    const std::string& version = "", int timeout_ms = 10000) {
    return Post(InferPath(model, version), request.dump(), {}, timeout_ms);
  }

  // The binary tensor data extension: the JSON header, then the tensors' bytes in order.
  std::optional<HttpResponse> InferBinary(const std::string& model, const Json& header,
                                          const std::string& binary, int timeout_ms = 10000) {
    const std::string json = header.dump();
    return Post(InferPath(model, ""), json + binary,
                {{"Content-Type", "application/octet-stream"},
                 {"Inference-Header-Content-Length", std::to_string(json.size())}},
                timeout_ms);
  }

  static std::string InferPath(const std::string& model, const std::string& version) {
    return "/v2/models/" + model + (version.empty() ? "" : "/versions/" + version) + "/infer";
  }

 private:
  HttpClient http_;
};

// Little-endian FP32 bytes of `v` (the binary extension's layout) and back.
inline std::string Fp32Bytes(const std::vector<float>& v) {
  std::string s(v.size() * 4, '\0');
  for (size_t i = 0; i < v.size(); ++i) {
    uint32_t u;
    std::memcpy(&u, &v[i], 4);
    for (int b = 0; b < 4; ++b) s[i * 4 + b] = static_cast<char>((u >> (8 * b)) & 0xff);
  }
  return s;
}

inline std::vector<float> Fp32FromBytes(std::string_view s) {
  std::vector<float> v(s.size() / 4);
  for (size_t i = 0; i < v.size(); ++i) {
    uint32_t u = 0;
    for (int b = 0; b < 4; ++b)
      u |= static_cast<uint32_t>(static_cast<uint8_t>(s[i * 4 + b])) << (8 * b);
    std::memcpy(&v[i], &u, 4);
  }
  return v;
}

// Flattens nested JSON arrays of numbers.
inline void FlattenJson(const Json& j, std::vector<double>* out) {
  if (j.is_array()) {
    for (const auto& e : j) FlattenJson(e, out);
  } else if (j.is_number()) {
    out->push_back(j.get<double>());
  }
}

}  // namespace outpost::testing
