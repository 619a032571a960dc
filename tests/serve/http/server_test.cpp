// The HTTP server over real sockets on 127.0.0.1 (ephemeral ports).
#include "outpost/serve/http/server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <random>
#include <thread>

#include "outpost/core/metrics.h"
#include "outpost/core/thread_priority.h"
#include "serve/http/test_client.h"

namespace outpost::serve::http {
namespace {

using testing::ClientResponse;
using testing::TestClient;
using namespace std::chrono_literals;

// Echo handler: body "<METHOD> <path> <body>", or per-path behaviour.
void Echo(Request&& req, std::shared_ptr<Responder> resp) {
  Response r;
  r.content_type = "text/plain";
  r.body = req.method + " " + req.path + " " + req.body;
  r.headers.emplace_back("X-Query", req.query);
  resp->Send(std::move(r));
}

std::unique_ptr<Server> StartServer(ServerOptions o, Handler h = Echo) {
  auto s = Server::Start(o, std::move(h));
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

std::string Get(std::string_view path, std::string_view extra = "") {
  return "GET " + std::string(path) + " HTTP/1.1\r\nHost: t\r\n" + std::string(extra) + "\r\n";
}

std::string Post(std::string_view path, std::string_view body, std::string_view extra = "") {
  return "POST " + std::string(path) +
         " HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         std::string(extra) + "\r\n" + std::string(body);
}

uint64_t Rejected(const char* reason) {
  return MetricsRegistry::Global()
      .GetCounter("outpost_http_rejected_total", "", {{"reason", reason}})
      .value();
}

// Expects an error response with a JSON error body, then the connection closed.
void ExpectErrorAndClose(TestClient* c, int status) {
  auto r = c->ReadResponse();
  ASSERT_TRUE(r.has_value()) << "no response, expected " << status;
  EXPECT_EQ(r->status, status);
  EXPECT_EQ(r->Header("Connection"), "close");
  EXPECT_EQ(r->Header("Content-Type"), "application/json");
  EXPECT_EQ(r->body.rfind("{\"error\":\"", 0), 0u) << r->body;
  EXPECT_TRUE(c->WaitClosed());
}

TEST(HttpServer, StartRejectsBadOptions) {
  ServerOptions o;
  o.io_threads = 0;
  EXPECT_EQ(Server::Start(o, Echo).status().code(), Code::kInvalidArgument);
  o = ServerOptions{};
  o.address = "not-an-address";
  EXPECT_EQ(Server::Start(o, Echo).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(Server::Start(ServerOptions{}, nullptr).status().code(), Code::kInvalidArgument);
  for (int slice : {-1, 99, 100001}) {
    o = ServerOptions{};
    o.io_slice_us = slice;
    EXPECT_EQ(Server::Start(o, Echo).status().code(), Code::kInvalidArgument) << slice;
  }
  // A port already taken.
  auto a = StartServer(ServerOptions{});
  ASSERT_TRUE(a);
  o = ServerOptions{};
  o.port = a->port();
  EXPECT_EQ(Server::Start(o, Echo).status().code(), Code::kIoError);
}

// ServerOptions::io_slice_us: each I/O thread asks for that scheduler slice for itself (read back
// with sched_getattr by thread id), and the gauge shows it; threads other than the loops keep
// theirs. A kernel without per-thread slices (before Linux 6.12; ThreadSliceUs() reports none)
// leaves the gauge at 0 and the server serving.
TEST(HttpServer, IoThreadsRunWithTheConfiguredSlice) {
  ServerOptions o;
  o.io_threads = 2;
  o.io_slice_us = 300;
  auto s = StartServer(o);
  ASSERT_TRUE(s);
  const bool kernel_has_slices = ThreadSliceUs() > 0;
  auto& gauge = MetricsRegistry::Global().GetGauge("outpost_http_io_thread_slice_seconds", "");
  const double want_gauge = kernel_has_slices ? 300e-6 : 0.0;
  // Each loop names itself, sets its slice, then the gauge: wait until both have, by name.
  std::vector<int> slices;
  for (int attempt = 0; attempt < 200; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(10ms);
    slices.clear();
    for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
      std::ifstream f(e.path() / "comm");
      std::string comm;
      std::getline(f, comm);
      if (comm == "op-http") slices.push_back(ThreadSliceUs(std::stoi(e.path().filename())));
    }
    const bool set =
        !kernel_has_slices || (slices.size() == 2 && slices[0] == 300 && slices[1] == 300);
    if (slices.size() == 2 && set && std::abs(gauge.value() - want_gauge) < 1e-9) break;
  }
  ASSERT_EQ(slices.size(), 2u);
  if (kernel_has_slices) {
    EXPECT_EQ(slices, (std::vector<int>{300, 300}));
    EXPECT_NE(ThreadSliceUs(), 300);  // the test's own thread keeps the default
  } else {
    EXPECT_EQ(slices, (std::vector<int>{0, 0}));
  }
  EXPECT_NEAR(gauge.value(), want_gauge, 1e-9);
  auto c = TestClient::Connect(s->port());
  ASSERT_TRUE(c);
  auto r = c->RoundTrip(Get("/a"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "GET /a ");
}

TEST(HttpServer, GetAndPost) {
  auto s = StartServer(ServerOptions{});
  ASSERT_TRUE(s);
  EXPECT_NE(s->port(), 0);
  EXPECT_EQ(s->address(), "127.0.0.1");
  auto c = TestClient::Connect(s->port());
  ASSERT_TRUE(c);
  auto r = c->RoundTrip(Get("/v2/health/live?a=b"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->version, "HTTP/1.1");
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->reason, "OK");
  EXPECT_EQ(r->body, "GET /v2/health/live ");
  EXPECT_EQ(r->Header("Content-Length"), std::to_string(r->body.size()));
  EXPECT_EQ(r->Header("Content-Type"), "text/plain");
  EXPECT_EQ(r->Header("X-Query"), "a=b");
  EXPECT_FALSE(r->HasHeader("Connection"));
  r = c->RoundTrip(Post("/v2/models/m/infer", "{\"inputs\":[]}"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "POST /v2/models/m/infer {\"inputs\":[]}");
  // A body larger than the socket buffers both ways.
  std::string big(3 << 20, 'x');
  for (size_t i = 0; i < big.size(); i += 997) big[i] = static_cast<char>('a' + i % 26);
  r = c->RoundTrip(Post("/big", big));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "POST /big " + big);
}

TEST(HttpServer, KeepAliveManyRequestsOneConnection) {
  auto s = StartServer(ServerOptions{});
  ASSERT_TRUE(s);
  auto c = TestClient::Connect(s->port());
  ASSERT_TRUE(c);
  for (int i = 0; i < 2000; ++i) {
    std::string body = std::to_string(i);
    auto r = c->RoundTrip(Post("/k", body));
    ASSERT_TRUE(r) << i;
    ASSERT_EQ(r->body, "POST /k " + body);
  }
  EXPECT_EQ(s->active_connections(), 1);
}

TEST(HttpServer, PipelinedRequestsAnsweredInOrder) {
  // Answers from another thread after a random delay: still one at a time, in order.
  std::mt19937 rng(7);
  std::mutex mu;
  std::vector<std::thread> workers;
  std::atomic<int> concurrent{0}, max_concurrent{0};
  auto s = StartServer(ServerOptions{}, [&](Request&& req, std::shared_ptr<Responder> resp) {
    int now = ++concurrent;
    max_concurrent = std::max(max_concurrent.load(), now);
    int delay;
    {
      std::lock_guard<std::mutex> lk(mu);
      delay = static_cast<int>(rng() % 3);
    }
    std::lock_guard<std::mutex> lk(mu);
    workers.emplace_back([&concurrent, delay, body = req.body, resp] {
      std::this_thread::sleep_for(std::chrono::milliseconds(delay));
      --concurrent;
      Response r;
      r.body = body;
      resp->Send(std::move(r));
    });
  });
  ASSERT_TRUE(s);
  auto c = TestClient::Connect(s->port());
  ASSERT_TRUE(c);
  std::string batch;
  for (int i = 0; i < 50; ++i) batch += Post("/p", "req" + std::to_string(i));
  batch += Get("/last", "Connection: close\r\n");
  ASSERT_TRUE(c->Send(batch));
  for (int i = 0; i < 50; ++i) {
    auto r = c->ReadResponse();
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->body, "req" + std::to_string(i));
  }
  auto last = c->ReadResponse();
  ASSERT_TRUE(last);
  EXPECT_EQ(last->Header("Connection"), "close");
  EXPECT_TRUE(c->WaitClosed());
  EXPECT_EQ(max_concurrent.load(), 1);
  std::lock_guard<std::mutex> lk(mu);
  for (auto& t : workers) t.join();
}

// Request::loop_backlog: 0 for a request alone on an idle loop; at least 1 while more requests
// (here pipelined on the same connection, sent in one write) wait behind it.
TEST(HttpServer, LoopBacklogCountsWaitingWork) {
  std::mutex mu;
  std::vector<std::pair<std::string, int>> seen;
  auto s = StartServer(ServerOptions{}, [&](Request&& req, std::shared_ptr<Responder> resp) {
    {
      std::lock_guard<std::mutex> lk(mu);
      seen.push_back({req.body, req.loop_backlog});
    }
    Response r;
    r.body = req.body;
    resp->Send(std::move(r));
  });
  ASSERT_TRUE(s);
  auto c = TestClient::Connect(s->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send(Post("/p", "alone")));
  ASSERT_TRUE(c->ReadResponse());
  ASSERT_TRUE(c->Send(Post("/p", "first") + Post("/p", "second") + Post("/p", "third")));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c->ReadResponse()) << i;
  std::lock_guard<std::mutex> lk(mu);
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0], (std::pair<std::string, int>{"alone", 0}));
  EXPECT_EQ(seen[1].first, "first");
  EXPECT_GE(seen[1].second, 1);
  EXPECT_EQ(seen[2].first, "second");
  EXPECT_GE(seen[2].second, 1);
  EXPECT_EQ(seen[3], (std::pair<std::string, int>{"third", 0}));
}

