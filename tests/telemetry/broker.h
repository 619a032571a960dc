// Test fixtures for the MQTT tests: a private mosquitto on 127.0.0.1 (ephemeral port, config in a
// temp dir, persistence off), a TCP proxy in front of it that can cut the uplink or stall the
// broker's replies, and a collecting subscriber.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace outpost::telemetry::testing {

inline int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

inline bool CanConnect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

inline int64_t MonoMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class Broker {
 public:
  ~Broker() { Stop(); }
  // Starts mosquitto on a free port (retrying on a collision). Returns false when it cannot.
  bool Start() {
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = FreePort();
      std::string conf = dir_.path() + "/mosquitto.conf";
      // mosquitto started as root drops to the mosquitto user: let it write its log here.
      std::filesystem::permissions(dir_.path(), std::filesystem::perms::all);
      {
        std::ofstream f(conf);
        f << "listener " << port_ << " 127.0.0.1\n"
          << "allow_anonymous true\n"
          << "persistence false\n"
          << "max_inflight_messages 0\n"
          << "max_queued_messages 100000\n"
          << "log_dest file " << dir_.path() << "/mosquitto.log\n";
      }
      pid_ = ::fork();
      if (pid_ == 0) {
        ::execl(OUTPOST_MOSQUITTO_BIN, "mosquitto", "-c", conf.c_str(),
                static_cast<char*>(nullptr));
        ::_exit(127);
      }
      for (int i = 0; i < 100; ++i) {
        if (CanConnect(port_)) return true;
        int st;
        if (::waitpid(pid_, &st, WNOHANG) == pid_) {
          pid_ = -1;
          break;  // exited: port taken? try another
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      Stop();
    }
    return false;
  }
  void Stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGCONT);
      ::kill(pid_, SIGTERM);
      int st;
      ::waitpid(pid_, &st, 0);
      pid_ = -1;
    }
  }
  int port() const { return port_; }

 private:
  TempDir dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// Forwards 127.0.0.1:port() to the broker. SetDown(true) closes the listener and every
// connection (the uplink is gone); SetStalled(true) stops passing the broker's bytes back (a
// broker that takes PUBLISHes but does not answer).
class Proxy {
 public:
  explicit Proxy(int target) : target_(target) {
    port_ = FreePort();
    Listen();
    th_ = std::thread([this] { Loop(); });
  }
  ~Proxy() {
    quit_ = true;
    th_.join();
    CloseAll();
    if (lfd_ >= 0) ::close(lfd_);
  }
  int port() const { return port_; }
  void SetDown(bool down) { down_ = down; }
  void SetStalled(bool s) { stalled_ = s; }

