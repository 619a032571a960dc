// The health gate's V2 probe: a minimal HTTP/1.1 client (Connection: close) written for this
// purpose; golden tensors read by runtime/core (tensor_file.h: .npy and TensorProto .pb) and
// matched to the model's names by config/ (golden.h).
#include "outpost/ota/gate_probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "http_client.h"
#include "outpost/config/golden.h"
#include "outpost/core/status.h"
#include "outpost/core/tensor_file.h"

namespace outpost::ota {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// Connects with a timeout; -1 and *error on failure.
int Connect(const std::string& host, uint16_t port, int timeout_ms, std::string* error) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) {
    *error = "not a numeric IPv4 address: '" + host + "'";
    return -1;
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 && errno != EINPROGRESS) {
    *error = "connect to " + host + ":" + std::to_string(port) + ": " + std::strerror(errno);
    close(fd);
    return -1;
  }
  pollfd p{fd, POLLOUT, 0};
  int soerr = 0;
  socklen_t len = sizeof soerr;
  if (poll(&p, 1, timeout_ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 ||
      soerr != 0) {
    *error = "connect to " + host + ":" + std::to_string(port) + ": " +
             (soerr ? std::strerror(soerr) : "timed out");
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

namespace internal {

Expected<Reply> Http(const std::string& host, uint16_t port, const std::string& method,
                     const std::string& path, const std::string& body, int timeout_ms,
                     std::optional<size_t> json_length) {
  std::string err;
  int fd = Connect(host, port, timeout_ms, &err);
  if (fd < 0) return Unavailable(err);
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: " + host +
                    "\r\nConnection: close\r\nAccept: application/json\r\n";
  if (json_length)
    req += "Content-Type: application/octet-stream\r\nInference-Header-Content-Length: " +
           std::to_string(*json_length) + "\r\n";
  else if (!body.empty())
    req += "Content-Type: application/json\r\n";
  if (!body.empty()) req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  const auto t0 = Clock::now();
  auto left = [&] { return std::max(0, timeout_ms - static_cast<int>(MsSince(t0))); };
  size_t off = 0;
  while (off < req.size()) {
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, left()) != 1) break;
    ssize_t n = send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (n <= 0 && errno != EAGAIN) break;
    if (n > 0) off += static_cast<size_t>(n);
  }
  std::string in;
  size_t need = std::string::npos;  // total bytes once the headers are known
  while (off == req.size() && in.size() < need) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, left()) != 1) break;
    char buf[65536];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EAGAIN) continue;
    if (n <= 0) break;
    in.append(buf, static_cast<size_t>(n));
    size_t h = in.find("\r\n\r\n");
    if (need == std::string::npos && h != std::string::npos) {
      std::string head = in.substr(0, h);
      for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      size_t cl = head.find("\r\ncontent-length:");
      if (cl != std::string::npos) need = h + 4 + std::stoul(head.substr(cl + 17));
    }
  }
  close(fd);
  size_t h = in.find("\r\n\r\n");
  if (off != req.size() || h == std::string::npos || in.compare(0, 9, "HTTP/1.1 ") != 0 ||
      (need != std::string::npos && in.size() < need))
    return Unavailable(method + " " + path + ": no complete answer within " +
                       std::to_string(timeout_ms) + " ms");
  Reply r;
  r.status = std::atoi(in.c_str() + 9);
  r.body = in.substr(h + 4, need == std::string::npos ? std::string::npos : need - h - 4);
  return r;
}

}  // namespace internal

namespace {

using internal::Reply;

Expected<Reply> Http(const ProbeConfig& cfg, const std::string& method, const std::string& path,
                     const std::string& body, int timeout_ms,
                     std::optional<size_t> json_length = std::nullopt) {
  return internal::Http(cfg.host, cfg.port, method, path, body, timeout_ms, json_length);
}

bool ExactType(DataType t) { return IsInteger(t) || t == DataType::kBool; }

// The golden tensor as the gate compares it.
OutputCheck GoldenOutput(const std::string& name, const Tensor& t) {
  OutputCheck o;
  o.name = name;
  o.datatype = std::string(DataTypeV2Name(t.dtype()));
  o.exact = ExactType(t.dtype());
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (o.exact)
      o.golden_int.push_back(ReadInt(t, i));
    else
      o.golden.push_back(ReadDouble(t, i));
  }
  return o;
}