// Read delay and shedding (ServerOptions::shed_target_us). A handler that holds the I/O thread
// for 2 ms, and eight clients that each keep a request outstanding, build a standing queue in
// the sockets: each request waits behind the others, far beyond the 500 µs target, for longer
// than an interval, so requests get the advice to shed. One client alone then finds the loop
// idle: its requests wait only microseconds and, once an interval has passed, are not shed.
TEST(HttpServer, StandingQueueInTheSocketsAdvisesShedding) {
  struct Seen {
    int64_t delay_us;
    bool shed;
  };
  std::mutex mu;
  std::vector<Seen> seen;
  ServerOptions o;
  o.shed_target_us = 500;
  o.shed_interval_ms = 10;
  auto s = StartServer(o, [&](Request&& req, std::shared_ptr<Responder> resp) {
    if (req.path == "/slow") std::this_thread::sleep_for(2ms);  // holds the loop
    {
      std::lock_guard<std::mutex> lk(mu);
      seen.push_back({req.read_delay_us, req.shed});
    }
    resp->Send(Response{});
  });
  ASSERT_TRUE(s);
  auto& episodes = MetricsRegistry::Global().GetCounter("outpost_http_overload_episodes_total", "");
  auto& advised = MetricsRegistry::Global().GetCounter("outpost_http_shed_advised_total", "");
  const uint64_t episodes0 = episodes.value(), advised0 = advised.value();

  constexpr int kClients = 8, kEach = 25;  // 200 requests x 2 ms: 0.4 s of a held loop
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&] {
      auto c = TestClient::Connect(s->port());
      ASSERT_TRUE(c);
      for (int k = 0; k < kEach; ++k) {
        ASSERT_TRUE(c->Send(Get("/slow")));
        auto r = c->ReadResponse();
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 200);
      }
    });
  }
  for (auto& t : clients) t.join();
  size_t overloaded_shed = 0, overloaded_delayed = 0, unknown = 0;
  {
    std::lock_guard<std::mutex> lk(mu);
    ASSERT_EQ(seen.size(), static_cast<size_t>(kClients * kEach));
    for (const Seen& v : seen) {
      // The kernel turns receive timestamps on a little after the first socket asks for them
      // (a deferred static key): the first packets of a process may come without one.
      if (v.delay_us < 0) {
        ++unknown;
        EXPECT_FALSE(v.shed);
        continue;
      }
      if (v.delay_us > 500) ++overloaded_delayed;
      if (v.shed) {
        ++overloaded_shed;
        EXPECT_GT(v.delay_us, 500);  // only those past the target
      }
    }
    seen.clear();
  }
  EXPECT_LT(unknown, static_cast<size_t>(kClients * 2));
  EXPECT_GT(overloaded_delayed, static_cast<size_t>(kClients * kEach / 2));
  EXPECT_GT(overloaded_shed, 0u);
  EXPECT_GE(episodes.value(), episodes0 + 1);
  EXPECT_EQ(advised.value(), advised0 + overloaded_shed);

  // Alone and quick: after an interval without a standing queue, nothing is shed.
  auto c = TestClient::Connect(s->port());
  ASSERT_TRUE(c);
  const auto until = std::chrono::steady_clock::now() + 100ms;
  while (std::chrono::steady_clock::now() < until) {
    ASSERT_TRUE(c->Send(Get("/fast")));
    ASSERT_TRUE(c->ReadResponse());
  }
  std::this_thread::sleep_for(20ms);
  for (int k = 0; k < 5; ++k) {
    ASSERT_TRUE(c->Send(Get("/fast")));
    ASSERT_TRUE(c->ReadResponse());
  }
  std::lock_guard<std::mutex> lk(mu);
  ASSERT_GE(seen.size(), 5u);
  for (size_t i = seen.size() - 5; i < seen.size(); ++i) EXPECT_FALSE(seen[i].shed) << i;
}

