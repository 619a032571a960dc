// A tiny static HTTP/1.1 file server on 127.0.0.1 with an ephemeral port, for ostree pulls in
// tests (no Python in tests; Debian's ostree has no trivial-httpd). GET only, Connection: close,
// 404 for what is missing; it records the paths requested.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
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
  }

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
    {
      std::lock_guard<std::mutex> g(mu_);
      requests_.push_back(path);
    }
    std::string body, status = "200 OK";
    std::filesystem::path f = root_ + path;
    if (method != "GET" || path.find("..") != std::string::npos ||
        !std::filesystem::is_regular_file(f)) {
      status = "404 Not Found";
    } else {
      std::ifstream in(f, std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      body = ss.str();
    }
    std::string head = "HTTP/1.1 " + status + "\r\nContent-Length: " + std::to_string(body.size()) +
                       "\r\nConnection: close\r\n\r\n";
    std::string all = head + body;
    size_t off = 0;
    while (off < all.size()) {
      ssize_t n = send(c, all.data() + off, all.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
  }

  std::string root_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<std::thread> conns_;  // touched by the accept thread only, joined at the end
  std::mutex mu_;
  std::vector<std::string> requests_;
};

}  // namespace outpost::testing
