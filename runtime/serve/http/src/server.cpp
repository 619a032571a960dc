// The epoll server: one event loop per I/O thread, edge-triggered non-blocking sockets, an eventfd
// per loop for responses sent from other threads. See README.md for the threading model.
#include "outpost/serve/http/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "outpost/core/log.h"
#include "outpost/core/metrics.h"
#include "outpost/core/thread_name.h"
#include "outpost/core/thread_priority.h"
#include "request_parser.h"
#include "shed.h"

namespace outpost::serve::http {

class Loop;

namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t kWakeTag = 1;
constexpr uint64_t kListenTag = 2;
constexpr size_t kReadChunk = 16384;
constexpr size_t kMaxOutPending = 1u << 20;   // stop dispatching pipelined requests above this
constexpr size_t kInlineBodyMax = 8192;       // smaller bodies are copied behind the head
constexpr size_t kMaxLingerBytes = 1u << 20;  // discarded after an error response, then close
constexpr int kLingerMs = 1000;
constexpr int kMaxRejecting = 64;  // connections being answered 503 at once; beyond: just close
constexpr int kAcceptBackoffMs = 100;

const char* const kRejectReasons[] = {"malformed",        "header_too_large",
                                      "too_many_headers", "uri_too_long",
                                      "body_too_large",   "unsupported_transfer_coding",
                                      "bad_version",      "expectation_failed",
                                      "timeout",          "too_many_connections",
                                      "write_timeout",    "other"};

struct Metrics {
  Counter& conns_opened;
  Gauge& conns_active;
  Counter& requests;
  Counter& bytes_in;
  Counter& bytes_out;
  Counter& disconnects;
  Counter& accept_errors;
  Histogram* read_delay;
  Counter& overload_episodes;
  Counter& shed_advised;
  Gauge& io_slice;
  Counter* responses[6];  // by status class 1xx..5xx (index 1..5)
  Counter* rejected[std::size(kRejectReasons)];
  std::atomic<int> active_all{0};  // every server in the process: what the gauge shows

  void ConnOpened() { conns_active.Set(active_all.fetch_add(1) + 1); }
  void ConnClosed() { conns_active.Set(active_all.fetch_sub(1) - 1); }

  static Metrics& Get() {
    static Metrics* m = new Metrics();
    return *m;
  }
  Counter& Rejected(std::string_view reason) {
    for (size_t i = 0; i < std::size(kRejectReasons); ++i) {
      if (reason == kRejectReasons[i]) return *rejected[i];
    }
    return *rejected[std::size(kRejectReasons) - 1];
  }

 private:
  Metrics()
      : conns_opened(MetricsRegistry::Global().GetCounter("outpost_http_connections_opened_total",
                                                          "HTTP connections accepted")),
        conns_active(MetricsRegistry::Global().GetGauge("outpost_http_connections_active",
                                                        "HTTP connections open now")),
        requests(MetricsRegistry::Global().GetCounter("outpost_http_requests_total",
                                                      "HTTP requests parsed and dispatched")),
        bytes_in(MetricsRegistry::Global().GetCounter("outpost_http_bytes_received_total",
                                                      "Bytes read from HTTP clients")),
        bytes_out(MetricsRegistry::Global().GetCounter("outpost_http_bytes_sent_total",
                                                       "Bytes written to HTTP clients")),
        disconnects(MetricsRegistry::Global().GetCounter(
            "outpost_http_client_disconnects_total",
            "Clients that went away while their request was in flight")),
        accept_errors(MetricsRegistry::Global().GetCounter(
            "outpost_http_accept_errors_total", "accept() failures (e.g. out of descriptors)")),
        overload_episodes(MetricsRegistry::Global().GetCounter(
            "outpost_http_overload_episodes_total",
            "Times an I/O thread found a standing queue in its sockets (requests waiting longer "
            "than the shed target for a whole interval)")),
        shed_advised(MetricsRegistry::Global().GetCounter(
            "outpost_http_shed_advised_total",
            "Requests dispatched with the advice to refuse them (overloaded loop, read delay over "
            "the target)")),
        io_slice(MetricsRegistry::Global().GetGauge(
            "outpost_http_io_thread_slice_seconds",
            "The scheduler time slice of the I/O threads as the kernel reports it (0: the kernel "
            "reports none); ServerOptions::io_slice_us asks for a short one")) {
    auto& reg = MetricsRegistry::Global();
    read_delay = &reg.GetHistogram(
        "outpost_http_read_delay_seconds",
        "Time from the kernel receiving a request to its dispatch by the I/O thread",
        {50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3, 1.0});
    static const char* kClasses[] = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};
    responses[0] = nullptr;
    for (int i = 1; i <= 5; ++i) {
      responses[i] = &reg.GetCounter("outpost_http_responses_total", "HTTP responses by class",
                                     {{"code", kClasses[i]}});
    }
    for (size_t i = 0; i < std::size(kRejectReasons); ++i) {
      rejected[i] = &reg.GetCounter("outpost_http_rejected_total",
                                    "HTTP requests or connections refused, by reason",
                                    {{"reason", kRejectReasons[i]}});
    }
  }
};

unsigned char Lower(unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<unsigned char>(c | 0x20) : c;
}

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

