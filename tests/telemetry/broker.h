// Test fixtures for the MQTT tests: a private mosquitto on 127.0.0.1 (ephemeral ports, config in a
// temp dir; optionally TLS, a password file, persistence), a TCP proxy in front of it that can cut
// the uplink or stall the broker's replies, and a collecting subscriber.
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

#include "free_port.h"
#include "outpost/telemetry/publisher.h"
#include "test_util.h"

namespace outpost::telemetry::testing {

inline int FreePort() { return outpost::testing::FreeLoopbackPort(); }

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

// Publisher options for the tests: fast reconnects, a small window and small batches.
inline MqttOptions Mqtt(int port, const std::string& device, int protocol = 5) {
  MqttOptions o;
  o.host = "127.0.0.1";
  o.port = port;
  o.device_id = device;
  o.fleet = "test";
  o.protocol_version = protocol;
  o.max_inflight = 8;
  o.batch_max_records = 50;
  o.backoff_initial_ms = 50;
  o.backoff_max_ms = 400;
  o.keepalive_s = 5;
  return o;
}

inline bool AllAcked(DiskQueue& q) {
  for (int s = 0; s < kNumStreams; ++s) {
    auto st = q.Stats(static_cast<Stream>(s));
    if (st.acked_seq + 1 < st.next_seq) return false;
  }
  return true;
}

inline int64_t MonoMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// What the private broker runs with (the defaults: plain TCP, anonymous, no persistence).
struct BrokerOptions {
  // Settings of the main listener on port(): TLS files, require_certificate, ...
  std::vector<std::string> listener_lines;
  bool allow_anonymous = true;  // on the main listener
  std::string password_file;    // on the main listener (made with mosquitto_passwd)
  bool persistence = false;     // saved in the broker's dir on SIGTERM, read back on start
  // A second listener on plain_port(): plain TCP, anonymous (for the test's own subscribers
  // when the main one needs TLS and credentials).
  bool plain_listener = false;
};

class Broker {
 public:
  Broker() = default;
  explicit Broker(BrokerOptions o) : opts_(std::move(o)) {}
  ~Broker() { Stop(); }
  // Starts mosquitto on free ports (retrying on a collision). Returns false when it cannot.
  bool Start() {
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = FreePort();
      plain_port_ = opts_.plain_listener ? FreePort() : 0;
      if (Launch()) return true;
    }
    return false;
  }
  // Stops the process (SIGTERM: it saves its persistence file) and starts a new one on the
  // same ports with the same config.
  bool Restart() {
    Stop();
    for (int attempt = 0; attempt < 50; ++attempt) {  // the port may linger for a moment
      if (Launch()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
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
  bool running() const { return pid_ > 0; }
  int port() const { return port_; }
  int plain_port() const { return plain_port_; }
  const std::string& dir() const { return dir_.path(); }
  std::string Log() const {
    std::ifstream f(dir_.path() + "/mosquitto.log");
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }

 private:
  bool Launch() {
    std::string conf = dir_.path() + "/mosquitto.conf";
    // mosquitto started as root drops to the mosquitto user: let it write its log here.
    std::filesystem::permissions(dir_.path(), std::filesystem::perms::all);
    {
      std::ofstream f(conf);
      f << "per_listener_settings true\n";
      if (opts_.persistence) {
        f << "persistence true\n"
          << "persistence_location " << dir_.path() << "/\n"
          << "autosave_interval 0\n";  // saved on exit only
      } else {
        f << "persistence false\n";
      }
      f << "max_inflight_messages 0\n"
        << "max_queued_messages 100000\n"
        << "log_dest file " << dir_.path() << "/mosquitto.log\n"
        << "listener " << port_ << " 127.0.0.1\n"
        << "allow_anonymous " << (opts_.allow_anonymous ? "true" : "false") << "\n";
      if (!opts_.password_file.empty()) f << "password_file " << opts_.password_file << "\n";
      for (const auto& l : opts_.listener_lines) f << l << "\n";
      if (opts_.plain_listener)
        f << "listener " << plain_port_ << " 127.0.0.1\n"
          << "allow_anonymous true\n";
    }
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execl(OUTPOST_MOSQUITTO_BIN, "mosquitto", "-c", conf.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int i = 0; i < 100; ++i) {
      if (CanConnect(port_) && (!opts_.plain_listener || CanConnect(plain_port_))) return true;
      int st;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return false;  // exited: port taken?
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    Stop();
    return false;
  }

  BrokerOptions opts_;
  TempDir dir_;
  pid_t pid_ = -1;
  int port_ = 0;
  int plain_port_ = 0;
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
      // Only the pairs that were polled: one accepted just now has no entry in `fds` yet.
      const size_t polled = (fds.size() - 1) / 2;
      for (size_t i = 0; i < polled; ++i) {
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
  // persistent_id: a fixed client id with a persistent session (clean session off, MQTT 3.1.1):
  // what is published while the collector is disconnected (a broker restart) is kept for it.
  explicit Collector(int port, const std::string& persistent_id = "") {
    mosquitto_lib_init();
    m_ = mosquitto_new(
        persistent_id.empty()
            ? ("collector-" + std::to_string(::getpid()) + "-" + std::to_string(MonoMs())).c_str()
            : persistent_id.c_str(),
        persistent_id.empty(), this);
    mosquitto_reconnect_delay_set(m_, 1, 1, false);  // retry every second after a restart
    mosquitto_connect_callback_set(m_, [](mosquitto* m, void* ud, int rc) {
      if (rc != 0) return;
      ++static_cast<Collector*>(ud)->connects_;
      mosquitto_subscribe(m, nullptr, "outpost/#", 1);
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
  int connects() const { return connects_; }
  std::vector<Msg> messages() {
    std::lock_guard<std::mutex> lk(mu_);
    return msgs_;
  }
  // Records of `stream` as (seq -> data) in arrival order, plus duplicate count.
  struct StreamView {
    std::vector<uint64_t> arrival;  // seqs in arrival order (with duplicates)
    std::map<uint64_t, nlohmann::json> data;
    uint64_t duplicates = 0;
    uint64_t conflicting_duplicates = 0;  // a repeated seq whose data differs from the first
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
        auto [it, fresh] = v.data.emplace(s, r["data"]);
        if (!fresh) {
          ++v.duplicates;
          if (it->second != r["data"]) ++v.conflicting_duplicates;
        }
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
  std::atomic<int> connects_{0};
  std::mutex mu_;
  std::vector<Msg> msgs_;
};

// Every seq 1..n arrived; in order (a repeat of a seq already seen is skipped: it can only be a
// duplicate, detectable by its seq); repeats carry the same data; batches are well formed.
inline void ExpectCompleteInOrder(const Collector::StreamView& v, uint64_t n,
                                  const std::string& device, const std::string& stream) {
  EXPECT_EQ(v.data.size(), n) << stream;
  if (!v.data.empty()) {
    EXPECT_EQ(v.data.begin()->first, 1u) << stream;
    EXPECT_EQ(v.data.rbegin()->first, n) << stream;
  }
  uint64_t expect = 1;
  uint64_t out_of_order = 0;
  std::set<uint64_t> seen;
  for (uint64_t s : v.arrival) {
    if (!seen.insert(s).second) continue;
    out_of_order += s != expect;
    expect = s + 1;
  }
  EXPECT_EQ(out_of_order, 0u) << stream << ": records that arrived out of sequence order";
  EXPECT_EQ(v.conflicting_duplicates, 0u) << stream;
  for (auto& b : v.batches) {
    EXPECT_EQ(b["key"],
              device + "/" + stream + "/" + std::to_string(b["first_seq"].get<uint64_t>()));
    EXPECT_EQ(b["records"].front()["seq"], b["first_seq"]);
    EXPECT_EQ(b["records"].back()["seq"], b["last_seq"]);
  }
}

}  // namespace outpost::telemetry::testing