TEST(HttpServer, SheddingOffGivesNoAdviceAndNoDelay) {
  std::promise<std::pair<int64_t, bool>> got;
  ServerOptions o;
  o.shed_target_us = 0;
  auto s = StartServer(o, [&](Request&& req, std::shared_ptr<Responder> resp) {
    got.set_value({req.read_delay_us, req.shed});
    resp->Send(Response{});
  });
  ASSERT_TRUE(s);
  auto c = TestClient::Connect(s->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send(Get("/x")));
  ASSERT_TRUE(c->ReadResponse());
  auto [delay, shed] = got.get_future().get();
  EXPECT_EQ(delay, -1);
  EXPECT_FALSE(shed);
}

TEST(HttpServer, LargePipelinedBurst) {
  // More pipelined bytes than the server buffers at once (header limit + 64 KiB): reading pauses
  // and resumes; every request is answered, in order, for sync and async handlers.
  // One worker thread answers the async requests from a queue.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<std::string, std::shared_ptr<Responder>>> queue;
  bool done = false;
  std::thread worker([&] {
    std::unique_lock<std::mutex> lk(mu);
    for (;;) {
      cv.wait(lk, [&] { return done || !queue.empty(); });
      if (queue.empty()) return;
      auto [path, resp] = std::move(queue.front());
      queue.pop_front();
      lk.unlock();
      Response r;
      r.body = path;
      resp->Send(std::move(r));
      lk.lock();
    }
  });
  ServerOptions o;
  o.max_header_bytes = 1024;
  auto s = StartServer(o, [&](Request&& req, std::shared_ptr<Responder> resp) {
    if (req.query == "async") {
      std::lock_guard<std::mutex> lk(mu);
      queue.emplace_back(req.path, std::move(resp));
      cv.notify_one();
      return;
    }
    Response r;
    r.body = req.path;
    resp->Send(std::move(r));
  });
  ASSERT_TRUE(s);
  for (const char* mode : {"sync", "async"}) {
    SCOPED_TRACE(mode);
    auto c = TestClient::Connect(s->port());
    ASSERT_TRUE(c);
    constexpr int kN = 4000;
    std::string burst;
    for (int i = 0; i < kN; ++i) burst += Get("/r" + std::to_string(i) + "?" + mode);
    ASSERT_GT(burst.size(), 100000u);
    std::thread sender([&] { c->Send(burst); });
    int good = 0;
    for (int i = 0; i < kN; ++i) {
      auto r = c->ReadResponse();
      if (!r) break;
      if (r->body == "/r" + std::to_string(i)) ++good;
    }
    sender.join();
    EXPECT_EQ(good, kN);
  }
  {
    std::lock_guard<std::mutex> lk(mu);
    done = true;
  }
  cv.notify_one();
  worker.join();
}