bool HasCloseToken(std::string_view v) {
  while (!v.empty()) {
    size_t comma = v.find(',');
    std::string_view e = v.substr(0, comma);
    while (!e.empty() && (e.front() == ' ' || e.front() == '\t')) e.remove_prefix(1);
    while (!e.empty() && (e.back() == ' ' || e.back() == '\t')) e.remove_suffix(1);
    if (IEquals(e, "close")) return true;
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
  return false;
}

bool ValidFieldName(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (c <= 0x20 || c >= 0x7f || c == ':' || c == '(' || c == ')' || c == ',' || c == '/' ||
        c == ';' || c == '<' || c == '=' || c == '>' || c == '?' || c == '@' || c == '[' ||
        c == '\\' || c == ']' || c == '{' || c == '}' || c == '"') {
      return false;
    }
  }
  return true;
}

bool ValidFieldValue(std::string_view s) {
  for (unsigned char c : s) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

std::string ErrorBody(std::string_view message) {
  std::string out = "{\"error\":\"";
  for (unsigned char c : message) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20) {
      static const char kHex[] = "0123456789abcdef";
      out += "\\u00";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out += "\"}";
  return out;
}

void AppendNumber(std::string* out, uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, r.ptr);
}

// Status line + fields + blank line. `body_len` is announced in Content-Length.
void SerializeHead(const Response& r, int status, size_t body_len, bool close, bool keep_alive_10,
                   std::string* out) {
  out->reserve(96 + r.content_type.size() + r.headers.size() * 48);
  out->append("HTTP/1.1 ");
  AppendNumber(out, static_cast<uint64_t>(status));
  out->push_back(' ');
  out->append(ReasonPhrase(status));
  out->append("\r\n");
  bool no_body = status == 204 || status == 304;
  if (!r.content_type.empty() && !no_body && ValidFieldValue(r.content_type)) {
    out->append("Content-Type: ");
    out->append(r.content_type);
    out->append("\r\n");
  }
  if (!no_body) {
    out->append("Content-Length: ");
    AppendNumber(out, body_len);
    out->append("\r\n");
  }
  if (close) {
    out->append("Connection: close\r\n");
  } else if (keep_alive_10) {
    out->append("Connection: keep-alive\r\n");
  }
  for (const auto& [k, v] : r.headers) {
    if (IEquals(k, "content-length") || IEquals(k, "connection") ||
        IEquals(k, "transfer-encoding") ||
        (IEquals(k, "content-type") && !r.content_type.empty())) {
      continue;
    }
    if (!ValidFieldName(k) || !ValidFieldValue(v)) {
      OP_LOG_DEBUG("http: dropping invalid response header field '{}'", k);
      continue;
    }
    out->append(k);
    out->append(": ");
    out->append(v);
    out->append("\r\n");
  }
  out->append("\r\n");
}

std::string FormatPeer(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  bool v6 = false;
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
    port = ntohs(a->sin6_port);
    v6 = true;
  } else {
    return "unknown";
  }
  // Appends, not operator+: GCC 12 at -O3 reports a false -Wrestrict on "[" + std::string.
  std::string out;
  out.reserve(INET6_ADDRSTRLEN + 8);
  if (v6) out.push_back('[');
  out.append(host);
  if (v6) out.push_back(']');
  out.push_back(':');
  AppendNumber(&out, port);
  return out;
}

// Read buffer: [begin_, end_) holds received bytes not yet consumed by the parser.
class InBuffer {
 public:
  const char* data() const { return buf_.get() + begin_; }
  size_t size() const { return end_ - begin_; }
  void Consume(size_t n) {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  void Clear() { begin_ = end_ = 0; }
  char* Reserve(size_t min_free, size_t* avail) {
    if (cap_ - end_ < min_free) {
      if (begin_ > 0) {
        std::memmove(buf_.get(), buf_.get() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
      }
      if (cap_ - end_ < min_free) {
        size_t cap = std::max(cap_ * 2, end_ + min_free);
        std::unique_ptr<char[]> nb(new char[cap]);
        if (end_ > 0) std::memcpy(nb.get(), buf_.get(), end_);
        buf_ = std::move(nb);
        cap_ = cap;
      }
    }
    *avail = cap_ - end_;
    return buf_.get() + end_;
  }
  void Commit(size_t n) { end_ += n; }

 private:
  std::unique_ptr<char[]> buf_;
  size_t begin_ = 0, end_ = 0, cap_ = 0;
};

enum class Wait { kNone, kIdle, kHeader, kBody, kLinger };

// The age of the data a recvmsg returned: now minus its kernel receive timestamp (the last
// segment's), in µs; -1 when there is none.
int64_t SocketWaitUs(const msghdr& msg) {
  for (const cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr;
       cm = CMSG_NXTHDR(const_cast<msghdr*>(&msg), const_cast<cmsghdr*>(cm))) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_TIMESTAMPNS) continue;
    timespec rx, now;
    std::memcpy(&rx, CMSG_DATA(cm), sizeof(rx));
    ::clock_gettime(CLOCK_REALTIME, &now);
    const int64_t us =
        (int64_t{now.tv_sec} - rx.tv_sec) * 1000000 + (now.tv_nsec - rx.tv_nsec) / 1000;
    // A wall-clock step (NTP) makes the figure meaningless: then it is unknown.
    return us < 0 || us > 60'000'000 ? -1 : us;
  }
  return -1;
}

}  // namespace

class ResponderImpl;

struct Posted {
  uint64_t conn_id;
  uint64_t seq;
  Response resp;
};

// The part of a loop that responders may touch from any thread; outlives the loop.
struct LoopShared {
  std::mutex mu;
  std::vector<Posted> queue;  // guarded by mu
  bool stopped = false;       // guarded by mu
  std::atomic<bool> stopped_flag{false};
  int evfd = -1;
  std::thread::id tid;   // the loop's thread (written before any responder exists)
  Loop* loop = nullptr;  // dereferenced only on that thread while not stopped

