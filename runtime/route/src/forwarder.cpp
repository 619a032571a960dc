// The libcurl V2 client behind route::Forwarder (forwarder.h).
#include "outpost/route/forwarder.h"

#include <curl/curl.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "outpost/core/log.h"
#include "outpost/core/metrics.h"
#include "outpost/core/thread_name.h"

namespace outpost::route {
namespace {

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

const std::vector<double>& ForwardBounds() {
  static const std::vector<double> b = {1e-3,   2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3,
                                        100e-3, 250e-3, 0.5,  1.0,   2.5,   10.0};
  return b;
}

// One try of one endpoint, counted by outcome.
void CountAttempt(const std::string& model, const std::string& endpoint, const char* outcome) {
  MetricsRegistry::Global()
      .GetCounter("outpost_route_forwarded_total",
                  "Infer requests forwarded to a fallback endpoint, per try, by outcome "
                  "(success, client_error: the endpoint's 4xx passed back; server_error, error, "
                  "timeout: the next endpoint is tried; cancelled)",
                  {{"model", model}, {"endpoint", endpoint}, {"outcome", outcome}})
      .Inc();
}

// Logs an endpoint going down or coming back, once per change (not once per request).
void EndpointState(const std::string& endpoint, bool up, const std::string& why) {
  static std::mutex mu;
  static std::map<std::string, bool> state;
  std::lock_guard<std::mutex> lock(mu);
  auto it = state.find(endpoint);
  if (it != state.end() && it->second == up) return;
  const bool first = it == state.end();
  state[endpoint] = up;
  if (!up)
    OP_LOG_WARN("route: fallback endpoint {} is not answering: {}", endpoint, why);
  else if (!first)
    OP_LOG_INFO("route: fallback endpoint {} answers again", endpoint);
  else
    OP_LOG_INFO("route: forwarding to fallback endpoint {}", endpoint);
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Trim(std::string s) {
  while (!s.empty() &&
         (s.back() == '\r' || s.back() == '\n' || s.back() == ' ' || s.back() == '\t'))
    s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  return s.substr(i);
}

struct Transfer {
  std::string body;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> headers;  // the ones we pass on
  const std::atomic<bool>* cancelled = nullptr;
};

size_t OnBody(char* p, size_t size, size_t n, void* user) {
  static_cast<Transfer*>(user)->body.append(p, size * n);
  return size * n;
}

size_t OnHeader(char* p, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::string line(p, size * n);
  if (line.rfind("HTTP/", 0) == 0) {  // a new response (after a 1xx): start over
    t->headers.clear();
    t->content_type.clear();
    return size * n;
  }
  const size_t colon = line.find(':');
  if (colon == std::string::npos) return size * n;
  const std::string name = Lower(Trim(line.substr(0, colon)));
  const std::string value = Trim(line.substr(colon + 1));
  if (name == "content-type")
    t->content_type = value;
  else if (name == "inference-header-content-length")
    t->headers.push_back({"Inference-Header-Content-Length", value});
  else if (name == "retry-after")
    t->headers.push_back({"Retry-After", value});
  return size * n;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  return t->cancelled && t->cancelled->load() ? 1 : 0;
}

std::string ErrorBody(const std::string& message) {
  return nlohmann::json{{"error", message}}.dump();
}

}  // namespace

std::string InferUrl(const std::string& base, const std::string& model,
                     const std::string& version) {
  auto escape = [](const std::string& s) {
    std::string out;
    static const char* hex = "0123456789ABCDEF";
    for (unsigned char c : s) {
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
        out += static_cast<char>(c);
      } else {
        out += '%';
        out += hex[c >> 4];
        out += hex[c & 15];
      }
    }
    return out;
  };
  std::string b = base;
  while (!b.empty() && b.back() == '/') b.pop_back();
  return b + "/v2/models/" + escape(model) +
         (version.empty() ? "" : "/versions/" + escape(version)) + "/infer";
}

// The easy handles of one thread, one per endpoint: each keeps its connection alive between
// requests (libcurl's per-handle connection cache).
class Handles {
 public:
  ~Handles() {
    for (auto& [k, h] : handles_) curl_easy_cleanup(h);
  }
  CURL* Get(const std::string& endpoint) {
    CURL*& h = handles_[endpoint];
    if (!h) h = curl_easy_init();
    return h;
  }

 private:
  std::map<std::string, CURL*> handles_;
};

struct Forwarder::Impl {
  struct Job {
    std::vector<std::string> endpoints;
    ForwardRequest request;
    Done done;
  };

  explicit Impl(const ForwarderOptions& o) : opts(o) {}

  ForwardResponse Run(Handles& handles, const std::vector<std::string>& endpoints,
                      const ForwardRequest& req) const;

  void WorkerLoop() {
    SetThreadName("op-forward");
    Handles handles;
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [this] { return stop || !jobs.empty(); });
        if (jobs.empty()) return;
        job = std::move(jobs.front());
        jobs.pop_front();
      }
      job.done(Run(handles, job.endpoints, job.request));
    }
  }

  const ForwarderOptions& opts;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Job> jobs;
  bool stop = false;
  std::vector<std::thread> workers;
};