TEST(HttpServer, ClientThatStopsReadingIsDropped) {
  ServerOptions o;
  o.idle_timeout_ms = 300;
  std::atomic<bool> handled{false};
  auto s = StartServer(o, [&](Request&&, std::shared_ptr<Responder> resp) {
    handled = true;
    Response r;
    r.body.assign(64u << 20, 'z');  // far more than the socket buffers hold
    resp->Send(std::move(r));
  });
  ASSERT_TRUE(s);
  uint64_t before = Rejected("write_timeout");
  auto c = TestClient::Connect(s->port());
  ASSERT_TRUE(c);
  int small = 4096;
  ::setsockopt(c->fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  ASSERT_TRUE(c->Send(Get("/huge")));
  for (int i = 0; i < 500 && !handled; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(handled.load());
  // Never read: the server gives up after idle_timeout_ms without progress.
  for (int i = 0; i < 300 && s->active_connections() > 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(s->active_connections(), 0);
  EXPECT_EQ(Rejected("write_timeout"), before + 1);
}

TEST(HttpServer, ChunkedRequestBody) {
  auto s = StartServer(ServerOptions{});
  ASSERT_TRUE(s);
  auto c = TestClient::Connect(s->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send("POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"));
  ASSERT_TRUE(c->Send("4\r\nWiki\r\n"));
  std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(c->Send("5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: x\r\n\r\n"));
  auto r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  // The RFC 9112 (and Wikipedia) example body.
  EXPECT_EQ(r->body, "POST /c Wikipedia in\r\n\r\nchunks.");
  // Still usable afterwards.
  r = c->RoundTrip(Get("/after"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "GET /after ");
}

TEST(HttpServer, ExpectContinue) {
  ServerOptions o;
  o.max_body_bytes = 1000;
  auto s = StartServer(o);
  ASSERT_TRUE(s);
  auto c = TestClient::Connect(s->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(
      c->Send("PUT /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
              "Content-Length: 5\r\n\r\n"));
  auto cont = c->ReadResponse();
  ASSERT_TRUE(cont);
  EXPECT_EQ(cont->status, 100);
  EXPECT_EQ(cont->reason, "Continue");
  ASSERT_TRUE(c->Send("hello"));
  auto r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "PUT /e hello");
  // Too large: 413 instead of 100 Continue, then closed.
  auto c2 = TestClient::Connect(s->port());
  ASSERT_TRUE(c2);
  ASSERT_TRUE(
      c2->Send("PUT /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
               "Content-Length: 1001\r\n\r\n"));
  ExpectErrorAndClose(c2.get(), 413);
}

struct ErrorCase {
  const char* name;
  std::string request;
  int status;
  const char* reason;
};

TEST(HttpServer, LimitsAndErrorStatuses) {
  ServerOptions o;
  o.max_header_bytes = 1024;
  o.max_headers = 8;
  o.max_body_bytes = 64;
  auto s = StartServer(o);
  ASSERT_TRUE(s);
  std::string many_fields = "GET / HTTP/1.1\r\nHost: t\r\n";
  for (int i = 0; i < 8; ++i) many_fields += "X-" + std::to_string(i) + ": v\r\n";
  many_fields += "\r\n";
  std::vector<ErrorCase> cases = {
      {"malformed", "GARBAGE\r\n\r\n", 400, "malformed"},
      {"no host", "GET / HTTP/1.1\r\n\r\n", 400, "malformed"},
      {"smuggling",
       "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
       "malformed"},
      {"header too large", Get("/", "X-Big: " + std::string(1100, 'a') + "\r\n"), 431,
       "header_too_large"},
      {"too many headers", many_fields, 431, "too_many_headers"},
      {"uri too long", "GET /" + std::string(2000, 'u') + " HTTP/1.1\r\n", 414, "uri_too_long"},
      {"body too large", Post("/", std::string(65, 'b')), 413, "body_too_large"},
      {"chunked too large",
       "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n" +
           std::string(65, 'b') + "\r\n0\r\n\r\n",
       413, "body_too_large"},
      {"transfer coding", "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
       "unsupported_transfer_coding"},
      {"version", "GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505, "bad_version"},
      {"expectation", "GET / HTTP/1.1\r\nHost: t\r\nExpect: magic\r\n\r\n", 417,
       "expectation_failed"},
  };
  for (const auto& tc : cases) {
    SCOPED_TRACE(tc.name);
    uint64_t before = Rejected(tc.reason);
    auto c = TestClient::Connect(s->port());
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->Send(tc.request));
    ExpectErrorAndClose(c.get(), tc.status);
    EXPECT_EQ(Rejected(tc.reason), before + 1);
  }
  // A valid request after an error on the same connection never gets parsed: the answer to the
  // first error is the last thing on the wire.
  auto c = TestClient::Connect(s->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send("BAD\r\n\r\n" + Get("/ok")));
  ExpectErrorAndClose(c.get(), 400);
}

TEST(HttpServer, HeaderTimeoutSlowloris) {
  ServerOptions o;
  o.header_timeout_ms = 300;
  auto s = StartServer(o);
  ASSERT_TRUE(s);
  uint64_t before = Rejected("timeout");
  auto c = TestClient::Connect(s->port());
  ASSERT_TRUE(c);
  std::string req = Get("/slow", "X-A: " + std::string(100, 'a') + "\r\n");
  auto start = std::chrono::steady_clock::now();
  // One byte every 20 ms: each byte arrives well within the timeout, the whole block does not.
  bool cut = false;
  for (char ch : req) {
    if (!c->Send(std::string_view(&ch, 1))) {
      cut = true;
      break;
    }
    std::this_thread::sleep_for(20ms);
    if (std::chrono::steady_clock::now() - start > 1s) break;
  }
  (void)cut;
  auto r = c->ReadResponse(3000);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 408);
  EXPECT_EQ(r->Header("Connection"), "close");
  EXPECT_TRUE(c->WaitClosed());
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, 2s);
  EXPECT_GE(Rejected("timeout"), before + 1);
}

TEST(HttpServer, ConnectAndSayNothingIsClosed) {
  ServerOptions o;
  o.header_timeout_ms = 200;
  auto s = StartServer(o);
  ASSERT_TRUE(s);
  auto c = TestClient::Connect(s->port());
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->WaitClosed(2000));  // silently: no request was started
}

TEST(HttpServer, BodyTimeout) {
  ServerOptions o;
  o.body_timeout_ms = 300;
  auto s = StartServer(o);
  ASSERT_TRUE(s);
  auto c = TestClient::Connect(s->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"));
  auto r = c->ReadResponse(3000);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 408);
  EXPECT_TRUE(c->WaitClosed());
}

TEST(HttpServer, IdleKeepAliveTimeout) {
  ServerOptions o;
  o.idle_timeout_ms = 250;
  auto s = StartServer(o);
  ASSERT_TRUE(s);
  auto c = TestClient::Connect(s->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->RoundTrip(Get("/")));
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(c->WaitClosed(3000));
  auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(waited, 200ms);
  EXPECT_LT(waited, 2s);
  EXPECT_EQ(c->pending(), "");  // no 408 for an idle connection
}

TEST(HttpServer, MaxConnectionsAnswers503) {
  ServerOptions o;
  o.max_connections = 2;
  auto s = StartServer(o);
  ASSERT_TRUE(s);
  uint64_t before = Rejected("too_many_connections");
  auto a = TestClient::Connect(s->port());
  auto b = TestClient::Connect(s->port());
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->RoundTrip(Get("/a")));
  ASSERT_TRUE(b->RoundTrip(Get("/b")));
  auto c = TestClient::Connect(s->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send(Get("/c")));
  auto r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->Header("Retry-After"), "1");
  EXPECT_EQ(r->Header("Connection"), "close");
  EXPECT_TRUE(c->WaitClosed());
  EXPECT_EQ(Rejected("too_many_connections"), before + 1);
  // Free a slot: new connections are served again.
  a.reset();
  for (int i = 0; i < 100 && s->active_connections() > 1; ++i) std::this_thread::sleep_for(10ms);
  auto d = TestClient::Connect(s->port());
  ASSERT_TRUE(d);
  auto rd = d->RoundTrip(Get("/d"));
  ASSERT_TRUE(rd);
  EXPECT_EQ(rd->status, 200);
}

