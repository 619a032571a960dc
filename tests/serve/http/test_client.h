// A small blocking raw-socket HTTP/1.1 client for the server tests. Its response reader is written
// from RFC 9112 independently of the server's code.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace outpost::serve::http::testing {

struct ClientResponse {
  std::string version;
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  std::string Header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (k.size() != name.size()) continue;
      bool eq = true;
      for (size_t i = 0; i < k.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(k[i])) !=
            std::tolower(static_cast<unsigned char>(name[i]))) {
          eq = false;
          break;
        }
      }
      if (eq) return v;
    }
    return "";
  }
  bool HasHeader(std::string_view name) const {
    for (const auto& kv : headers) {
      if (kv.first.size() == name.size() &&
          strncasecmp(kv.first.data(), name.data(), name.size()) == 0) {
        return true;
      }
    }
    return false;
  }
};

class TestClient {
 public:
  ~TestClient() { Close(); }
  TestClient() = default;
  TestClient(const TestClient&) = delete;
  TestClient& operator=(const TestClient&) = delete;

  // Connects to 127.0.0.1:port. nullptr on failure.
  static std::unique_ptr<TestClient> Connect(uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return nullptr;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      ::close(fd);
      return nullptr;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    auto c = std::make_unique<TestClient>();
    c->fd_ = fd;
    return c;
  }

  bool Send(std::string_view data) {
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

  // Reads one response (a 1xx interim response counts as one). nullopt on timeout, EOF or junk.
  std::optional<ClientResponse> ReadResponse(int timeout_ms = 5000, bool head = false) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill(deadline)) return std::nullopt;
    }
    ClientResponse r;
    std::string_view head_block(buf_.data(), end);
    size_t line_end = head_block.find("\r\n");
    std::string_view status_line = head_block.substr(0, line_end);
    // "HTTP/1.1 200 OK"
    if (status_line.size() < 12 || status_line.substr(0, 5) != "HTTP/") return std::nullopt;
    r.version = std::string(status_line.substr(0, 8));
    r.status = std::atoi(std::string(status_line.substr(9, 3)).c_str());
    if (status_line.size() > 13) r.reason = std::string(status_line.substr(13));
    std::string_view rest =
        line_end == std::string_view::npos ? std::string_view() : head_block.substr(line_end + 2);
    while (!rest.empty()) {
      size_t e = rest.find("\r\n");
      std::string_view line = rest.substr(0, e);
      size_t colon = line.find(':');
      if (colon == std::string_view::npos) return std::nullopt;
      std::string_view v = line.substr(colon + 1);
      while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      r.headers.emplace_back(std::string(line.substr(0, colon)), std::string(v));
      if (e == std::string_view::npos) break;
      rest.remove_prefix(e + 2);
    }
    buf_.erase(0, end + 4);
    size_t len = 0;
    bool has_body = !head && r.status >= 200 && r.status != 204 && r.status != 304;
    if (has_body) len = std::strtoull(r.Header("Content-Length").c_str(), nullptr, 10);
    while (buf_.size() < len) {
      if (!Fill(deadline)) return std::nullopt;
    }
    r.body = buf_.substr(0, len);
    buf_.erase(0, len);
    return r;
  }

  // Sends a request and reads its response.
  std::optional<ClientResponse> RoundTrip(std::string_view request, int timeout_ms = 5000) {
    if (!Send(request)) return std::nullopt;
    return ReadResponse(timeout_ms);
  }

  // True when the server closed the connection (EOF or reset) within the timeout, with no
  // unread bytes left over.
  bool WaitClosed(int timeout_ms = 5000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      int r = FillRaw(deadline);
      if (r == 0) return buf_.empty();
      if (r < 0) return false;  // timeout
    }
  }

  // Bytes received but not consumed by ReadResponse.
  const std::string& pending() const { return buf_; }
  int fd() const { return fd_; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  void ShutdownWrite() { ::shutdown(fd_, SHUT_WR); }

 private:
  bool Fill(std::chrono::steady_clock::time_point deadline) { return FillRaw(deadline) > 0; }
  // 1: got bytes; 0: EOF or error; -1: timeout.
  int FillRaw(std::chrono::steady_clock::time_point deadline) {
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - std::chrono::steady_clock::now())
                      .count();
      if (left <= 0) return -1;
      pollfd p{fd_, POLLIN, 0};
      int pr = ::poll(&p, 1, static_cast<int>(left));
      if (pr < 0 && errno == EINTR) continue;
      if (pr == 0) return -1;
      char tmp[65536];
      ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return 0;
      buf_.append(tmp, static_cast<size_t>(n));
      return 1;
    }
  }

  int fd_ = -1;
  std::string buf_;
};

}  // namespace outpost::serve::http::testing