ForwardResponse Forwarder::Impl::Run(Handles& handles, const std::vector<std::string>& endpoints,
                                     const ForwardRequest& req) const {
  const auto t0 = Clock::now();
  const auto deadline =
      req.deadline == Clock::time_point::max() ? t0 + opts.default_timeout : req.deadline;
  auto& seconds = MetricsRegistry::Global().GetHistogram(
      "outpost_route_forward_seconds",
      "Time to forward one infer request to its fallback endpoints (every endpoint tried)",
      ForwardBounds(), {{"model", req.model}});
  ForwardResponse out;
  std::string tried;
  bool timed_out = false;
  for (const std::string& endpoint : endpoints) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    CURL* h = handles.Get(endpoint);
    if (!h) {
      tried += (tried.empty() ? "" : ", ") + endpoint + " (no curl handle)";
      continue;
    }
    Transfer t;
    t.cancelled = req.cancelled.get();
    const std::string url = InferUrl(endpoint, req.model, req.version);
    curl_slist* hdrs = nullptr;
    // "Name:" with no value removes a field curl would add (its form Content-Type, Expect).
    hdrs = curl_slist_append(
        hdrs,
        ("Content-Type:" + (req.content_type.empty() ? std::string() : " " + req.content_type))
            .c_str());
    hdrs = curl_slist_append(hdrs, "Expect:");
    if (req.header_length)
      hdrs = curl_slist_append(hdrs,
                               ("Inference-Header-Content-Length: " + *req.header_length).c_str());
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, req.body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(left));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::min<int64_t>(left, opts.connect_timeout.count())));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, OnBody);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, OnProgress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &t);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    const CURLcode rc = curl_easy_perform(h);
    curl_slist_free_all(hdrs);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (rc == CURLE_ABORTED_BY_CALLBACK) {
      CountAttempt(req.model, endpoint, "cancelled");
      out.status = 499;
      out.cancelled = true;
      out.body = ErrorBody("the client went away");
      return out;
    }
    if (rc == CURLE_OK && status > 0 && status < 500) {
      CountAttempt(req.model, endpoint, status < 400 ? "success" : "client_error");
      EndpointState(endpoint, true, "");
      out.status = static_cast<int>(status);
      out.content_type = std::move(t.content_type);
      out.headers = std::move(t.headers);
      out.body = std::move(t.body);
      out.endpoint = endpoint;
      seconds.Observe(std::chrono::duration<double>(Clock::now() - t0).count());
      return out;
    }
    std::string why;
    if (rc == CURLE_OK) {
      CountAttempt(req.model, endpoint, "server_error");
      why = "answered " + std::to_string(status);
      std::string detail = t.body.substr(0, 200);
      auto j = nlohmann::json::parse(t.body, nullptr, false);
      if (j.is_object() && j.contains("error") && j["error"].is_string())
        detail = j["error"].get<std::string>();
      if (!detail.empty()) why += ": " + detail;
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
      CountAttempt(req.model, endpoint, "timeout");
      why = "timed out after " + std::to_string(left) + " ms";
      timed_out = Clock::now() >= deadline;
    } else {
      CountAttempt(req.model, endpoint, "error");
      why = curl_easy_strerror(rc);
    }
    EndpointState(endpoint, false, why);
    tried += (tried.empty() ? "" : ", ") + endpoint + " (" + why + ")";
  }
  seconds.Observe(std::chrono::duration<double>(Clock::now() - t0).count());
  MetricsRegistry::Global()
      .GetCounter("outpost_route_exhausted_total",
                  "Forwarded requests no fallback endpoint answered (503, or 504 when the "
                  "deadline ran out)",
                  {{"model", req.model}})
      .Inc();
  if (tried.empty()) tried = "none (the deadline had passed)";
  if (timed_out) {
    out.status = 504;
    out.body = ErrorBody("the deadline of the request to model '" + req.model +
                         "' ran out before a fallback endpoint answered; tried: " + tried);
  } else {
    out.status = 503;
    out.headers.push_back({"Retry-After", std::to_string(std::max(1, opts.retry_after_s))});
    out.body =
        ErrorBody("no fallback endpoint answered for model '" + req.model + "'; tried: " + tried);
  }
  out.content_type = "application/json";
  OP_LOG_WARN("route: {} for model '{}': no fallback endpoint answered; tried: {}", out.status,
              req.model, tried);
  return out;
}

Forwarder::Forwarder(ForwarderOptions options)
    : opts_(std::move(options)), impl_(std::make_unique<Impl>(opts_)) {
  GlobalInit();
  for (int i = 0; i < std::max(1, opts_.workers); ++i)
    impl_->workers.emplace_back([this] { impl_->WorkerLoop(); });
}

Forwarder::~Forwarder() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  for (auto& t : impl_->workers) t.join();
}

Status Forwarder::Submit(std::vector<std::string> endpoints, ForwardRequest request, Done done) {
  auto refuse = [](const char* reason, Status s) {
    MetricsRegistry::Global()
        .GetCounter("outpost_route_rejected_total",
                    "Forwards refused before any try, by reason (queue_full, stopping)",
                    {{"reason", reason}})
        .Inc();
    return s;
  };
  if (endpoints.empty()) return InvalidArgument("no fallback endpoints to forward to");
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->stop) return refuse("stopping", Unavailable("the forwarder is stopping"));
    if (impl_->jobs.size() >= opts_.queue_size)
      return refuse("queue_full", ResourceExhausted("fallback forwarding queue is full (" +
                                                    std::to_string(opts_.queue_size) + ")"));
    impl_->jobs.push_back({std::move(endpoints), std::move(request), std::move(done)});
  }
  impl_->cv.notify_one();
  return Status::Ok();
}

ForwardResponse Forwarder::Forward(const std::vector<std::string>& endpoints,
                                   const ForwardRequest& request) {
  Handles handles;
  return impl_->Run(handles, endpoints, request);
}

}  // namespace outpost::route