TEST(HttpServer, AsyncSendFromAnotherThread) {
  std::vector<std::thread> threads;
  std::mutex mu;
  auto s = StartServer(ServerOptions{}, [&](Request&& req, std::shared_ptr<Responder> resp) {
    std::lock_guard<std::mutex> lk(mu);
    threads.emplace_back([resp, path = req.path] {
      std::this_thread::sleep_for(50ms);
      Response r;
      r.status = 201;
      r.body = "late " + path;
      EXPECT_TRUE(resp->Send(std::move(r)));
      Response again;
      EXPECT_FALSE(resp->Send(std::move(again)));  // exactly once
    });
  });
  ASSERT_TRUE(s);
  auto c = TestClient::Connect(s->port());
  ASSERT_TRUE(c);
  auto t0 = std::chrono::steady_clock::now();
  auto r = c->RoundTrip(Get("/x"));
  ASSERT_TRUE(r);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 45ms);
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(r->reason, "Created");
  EXPECT_EQ(r->body, "late /x");
  r = c->RoundTrip(Get("/y"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "late /y");
  std::lock_guard<std::mutex> lk(mu);
  for (auto& t : threads) t.join();
}

TEST(HttpServer, DisconnectIsObserved) {
  std::mutex mu;
  std::condition_variable cv;
  std::shared_ptr<Responder> held;
  bool fired = false;
  bool fired_on_other_thread = false;
  std::thread::id test_thread = std::this_thread::get_id();
  auto s = StartServer(ServerOptions{}, [&](Request&&, std::shared_ptr<Responder> resp) {
    resp->OnDisconnect([&] {
      std::lock_guard<std::mutex> lk(mu);
      fired = true;
      fired_on_other_thread = std::this_thread::get_id() != test_thread;
      cv.notify_all();
    });
    std::lock_guard<std::mutex> lk(mu);
    held = resp;
    cv.notify_all();
  });
  ASSERT_TRUE(s);
  auto c = TestClient::Connect(s->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send(Get("/hang")));
  {
    std::unique_lock<std::mutex> lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, 5s, [&] { return held != nullptr; }));
    EXPECT_FALSE(held->Disconnected());
  }
  uint64_t before =
      MetricsRegistry::Global().GetCounter("outpost_http_client_disconnects_total", "").value();
  c->Close();
  std::shared_ptr<Responder> r;
  {
    std::unique_lock<std::mutex> lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, 5s, [&] { return fired; }));
    EXPECT_TRUE(fired_on_other_thread);
    r = held;
  }
  EXPECT_TRUE(r->Disconnected());
  EXPECT_FALSE(r->Send(Response{}));
  // Registering after the fact runs the callback at once.
  bool late = false;
  r->OnDisconnect([&] { late = true; });
  EXPECT_TRUE(late);
  EXPECT_EQ(
      MetricsRegistry::Global().GetCounter("outpost_http_client_disconnects_total", "").value(),
      before + 1);
  for (int i = 0; i < 100 && s->active_connections() > 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(s->active_connections(), 0);
}

