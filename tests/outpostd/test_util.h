// Shared pieces of the outpostd integration tests: a sandbox (temp dir with manifests and
// configs), starting the real daemon on an ephemeral port, the golden files, Prometheus text
// parsing, and running shell commands (curl, promtool, systemd-analyze).
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "outpostd/npy.h"
#include "outpostd/process.h"
#include "outpostd/v2_client.h"

#ifndef OUTPOSTD_PATH
#error "OUTPOSTD_PATH must name the outpostd binary"
#endif
#ifndef OUTPOST_TEST_MODELS_DIR
#error "OUTPOST_TEST_MODELS_DIR must name tests/models"
#endif

namespace outpost::testing {

// The binary under test: the one built with the tests, or $OUTPOSTD_BIN (e.g. an installed one).
inline const std::string kOutpostd = std::getenv("OUTPOSTD_BIN") && *std::getenv("OUTPOSTD_BIN")
                                         ? std::getenv("OUTPOSTD_BIN")
                                         : OUTPOSTD_PATH;
inline const std::string kModelsDir = OUTPOST_TEST_MODELS_DIR;

// An InferenceService manifest (KServe v1beta1) with outpost.io/ annotations.
inline std::string Manifest(const std::string& name, const std::string& storage_uri,
                            const std::map<std::string, std::string>& annotations = {}) {
  std::string s =
      "apiVersion: serving.kserve.io/v1beta1\n"
      "kind: InferenceService\n"
      "metadata:\n"
      "  name: " +
      name + "\n";
  if (!annotations.empty()) {
    s += "  annotations:\n";
    for (const auto& [k, v] : annotations) s += "    outpost.io/" + k + ": \"" + v + "\"\n";
  }
  s += "spec:\n"
       "  predictor:\n"
       "    model:\n"
       "      modelFormat:\n"
       "        name: onnx\n"
       "      storageUri: " +
       storage_uri + "\n";
  return s;
}

// A started outpostd: its process and where it listens.
struct Daemon {
  std::unique_ptr<Process> proc;
  std::string host;
  uint16_t port = 0;
  std::string listening_line;

  std::string Url(const std::string& path) const {
    return "http://" + host + ":" + std::to_string(port) + path;
  }
};

struct StartOptions {
  std::vector<std::string> args;  // besides --manifests/--models/--listen, which the sandbox sets
  std::vector<std::string> env;
  bool watchdog_pid = false;
  std::string listen = "127.0.0.1:0";
  bool wait_listening = true;
  int timeout_ms = 30000;
};

// A temp dir laid out as a device: manifests/, models/ (empty unless a test copies models in;
// by default manifests resolve models under tests/models), config files, daemon logs.
class Sandbox {
 public:
  Sandbox() {
    fs::create_directories(dir_ / "manifests");
    fs::create_directories(dir_ / "models");
  }
  const TempDir& dir() const { return dir_; }
  std::string manifests() const { return dir_ / "manifests"; }
  std::string models() const { return dir_ / "models"; }
  std::string path(const std::string& rel) const { return dir_ / rel; }

  void AddManifest(const std::string& file, const std::string& text) {
    WriteFile(manifests() + "/" + file, text);
  }
  std::string AddConfig(const std::string& text, const std::string& file = "device.yaml") {
    WriteFile(path(file), text);
    return path(file);
  }
  // Copies a model from tests/models into models/ (as `as`).
  void CopyModel(const std::string& from, const std::string& as) {
    fs::copy_file(kModelsDir + "/" + from, models() + "/" + as,
                  fs::copy_options::overwrite_existing);
  }

  // Starts outpostd serving manifests/ (or `manifests_dir`) with models from `models_dir`
  // (tests/models by default). nullptr and *error (with the daemon's stderr) when it does not
  // come up.
  std::unique_ptr<Daemon> Start(const StartOptions& o, std::string* error,
                                const std::string& models_dir = kModelsDir,
                                const std::string& manifests_dir = "") {
    ProcessOptions po;
    po.argv = {kOutpostd,     "--listen",
               o.listen,      "--manifests",
               manifests_dir.empty() ? manifests() : manifests_dir,
               "--models",    models_dir};
    po.argv.insert(po.argv.end(), o.args.begin(), o.args.end());
    po.env = o.env;
    // Not under systemd: no journal, no notify socket, no watchdog unless the test sets them.
    po.unset_env = {"JOURNAL_STREAM", "INVOCATION_ID", "NOTIFY_SOCKET",
                    "WATCHDOG_USEC",  "LISTEN_FDS",    "OUTPOST_LOG_LEVEL"};
    po.watchdog_pid = o.watchdog_pid;
    po.stderr_path = path("outpostd-" + std::to_string(++started_) + ".log");
    auto d = std::make_unique<Daemon>();
    d->proc = Process::Start(po, error);
    if (!d->proc) return nullptr;
    if (!o.wait_listening) return d;
    // "outpostd listening on <addr>:<port>"
    static const std::regex re(R"(^outpostd listening on (.+):([0-9]+)$)");
    for (;;) {
      auto line = d->proc->ReadLine(o.timeout_ms);
      if (!line) {
        auto rc = d->proc->Wait(200);
        *error = "outpostd did not report its port (" +
                 (rc ? "exit status " + std::to_string(*rc) : std::string("still running")) +
                 "); stderr:\n" + d->proc->Stderr();
        return nullptr;
      }
      std::smatch m;
      if (std::regex_match(*line, m, re)) {
        d->listening_line = *line;
        d->host = m[1];
        d->port = static_cast<uint16_t>(std::stoi(m[2]));
        return d;
      }
    }
  }

