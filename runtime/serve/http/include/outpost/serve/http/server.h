// outpostd's HTTP/1.1 server: epoll event loops, keep-alive, pipelining, limits, graceful drain.
// See runtime/serve/http/README.md for the limits, status codes and the threading model.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "outpost/core/status.h"

namespace outpost::serve::http {

struct ServerOptions {
  std::string address = "127.0.0.1";  // numeric IPv4 or IPv6 address to bind
  uint16_t port = 0;                  // 0 = ephemeral (read it back with Server::port())
  int io_threads = 1;                 // event loops; each owns the connections it accepted
  size_t max_header_bytes = 16384;    // request line + header fields (431; 414 for the line)
  size_t max_headers = 100;           // header fields per request (431)
  size_t max_body_bytes = 64u << 20;  // decoded body (413)
  int max_connections = 1024;         // beyond this: 503 + Retry-After, then close
  int header_timeout_ms = 10000;      // first byte of a request -> end of its header block (408)
  int body_timeout_ms = 30000;        // end of header block -> end of body (408)
  int idle_timeout_ms = 60000;        // keep-alive idle; also a stalled write to a non-reader
  // Overload detection on the I/O threads (CoDel's rule): the read delay of a request is the time
  // its first bytes waited in the socket before the loop read them. When the smallest read delay over
  // `shed_interval_ms` exceeded `shed_target_us`, requests queue in the sockets faster than the
  // loop reads them (an overload episode begins), and each request that waited longer than the
  // target while other work was ready in the loop (Request::loop_backlog > 0) gets
  // Request::shed. The episode ends after an interval in which no request waited past the target.
  // 0 turns it off.
  int shed_target_us = 500;
  int shed_interval_ms = 10;
  // The I/O threads ask the kernel for time slices of this many µs (SetThreadSlice in
  // outpost/core/thread_priority.h; 100..100000, Linux 6.12 and later), shorter than the default
  // of the threads they share the CPU with, so that a request arriving while compute runs is read
  // at once rather than after the compute thread's slice (0.7-3 ms). 0 leaves the kernel's default.
  // Where the kernel has no per-thread slices the server logs a warning and serves on.
  int io_slice_us = 0;
};

// A parsed request. Header names keep their case as received; Header() looks up ignoring case.
struct Request {
  std::string method;    // as received (case-sensitive token), e.g. "GET"
  std::string target;    // raw request-target, e.g. "/v2/models/m%201/infer?x=1"
  std::string raw_path;  // path part of the target, not decoded ("/v2/models/m%201/infer")
  std::string path;      // raw_path percent-decoded ("/v2/models/m 1/infer")
  std::string query;     // after '?', not decoded ("x=1")
  std::vector<std::pair<std::string, std::string>> headers;  // in order; trailers are dropped
  std::string body;                                          // decoded (chunked framing removed)
  int version_minor = 1;  // HTTP/1.<version_minor> (1.0 or 1.1; 1.x>1 is read as 1.1)
  bool keep_alive = true;
  std::string peer;  // "ip:port" of the client
  // Ready events (other connections, or more pipelined bytes on this one) that this request's
  // I/O thread has still to handle after it: 0 when nothing else waits. A handler can run cheap
  // work inline when it is 0 and hand it off otherwise, so that a busy loop keeps reading.
  int loop_backlog = 0;
  // How long this request's first bytes waited in the socket before its I/O thread read them, in
  // µs (-1 when the kernel gave no receive timestamp). Transfer time does not count.
  int64_t read_delay_us = -1;
  // The loop has a standing queue, this request waited past the target (ServerOptions::
  // shed_target_us) and other work is ready behind it: a handler should refuse what it can refuse
  // cheaply (429), so that the loop catches up and refusals stay fast.
  bool shed = false;

  // Value of the first field named `name` (ASCII case-insensitive); empty when absent.
  std::string_view Header(std::string_view name) const;
  bool HasHeader(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";  // empty: no Content-Type field
  // Extra fields. Content-Length is always computed by the server (one given here is ignored);
  // "Connection: close" here closes the connection after this response. Fields whose name is not
  // a token or whose value holds CR, LF or NUL are dropped.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// Answers one request. Handed to the handler as a shared_ptr; may be kept and used from any thread.
class Responder {
 public:
  virtual ~Responder() = default;
  // Sends the response. Thread-safe; only the first call counts (later calls are ignored and
  // return false). From the connection's I/O thread it writes at once; from any other thread it
  // queues the response and wakes the I/O thread (eventfd). Returns false when the response was
  // dropped: already sent, the peer disconnected, or the server stopped.
  // If the last reference is dropped without Send, the client gets a 500.
  virtual bool Send(Response&& r) = 0;
  // True once the peer went away (EOF, reset, or the server closed the connection while this
  // request was in flight). Work for this request can then be cancelled.
  virtual bool Disconnected() const = 0;
  // `cb` runs at most once: on an I/O thread when the peer disconnects while the request is in
  // flight, or immediately on the calling thread if that already happened. Never after Send
  // (a response delivered means the request is no longer in flight). Keep it short; it must not
  // call Server::Drain/Stop.
  virtual void OnDisconnect(std::function<void()> cb) = 0;
};

// Called on the I/O thread that owns the connection, one request per connection at a time
// (pipelined requests are parsed and dispatched in order, the next only after the previous was
// answered). Answer now with Send, or keep `resp` and answer later from any thread. The handler
// must not block for long (it stalls every connection of that I/O thread) and must not call
// Server::Drain/Stop. An exception escaping the handler is answered with 500.
using Handler = std::function<void(Request&& req, std::shared_ptr<Responder> resp)>;

class Server {
 public:
  // Binds, listens and starts the I/O threads. InvalidArgument for bad options, IoError when the
  // address cannot be bound.
  static Expected<std::unique_ptr<Server>> Start(const ServerOptions& options, Handler handler);
  ~Server();  // Stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  uint16_t port() const;
  std::string address() const;
  // Open connections right now (not counting those being refused with 503).
  int active_connections() const;

  // Graceful drain (SIGTERM): stop accepting (the listening socket is closed before this returns
  // its first wait), close idle keep-alive connections, let requests being received or handled
  // finish (their responses carry "Connection: close"), then Stop(). Returns true when everything
  // finished before `timeout`; false when the rest was cut off by Stop().
  bool Drain(std::chrono::milliseconds timeout);
  // Closes every connection at once (in-flight requests see OnDisconnect) and joins the threads.
  // Idempotent. Responses sent after this are dropped.
  void Stop();

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The reason phrase for a status code ("OK", "Not Found"); "Unknown" for codes we do not know.
const char* ReasonPhrase(int status);

}  // namespace outpost::serve::http