  ~LoopShared() {
    if (evfd >= 0) ::close(evfd);
  }
  void Wake() {
    uint64_t one = 1;
    ssize_t r = ::write(evfd, &one, sizeof(one));
    (void)r;  // EAGAIN means the counter is already non-zero: the loop will wake anyway
  }
  bool Post(Posted&& p) {
    bool wake;
    {
      std::lock_guard<std::mutex> lk(mu);
      if (stopped) return false;
      wake = queue.empty();
      queue.push_back(std::move(p));
    }
    if (wake) Wake();
    return true;
  }
};

struct Conn {
  explicit Conn(const ParserLimits& limits) : parser(limits) {}
  int fd = -1;
  uint64_t id = 0;
  std::string peer;
  InBuffer in;
  RequestParser parser;
  std::deque<std::string> out;
  size_t out_off = 0;    // into out.front()
  size_t out_bytes = 0;  // pending, all chunks
  bool counted = true;   // toward active connections (false: being refused with 503)
  bool closed = false;
  bool handling = false;
  uint64_t seq = 0;
  bool head_request = false;
  bool req_keep_alive = true;
  int req_minor = 1;
  std::weak_ptr<ResponderImpl> inflight;
  bool close_after_write = false;
  bool lingering = false;
  bool read_paused = false;
  bool in_pump = false;
  bool first_request = true;
  // How long the current request's first bytes waited in the socket before the loop read them
  // (kernel receive timestamp to recvmsg), µs; -1 = unknown. Reading a large body, or a client
  // trickling one, does not count: only the wait for the loop.
  int64_t req_wait_us = -1;
  size_t linger_bytes = 0;
  Clock::time_point accepted_at;
  Wait wait = Wait::kNone;
  Clock::time_point deadline;
  bool write_blocked = false;
  Clock::time_point write_deadline;
};

class ResponderImpl final : public Responder {
 public:
  ResponderImpl(std::shared_ptr<LoopShared> loop, uint64_t conn_id, uint64_t seq)
      : loop_(std::move(loop)), conn_id_(conn_id), seq_(seq) {}
  ~ResponderImpl() override {
    if (!sent_.exchange(true) && !disconnected_.load()) {
      Response r;
      r.status = 500;
      r.body = ErrorBody("the request was dropped without a response");
      Deliver(std::move(r));
    }
  }
  bool Send(Response&& r) override {
    if (sent_.exchange(true)) return false;
    if (disconnected_.load()) return false;
    return Deliver(std::move(r));
  }
  bool Disconnected() const override { return disconnected_.load(); }
  void OnDisconnect(std::function<void()> cb) override {
    std::unique_lock<std::mutex> lk(mu_);
    if (disconnected_.load()) {
      lk.unlock();
      if (cb) cb();
      return;
    }
    if (done_) return;  // answered: it can no longer disconnect "while in flight"
    cb_ = std::move(cb);
  }
  // I/O thread: the peer went away while this request was in flight.
  void MarkDisconnected() {
    std::function<void()> cb;
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (done_ || disconnected_.load()) return;
      disconnected_.store(true);
      cb = std::move(cb_);
    }
    if (cb) cb();
  }
  // I/O thread: the response was taken over by the connection.
  void MarkDone() {
    std::function<void()> drop;
    std::lock_guard<std::mutex> lk(mu_);
    done_ = true;
    drop = std::move(cb_);
  }

 private:
  bool Deliver(Response&& r);

  std::shared_ptr<LoopShared> loop_;
  uint64_t conn_id_;
  uint64_t seq_;
  std::atomic<bool> sent_{false};
  std::atomic<bool> disconnected_{false};
  std::mutex mu_;
  bool done_ = false;  // guarded by mu_
  std::function<void()> cb_;
};

struct Server::Impl {
  ServerOptions opts;
  ParserLimits limits;
  Handler handler;
  int listen_fd = -1;
  uint16_t port = 0;
  std::vector<std::unique_ptr<Loop>> loops;
  std::vector<std::thread> threads;
  std::atomic<int> active{0};
  std::atomic<int> rejecting{0};
  std::atomic<int> lingering{0};  // of active + rejecting: answered, waiting for the peer's FIN
  std::atomic<bool> draining{false};
  std::atomic<bool> stopping{false};
  std::mutex mu;
  std::condition_variable cv;
  int drain_acks = 0;  // guarded by mu
  bool stopped = false;
  Metrics& m = Metrics::Get();

  void NotifyDrain() {
    if (!draining.load()) return;
    std::lock_guard<std::mutex> lk(mu);
    cv.notify_all();
  }
};

class Loop {
 public:
  Loop(Server::Impl* srv)
      : srv_(srv),
        shared_(std::make_shared<LoopShared>()),
        shed_(srv->opts.shed_target_us, srv->opts.shed_interval_ms) {
    const auto& o = srv->opts;
    int shortest = std::min({o.header_timeout_ms, o.body_timeout_ms, o.idle_timeout_ms, kLingerMs});
    sweep_every_ = std::chrono::milliseconds(std::clamp(shortest / 8, 5, 250));
    read_limit_ = o.max_header_bytes + 65536;
  }
  ~Loop() {
    if (epfd_ >= 0) ::close(epfd_);
  }

