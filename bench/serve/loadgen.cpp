// loadgen: an open-loop HTTP/1.1 load generator for outpostd's serving benchmark
// (bench/serve/run_serve_bench.sh). Requests are scheduled at a fixed arrival rate, independent
// of the answers (no coordinated omission): request i is due at start + i / rate, and its latency
// is measured from that scheduled time, so time spent waiting for a free connection counts.
//
//   loadgen --port P [--host 127.0.0.1] --path /v2/models/iris/infer --body FILE
//           --rate R --duration S [--warmup S] [--connections N] [--drain S] [--raw FILE]
//           [--header 'Name: value']...   (e.g. Inference-Header-Content-Length for binary bodies)
//           [--spin]   (poll instead of sleeping: exact send times; needs a CPU of its own)
//
// One thread, epoll, N keep-alive connections, at most one request in flight per connection (no
// pipelining). Prints one JSON line: achieved rate, accepted (2xx) latency percentiles, refusals
// (429/503) and their latency, other statuses, errors, and how many requests had to wait for a
// connection. Requests scheduled during the warm-up are sent but not counted.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using Ns = int64_t;

Ns NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string path = "/v2/models/iris/infer";
  std::string body_file;
  double rate = 1000;
  double duration_s = 10;
  double warmup_s = 1;
  int connections = 32;
  double drain_s = 5;
  std::string raw;
  std::vector<std::string> headers;  // extra "Name: value" fields (--header, repeatable)
  bool spin = false;                  // --spin: poll epoll instead of sleeping in it
};

struct Record {
  Ns scheduled = 0;
  Ns sent = 0;
  Ns done = 0;
  int status = 0;  // 0: not answered (error or still open at the end)
};

struct Conn {
  int fd = -1;
  bool busy = false;
  bool connecting = false;
  size_t req_index = 0;
  size_t out_off = 0;
  std::string in;
};

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "loadgen: %s\n", msg.c_str());
  std::exit(2);
}

bool IEqualsPrefix(const char* p, const char* end, const char* lit) {
  for (; *lit; ++p, ++lit) {
    if (p >= end) return false;
    char c = *p;
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c | 0x20);
    if (c != *lit) return false;
  }
  return true;
}

// Parses one complete response at the front of `in`: returns its length (0: incomplete),
// sets status and whether the server will close.
size_t ParseResponse(const std::string& in, int* status, bool* close) {
  size_t head_end = in.find("\r\n\r\n");
  if (head_end == std::string::npos) return 0;
  if (in.size() < 12 || in.compare(0, 5, "HTTP/") != 0)
    Die("malformed response: " + in.substr(0, 40));
  *status = std::atoi(in.c_str() + 9);
  *close = false;
  size_t content_length = 0;
  const char* p = in.data();
  const char* end = p + head_end;
  const char* line = static_cast<const char*>(std::memchr(p, '\n', head_end)) + 1;
  while (line < end) {
    const char* eol = static_cast<const char*>(std::memchr(line, '\r', end - line));
    if (!eol) eol = end;
    if (IEqualsPrefix(line, eol, "content-length:")) {
      content_length = std::strtoull(line + 15, nullptr, 10);
    } else if (IEqualsPrefix(line, eol, "connection:")) {
      std::string v(line + 11, eol);
      for (auto& ch : v) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (v.find("close") != std::string::npos) *close = true;
    } else if (IEqualsPrefix(line, eol, "transfer-encoding:")) {
      Die("chunked responses are not supported");
    }
    line = eol + 2;
  }
  size_t total = head_end + 4 + content_length;
  return in.size() >= total ? total : 0;
}