 private:
  TempDir dir_;
  int started_ = 0;
};

// ---- golden files -------------------------------------------------------------------------

struct Golden {
  NpyFloat input, output;
};

inline std::optional<Golden> LoadGolden(const std::string& model, std::string* error) {
  const std::string d = kModelsDir + "/golden/" + model + "/";
  auto in = ReadNpyFloat(d + "input_0.npy", error);
  if (!in) return std::nullopt;
  auto out = ReadNpyFloat(d + "output_0.npy", error);
  if (!out) return std::nullopt;
  return Golden{std::move(*in), std::move(*out)};
}

// |got - want| <= 1e-4 + 1e-3 * |want| (tests/models' tolerance, against ONNX Runtime).
inline bool Close(double got, double want) {
  return std::fabs(got - want) <= 1e-4 + 1e-3 * std::fabs(want);
}

// Index of the first element out of tolerance, or -1.
inline int64_t FirstMismatch(const std::vector<double>& got, const std::vector<float>& want,
                             size_t want_offset = 0) {
  for (size_t i = 0; i < got.size(); ++i)
    if (want_offset + i >= want.size() || !Close(got[i], want[want_offset + i]))
      return static_cast<int64_t>(i);
  return -1;
}

// ---- Prometheus text format -------------------------------------------------------------

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

inline std::vector<Sample> ParsePrometheus(const std::string& text) {
  std::vector<Sample> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    Sample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        size_t eq = line.find('=', i);
        if (eq == std::string::npos) break;
        std::string key = line.substr(i, eq - i);
        std::string val;
        size_t j = eq + 2;  // after ="
        while (j < line.size() && line[j] != '"') {
          if (line[j] == '\\' && j + 1 < line.size()) {
            ++j;
            val += line[j] == 'n' ? '\n' : line[j];
          } else {
            val += line[j];
          }
          ++j;
        }
        s.labels[key] = val;
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      ++i;  // '}'
    }
    while (i < line.size() && line[i] == ' ') ++i;
    const std::string v = line.substr(i, line.find(' ', i) - i);
    s.value = v == "+Inf" ? INFINITY : v == "-Inf" ? -INFINITY : std::strtod(v.c_str(), nullptr);
    out.push_back(std::move(s));
  }
  return out;
}

// The samples named `name` whose labels include `labels`.
inline std::vector<Sample> Find(const std::vector<Sample>& all, const std::string& name,
                                const std::map<std::string, std::string>& labels = {}) {
  std::vector<Sample> r;
  for (const auto& s : all) {
    if (s.name != name) continue;
    bool ok = true;
    for (const auto& [k, v] : labels) {
      auto it = s.labels.find(k);
      ok = ok && it != s.labels.end() && it->second == v;
    }
    if (ok) r.push_back(s);
  }
  return r;
}

// The value of the one sample matching; NaN when none or several match.
inline double Value(const std::vector<Sample>& all, const std::string& name,
                    const std::map<std::string, std::string>& labels = {}) {
  auto r = Find(all, name, labels);
  return r.size() == 1 ? r[0].value : NAN;
}

// ---- shell commands ---------------------------------------------------------------------

struct CommandResult {
  int status = -1;
  std::string output;  // stdout (and stderr when the command redirects it)
};

inline CommandResult RunCommand(const std::string& cmd) {
  CommandResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

inline std::string ShellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// ---- sd_notify receiver -----------------------------------------------------------------

// A unix datagram socket standing in for systemd's notify socket.
class NotifySocket {
 public:
  explicit NotifySocket(std::string path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path_.c_str(), sizeof a.sun_path - 1);
    ::unlink(path_.c_str());
    if (fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~NotifySocket() {
    if (fd_ >= 0) ::close(fd_);
    ::unlink(path_.c_str());
  }
  bool ok() const { return fd_ >= 0; }
  const std::string& path() const { return path_; }

  // The next datagram, or nullopt after timeout_ms.
  std::optional<std::string> Receive(int timeout_ms) {
    pollfd p{fd_, POLLIN, 0};
    int r;
    do r = ::poll(&p, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    if (r <= 0) return std::nullopt;
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<size_t>(n));
  }

  // Receives until a datagram containing the line `line` arrives; every datagram read is
  // appended to *seen. The matching datagram, or nullopt after timeout_ms.
  std::optional<std::string> WaitFor(const std::string& line, int timeout_ms,
                                     std::vector<std::string>* seen) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            until - std::chrono::steady_clock::now())
                            .count();
      if (left <= 0) return std::nullopt;
      auto m = Receive(static_cast<int>(left));
      if (!m) return std::nullopt;
      seen->push_back(*m);
      if (HasLine(*m, line)) return m;
    }
  }

  static bool HasLine(const std::string& msg, const std::string& line) {
    std::istringstream in(msg);
    std::string l;
    while (std::getline(in, l))
      if (l == line) return true;
    return false;
  }
  static std::string Field(const std::string& msg, const std::string& key) {
    std::istringstream in(msg);
    std::string l;
    while (std::getline(in, l))
      if (l.rfind(key + "=", 0) == 0) return l.substr(key.size() + 1);
    return "";
  }

 private:
  std::string path_;
  int fd_ = -1;
};

inline std::string Join(const std::vector<std::string>& v, const std::string& sep = " | ") {
  std::string s;
  for (const auto& e : v) s += (s.empty() ? "" : sep) + e;
  return s;
}

}  // namespace outpost::testing