  Status Init(int listen_fd) {
    epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) return IoError(std::string("epoll_create1: ") + std::strerror(errno));
    shared_->evfd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (shared_->evfd < 0) return IoError(std::string("eventfd: ") + std::strerror(errno));
    shared_->loop = this;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kWakeTag;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, shared_->evfd, &ev) != 0) {
      return IoError(std::string("epoll_ctl(eventfd): ") + std::strerror(errno));
    }
    listen_fd_ = listen_fd;
    if (!AddListener()) return IoError(std::string("epoll_ctl(listen): ") + std::strerror(errno));
    return Status::Ok();
  }

  void Wake() { shared_->Wake(); }
  void Run();
  bool DeliverLocal(uint64_t conn_id, uint64_t seq, Response&& r);

 private:
  bool AddListener() {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    ev.data.u64 = kListenTag;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, listen_fd_, &ev) != 0) return false;
    listening_ = true;
    return true;
  }
  void RemoveListener() {
    if (!listening_) return;
    ::epoll_ctl(epfd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
    listening_ = false;
  }

  void OnWake();
  void OnAcceptable();
  void NewConn(int fd, const sockaddr_storage& ss);
  // Reads what the socket has (up to the buffer limit). False when the connection was closed.
  bool ReadSome(Conn* c, bool hup);
  void LingerRead(Conn* c);
  // Parses and dispatches buffered requests, writes, resumes paused reads.
  void Pump(Conn* c);
  void ProcessInput(Conn* c);
  void Dispatch(Conn* c);
  void OnResponse(Conn* c, Response&& r);
  void QueueOut(Conn* c, std::string&& s) {
    if (s.empty()) return;
    c->out_bytes += s.size();
    c->out.push_back(std::move(s));
  }
  void Flush(Conn* c);
  void Reject(Conn* c, int status, const char* reason, const char* message);
  void StartLinger(Conn* c);
  void UpdateReadDeadline(Conn* c);
  void CloseConn(Conn* c);
  void Sweep();
  void StartDrain();
  void Shutdown();
  void MeasureReadDelay(Conn* c, Request* req);

  Server::Impl* srv_;
  std::shared_ptr<LoopShared> shared_;
  int epfd_ = -1;
  int listen_fd_ = -1;
  bool listening_ = false;
  bool accept_paused_ = false;
  bool drain_started_ = false;
  Clock::time_point accept_resume_;
  std::unordered_map<uint64_t, std::unique_ptr<Conn>> conns_;
  std::vector<std::unique_ptr<Conn>> graveyard_;
  std::vector<Posted> batch_;
  std::vector<Conn*> scratch_;
  std::vector<uint64_t> resume_, resuming_;  // connections with unread input and no edge to come
  int backlog_ = 0;  // ready events still to handle in this pass (Request::loop_backlog)
  ShedRule shed_;  // overload episodes and refusal advice (ServerOptions::shed_target_us)
  Clock::time_point now_;
  Clock::time_point next_sweep_;
  Clock::duration sweep_every_;
  size_t read_limit_;
  uint64_t next_id_ = 1;
};

bool ResponderImpl::Deliver(Response&& r) {
  if (loop_->stopped_flag.load()) return false;
  if (std::this_thread::get_id() == loop_->tid) {
    return loop_->loop->DeliverLocal(conn_id_, seq_, std::move(r));
  }
  return loop_->Post(Posted{conn_id_, seq_, std::move(r)});
}

void Loop::Run() {
  SetThreadName("op-http");
  shared_->tid = std::this_thread::get_id();
  if (srv_->opts.io_slice_us > 0) {
    const Status st = SetThreadSlice(srv_->opts.io_slice_us);
    static std::atomic<bool> warned{false};  // the same answer for every loop: say it once
    if (!st.ok() && !warned.exchange(true)) {
      OP_LOG_WARN(
          "http: I/O thread keeps the kernel's time slice ({}): under a CPU saturated by "
          "inference, requests may wait for the running compute thread's slice",
          st.message());
    }
  }
  srv_->m.io_slice.Set(ThreadSliceUs() / 1e6);
  constexpr int kMaxEvents = 128;
  epoll_event evs[kMaxEvents];
  now_ = Clock::now();
  next_sweep_ = now_ + sweep_every_;
  while (!srv_->stopping.load(std::memory_order_relaxed)) {
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_sweep_ - now_).count();
    int timeout = resume_.empty() ? static_cast<int>(std::clamp<int64_t>(wait + 1, 1, 1000)) : 0;
    int n = ::epoll_wait(epfd_, evs, kMaxEvents, timeout);
    now_ = Clock::now();
    if (n < 0 && errno != EINTR) {
      OP_LOG_ERROR("http: epoll_wait: {}", std::strerror(errno));
      break;
    }
    for (int i = 0; i < n; ++i) {
      backlog_ = n - i - 1 + static_cast<int>(resume_.size());
      uint64_t tag = evs[i].data.u64;
      if (tag == kWakeTag) {
        OnWake();
      } else if (tag == kListenTag) {
        if (listening_) OnAcceptable();
      } else {
        Conn* c = reinterpret_cast<Conn*>(tag);
        if (c->closed) continue;
        uint32_t e = evs[i].events;
        if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
          if (c->lingering) {
            LingerRead(c);
          } else if (ReadSome(c, (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0)) {
            Pump(c);
          }
        }
        if (!c->closed && (e & EPOLLOUT) && c->out_bytes > 0) {
          Flush(c);
          if (!c->closed && !c->handling && c->out_bytes <= kMaxOutPending) Pump(c);
        }
      }
    }
    if (!resume_.empty()) {
      resuming_.swap(resume_);
      backlog_ = static_cast<int>(resuming_.size());
      for (uint64_t id : resuming_) {
        --backlog_;
        auto it = conns_.find(id);
        if (it == conns_.end()) continue;
        Conn* c = it->second.get();
        if (c->closed || c->lingering || !c->read_paused) continue;
        if (ReadSome(c, false)) Pump(c);
      }
      resuming_.clear();
    }
    if (now_ >= next_sweep_) {
      Sweep();
      next_sweep_ = now_ + sweep_every_;
    }
    if (accept_paused_ && now_ >= accept_resume_ && !srv_->draining.load()) {
      accept_paused_ = false;
      AddListener();
    }
    graveyard_.clear();
  }
  Shutdown();
}