// An answer's `data` (flat or nested), as the golden is held. JSON null (outpostd's NaN and
// infinities) reads as NaN, so that it fails.
void Flatten(const json& j, OutputCheck* o) {
  if (j.is_array()) {
    for (const auto& e : j) Flatten(e, o);
  } else if (o->exact) {
    if (j.is_boolean()) o->got_int.push_back(j.get<bool>() ? 1 : 0);
    else if (j.is_number_unsigned()) o->got_int.push_back(static_cast<int64_t>(j.get<uint64_t>()));
    else if (j.is_number_integer()) o->got_int.push_back(j.get<int64_t>());
    else o->got_int.push_back(INT64_MIN);  // not an integer: fails unless the golden is that
  } else {
    o->got.push_back(j.is_number() ? j.get<double>() : std::nan(""));
  }
}

// The inference request: every golden input in its own datatype through the binary tensor data
// extension (the bytes as the golden file holds them, exact for every type), the golden outputs
// asked for by name, answered in JSON.
std::string InferBody(const std::vector<std::pair<std::string, Tensor>>& inputs,
                      const std::vector<OutputCheck>& outputs, size_t* json_length) {
  json req = {{"inputs", json::array()}, {"outputs", json::array()}};
  std::string data;
  for (const auto& [name, t] : inputs) {
    req["inputs"].push_back({{"name", name},
                             {"shape", t.shape().vec()},
                             {"datatype", DataTypeV2Name(t.dtype())},
                             {"parameters", {{"binary_data_size", t.nbytes()}}}});
    data.append(static_cast<const char*>(t.raw()), t.nbytes());
  }
  for (const auto& o : outputs) req["outputs"].push_back({{"name", o.name}});
  std::string body = req.dump();
  *json_length = body.size();
  return body + data;
}