double Pct(std::vector<double>& v, double q) {
  if (v.empty()) return -1;
  size_t i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

std::string Stats(const char* name, std::vector<double>& v) {
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "\"%s\": {\"count\": %zu, \"mean_us\": %.1f, \"p50_us\": %.1f, \"p90_us\": %.1f, "
                "\"p99_us\": %.1f, \"p999_us\": %.1f, \"max_us\": %.1f}",
                name, v.size(), v.empty() ? -1.0 : sum / static_cast<double>(v.size()), Pct(v, 0.5),
                Pct(v, 0.9), Pct(v, 0.99), Pct(v, 0.999), v.empty() ? -1.0 : v.back());
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  // Timers fire on time: the default slack of 50 µs would make every send up to that late.
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--host")
      o.host = next();
    else if (a == "--port")
      o.port = std::atoi(next().c_str());
    else if (a == "--path")
      o.path = next();
    else if (a == "--body")
      o.body_file = next();
    else if (a == "--rate")
      o.rate = std::atof(next().c_str());
    else if (a == "--duration")
      o.duration_s = std::atof(next().c_str());
    else if (a == "--warmup")
      o.warmup_s = std::atof(next().c_str());
    else if (a == "--connections")
      o.connections = std::atoi(next().c_str());
    else if (a == "--drain")
      o.drain_s = std::atof(next().c_str());
    else if (a == "--raw")
      o.raw = next();
    else if (a == "--header")
      o.headers.push_back(next());
    else if (a == "--spin")
      o.spin = true;
    else
      Die("unknown argument " + a);
  }
  if (o.port <= 0 || o.body_file.empty() || o.rate <= 0 || o.connections <= 0)
    Die("usage: loadgen --port P --body FILE --rate R [--duration S] [--warmup S] "
        "[--connections N] [--path P] [--host H] [--drain S] [--raw FILE] "
        "[--header 'Name: value']... [--spin]");
  std::ifstream bf(o.body_file, std::ios::binary);
  if (!bf) Die("cannot read " + o.body_file);
  std::stringstream ss;
  ss << bf.rdbuf();
  const std::string body = ss.str();
  std::string extra;
  for (const std::string& h : o.headers) extra += h + "\r\n";
  const std::string request = "POST " + o.path + " HTTP/1.1\r\nHost: " + o.host +
                              "\r\nContent-Type: application/json\r\n" + extra +
                              "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;

  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(o.port));
  if (inet_pton(AF_INET, o.host.c_str(), &sa.sin_addr) != 1) Die("bad IPv4 host " + o.host);

  const int ep = epoll_create1(EPOLL_CLOEXEC);
  const int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (ep < 0 || tfd < 0) Die("epoll/timerfd");
  {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = UINT64_MAX;
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
  }

  std::vector<Conn> conns(static_cast<size_t>(o.connections));
  std::deque<size_t> idle;
  size_t errors = 0, reconnects = 0;

  auto open_conn = [&](size_t ci) {
    Conn& c = conns[ci];
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) Die(std::string("socket: ") + std::strerror(errno));
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = ::connect(c.fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    if (rc < 0 && errno != EINPROGRESS) Die(std::string("connect: ") + std::strerror(errno));
    c.connecting = rc < 0;
    c.busy = false;
    c.in.clear();
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;  // edge: no spinning on writable
    ev.data.u64 = ci;
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
    if (!c.connecting) idle.push_back(ci);
  };
  for (size_t i = 0; i < conns.size(); ++i) open_conn(i);

  const size_t warm_n = static_cast<size_t>(o.warmup_s * o.rate);
  const size_t total = warm_n + static_cast<size_t>(o.duration_s * o.rate);
  std::vector<Record> recs(total);
  const double interval_ns = 1e9 / o.rate;
  const Ns start = NowNs() + 20'000'000;  // connections settle first
  for (size_t i = 0; i < total; ++i)
    recs[i].scheduled = start + static_cast<Ns>(static_cast<double>(i) * interval_ns);

  size_t next_due = 0;  // first request not yet released to the backlog
  std::deque<size_t> backlog;
  size_t max_backlog = 0, waited = 0;
  size_t answered = 0;

  auto try_write = [&](size_t ci) -> bool {
    Conn& c = conns[ci];
    while (c.out_off < request.size()) {
      ssize_t w =
          ::send(c.fd, request.data() + c.out_off, request.size() - c.out_off, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return true;
        return false;
      }
      c.out_off += static_cast<size_t>(w);
    }
    return true;
  };
  auto close_conn = [&](size_t ci, bool failed) {
    Conn& c = conns[ci];
    if (c.busy && failed) ++errors;  // the in-flight request is lost (status stays 0)
    if (c.busy) ++answered;          // accounted for
    epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
    ::close(c.fd);
    c.fd = -1;
    c.busy = false;
    idle.erase(std::remove(idle.begin(), idle.end(), ci), idle.end());
    ++reconnects;
    open_conn(ci);
  };
  auto dispatch = [&]() {
    while (!backlog.empty() && !idle.empty()) {
      size_t ci = idle.front();
      idle.pop_front();
      size_t ri = backlog.front();
      backlog.pop_front();
      Conn& c = conns[ci];
      c.busy = true;
      c.req_index = ri;
      c.out_off = 0;
      recs[ri].sent = NowNs();
      if (!try_write(ci)) close_conn(ci, true);
    }
  };

  const Ns send_end_guard = start + static_cast<Ns>((o.duration_s + o.warmup_s) * 1e9);
  const Ns hard_end = send_end_guard + static_cast<Ns>(o.drain_s * 1e9);
  char buf[65536];
  epoll_event evs[256];
  while (answered < total) {
    Ns now = NowNs();
    if (now > hard_end) break;
    while (next_due < total && recs[next_due].scheduled <= now) {
      backlog.push_back(next_due++);
    }
    max_backlog = std::max(max_backlog, backlog.size());
    // Requests that cannot go at once wait for a connection: their latency includes the wait.
    dispatch();
    // Arm the timer for the next scheduled request.
    if (!o.spin && next_due < total) {
      Ns due = recs[next_due].scheduled;
      itimerspec its{};
      its.it_value.tv_sec = due / 1'000'000'000;
      its.it_value.tv_nsec = due % 1'000'000'000;
      // CLOCK_MONOTONIC and steady_clock share an epoch on Linux (glibc).
      timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, nullptr);
    }
    // --spin polls instead of sleeping: no timer or wake-up latency (50-100 µs on a VM) in the
    // send times, for a generator that has a CPU of its own.
    int timeout_ms = o.spin ? 0 : next_due < total ? -1 : 100;
    int n = epoll_wait(ep, evs, 256, timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      Die(std::string("epoll_wait: ") + std::strerror(errno));
    }
    for (int k = 0; k < n; ++k) {
      if (evs[k].data.u64 == UINT64_MAX) {
        uint64_t v;
        while (::read(tfd, &v, sizeof v) > 0) {
        }
        continue;
      }
      size_t ci = evs[k].data.u64;
      Conn& c = conns[ci];
      if (c.fd < 0) continue;
      if (c.connecting && (evs[k].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) Die(std::string("connect: ") + std::strerror(err));
        c.connecting = false;
        idle.push_back(ci);
      }
      if (c.busy && (evs[k].events & EPOLLOUT) && c.out_off < request.size()) {
        if (!try_write(ci)) {
          close_conn(ci, true);
          continue;
        }
      }
      if (evs[k].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        bool peer_closed = false;
        for (;;) {
          ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
          if (r > 0) {
            c.in.append(buf, static_cast<size_t>(r));
            continue;
          }
          if (r == 0)
            peer_closed = true;
          else if (errno == EINTR)
            continue;
          else if (errno != EAGAIN)
            peer_closed = true;
          break;
        }
        bool server_close = false;
        while (c.busy) {
          int status = 0;
          bool close = false;
          size_t len = ParseResponse(c.in, &status, &close);
          if (len == 0) break;
          c.in.erase(0, len);
          Record& r = recs[c.req_index];
          r.done = NowNs();
          r.status = status;
          ++answered;
          c.busy = false;
          if (close) {
            server_close = true;
          } else {
            idle.push_back(ci);
          }
        }
        if (peer_closed || server_close) {
          close_conn(ci, peer_closed && c.busy);
          continue;
        }
      }
    }
  }

  // Statistics over the measured (post-warm-up) requests.
  std::vector<double> ok_us, ok_service_us, refused_us, refused_service_us, other_us;
  std::map<int, size_t> by_status;
  size_t unanswered = 0;
  Ns last_done = 0;
  for (size_t i = warm_n; i < total; ++i) {
    const Record& r = recs[i];
    if (r.status == 0) {
      ++unanswered;
      continue;
    }
    ++by_status[r.status];
    last_done = std::max(last_done, r.done);
    double lat = static_cast<double>(r.done - r.scheduled) / 1e3;
    if (r.status >= 200 && r.status < 300) {
      ok_us.push_back(lat);
      ok_service_us.push_back(static_cast<double>(r.done - r.sent) / 1e3);
    } else if (r.status == 429 || r.status == 503) {
      refused_us.push_back(lat);
      refused_service_us.push_back(static_cast<double>(r.done - r.sent) / 1e3);
    } else {
      other_us.push_back(lat);
    }
    if (r.sent > r.scheduled + 1'000'000) ++waited;  // sent over 1 ms late (no free connection)
  }
  const Ns measured_start = warm_n < total ? recs[warm_n].scheduled : start;
  const double span_s =
      static_cast<double>(std::max(last_done, measured_start + 1) - measured_start) / 1e9;
  const size_t measured = total - warm_n;
  std::string statuses;
  for (auto& [s, n] : by_status)
    statuses +=
        (statuses.empty() ? "" : ", ") + ("\"" + std::to_string(s) + "\": " + std::to_string(n));
  std::printf(
      "{\"target_rate\": %.1f, \"connections\": %d, \"duration_s\": %.2f, \"sent\": %zu, "
      "\"answered_rate\": %.1f, \"accepted_rate\": %.1f, \"refused\": %zu, \"refused_frac\": %.4f, "
      "\"statuses\": {%s}, \"unanswered\": %zu, \"errors\": %zu, \"reconnects\": %zu, "
      "\"sent_late_over_1ms\": %zu, \"max_backlog\": %zu, %s, %s, %s, %s, %s}\n",
      o.rate, o.connections, o.duration_s, measured,
      static_cast<double>(measured - unanswered) / span_s,
      static_cast<double>(ok_us.size()) / span_s, refused_us.size(),
      measured ? static_cast<double>(refused_us.size()) / static_cast<double>(measured) : 0.0,
      statuses.c_str(), unanswered, errors, reconnects, waited, max_backlog,
      Stats("accepted", ok_us).c_str(), Stats("accepted_service", ok_service_us).c_str(),
      Stats("refused", refused_us).c_str(), Stats("refused_service", refused_service_us).c_str(),
      Stats("other", other_us).c_str());
  if (!o.raw.empty()) {
    FILE* f = std::fopen(o.raw.c_str(), "w");
    if (f) {
      std::fprintf(f, "scheduled_ns,sent_ns,done_ns,status\n");
      for (size_t i = warm_n; i < total; ++i)
        std::fprintf(f, "%lld,%lld,%lld,%d\n", static_cast<long long>(recs[i].scheduled - start),
                     static_cast<long long>(recs[i].sent - start),
                     static_cast<long long>(recs[i].done ? recs[i].done - start : -1),
                     recs[i].status);
      std::fclose(f);
    }
  }
  return 0;
}