void Loop::Shutdown() {
  {
    std::lock_guard<std::mutex> lk(shared_->mu);
    shared_->stopped = true;
    shared_->stopped_flag.store(true);
    shared_->queue.clear();
  }
  RemoveListener();
  scratch_.clear();
  for (auto& [id, c] : conns_) scratch_.push_back(c.get());
  for (Conn* c : scratch_) CloseConn(c);
  graveyard_.clear();
}

void Loop::OnWake() {
  uint64_t v;
  while (::read(shared_->evfd, &v, sizeof(v)) > 0) {
  }
  {
    std::lock_guard<std::mutex> lk(shared_->mu);
    batch_.swap(shared_->queue);
  }
  for (auto& p : batch_) DeliverLocal(p.conn_id, p.seq, std::move(p.resp));
  batch_.clear();
  if (srv_->draining.load() && !drain_started_) StartDrain();
}

void Loop::StartDrain() {
  drain_started_ = true;
  RemoveListener();
  accept_paused_ = false;
  scratch_.clear();
  for (auto& [id, c] : conns_) scratch_.push_back(c.get());
  for (Conn* c : scratch_) {
    if (c->closed || c->handling || c->lingering) continue;
    if (c->out_bytes > 0) {
      c->close_after_write = true;  // a response is still being written: close after it
    } else if (!c->parser.started() && c->in.size() == 0) {
      CloseConn(c);  // idle keep-alive
    }
    // else: a request is being received; its response will carry Connection: close.
  }
  {
    std::lock_guard<std::mutex> lk(srv_->mu);
    ++srv_->drain_acks;
  }
  srv_->cv.notify_all();
}

void Loop::OnAcceptable() {
  for (int i = 0; i < 64; ++i) {
    sockaddr_storage ss{};
    socklen_t sl = sizeof(ss);
    int fd =
        ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
      srv_->m.accept_errors.Inc();
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors or memory: stop polling the (level-triggered) listener for a moment
        // instead of spinning on it.
        OP_LOG_DEBUG("http: accept: {}; pausing accepts", std::strerror(errno));
        RemoveListener();
        accept_paused_ = true;
        accept_resume_ = now_ + std::chrono::milliseconds(kAcceptBackoffMs);
      } else {
        OP_LOG_DEBUG("http: accept: {}", std::strerror(errno));
      }
      return;
    }
    NewConn(fd, ss);
  }
}

void Loop::NewConn(int fd, const sockaddr_storage& ss) {
  const auto& o = srv_->opts;
  bool over = false;
  int cur = srv_->active.load();
  for (;;) {
    if (cur >= o.max_connections) {
      over = true;
      break;
    }
    if (srv_->active.compare_exchange_weak(cur, cur + 1)) break;
  }
  if (over) {
    srv_->m.Rejected("too_many_connections").Inc();
    if (srv_->rejecting.fetch_add(1) >= kMaxRejecting) {
      srv_->rejecting.fetch_sub(1);
      ::close(fd);
      return;
    }
  } else {
    srv_->m.conns_opened.Inc();
    srv_->m.ConnOpened();
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  // Receive timestamps (recvmsg cmsg) for the read delay; without them shedding stays off.
  if (o.shed_target_us > 0) ::setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
  auto conn = std::make_unique<Conn>(srv_->limits);
  Conn* c = conn.get();
  c->fd = fd;
  c->id = next_id_++;
  c->peer = FormatPeer(ss);
  c->counted = !over;
  c->accepted_at = now_;
  c->wait = Wait::kIdle;
  c->deadline = now_ + std::chrono::milliseconds(std::min(o.header_timeout_ms, o.idle_timeout_ms));
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = reinterpret_cast<uint64_t>(c);
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    OP_LOG_DEBUG("http: epoll_ctl(conn): {}", std::strerror(errno));
    ::close(fd);
    if (over) {
      srv_->rejecting.fetch_sub(1);
    } else {
      srv_->active.fetch_sub(1);
      srv_->m.ConnClosed();
    }
    return;
  }
  conns_.emplace(c->id, std::move(conn));
  if (over) {
    OP_LOG_DEBUG("http: 503 to {}: too many connections", c->peer);
    Response r;
    r.status = 503;
    r.headers.emplace_back("Retry-After", "1");
    r.body = ErrorBody("too many connections");
    std::string head;
    SerializeHead(r, r.status, r.body.size(), /*close=*/true, false, &head);
    head += r.body;
    QueueOut(c, std::move(head));
    srv_->m.responses[5]->Inc();
    c->close_after_write = true;
    c->wait = Wait::kNone;
    Flush(c);
  }
}

