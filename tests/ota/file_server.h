// A tiny static HTTP/1.1 file server on 127.0.0.1 with an ephemeral port, for ostree pulls in
// tests (no Python in tests; Debian's ostree has no trivial-httpd). GET only, Connection: close,
// 404 for what is missing; it records the paths requested. `Range: bytes=N-[M]` is answered 206
// with Content-Range (416 past the end) unless IgnoreRanges(). Faults: CutAt() drops the
// connection when the body of a path reaches a byte offset; Answer() replies with a status
// instead of the file. BodyBytes() counts the body bytes sent.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace outpost::testing {

class FileServer {
 public:
  explicit FileServer(std::string root) : root_(std::move(root)) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    listen(fd_, 64);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Loop(); });
  }
  ~FileServer() {
    stop_ = true;
    thread_.join();
    for (auto& t : conns_) t.join();
    close(fd_);
  }
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<std::string> Requests() {
    std::lock_guard<std::mutex> g(mu_);
    return requests_;
  }
  void ClearRequests() {
    std::lock_guard<std::mutex> g(mu_);
    requests_.clear();
    ranges_.clear();
    sent_.clear();
  }
  // How many times `path` was requested.
  int Count(const std::string& path) {
    std::lock_guard<std::mutex> g(mu_);
    return static_cast<int>(std::count(requests_.begin(), requests_.end(), path));
  }
  // The range requests (honoured or not): (path, first byte asked).
  std::vector<std::pair<std::string, uint64_t>> Ranges() {
    std::lock_guard<std::mutex> g(mu_);
    return ranges_;
  }
  // Body bytes sent for the paths that start with `prefix`.
  uint64_t BodyBytes(const std::string& prefix) {
    std::lock_guard<std::mutex> g(mu_);
    uint64_t n = 0;
    for (const auto& [p, b] : sent_)
      if (p.compare(0, prefix.size(), prefix) == 0) n += b;
    return n;
  }
  // The connection serving `path` is closed once its body reaches byte `offset` of the file
  // (headers announce the full length): the first time only, or every time until ClearCut().
  void CutAt(const std::string& path, uint64_t offset, bool once) {
    std::lock_guard<std::mutex> g(mu_);
    cut_path_ = path;
    cut_at_ = offset;
    cut_once_ = once;
  }
  void ClearCut() {
    std::lock_guard<std::mutex> g(mu_);
    cut_path_.clear();
  }
  // `path` is answered with `status` (e.g. "403 Forbidden") instead of its file, the first time
  // only or until cleared (an empty status).
  void Answer(const std::string& path, const std::string& status, bool once) {
    std::lock_guard<std::mutex> g(mu_);
    if (status.empty())
      answers_.erase(path);
    else
      answers_[path] = {status, once};
  }
  // Ranges ignored: the whole file, 200 (a server or proxy without range support).
  void IgnoreRanges(bool ignore) { ignore_ranges_ = ignore; }

 private:
  void Loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      // One thread per connection: libcurl opens several at once and may leave one idle.
      timeval tv{2, 0};
      setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      conns_.emplace_back([this, c] {
        Serve(c);
        close(c);
      });
    }
  }
  void Serve(int c) {
    std::string req;
    char buf[4096];
    while (req.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = read(c, buf, sizeof buf);
      if (n <= 0) return;
      req.append(buf, static_cast<size_t>(n));
    }
    std::istringstream line(req.substr(0, req.find("\r\n")));
    std::string method, path;
    line >> method >> path;
    path = path.substr(0, path.find('?'));
    // "Range: bytes=N-" or "bytes=N-M" (case-insensitive header name).
    std::string lower = req;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    bool ranged = false;
    uint64_t first = 0, last = UINT64_MAX;
    if (auto r = lower.find("\r\nrange: bytes="); r != std::string::npos) {
      ranged = true;
      const char* v = req.c_str() + r + 15;
      first = std::strtoull(v, nullptr, 10);
      if (const char* dash = std::strchr(v, '-'); dash && dash[1] >= '0' && dash[1] <= '9')
        last = std::strtoull(dash + 1, nullptr, 10);
    }
    std::string answer;
    uint64_t cut = UINT64_MAX;
    {
      std::lock_guard<std::mutex> g(mu_);
      requests_.push_back(path);
      if (ranged) ranges_.emplace_back(path, first);
      if (auto a = answers_.find(path); a != answers_.end()) {
        answer = a->second.first;
        if (a->second.second) answers_.erase(a);
      }
      if (!cut_path_.empty() && path == cut_path_) {
        cut = cut_at_;
        if (cut_once_) cut_path_.clear();
      }
    }
    std::string body, status = "200 OK", extra;
    std::filesystem::path f = root_ + path;
    if (!answer.empty()) {
      status = answer;
    } else if (method != "GET" || path.find("..") != std::string::npos ||
               !std::filesystem::is_regular_file(f)) {
      status = "404 Not Found";
    } else {
      std::ifstream in(f, std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      body = ss.str();
    }
    uint64_t offset = 0;  // of the body in the file
    if (ranged && !ignore_ranges_ && status == "200 OK") {
      const uint64_t size = body.size();
      if (first >= size) {
        status = "416 Range Not Satisfiable";
        extra = "Content-Range: bytes */" + std::to_string(size) + "\r\n";
        body.clear();
      } else {
        last = std::min<uint64_t>(last, size - 1);
        status = "206 Partial Content";
        extra = "Content-Range: bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" +
                std::to_string(size) + "\r\n";
        body = body.substr(first, last - first + 1);
        offset = first;
      }
    }
    std::string head = "HTTP/1.1 " + status + "\r\nContent-Length: " + std::to_string(body.size()) +
                       "\r\n" + extra + "Connection: close\r\n\r\n";
    if (!SendAll(c, head.data(), head.size())) return;
    size_t n = body.size();
    if (cut != UINT64_MAX) n = cut <= offset ? 0 : std::min<uint64_t>(n, cut - offset);
    if (SendAll(c, body.data(), n)) {
      std::lock_guard<std::mutex> g(mu_);
      sent_[path] += n;
    }
  }
  static bool SendAll(int c, const char* p, size_t len) {
    size_t off = 0;
    while (off < len) {
      ssize_t n = send(c, p + off, len - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  std::string root_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<std::thread> conns_;  // touched by the accept thread only, joined at the end
  std::mutex mu_;
  std::vector<std::string> requests_;
  std::vector<std::pair<std::string, uint64_t>> ranges_;
  std::map<std::string, uint64_t> sent_;
  std::string cut_path_;
  uint64_t cut_at_ = 0;
  bool cut_once_ = false;
  std::map<std::string, std::pair<std::string, bool>> answers_;
  std::atomic<bool> ignore_ranges_{false};
};

}  // namespace outpost::testing