ModelCheck ProbeModel(const ProbeConfig& cfg, const GoldenModel& g, int timeout_ms) {
  ModelCheck m;
  m.model = g.name;
  m.p95_budget_ms = g.p95_budget_ms;
  m.tol = g.tol;
  auto meta = Http(cfg, "GET", "/v2/models/" + g.name, "", timeout_ms);
  if (!meta.ok() || meta->status != 200) {
    m.error = "metadata: " + (meta.ok() ? "HTTP " + std::to_string(meta->status) + " " + meta->body
                                        : meta.status().message());
    return m;
  }
  json md = json::parse(meta->body, nullptr, false);
  if (md.is_discarded() || !md.contains("inputs") || md["inputs"].empty() ||
      !md.contains("outputs")) {
    m.error = "metadata without inputs or outputs: " + meta->body;
    return m;
  }
  std::vector<std::string> in_names, out_names;
  for (const auto& v : md["inputs"]) in_names.push_back(v.value("name", ""));
  for (const auto& v : md["outputs"]) out_names.push_back(v.value("name", ""));
  // A golden path is one file or a directory of <tensor name>.npy|.pb (config/golden.h).
  auto in_files = config::MatchGoldenInputs(g.golden_input, in_names);
  auto out_files = config::MatchGoldenOutputs(g.golden_output, out_names);
  if (!in_files.ok() || !out_files.ok()) {
    m.error = (!in_files.ok() ? in_files.status() : out_files.status()).message();
    return m;
  }
  std::vector<std::pair<std::string, Tensor>> inputs;
  for (const auto& f : *in_files) {
    auto t = ReadNpyOrTensorProto(f.path);
    if (!t.ok()) {
      m.error = t.status().message();
      return m;
    }
    inputs.push_back({f.tensor, std::move(t).value()});
  }
  std::vector<Shape> golden_shapes;
  for (const auto& f : *out_files) {
    auto t = ReadNpyOrTensorProto(f.path);
    if (!t.ok()) {
      m.error = t.status().message();
      return m;
    }
    m.outputs.push_back(GoldenOutput(f.tensor, *t));
    golden_shapes.push_back(t->shape());
  }
  size_t json_length = 0;
  const std::string body = InferBody(inputs, m.outputs, &json_length);
  for (int i = 0; i < std::max(1, cfg.runs); ++i) {
    // 429 is outpostd shedding load for a moment (its read-delay rule), not a wrong answer:
    // retried up to 4 times, 50 to 400 ms apart; the successful call's latency is recorded.
    const std::string path = "/v2/models/" + g.name + "/infer";
    auto t = Clock::now();
    auto r = Http(cfg, "POST", path, body, timeout_ms, json_length);
    for (int retry = 0; retry < 4 && r.ok() && r->status == 429; ++retry) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50 << retry));
      t = Clock::now();
      r = Http(cfg, "POST", path, body, timeout_ms, json_length);
    }
    double ms = MsSince(t);
    if (!r.ok() || r->status != 200) {
      m.error = "infer: " + (r.ok() ? "HTTP " + std::to_string(r->status) + " " + r->body
                                    : r.status().message());
      return m;
    }
    m.latencies_ms.push_back(ms);
    if (i > 0) continue;  // the first answer is compared
    json out = json::parse(r->body, nullptr, false);
    if (out.is_discarded() || !out.contains("outputs") || !out["outputs"].is_array()) {
      m.error = "infer answer without outputs";
      return m;
    }
    for (size_t k = 0; k < m.outputs.size(); ++k) {
      OutputCheck& o = m.outputs[k];
      const json* got = nullptr;
      for (const auto& a : out["outputs"])
        if (a.value("name", "") == o.name) got = &a;
      if (got == nullptr || !got->contains("data")) {
        m.error = "the answer has no output '" + o.name + "'";
        return m;
      }
      o.got_datatype = got->value("datatype", "");
      if (got->value("shape", std::vector<int64_t>{}) != golden_shapes[k].vec()) {
        m.error = "output '" + o.name + "' has shape " + got->value("shape", json::array()).dump() +
                  ", golden " + golden_shapes[k].ToString();
        return m;
      }
      Flatten((*got)["data"], &o);
    }
  }
  return m;
}

}  // namespace

GateInput Probe(const ProbeConfig& cfg) {
  const auto t0 = Clock::now();
  const int call_ms = static_cast<int>(std::max(1000.0, cfg.deadline_ms));
  GateInput g;
  g.deadline_ms = cfg.deadline_ms;
  // After a boot outpostd may still be starting or loading its models: readiness is polled
  // until it says ready or the gate's deadline has passed.
  for (;;) {
    auto ready = Http(cfg, "GET", "/v2/health/ready", "", call_ms);
    g.daemon_ready = ready.ok() && ready->status == 200;
    if (g.daemon_ready || MsSince(t0) + 100 >= cfg.deadline_ms) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (const auto& m : cfg.models) g.models.push_back(ProbeModel(cfg, m, call_ms));
  if (!cfg.broker_host.empty()) {
    g.broker_required = true;
    std::string err;
    int fd = Connect(cfg.broker_host, cfg.broker_port, 2000, &err);
    g.broker_reachable = fd >= 0;
    if (fd >= 0) close(fd);
  }
  g.elapsed_ms = MsSince(t0);
  return g;
}

Expected<HttpReply> HttpGet(const std::string& host, uint16_t port, const std::string& path,
                            int timeout_ms) {
  ProbeConfig c;
  c.host = host;
  c.port = port;
  return Http(c, "GET", path, "", timeout_ms);
}

}  // namespace outpost::ota