bool Loop::ReadSome(Conn* c, bool hup) {
  for (;;) {
    if (c->in.size() >= read_limit_) {
      c->read_paused = true;
      return true;
    }
    c->read_paused = false;
    size_t avail = 0;
    char* p = c->in.Reserve(kReadChunk, &avail);
    iovec iov{p, avail};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    const bool starts_request = c->in.size() == 0 && !c->parser.started();
    ssize_t n = ::recvmsg(c->fd, &msg, 0);
    if (n > 0) {
      // Only a read that drained the socket dates its data well (the timestamp is its last
      // segment's, which TCP may have coalesced with older ones): a request larger than one
      // read stays unmeasured, and is never shed.
      if (starts_request) c->req_wait_us = static_cast<size_t>(n) < avail ? SocketWaitUs(msg) : -1;
      c->in.Commit(static_cast<size_t>(n));
      srv_->m.bytes_in.Inc(static_cast<uint64_t>(n));
      // A short read drained the socket; a later arrival raises a new edge.
      if (static_cast<size_t>(n) < avail && !hup) return true;
      continue;
    }
    if (n == 0) {
      // The peer closed (or half-closed) its side: treated as gone. A request in flight sees
      // OnDisconnect; nothing more can be answered reliably.
      CloseConn(c);
      return false;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
    CloseConn(c);
    return false;
  }
}

void Loop::LingerRead(Conn* c) {
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(c->fd, buf, sizeof(buf), 0);
    if (n > 0) {
      srv_->m.bytes_in.Inc(static_cast<uint64_t>(n));
      c->linger_bytes += static_cast<size_t>(n);
      if (c->linger_bytes > kMaxLingerBytes) {
        CloseConn(c);
        return;
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    CloseConn(c);  // EOF or error
    return;
  }
}

void Loop::Pump(Conn* c) {
  if (c->in_pump || c->closed) return;
  c->in_pump = true;
  for (int rounds = 0;; ++rounds) {
    ProcessInput(c);
    if (c->closed) break;
    Flush(c);
    if (c->closed || c->lingering) break;
    UpdateReadDeadline(c);
    // Reading stopped at the buffer limit and the parser has made room: read the rest (the edge
    // that announced it is gone, so nobody else will). A client that keeps the pipe full gets a
    // few rounds, then waits its turn behind the other connections of this loop.
    if (c->read_paused && c->in.size() < read_limit_ && !c->handling) {
      if (rounds >= 8) {
        resume_.push_back(c->id);
        break;
      }
      if (!ReadSome(c, false)) break;
      continue;
    }
    break;
  }
  c->in_pump = false;
}

void Loop::ProcessInput(Conn* c) {
  while (!c->closed && !c->handling && !c->close_after_write && !c->lingering) {
    if (c->out_bytes > kMaxOutPending) break;  // the client is not reading: wait for EPOLLOUT
    size_t consumed = 0;
    auto ev = c->parser.Parse(c->in.data(), c->in.size(), &consumed);
    c->in.Consume(consumed);
    switch (ev) {
      case RequestParser::Event::kNeedMore:
        return;
      case RequestParser::Event::kHeadersComplete:
        // RFC 9110 10.1.1: send 100 Continue unless some of the body is already here.
        if (c->parser.expect_continue() && c->parser.has_body() && c->in.size() == 0) {
          QueueOut(c, std::string("HTTP/1.1 100 Continue\r\n\r\n"));
          srv_->m.responses[1]->Inc();
        }
        UpdateReadDeadline(c);
        continue;
      case RequestParser::Event::kMessageComplete:
        Dispatch(c);
        continue;
      case RequestParser::Event::kError: {
        const ParseError& e = c->parser.error();
        Reject(c, e.status, e.reason, e.message);
        return;
      }
    }
  }
}

void Loop::UpdateReadDeadline(Conn* c) {
  if (c->lingering) return;
  const auto& o = srv_->opts;
  if (c->handling || c->close_after_write) {
    c->wait = Wait::kNone;
  } else if (c->parser.headers_complete()) {
    if (c->wait != Wait::kBody) {
      c->wait = Wait::kBody;
      c->deadline = now_ + std::chrono::milliseconds(o.body_timeout_ms);
    }
  } else if (c->parser.started()) {
    if (c->wait != Wait::kHeader) {
      c->wait = Wait::kHeader;
      // The first request's clock starts at accept: connecting and then trickling is slowloris.
      c->deadline = (c->first_request ? c->accepted_at : now_) +
                    std::chrono::milliseconds(o.header_timeout_ms);
    }
  } else if (c->wait != Wait::kIdle) {
    c->wait = Wait::kIdle;
    c->deadline = now_ + std::chrono::milliseconds(o.idle_timeout_ms);
  }
}

void Loop::MeasureReadDelay(Conn* c, Request* req) {
  const auto& o = srv_->opts;
  if (o.shed_target_us <= 0 || c->req_wait_us < 0) return;
  // Requests pipelined behind this one came in the same read: they share its figure.
  const int64_t delay_us = c->req_wait_us;
  req->read_delay_us = delay_us;
  srv_->m.read_delay->Observe(static_cast<double>(delay_us) * 1e-6);
  ShedRule::Change change;
  int64_t window_min_us = 0;
  req->shed = shed_.Observe(now_, delay_us, req->loop_backlog, &change, &window_min_us);
  if (change == ShedRule::Change::kEntered) {
    srv_->m.overload_episodes.Inc();
    OP_LOG_WARN("http: overloaded: requests waited at least {} us to be read for {} ms; "
                "refusing those that wait longer than {} us",
                window_min_us, o.shed_interval_ms, o.shed_target_us);
  } else if (change == ShedRule::Change::kLeft) {
    OP_LOG_INFO("http: no longer overloaded");
  }
  if (req->shed) srv_->m.shed_advised.Inc();
}

void Loop::Dispatch(Conn* c) {
  Request req = c->parser.TakeRequest();
  req.peer = c->peer;
  req.loop_backlog = backlog_ + (c->in.size() > 0 ? 1 : 0);
  MeasureReadDelay(c, &req);
  c->handling = true;
  c->first_request = false;
  c->wait = Wait::kNone;
  ++c->seq;
  c->head_request = req.method == "HEAD";
  c->req_keep_alive = req.keep_alive;
  c->req_minor = req.version_minor;
  srv_->m.requests.Inc();
  auto resp = std::make_shared<ResponderImpl>(shared_, c->id, c->seq);
  c->inflight = resp;
  try {
    srv_->handler(std::move(req), std::move(resp));
  } catch (const std::exception& e) {
    // The handler's copy of the responder is gone by now; if it did not answer, its destructor
    // queued a 500.
    OP_LOG_DEBUG("http: handler threw: {}", e.what());
  } catch (...) {
    OP_LOG_DEBUG("http: handler threw");
  }
}

bool Loop::DeliverLocal(uint64_t conn_id, uint64_t seq, Response&& r) {
  auto it = conns_.find(conn_id);
  if (it == conns_.end()) return false;
  Conn* c = it->second.get();
  if (c->closed || !c->handling || c->seq != seq) return false;
  OnResponse(c, std::move(r));
  return true;
}

void Loop::OnResponse(Conn* c, Response&& r) {
  c->handling = false;
  if (auto resp = c->inflight.lock()) resp->MarkDone();
  c->inflight.reset();
  int status = r.status;
  if (status < 200 || status > 999) {
    OP_LOG_DEBUG("http: handler answered with status {}; sending 500", status);
    status = 500;
  }
  bool close = !c->req_keep_alive || srv_->draining.load() || c->close_after_write;
  for (const auto& [k, v] : r.headers) {
    if (IEquals(k, "connection") && HasCloseToken(v)) close = true;
  }
  bool send_body = !c->head_request && status != 204 && status != 304;
  std::string head;
  SerializeHead(r, status, r.body.size(), close, c->req_minor == 0 && !close, &head);
  if (send_body && r.body.size() <= kInlineBodyMax) {
    head.append(r.body);
    QueueOut(c, std::move(head));
  } else {
    QueueOut(c, std::move(head));
    if (send_body) QueueOut(c, std::move(r.body));
  }
  srv_->m.responses[status / 100 <= 5 ? status / 100 : 5]->Inc();
  if (close) c->close_after_write = true;
  if (!c->in_pump) Pump(c);
}

void Loop::Flush(Conn* c) {
  while (c->out_bytes > 0) {
    iovec iov[16];
    int n = 0;
    size_t off = c->out_off;
    for (auto it = c->out.begin(); it != c->out.end() && n < 16; ++it, off = 0) {
      iov[n].iov_base = const_cast<char*>(it->data() + off);
      iov[n].iov_len = it->size() - off;
      ++n;
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(n);
    ssize_t w = ::sendmsg(c->fd, &msg, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!c->write_blocked) {
          c->write_blocked = true;
          c->write_deadline = now_ + std::chrono::milliseconds(srv_->opts.idle_timeout_ms);
        }
        return;
      }
      CloseConn(c);  // EPIPE, ECONNRESET: the peer is gone
      return;
    }
    srv_->m.bytes_out.Inc(static_cast<uint64_t>(w));
    size_t left = static_cast<size_t>(w);
    c->out_bytes -= left;
    while (left > 0) {
      size_t rest = c->out.front().size() - c->out_off;
      if (left >= rest) {
        left -= rest;
        c->out.pop_front();
        c->out_off = 0;
      } else {
        c->out_off += left;
        left = 0;
      }
    }
    if (c->write_blocked) {  // progress: restart the stall clock
      c->write_deadline = now_ + std::chrono::milliseconds(srv_->opts.idle_timeout_ms);
    }
  }
  c->write_blocked = false;
  if (c->close_after_write && !c->handling && !c->lingering) StartLinger(c);
}

void Loop::Reject(Conn* c, int status, const char* reason, const char* message) {
  srv_->m.Rejected(reason).Inc();
  OP_LOG_DEBUG("http: {} to {}: {} ({})", status, c->peer, message, reason);
  Response r;
  r.status = status;
  r.body = ErrorBody(message);
  std::string head;
  SerializeHead(r, status, r.body.size(), /*close=*/true, false, &head);
  head.append(r.body);
  QueueOut(c, std::move(head));
  srv_->m.responses[status / 100]->Inc();
  c->close_after_write = true;
  c->wait = Wait::kNone;
  Flush(c);
}

// Half-close, then read and discard for a moment so that our last response is not destroyed by a
// reset (closing a socket with unread data sends RST).
void Loop::StartLinger(Conn* c) {
  if (::shutdown(c->fd, SHUT_WR) != 0) {
    CloseConn(c);
    return;
  }
  c->lingering = true;
  srv_->lingering.fetch_add(1);
  srv_->NotifyDrain();
  c->in.Clear();
  c->wait = Wait::kLinger;
  c->deadline = now_ + std::chrono::milliseconds(std::min(kLingerMs, srv_->opts.idle_timeout_ms));
  LingerRead(c);
}

void Loop::CloseConn(Conn* c) {
  if (c->closed) return;
  c->closed = true;
  ::close(c->fd);  // also removes it from the epoll set
  c->fd = -1;
  auto node = conns_.extract(c->id);
  if (!node.empty()) graveyard_.push_back(std::move(node.mapped()));
  if (c->lingering) srv_->lingering.fetch_sub(1);
  if (c->counted) {
    srv_->active.fetch_sub(1);
    srv_->m.ConnClosed();
  } else {
    srv_->rejecting.fetch_sub(1);
  }
  if (c->handling) {
    c->handling = false;
    srv_->m.disconnects.Inc();
    if (auto resp = c->inflight.lock()) resp->MarkDisconnected();
  }
  srv_->NotifyDrain();
}

void Loop::Sweep() {
  scratch_.clear();
  for (auto& [id, c] : conns_) {
    if ((c->wait != Wait::kNone && c->deadline <= now_) ||
        (c->write_blocked && c->write_deadline <= now_)) {
      scratch_.push_back(c.get());
    }
  }
  for (Conn* c : scratch_) {
    if (c->closed) continue;
    if (c->write_blocked && c->write_deadline <= now_) {
      srv_->m.Rejected("write_timeout").Inc();
      OP_LOG_DEBUG("http: closing {}: it stopped reading its responses", c->peer);
      CloseConn(c);
      continue;
    }
    switch (c->wait) {
      case Wait::kHeader:
        Reject(c, 408, "timeout", "timed out receiving the request header");
        break;
      case Wait::kBody:
        Reject(c, 408, "timeout", "timed out receiving the request body");
        break;
      case Wait::kIdle:
      case Wait::kLinger:
        CloseConn(c);
        break;
      case Wait::kNone:
        break;
    }
  }
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { Stop(); }

Expected<std::unique_ptr<Server>> Server::Start(const ServerOptions& options, Handler handler) {
  const auto& o = options;
  if (!handler) return InvalidArgument("http: no handler");
  if (o.io_threads < 1 || o.io_threads > 256)
    return InvalidArgument("http: io_threads out of range");
  if (o.io_slice_us != 0 &&
      (o.io_slice_us < kMinThreadSliceUs || o.io_slice_us > kMaxThreadSliceUs))
    return InvalidArgument(
        "http: io_slice_us must be 0 or in " + std::to_string(kMinThreadSliceUs) + ".." +
        std::to_string(kMaxThreadSliceUs) + ", got " + std::to_string(o.io_slice_us));
  if (o.max_header_bytes < 64 || o.max_headers < 1 || o.max_connections < 1 ||
      o.header_timeout_ms < 1 || o.body_timeout_ms < 1 || o.idle_timeout_ms < 1) {
    return InvalidArgument("http: limits and timeouts must be positive (max_header_bytes >= 64)");
  }
  auto impl = std::make_unique<Impl>();
  impl->opts = o;
  impl->limits = ParserLimits{o.max_header_bytes, o.max_headers, o.max_body_bytes};
  impl->handler = std::move(handler);

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
  addrinfo* res = nullptr;
  std::string port_str = std::to_string(o.port);
  int gai = ::getaddrinfo(o.address.c_str(), port_str.c_str(), &hints, &res);
  if (gai != 0 || res == nullptr) {
    return InvalidArgument("http: bad listen address '" + o.address + "': " + gai_strerror(gai));
  }
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ::freeaddrinfo(res);
    return IoError(std::string("http: socket: ") + std::strerror(errno));
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, SOMAXCONN) != 0) {
    int err = errno;
    ::freeaddrinfo(res);
    ::close(fd);
    return IoError("http: cannot listen on " + o.address + ":" + port_str + ": " +
                   std::strerror(err));
  }
  ::freeaddrinfo(res);
  sockaddr_storage ss{};
  socklen_t sl = sizeof(ss);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &sl);
  impl->port = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                              : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  impl->listen_fd = fd;

  for (int i = 0; i < o.io_threads; ++i) {
    auto loop = std::make_unique<Loop>(impl.get());
    Status st = loop->Init(fd);
    if (!st.ok()) {
      impl->loops.clear();
      ::close(fd);
      return st;
    }
    impl->loops.push_back(std::move(loop));
  }
  for (auto& loop : impl->loops) {
    Loop* l = loop.get();
    impl->threads.emplace_back([l] { l->Run(); });
  }
  OP_LOG_INFO("http: listening on {}:{} ({} I/O thread(s))", o.address, impl->port, o.io_threads);
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

