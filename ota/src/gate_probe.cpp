// The health gate's V2 probe: a minimal HTTP/1.1 client (Connection: close) and a float32 .npy
// reader, both written for this purpose.
#include "outpost/ota/gate_probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "http_client.h"
#include "outpost/core/status.h"

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
                     const std::string& path, const std::string& body, int timeout_ms) {
  std::string err;
  int fd = Connect(host, port, timeout_ms, &err);
  if (fd < 0) return Unavailable(err);
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: " + host +
                    "\r\nConnection: close\r\nAccept: application/json\r\n";
  if (!body.empty())
    req +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
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
                     const std::string& body, int timeout_ms) {
  return internal::Http(cfg.host, cfg.port, method, path, body, timeout_ms);
}

struct Npy {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

// NumPy format 1.x/2.x, little-endian float32, C order.
Expected<Npy> ReadNpy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return NotFound("golden file not found: '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string b = ss.str();
  if (b.size() < 10 || b.compare(0, 6, "\x93NUMPY") != 0)
    return InvalidArgument("'" + path + "' is not a .npy file");
  size_t hlen = 0, hstart = b[6] == 1 ? 10 : 12;
  for (size_t i = 8; i < hstart; ++i)
    hlen |= static_cast<size_t>(static_cast<uint8_t>(b[i])) << (8 * (i - 8));
  if (hstart + hlen > b.size()) return InvalidArgument("'" + path + "': short header");
  const std::string h = b.substr(hstart, hlen);
  if (h.find("'descr': '<f4'") == std::string::npos ||
      h.find("'fortran_order': False") == std::string::npos)
    return Unsupported("'" + path + "': only little-endian float32 in C order is read");
  size_t sp = h.find("'shape': (");
  if (sp == std::string::npos) return InvalidArgument("'" + path + "': no shape");
  Npy out;
  size_t numel = 1;
  for (size_t i = sp + 10; i < h.size() && h[i] != ')'; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(h[i]))) continue;
    int64_t d = 0;
    while (i < h.size() && std::isdigit(static_cast<unsigned char>(h[i])))
      d = d * 10 + (h[i++] - '0');
    out.shape.push_back(d);
    numel *= static_cast<size_t>(d);
    --i;
  }
  const size_t data = hstart + hlen;
  if (b.size() - data != numel * 4)
    return InvalidArgument("'" + path + "': size does not match its shape");
  out.data.resize(numel);
  std::memcpy(out.data.data(), b.data() + data, numel * 4);
  return out;
}

void Flatten(const json& j, std::vector<double>* out) {
  if (j.is_array()) {
    for (const auto& e : j) Flatten(e, out);
  } else if (j.is_number()) {
    out->push_back(j.get<double>());
  }
}

ModelCheck ProbeModel(const ProbeConfig& cfg, const GoldenModel& g, int timeout_ms) {
  ModelCheck m;
  m.model = g.name;
  m.p95_budget_ms = g.p95_budget_ms;
  m.tol = g.tol;
  auto in = ReadNpy(g.golden_input);
  auto want = ReadNpy(g.golden_output);
  if (!in.ok() || !want.ok()) {
    m.error = (!in.ok() ? in.status() : want.status()).message();
    return m;
  }
  m.golden.assign(want->data.begin(), want->data.end());
  auto meta = Http(cfg, "GET", "/v2/models/" + g.name, "", timeout_ms);
  if (!meta.ok() || meta->status != 200) {
    m.error = "metadata: " + (meta.ok() ? "HTTP " + std::to_string(meta->status) + " " + meta->body
                                        : meta.status().message());
    return m;
  }
  json md = json::parse(meta->body, nullptr, false);
  if (md.is_discarded() || !md.contains("inputs") || md["inputs"].empty()) {
    m.error = "metadata without inputs: " + meta->body;
    return m;
  }
  json req = {{"inputs",
               {{{"name", md["inputs"][0]["name"]},
                 {"shape", in->shape},
                 {"datatype", "FP32"},
                 {"data", in->data}}}}};
  const std::string body = req.dump();
  for (int i = 0; i < std::max(1, cfg.runs); ++i) {
    // 429 is outpostd shedding load for a moment (its read-delay rule), not a wrong answer:
    // retried up to 4 times, 50 to 400 ms apart; the successful call's latency is recorded.
    auto t = Clock::now();
    auto r = Http(cfg, "POST", "/v2/models/" + g.name + "/infer", body, timeout_ms);
    for (int retry = 0; retry < 4 && r.ok() && r->status == 429; ++retry) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50 << retry));
      t = Clock::now();
      r = Http(cfg, "POST", "/v2/models/" + g.name + "/infer", body, timeout_ms);
    }
    double ms = MsSince(t);
    if (!r.ok() || r->status != 200) {
      m.error = "infer: " + (r.ok() ? "HTTP " + std::to_string(r->status) + " " + r->body
                                    : r.status().message());
      return m;
    }
    m.latencies_ms.push_back(ms);
    if (i == 0) {
      json out = json::parse(r->body, nullptr, false);
      if (out.is_discarded() || !out.contains("outputs") || out["outputs"].empty()) {
        m.error = "infer answer without outputs";
        return m;
      }
      Flatten(out["outputs"][0]["data"], &m.got);
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
