// Forwarder: sends one Open Inference Protocol infer request, unchanged, to a model's fallback
// endpoints (V2 base URLs, in order) over HTTP with libcurl, on its own worker threads, and hands
// back the first usable answer. See runtime/route/README.md.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "outpost/core/status.h"

namespace outpost::route {

using Clock = std::chrono::steady_clock;

// One infer request as the client sent it. The body goes out byte for byte.
struct ForwardRequest {
  std::string model;
  std::string version;       // "" = the endpoint's current version
  std::string content_type;  // "" = none sent
  // `Inference-Header-Content-Length` as received (binary tensor data extension); nullopt: none.
  std::optional<std::string> header_length;
  std::string body;
  // The request's deadline; the whole forward (every endpoint tried) must end by then.
  // max(): ForwarderOptions::default_timeout from the start of the forward.
  Clock::time_point deadline = Clock::time_point::max();
  // Set when the client went away: the transfer in progress is aborted, nothing is answered.
  std::shared_ptr<std::atomic<bool>> cancelled;
};

// The answer to pass back to the client.
struct ForwardResponse {
  // The endpoint's status, or 503 (every endpoint down), 504 (the deadline ran out), 499 (the
  // client went away; nothing should be sent).
  int status = 503;
  std::string content_type;  // as the endpoint sent it ("" for none)
  // The fields worth passing on: Inference-Header-Content-Length, Retry-After.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;      // the endpoint's body, unchanged; a V2 error body when none answered
  std::string endpoint;  // the base URL that answered; "" when none did
  bool cancelled = false;
};

struct ForwarderOptions {
  int workers = 2;          // threads running transfers; each keeps one connection per endpoint
  size_t queue_size = 256;  // forwards waiting for a worker; beyond it Submit refuses
  std::chrono::milliseconds default_timeout{10000};  // for requests without a deadline
  std::chrono::milliseconds connect_timeout{2000};   // per endpoint (capped by the deadline)
  int retry_after_s = 5;  // Retry-After of the 503 sent when every endpoint is down
};

class Forwarder {
 public:
  explicit Forwarder(ForwarderOptions options = {});
  ~Forwarder();  // finishes the forwards already queued, then joins the workers
  Forwarder(const Forwarder&) = delete;
  Forwarder& operator=(const Forwarder&) = delete;

  using Done = std::function<void(ForwardResponse)>;
  // Queues the request for a worker; `done` runs exactly once on that worker when Submit
  // returned Ok. kResourceExhausted when the queue is full, kUnavailable once stopping,
  // kInvalidArgument without endpoints. Never blocks on the network.
  Status Submit(std::vector<std::string> endpoints, ForwardRequest request, Done done);

  // Forwards on the calling thread (blocks for up to the deadline). For tools and tests.
  ForwardResponse Forward(const std::vector<std::string>& endpoints, const ForwardRequest& request);

  const ForwarderOptions& options() const { return opts_; }

  struct Impl;

 private:
  const ForwarderOptions opts_;
  std::unique_ptr<Impl> impl_;
};

// The V2 infer URL of `model` (and `version`) under an endpoint's base URL: base without its
// trailing slashes + "/v2/models/<model>[/versions/<version>]/infer", names percent-encoded.
std::string InferUrl(const std::string& base, const std::string& model, const std::string& version);

}  // namespace outpost::route