uint16_t Server::port() const { return impl_->port; }
std::string Server::address() const { return impl_->opts.address; }
int Server::active_connections() const { return impl_->active.load(); }

bool Server::Drain(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    if (impl_->stopped) return true;
  }
  impl_->draining.store(true);
  for (auto& l : impl_->loops) l->Wake();
  bool finished;
  {
    std::unique_lock<std::mutex> lk(impl_->mu);
    impl_->cv.wait_until(
        lk, deadline, [&] { return impl_->drain_acks >= static_cast<int>(impl_->loops.size()); });
    if (impl_->drain_acks >= static_cast<int>(impl_->loops.size()) && impl_->listen_fd >= 0) {
      ::close(impl_->listen_fd);  // every loop has let go of it: new connections are refused
      impl_->listen_fd = -1;
    }
    // Connections that got their last response and only wait for the peer's FIN are done.
    finished = impl_->cv.wait_until(lk, deadline, [&] {
      return impl_->active.load() + impl_->rejecting.load() - impl_->lingering.load() <= 0;
    });
  }
  Stop();
  return finished;
}

void Server::Stop() {
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    if (impl_->stopped) return;
    impl_->stopped = true;
  }
  impl_->stopping.store(true);
  for (auto& l : impl_->loops) l->Wake();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
  impl_->loops.clear();
  if (impl_->listen_fd >= 0) {
    ::close(impl_->listen_fd);
    impl_->listen_fd = -1;
  }
}

const char* ReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 417:
      return "Expectation Failed";
    case 422:
      return "Unprocessable Content";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 499:
      return "Client Closed Request";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

}  // namespace outpost::serve::http
