#include "outpost/serve/service.h"

#include <charconv>
#include <mutex>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "outpost/core/log.h"
#include "outpost/core/metrics.h"

namespace outpost::serve {
namespace {

using http::Request;
using http::Responder;
using http::Response;

constexpr std::string_view kOutcomes[] = {"success",  "bad_request", "rejected",
                                          "deadline", "cancelled",   "error"};
enum Outcome { kSuccess, kBadRequest, kRejected, kDeadline, kCancelledOutcome, kError };

Outcome OutcomeOf(Code c) {
  switch (c) {
    case Code::kOk:
      return kSuccess;
    case Code::kInvalidArgument:
    case Code::kUnsupported:
    case Code::kNotFound:
    case Code::kInvalidModel:
      return kBadRequest;
    case Code::kResourceExhausted:
    case Code::kUnavailable:
      return kRejected;
    case Code::kDeadlineExceeded:
      return kDeadline;
    case Code::kCancelled:
      return kCancelledOutcome;
    case Code::kIoError:
    case Code::kInternal:
      return kError;
  }
  return kError;
}

// Per model version: the series every request touches, looked up once.
struct ModelMetrics {
  Counter* requests[6];
  Histogram* queue;
  Histogram* compute;
  Histogram* total;
};

const std::vector<double>& LatencyBounds() {
  static const std::vector<double> b = {50e-6, 100e-6, 250e-6, 500e-6, 1e-3,   2.5e-3, 5e-3, 10e-3,
                                        25e-3, 50e-3,  100e-3, 250e-3, 500e-3, 1.0,    2.5,  10.0};
  return b;
}

ModelMetrics* MetricsFor(const std::string& model, const std::string& version) {
  static std::mutex mu;
  static std::unordered_map<std::string, std::unique_ptr<ModelMetrics>> cache;
  const std::string key = model + '\0' + version;
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = cache[key];
  if (!slot) {
    auto m = std::make_unique<ModelMetrics>();
    auto& reg = MetricsRegistry::Global();
    const Labels l = {{"model", model}, {"version", version}};
    for (int i = 0; i < 6; ++i) {
      Labels o = l;
      o.push_back({"outcome", std::string(kOutcomes[i])});
      m->requests[i] = &reg.GetCounter("outpost_requests_total",
                                       "Inference requests by model, version and outcome", o);
    }
    m->queue = &reg.GetHistogram("outpost_request_queue_seconds",
                                 "Time from accepting a request to the start of its batch",
                                 LatencyBounds(), l);
    m->compute =
        &reg.GetHistogram("outpost_request_compute_seconds",
                          "Model execution time of the request's batch", LatencyBounds(), l);
    m->total = &reg.GetHistogram("outpost_request_duration_seconds",
                                 "Time from the complete request to its response being handed "
                                 "to the connection",
                                 LatencyBounds(), l);
    slot = std::move(m);
  }
  return slot.get();
}

// Tells the observer about a request refused before it ran (overload, deadline, draining).
void Refused(ServiceObserver& o, const ModelRunner& r, Code code) {
  switch (code) {
    case Code::kResourceExhausted:
      return o.OnRefused(r.name(), r.version(), Refusal::kQueueFull);
    case Code::kDeadlineExceeded:
      return o.OnRefused(r.name(), r.version(), Refusal::kDeadline);
    case Code::kUnavailable:
      return o.OnRefused(r.name(), r.version(), Refusal::kDraining);
    default:
      return;  // bad requests are not refusals
  }
}

Counter& UnroutedCounter(const char* reason) {
  return MetricsRegistry::Global().GetCounter(
      "outpost_http_unrouted_total", "Requests answered without reaching a model, by reason",
      {{"reason", reason}});
}

Response Json(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

Response Error(int status, std::string_view message) {
  return Json(status, v2::EncodeError(message));
}

// Error for a status, with Retry-After on overload answers (429, 503).
Response ErrorFor(const Status& s, int retry_after_s) {
  Response r = Error(v2::HttpStatusFor(s.code()), s.message());
  if (r.status == 429 || r.status == 503)
    r.headers.push_back({"Retry-After", std::to_string(std::max(1, retry_after_s))});
  return r;
}

bool IsGet(const Request& r) { return r.method == "GET" || r.method == "HEAD"; }

// Splits "a/b/c" off `path` after `prefix`; returns false when `path` does not start with it.
bool StripPrefix(std::string_view path, std::string_view prefix, std::string_view* rest) {
  if (path.substr(0, prefix.size()) != prefix) return false;
  *rest = path.substr(prefix.size());
  return true;
}

std::string_view NextSegment(std::string_view* rest) {
  size_t slash = rest->find('/');
  std::string_view seg = rest->substr(0, slash);
  *rest = slash == std::string_view::npos ? std::string_view() : rest->substr(slash + 1);
  return seg;
}

std::vector<v2::TensorMetadata> Metadata(const std::vector<engine::ValueInfo>& vs) {
  std::vector<v2::TensorMetadata> out;
  for (const auto& v : vs) out.push_back({v.name, v.dtype, v.dims});
  return out;
}

// Checks the decoded inputs against the model's: every input given once, known names, types,
// ranks and fixed dims. The message names the input and both sides.
Status CheckInputs(const std::string& model, const std::vector<engine::ValueInfo>& want,
                   const std::vector<v2::InferInput>& got) {
  for (const auto& in : got) {
    const engine::ValueInfo* w = nullptr;
    for (const auto& v : want)
      if (v.name == in.name) w = &v;
    if (!w) {
      std::string names;
      for (const auto& v : want) names += (names.empty() ? "'" : ", '") + v.name + "'";
      return InvalidArgument("model '" + model + "' has no input '" + in.name +
                             "' (its inputs: " + names + ")");
    }
    if (in.dtype != w->dtype)
      return InvalidArgument("input '" + in.name + "' of model '" + model + "' must be " +
                             std::string(DataTypeV2Name(w->dtype)) + ", got " +
                             std::string(DataTypeV2Name(in.dtype)));
    bool ok = in.shape.rank() == static_cast<int>(w->dims.size());
    for (int d = 0; ok && d < in.shape.rank(); ++d)
      ok = w->dims[d] < 0 || w->dims[d] == in.shape[d];
    if (!ok)
      return InvalidArgument("input '" + in.name + "' of model '" + model + "' must have shape " +
                             w->ToString().substr(w->ToString().find('[')) + ", got " +
                             in.shape.ToString());
  }
  for (const auto& v : want) {
    bool given = false;
    for (const auto& in : got) given = given || in.name == v.name;
    if (!given)
      return InvalidArgument("model '" + model + "' needs input '" + v.name + "' (" + v.ToString() +
                             ")");
  }
  return Status::Ok();
}

// The answer to an accepted inference call: encodes the outputs (or the error), counts it and
// sends it, on whichever thread ran the call.
std::function<void(Expected<std::vector<Tensor>>, const CallTiming&)> Completion(
    std::atomic<int64_t>* in_flight, std::shared_ptr<Responder> resp,
    std::shared_ptr<v2::InferRequest> request, std::shared_ptr<ModelRunner> runner,
    ModelMetrics* mm, Clock::time_point t0) {
  return
      [in_flight, resp = std::move(resp), request = std::move(request), runner = std::move(runner),
       mm, t0](Expected<std::vector<Tensor>> out, const CallTiming& timing) {
        mm->queue->Observe(timing.queue_us * 1e-6);
        if (timing.compute_us > 0) mm->compute->Observe(timing.compute_us * 1e-6);
        Response r;
        Code code = out.ok() ? Code::kOk : out.status().code();
        if (!out.ok()) {
          r = ErrorFor(out.status(), runner->RetryAfterSeconds());
        } else {
          std::vector<std::string> names;
          for (const auto& v : runner->session().outputs()) names.push_back(v.name);
          auto selected = v2::SelectOutputs(*request, names, *out);
          Expected<v2::EncodedResponse> enc =
              selected.ok() ? v2::EncodeInferResponse(runner->name(), runner->version(),
                                                      request->id, request->parameters, *selected)
                            : Expected<v2::EncodedResponse>(selected.status());
          if (!enc.ok()) {
            code = enc.status().code();
            r = ErrorFor(enc.status(), 1);
          } else {
            r.status = 200;
            r.content_type = std::string(enc->content_type);
            if (enc->json_length)
              r.headers.push_back(
                  {"Inference-Header-Content-Length", std::to_string(*enc->json_length)});
            r.body = std::move(enc->body);
          }
        }
        mm->requests[OutcomeOf(code)]->Inc();
        mm->total->Observe(std::chrono::duration<double>(Clock::now() - t0).count());
        if (code != Code::kCancelled) resp->Send(std::move(r));
        in_flight->fetch_sub(1);
      };
}

// The deadline a client set in `parameters.timeout` (µs) of a request about to be forwarded: only
// the JSON part is read and only the top-level "parameters" member is kept (the tensors are
// skipped, not decoded). 0 when there is none or the JSON does not parse (the endpoint answers
// such a request itself).
int64_t ForwardedTimeoutUs(const std::string& body, std::optional<size_t> json_length) {
  if (json_length && *json_length == 0) return 0;  // raw binary: no JSON
  const std::string_view text(body.data(), json_length ? *json_length : body.size());
  using nlohmann::json;
  json j = json::parse(
      text.begin(), text.end(),
      [](int depth, json::parse_event_t e, json& parsed) {
        return !(depth == 1 && e == json::parse_event_t::key && parsed != "parameters");
      },
      /*allow_exceptions=*/false);
  if (!j.is_object()) return 0;
  auto p = j.find("parameters");
  if (p == j.end() || !p->is_object()) return 0;
  auto t = p->find("timeout");
  if (t == p->end() || !t->is_number_integer() || t->get<int64_t>() <= 0) return 0;
  return t->get<int64_t>();
}

Gauge& HandoffGauge() {
  return MetricsRegistry::Global().GetGauge(
      "outpost_serve_handoff",
      "1 while infer requests of models with fallback endpoints are forwarded to them (handoff)");
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

}  // namespace

bool IsLoopbackPeer(std::string_view peer) {
  if (peer.substr(0, 4) == "127.") return true;
  return peer.substr(0, 5) == "[::1]" || peer.substr(0, 12) == "[::ffff:127.";
}

InferenceService::InferenceService(ModelRegistry* registry, ServiceOptions options)
    : registry_(registry), opts_(std::move(options)) {
  HandoffGauge().Set(0);
}

InferenceService::~InferenceService() {
  {
    std::lock_guard<std::mutex> lock(load_mu_);
    stop_loader_ = true;
  }
  load_cv_.notify_all();
  if (loader_.joinable()) loader_.join();
}

void InferenceService::Handle(Request&& req, std::shared_ptr<Responder> resp) {
  std::string_view path = req.path;
  std::string_view rest;
  if (path == "/metrics") {
    if (!IsGet(req)) return (void)resp->Send(Error(405, "use GET for /metrics"));
    // Read by the OTA agent before a reboot (no reboot while inference is in flight).
    MetricsRegistry::Global()
        .GetGauge("outpost_serve_in_flight",
                  "Local inference requests accepted and not yet answered (forwarded ones are "
                  "not counted)")
        .Set(static_cast<double>(in_flight_.load()));
    Handoff();  // a handoff whose TTL ran out ends here at the latest (gauge and log)
    Response r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = MetricsRegistry::Global().RenderPrometheus();
    return (void)resp->Send(std::move(r));
  }
  if (path == "/v2" || path == "/v2/") {
    if (!IsGet(req)) return (void)resp->Send(Error(405, "use GET for /v2"));
    return (void)resp->Send(
        Json(200, v2::EncodeServerMetadata(opts_.server_name, opts_.server_version,
                                           {std::string(v2::kExtensionBinaryTensorData),
                                            std::string(v2::kExtensionModelRepository)})));
  }
  if (path == "/v2/health/live") {
    if (!IsGet(req)) return (void)resp->Send(Error(405, "use GET for health"));
    return (void)resp->Send(Json(200, v2::EncodeServerLive(true)));
  }
  if (path == "/v2/health/ready") {
    if (!IsGet(req)) return (void)resp->Send(Error(405, "use GET for health"));
    const bool ready = ready_.load() && !draining_.load() && registry_->AllReady();
    return (void)resp->Send(Json(ready ? 200 : 503, v2::EncodeServerReady(ready)));
  }
  if (path == "/outpost/v1/handoff") return HandoffCall(req, std::move(resp));
  if (StripPrefix(path, "/v2/repository/", &rest)) {
    return Repository(req, rest, std::move(resp));
  }
  if (StripPrefix(path, "/v2/models/", &rest)) {
    const std::string_view name = NextSegment(&rest);
    std::string_view version;
    if (rest.substr(0, 9) == "versions/") {
      rest.remove_prefix(9);
      version = NextSegment(&rest);
    }
    auto runner = registry_->Find(name, version);
    if (!runner) {
      UnroutedCounter("unknown_model").Inc();
      const std::string what = version.empty() ? "model '" + std::string(name) + "'"
                                               : "version '" + std::string(version) +
                                                     "' of model '" + std::string(name) + "'";
      return (void)resp->Send(Error(404, what + " is not being served"));
    }
    if (rest.empty()) {
      if (!IsGet(req)) return (void)resp->Send(Error(405, "use GET for model metadata"));
      const auto& s = runner->session();
      auto outputs = Metadata(s.outputs());
      for (size_t i = 0; i < outputs.size() && i < runner->output_dims().size(); ++i)
        outputs[i].shape = runner->output_dims()[i];
      auto body = v2::EncodeModelMetadata(runner->name(), {runner->version()}, v2::kPlatformOnnx,
                                          Metadata(s.inputs()), outputs);
      if (!body.ok()) return (void)resp->Send(ErrorFor(body.status(), 1));
      return (void)resp->Send(Json(200, std::move(body).value()));
    }
    if (rest == "ready") {
      if (!IsGet(req)) return (void)resp->Send(Error(405, "use GET for model readiness"));
      return (void)resp->Send(Json(200, v2::EncodeModelReady(runner->name(), true)));
    }
    if (rest == "infer") {
      if (req.method != "POST") return (void)resp->Send(Error(405, "use POST for infer"));
      // Handoff or drain: a model with fallback endpoints is answered by them (local requests
      // already accepted finish here). Without endpoints it is served (or refused) locally.
      if (opts_.forwarder && (HandoffOn() || draining_.load())) {
        auto endpoints = registry_->FallbackEndpoints(runner->name());
        if (!endpoints.empty())
          return Forward(std::move(req), std::move(resp), *runner, version, std::move(endpoints));
      }
      return Infer(std::move(req), std::move(resp), std::move(runner), version);
    }
  }
  UnroutedCounter("unknown_path").Inc();
  resp->Send(Error(404, "no such endpoint: " + req.method + " " + req.path));
}

void InferenceService::Infer(Request&& req, std::shared_ptr<Responder> resp,
                             std::shared_ptr<ModelRunner> runner, std::string_view version) {
  const auto t0 = Clock::now();
  ModelMetrics* mm = MetricsFor(runner->name(), runner->version());
  auto fail = [&](const Status& s) {
    mm->requests[OutcomeOf(s.code())]->Inc();
    if (opts_.observer) Refused(*opts_.observer, *runner, s.code());
    resp->Send(ErrorFor(s, runner->RetryAfterSeconds()));
  };
  if (draining_.load()) return fail(Unavailable("server is shutting down"));
  // Refuse the excess before decoding it: under overload, refusals must stay cheap so that the
  // I/O thread keeps up and answers them in well under a millisecond.
  if (Status s = runner->Admit(); !s.ok()) return fail(s);
  // The I/O thread itself is behind (requests wait in the sockets: http::ServerOptions::
  // shed_target_us): the model queue never fills when calls run inline, so refuse here, before
  // any decoding, and the loop catches up.
  if (req.shed)
    return fail(ResourceExhausted("server overloaded: the request waited " +
                                  std::to_string(req.read_delay_us) +
                                  " us in its socket before it could be read"));
  const engine::Session& session = runner->session();

  // The binary tensor data extension: the JSON header's length.
  std::optional<size_t> json_length;
  if (req.HasHeader("Inference-Header-Content-Length")) {
    std::string_view v = req.Header("Inference-Header-Content-Length");
    size_t n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || p != v.data() + v.size() || v.empty())
      return fail(InvalidArgument("Inference-Header-Content-Length is not a byte count: '" +
                                  std::string(v) + "'"));
    if (n > req.body.size())
      return fail(InvalidArgument("Inference-Header-Content-Length " + std::to_string(n) +
                                  " exceeds the body's " + std::to_string(req.body.size()) +
                                  " bytes"));
    json_length = n;
  }
  Expected<v2::InferRequest> parsed = Status(Code::kInternal, "unparsed");
  if (json_length && *json_length == 0) {
    // Raw binary request: the whole body is the single input's data.
    if (session.inputs().size() != 1)
      return fail(
          InvalidArgument("a raw binary request (Inference-Header-Content-Length: 0) "
                          "needs a one-input model; '" +
                          runner->name() + "' has " + std::to_string(session.inputs().size())));
    const auto& in = session.inputs()[0];
    parsed = v2::ParseRawBinaryInput(req.body, in.name, in.dtype, in.dims, opts_.limits);
    if (parsed.ok()) parsed->all_outputs_binary = true;
  } else {
    parsed = v2::ParseInferRequest(req.body, json_length, opts_.limits);
  }
  if (!parsed.ok()) return fail(parsed.status());
  auto request = std::make_shared<v2::InferRequest>(std::move(parsed).value());
  if (Status s = CheckInputs(runner->name(), session.inputs(), request->inputs); !s.ok())
    return fail(s);
  for (const auto& o : request->outputs) {
    bool known = false;
    for (const auto& v : session.outputs()) known = known || v.name == o.name;
    if (!known)
      return fail(InvalidArgument("model '" + runner->name() + "' has no output '" + o.name + "'"));
  }

  // Deadline: the request's `timeout` parameter (microseconds, as Triton), else the manifest's.
  InferCall call;
  std::chrono::microseconds timeout = runner->options().default_timeout;
  if (request->parameters.is_object()) {
    auto it = request->parameters.find("timeout");
    if (it != request->parameters.end()) {
      if (!it->is_number_integer() || it->get<int64_t>() <= 0)
        return fail(
            InvalidArgument("parameter 'timeout' must be a positive integer of "
                            "microseconds"));
      timeout = std::chrono::microseconds(it->get<int64_t>());
    }
  }
  if (timeout.count() > 0) call.deadline = t0 + timeout;
  call.may_run_inline = req.loop_backlog == 0;
  call.inputs.reserve(request->inputs.size());
  for (auto& in : request->inputs) call.inputs.push_back({in.name, std::move(in.tensor)});
  call.cancelled = std::make_shared<std::atomic<bool>>(false);
  resp->OnDisconnect([flag = call.cancelled] { flag->store(true); });

  if (opts_.observer) opts_.observer->OnInputs(runner->name(), runner->version(), call.inputs);
  in_flight_.fetch_add(1);
  call.done = Completion(&in_flight_, resp, request, runner, mm, t0);
  Status s = runner->Submit(std::move(call));
  if (s.code() == Code::kUnavailable && !draining_.load()) {
    // A hot reload swapped this version out between the lookup and the submit: the call (left
    // intact by the refusal) goes to the version that serves the model now.
    auto now = registry_->Find(runner->name(), version);
    if (now && now != runner) {
      ModelMetrics* now_mm = MetricsFor(now->name(), now->version());
      call.done = Completion(&in_flight_, resp, request, now, now_mm, t0);
      s = now->Submit(std::move(call));
      if (!s.ok()) {
        in_flight_.fetch_sub(1);
        now_mm->requests[OutcomeOf(s.code())]->Inc();
        if (opts_.observer) Refused(*opts_.observer, *now, s.code());
        return (void)resp->Send(ErrorFor(s, now->RetryAfterSeconds()));
      }
      if (opts_.observer) opts_.observer->OnServedLocally(now->name(), now->version());
      return;
    }
  }
  if (!s.ok()) {
    in_flight_.fetch_sub(1);
    return fail(s);
  }
  if (opts_.observer) opts_.observer->OnServedLocally(runner->name(), runner->version());
}

void InferenceService::Forward(Request&& req, std::shared_ptr<Responder> resp,
                               const ModelRunner& runner, std::string_view version,
                               std::vector<std::string> endpoints) {
  const auto t0 = Clock::now();
  route::ForwardRequest f;
  f.model = runner.name();
  f.version = std::string(version);
  f.content_type = std::string(req.Header("Content-Type"));
  std::optional<size_t> json_length;
  if (req.HasHeader("Inference-Header-Content-Length")) {
    const std::string_view v = req.Header("Inference-Header-Content-Length");
    f.header_length = std::string(v);
    size_t n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec == std::errc() && p == v.data() + v.size() && n <= req.body.size()) json_length = n;
  }
  // The deadline as a local request would have it: `parameters.timeout`, else the manifest's.
  int64_t timeout_us = ForwardedTimeoutUs(req.body, json_length);
  if (timeout_us == 0) timeout_us = runner.options().default_timeout.count();
  if (timeout_us > 0) f.deadline = t0 + std::chrono::microseconds(timeout_us);
  f.body = std::move(req.body);
  f.cancelled = std::make_shared<std::atomic<bool>>(false);
  resp->OnDisconnect([flag = f.cancelled] { flag->store(true); });
  Status s =
      opts_.forwarder->Submit(std::move(endpoints), std::move(f), [resp](route::ForwardResponse r) {
        if (r.cancelled) return;
        Response out;
        out.status = r.status;
        out.content_type = std::move(r.content_type);
        out.headers = std::move(r.headers);
        if (!r.endpoint.empty())
          out.headers.push_back({"Outpost-Served-By", "fallback " + r.endpoint});
        out.body = std::move(r.body);
        resp->Send(std::move(out));
      });
  if (!s.ok()) return (void)resp->Send(ErrorFor(s, 1));
  if (opts_.observer) opts_.observer->OnForwarded(runner.name());
}

bool InferenceService::HandoffOn() {
  const int64_t until = handoff_until_.load();
  if (until == 0) return false;
  if (NowNs() < until) return true;
  return Handoff().active;  // expired: ends it
}

Status InferenceService::StartHandoff(std::string reason, std::chrono::milliseconds ttl) {
  if (!opts_.forwarder) return Unavailable("this server has no fallback forwarder");
  std::lock_guard<std::mutex> lock(handoff_mu_);
  const bool was = handoff_until_.load() != 0;
  handoff_reason_ = std::move(reason);
  handoff_until_.store(NowNs() + std::chrono::duration_cast<std::chrono::nanoseconds>(ttl).count());
  HandoffGauge().Set(1);
  std::string models;
  for (const auto& m : registry_->Index())
    if (!registry_->FallbackEndpoints(m.name).empty())
      models += (models.empty() ? "" : ", ") + m.name;
  OP_LOG_WARN("handoff {} ({}, for {} s): requests of {} go to their fallback endpoints",
              was ? "renewed" : "on", handoff_reason_, ttl.count() / 1000.0,
              models.empty() ? "no model (none has fallback endpoints)" : models);
  return Status::Ok();
}

void InferenceService::EndHandoff(std::string_view why) {
  std::lock_guard<std::mutex> lock(handoff_mu_);
  if (handoff_until_.exchange(0) == 0) return;
  HandoffGauge().Set(0);
  OP_LOG_WARN("handoff off ({}): serving locally again", why);
}

HandoffState InferenceService::Handoff() {
  const int64_t until = handoff_until_.load();
  if (until == 0) return {};
  const int64_t now = NowNs();
  if (now >= until) {
    std::lock_guard<std::mutex> lock(handoff_mu_);
    // Only the TTL that ran out ends here (a renewal in between keeps it on).
    int64_t expected = until;
    if (handoff_until_.compare_exchange_strong(expected, 0)) {
      HandoffGauge().Set(0);
      OP_LOG_WARN("handoff off (its TTL ran out): serving locally again");
      return {};
    }
    return Handoff();
  }
  std::lock_guard<std::mutex> lock(handoff_mu_);
  return {true, handoff_reason_, (until - now) * 1e-9};
}

void InferenceService::HandoffCall(const Request& req, std::shared_ptr<Responder> resp) {
  if (!IsLoopbackPeer(req.peer)) {
    UnroutedCounter("handoff_not_loopback").Inc();
    OP_LOG_WARN("handoff: {} {} from {} refused: only loopback peers may call it", req.method,
                req.path, req.peer);
    return (void)resp->Send(
        Error(403, "the handoff call is accepted only from loopback, not from " + req.peer));
  }
  auto state_body = [this] {
    HandoffState h = Handoff();
    nlohmann::json j = {{"handoff", h.active}};
    if (h.active) {
      j["reason"] = h.reason;
      j["seconds_left"] = h.seconds_left;
      nlohmann::json models = nlohmann::json::array();
      for (const auto& m : registry_->Index())
        if (!registry_->FallbackEndpoints(m.name).empty()) models.push_back(m.name);
      j["forwarded_models"] = models;
    }
    return Json(200, j.dump());
  };
  if (IsGet(req)) return (void)resp->Send(state_body());
  if (req.method == "DELETE") {
    EndHandoff("cleared by " + req.peer);
    return (void)resp->Send(state_body());
  }
  if (req.method != "POST")
    return (void)resp->Send(Error(405, "use POST, DELETE or GET for /outpost/v1/handoff"));
  auto j = nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  auto bad = [&](const std::string& why) {
    UnroutedCounter("handoff_bad_request").Inc();
    resp->Send(Error(400, "handoff: " + why));
  };
  if (!j.is_object())
    return bad("the body must be a JSON object {\"reason\": \"...\", \"ttl_s\": N}");
  std::string reason = "unspecified";
  double ttl_s = 0;
  bool has_ttl = false;
  for (const auto& [k, v] : j.items()) {
    if (k == "reason") {
      if (!v.is_string()) return bad("'reason' must be a string");
      reason = v.get<std::string>();
    } else if (k == "ttl_s") {
      if (!v.is_number()) return bad("'ttl_s' must be a number of seconds");
      ttl_s = v.get<double>();
      has_ttl = true;
    } else {
      return bad("unknown member '" + k + "' (known: reason, ttl_s)");
    }
  }
  if (!has_ttl) return bad("'ttl_s' is required (the handoff ends by itself after it)");
  if (!(ttl_s > 0 && ttl_s <= 86400)) return bad("'ttl_s' must be in (0, 86400]");
  Status s = StartHandoff(reason + " (from " + req.peer + ")",
                          std::chrono::milliseconds(static_cast<int64_t>(ttl_s * 1000)));
  if (!s.ok()) return (void)resp->Send(ErrorFor(s, 1));
  resp->Send(state_body());
}

void InferenceService::Repository(const Request& req, std::string_view rest,
                                  std::shared_ptr<Responder> resp) {
  if (req.method != "POST")
    return (void)resp->Send(Error(405, "use POST for the model repository extension"));
  if (rest == "index") {
    auto r = v2::ParseRepositoryIndexRequest(req.body);
    if (!r.ok()) return (void)resp->Send(ErrorFor(r.status(), 1));
    std::vector<v2::RepositoryIndexEntry> entries;
    for (const auto& m : registry_->Index()) {
      if (r->ready && m.state != "READY") continue;
      entries.push_back({m.name, m.version, m.state, m.reason});
    }
    return (void)resp->Send(Json(200, v2::EncodeRepositoryIndex(entries)));
  }
  std::string_view tail;
  if (StripPrefix(rest, "models/", &tail)) {
    const std::string name(NextSegment(&tail));
    if (tail == "load") {
      auto body = v2::ParseRepositoryModelRequest(req.body);
      if (!body.ok()) return (void)resp->Send(ErrorFor(body.status(), 1));
      if (!opts_.find_manifest)
        return (void)resp->Send(Error(400, "this server has no manifest directory to load from"));
      std::lock_guard<std::mutex> lock(load_mu_);
      if (!loader_.joinable()) loader_ = std::thread([this] { LoaderLoop(); });
      loads_.push_back({name, std::move(resp)});
      load_cv_.notify_one();
      return;
    }
    if (tail == "unload") {
      auto body = v2::ParseRepositoryModelRequest(req.body);
      if (!body.ok()) return (void)resp->Send(ErrorFor(body.status(), 1));
      Status s = registry_->Unload(name);
      if (!s.ok()) return (void)resp->Send(ErrorFor(s, 1));
      return (void)resp->Send(Json(200, "{}"));
    }
  }
  UnroutedCounter("unknown_path").Inc();
  resp->Send(Error(404, "no such repository endpoint: " + req.path));
}

void InferenceService::LoaderLoop() {
  for (;;) {
    PendingLoad p;
    {
      std::unique_lock<std::mutex> lock(load_mu_);
      load_cv_.wait(lock, [this] { return stop_loader_ || !loads_.empty(); });
      if (loads_.empty()) return;
      p = std::move(loads_.front());
      loads_.pop_front();
    }
    auto m = opts_.find_manifest(p.name);
    if (!m.ok()) {
      p.resp->Send(ErrorFor(m.status(), 1));
      continue;
    }
    Status s = registry_->Load(*m);
    p.resp->Send(s.ok() ? Json(200, "{}") : Error(400, s.message()));
  }
}

}  // namespace outpost::serve