TEST(HttpServer, OnDisconnectNeverFiresAfterAnswer) {
  std::atomic<bool> fired{false};
  auto s = StartServer(ServerOptions{}, [&](Request&&, std::shared_ptr<Responder> resp) {
    resp->OnDisconnect([&] { fired = true; });
    resp->Send(Response{});
  });
  ASSERT_TRUE(s);
  auto c = TestClient::Connect(s->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->RoundTrip(Get("/")));
  c->Close();
  for (int i = 0; i < 100 && s->active_connections() > 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_FALSE(fired.load());
}

TEST(HttpServer, DrainFinishesInFlightAndRefusesNew) {
  std::vector<std::thread> threads;
  std::mutex mu;
  auto s = StartServer(ServerOptions{}, [&](Request&& req, std::shared_ptr<Responder> resp) {
    if (req.path != "/slow") return Echo(std::move(req), std::move(resp));
    std::lock_guard<std::mutex> lk(mu);
    threads.emplace_back([resp] {
      std::this_thread::sleep_for(400ms);
      Response r;
      r.body = "slow done";
      resp->Send(std::move(r));
    });
  });
  ASSERT_TRUE(s);
  uint16_t port = s->port();
  auto idle = TestClient::Connect(port);  // an idle keep-alive connection
  ASSERT_TRUE(idle);
  ASSERT_TRUE(idle->RoundTrip(Get("/warm")));
  auto busy = TestClient::Connect(port);
  ASSERT_TRUE(busy);
  ASSERT_TRUE(busy->Send(Get("/slow")));
  std::this_thread::sleep_for(50ms);  // the request is in flight
  auto t0 = std::chrono::steady_clock::now();
  auto drained = std::async(std::launch::async, [&] { return s->Drain(5s); });
  // The idle connection is closed promptly.
  EXPECT_TRUE(idle->WaitClosed(2000));
  // New connections are refused once the listener is closed.
  std::this_thread::sleep_for(50ms);
  auto late = TestClient::Connect(port);
  if (late) {
    late->Send(Get("/late"));
    EXPECT_FALSE(late->ReadResponse(1000).has_value());
  }
  // The in-flight request is answered, with Connection: close.
  auto r = busy->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "slow done");
  EXPECT_EQ(r->Header("Connection"), "close");
  EXPECT_TRUE(busy->WaitClosed());
  EXPECT_TRUE(drained.get());
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 300ms);
  std::lock_guard<std::mutex> lk(mu);
  for (auto& t : threads) t.join();
}