 private:
  void Listen() {
    lfd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(lfd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port_));
    if (::bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(lfd_, 16) != 0) {
      ::close(lfd_);
      lfd_ = -1;
    }
  }
  void CloseAll() {
    for (auto& [c, b] : pairs_) {
      ::close(c);
      ::close(b);
    }
    pairs_.clear();
  }
  static bool Pump(int from, int to) {
    char buf[65536];
    ssize_t n = ::read(from, buf, sizeof buf);
    if (n <= 0) return false;
    ssize_t off = 0;
    while (off < n) {
      ssize_t w = ::write(to, buf + off, static_cast<size_t>(n - off));
      if (w <= 0) return false;
      off += w;
    }
    return true;
  }
  void Loop() {
    while (!quit_) {
      if (down_) {
        if (lfd_ >= 0) {
          ::close(lfd_);
          lfd_ = -1;
        }
        CloseAll();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      if (lfd_ < 0) Listen();
      std::vector<pollfd> fds;
      fds.push_back({lfd_, POLLIN, 0});
      for (auto& [c, b] : pairs_) {
        fds.push_back({c, POLLIN, 0});
        fds.push_back({b, static_cast<short>(stalled_ ? 0 : POLLIN), 0});
      }
      ::poll(fds.data(), fds.size(), 10);
      if (fds[0].revents & POLLIN) {
        int c = ::accept(lfd_, nullptr, nullptr);
        if (c >= 0) {
          int b = ::socket(AF_INET, SOCK_STREAM, 0);
          sockaddr_in a{};
          a.sin_family = AF_INET;
          a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
          a.sin_port = htons(static_cast<uint16_t>(target_));
          if (::connect(b, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
            pairs_.push_back({c, b});
          } else {
            ::close(c);
            ::close(b);
          }
        }
      }
      std::vector<size_t> dead;
      for (size_t i = 0; i < pairs_.size(); ++i) {
        auto& c = fds[1 + 2 * i];
        auto& b = fds[2 + 2 * i];
        bool ok = true;
        if (c.revents & (POLLIN | POLLHUP | POLLERR)) ok = Pump(pairs_[i].first, pairs_[i].second);
        if (ok && (b.revents & (POLLIN | POLLHUP | POLLERR)))
          ok = Pump(pairs_[i].second, pairs_[i].first);
        if (!ok) dead.push_back(i);
      }
      for (auto it = dead.rbegin(); it != dead.rend(); ++it) {
        ::close(pairs_[*it].first);
        ::close(pairs_[*it].second);
        pairs_.erase(pairs_.begin() + static_cast<long>(*it));
      }
    }
  }

  int target_;
  int port_;
  int lfd_ = -1;
  std::atomic<bool> down_{false}, stalled_{false}, quit_{false};
  std::vector<std::pair<int, int>> pairs_;
  std::thread th_;
};

// Subscribes to outpost/# (QoS 1) directly on the broker and keeps every message.
class Collector {
 public:
  struct Msg {
    std::string topic;
    std::string payload;
  };
  explicit Collector(int port) {
    mosquitto_lib_init();
    m_ = mosquitto_new(
        ("collector-" + std::to_string(::getpid()) + "-" + std::to_string(MonoMs())).c_str(), true,
        this);
    mosquitto_connect_callback_set(m_, [](mosquitto* m, void*, int rc) {
      if (rc == 0) mosquitto_subscribe(m, nullptr, "outpost/#", 1);
    });
    mosquitto_subscribe_callback_set(m_, [](mosquitto*, void* ud, int, int, const int*) {
      static_cast<Collector*>(ud)->subscribed_ = true;
    });
    mosquitto_message_callback_set(m_, [](mosquitto*, void* ud, const mosquitto_message* msg) {
      auto* self = static_cast<Collector*>(ud);
      std::lock_guard<std::mutex> lk(self->mu_);
      self->msgs_.push_back(
          {msg->topic, std::string(static_cast<const char*>(msg->payload), msg->payloadlen)});
    });
    mosquitto_connect(m_, "127.0.0.1", port, 30);
    mosquitto_loop_start(m_);
    for (int i = 0; i < 250 && !subscribed_; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ~Collector() {
    mosquitto_disconnect(m_);
    mosquitto_loop_stop(m_, true);
    mosquitto_destroy(m_);
  }
  bool subscribed() const { return subscribed_; }
  std::vector<Msg> messages() {
    std::lock_guard<std::mutex> lk(mu_);
    return msgs_;
  }
  // Records of `stream` as (seq -> data) in arrival order, plus duplicate count.
  struct StreamView {
    std::vector<uint64_t> arrival;  // seqs in arrival order (with duplicates)
    std::map<uint64_t, nlohmann::json> data;
    uint64_t duplicates = 0;
    std::vector<nlohmann::json> batches;
  };
  StreamView Stream(const std::string& device, const std::string& stream) {
    StreamView v;
    for (auto& m : messages()) {
      if (m.topic.size() < stream.size() + 1 ||
          m.topic.compare(m.topic.size() - stream.size() - 1, std::string::npos, "/" + stream) != 0)
        continue;
      if (m.topic.find("/" + device + "/") == std::string::npos) continue;
      auto j = nlohmann::json::parse(m.payload, nullptr, false);
      if (j.is_discarded()) continue;
      v.batches.push_back(j);
      for (auto& r : j["records"]) {
        uint64_t s = r["seq"];
        v.arrival.push_back(s);
        if (!v.data.emplace(s, r["data"]).second) ++v.duplicates;
      }
    }
    return v;
  }
  // Waits until `pred()` holds or `ms` pass.
  template <typename P>
  static bool WaitFor(P pred, int ms) {
    auto until = MonoMs() + ms;
    while (MonoMs() < until) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return pred();
  }

 private:
  mosquitto* m_;
  std::atomic<bool> subscribed_{false};
  std::mutex mu_;
  std::vector<Msg> msgs_;
};

}  // namespace outpost::telemetry::testing