TEST(HttpServer, DrainTimeoutCutsOffAndNotifies) {
  std::atomic<bool> disconnected{false};
  std::promise<std::shared_ptr<Responder>> got;
  auto s = StartServer(ServerOptions{}, [&](Request&&, std::shared_ptr<Responder> resp) {
    resp->OnDisconnect([&] { disconnected = true; });
    got.set_value(resp);  // never answered
  });
  ASSERT_TRUE(s);
  auto c = TestClient::Connect(s->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send(Get("/never")));
  auto fut = got.get_future();
  ASSERT_EQ(fut.wait_for(5s), std::future_status::ready);
  std::shared_ptr<Responder> held = fut.get();
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(s->Drain(200ms));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  EXPECT_TRUE(disconnected.load());
  EXPECT_TRUE(c->WaitClosed());
  EXPECT_FALSE(held->Send(Response{}));  // after Stop: dropped
  s.reset();
  held.reset();  // the responder outlives the server safely
}

TEST(HttpServer, ConcurrentClients) {
  ServerOptions o;
  o.io_threads = 2;
  auto s = StartServer(o);
  ASSERT_TRUE(s);
  constexpr int kThreads = 8, kPerThread = 500;
  std::atomic<int> ok{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      auto c = TestClient::Connect(s->port());
      if (!c) return;
      for (int i = 0; i < kPerThread; ++i) {
        std::string body = std::to_string(t) + ":" + std::to_string(i);
        // Every 100th request on a fresh connection.
        if (i % 100 == 99) {
          c = TestClient::Connect(s->port());
          if (!c) return;
        }
        auto r = c->RoundTrip(Post("/cc", body));
        if (r && r->status == 200 && r->body == "POST /cc " + body) ++ok;
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
}

TEST(HttpServer, HeadAndHttp10) {
  auto s = StartServer(ServerOptions{});
  ASSERT_TRUE(s);
  auto c = TestClient::Connect(s->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send("HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto r = c->ReadResponse(5000, /*head=*/true);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->Header("Content-Length"), std::to_string(std::string("HEAD /h ").size()));
  // No body followed: the next response starts right away.
  r = c->RoundTrip(Get("/next"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "GET /next ");
  // HTTP/1.0 closes by default ...
  auto d = TestClient::Connect(s->port());
  ASSERT_TRUE(d);
  r = d->RoundTrip("GET /old HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "GET /old ");
  EXPECT_EQ(r->Header("Connection"), "close");
  EXPECT_TRUE(d->WaitClosed());
  // ... and stays open when asked.
  auto e = TestClient::Connect(s->port());
  ASSERT_TRUE(e);
  r = e->RoundTrip("GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->Header("Connection"), "keep-alive");
  r = e->RoundTrip("GET /ka2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "GET /ka2 ");
}

TEST(HttpServer, HandlerFailuresAnswer500) {
  auto s = StartServer(ServerOptions{}, [](Request&& req, std::shared_ptr<Responder> resp) {
    if (req.path == "/throw") throw std::runtime_error("boom");
    if (req.path == "/drop") return;  // responder dropped without Send
    if (req.path == "/close") {
      Response r;
      r.headers.emplace_back("Connection", "close");
      r.headers.emplace_back("X-Bad", "a\r\nInjected: 1");  // response splitting: dropped
      r.headers.emplace_back("Content-Length", "999");      // ignored: computed
      r.body = "bye";
      resp->Send(std::move(r));
      return;
    }
    resp->Send(Response{});
  });
  ASSERT_TRUE(s);
  auto c = TestClient::Connect(s->port());
  ASSERT_TRUE(c);
  auto r = c->RoundTrip(Get("/throw"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  r = c->RoundTrip(Get("/drop"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(r->body.rfind("{\"error\":", 0), 0u);
  r = c->RoundTrip(Get("/ok"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  r = c->RoundTrip(Get("/close"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "bye");
  EXPECT_EQ(r->Header("Content-Length"), "3");
  EXPECT_FALSE(r->HasHeader("X-Bad"));
  EXPECT_FALSE(r->HasHeader("Injected"));
  EXPECT_TRUE(c->WaitClosed());
}

TEST(HttpServer, MetricsCountTraffic) {
  auto& reg = MetricsRegistry::Global();
  auto s = StartServer(ServerOptions{});
  ASSERT_TRUE(s);
  uint64_t req0 = reg.GetCounter("outpost_http_requests_total", "").value();
  uint64_t in0 = reg.GetCounter("outpost_http_bytes_received_total", "").value();
  uint64_t out0 = reg.GetCounter("outpost_http_bytes_sent_total", "").value();
  uint64_t open0 = reg.GetCounter("outpost_http_connections_opened_total", "").value();
  auto c = TestClient::Connect(s->port());
  ASSERT_TRUE(c);
  std::string req = Get("/m");
  auto r = c->RoundTrip(req);
  ASSERT_TRUE(r);
  EXPECT_EQ(reg.GetCounter("outpost_http_requests_total", "").value(), req0 + 1);
  EXPECT_EQ(reg.GetCounter("outpost_http_bytes_received_total", "").value(), in0 + req.size());
  // The server counts sent bytes after send() returns, possibly after we read them.
  auto& sent = reg.GetCounter("outpost_http_bytes_sent_total", "");
  for (int i = 0; i < 200 && sent.value() <= out0 + r->body.size(); ++i) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_GT(sent.value(), out0 + r->body.size());
  EXPECT_EQ(reg.GetCounter("outpost_http_connections_opened_total", "").value(), open0 + 1);
  EXPECT_EQ(reg.GetGauge("outpost_http_connections_active", "").value(), 1.0);
  std::string text = reg.RenderPrometheus();
  EXPECT_NE(text.find("outpost_http_rejected_total{reason=\"header_too_large\"}"),
            std::string::npos);
}

TEST(HttpServer, CurlCli) {
  if (std::system("command -v curl >/dev/null 2>&1") != 0) GTEST_SKIP() << "curl not installed";
  auto s = StartServer(ServerOptions{});
  ASSERT_TRUE(s);
  std::string cmd =
      "curl -s -S --max-time 5 -d 'payload' -H 'Expect: 100-continue' "
      "'http://127.0.0.1:" +
      std::to_string(s->port()) +
      "/curl?q=1' "
      "'http://127.0.0.1:" +
      std::to_string(s->port()) + "/again' 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[256];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0) << out;
  EXPECT_EQ(out, "POST /curl payloadPOST /again payload");
}

}  // namespace
}  // namespace outpost::serve::http
