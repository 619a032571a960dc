// outpost conformance: runs the ONNX node test suite, one forked child per case (a crash or hang
// in one case is reported as that case's failure, not the runner's), N cases at a time.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>

#include "common.h"

namespace outpost::cli {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
const char* kUsage =
    "usage: outpost conformance SUITE_DIR [--backend cpu|opencl] [--report FILE.json]\n"
    "                           [--filter REGEX] [--jobs N] [--timeout SECONDS] [--threads N]\n"
    "\n"
    "Runs every case folder in SUITE_DIR (model.onnx + test_data_set_*/input_K.pb, output_K.pb)\n"
    "and classifies it: passed (every output within tolerance), unsupported (refused at load by\n"
    "the runtime's support check), failed (anything else). Tolerances: float32/float64 rtol 1e-3\n"
    "atol 1e-5; float16 rtol 1e-2 atol 1e-3; bfloat16 rtol 2e-2 atol 1e-2; exact for integers,\n"
    "bool and strings. Exit status 1 when any case failed, or when fewer cases passed than\n"
    "--min-passed (or passed entirely on the chosen backend than --min-passed-only-backend).\n";

struct Tol {
  double rtol, atol;
};

Tol TolFor(DataType t) {
  switch (t) {
    case DataType::kFloat16: return {1e-2, 1e-3};
    case DataType::kBFloat16: return {2e-2, 1e-2};
    default: return {1e-3, 1e-5};
  }
}

// Empty string when equal within tolerance, else a description of the first mismatch.
std::string Compare(const Tensor& got, const Tensor& want) {
  if (got.dtype() != want.dtype())
    return "dtype " + std::string(DataTypeName(got.dtype())) + ", expected " + std::string(DataTypeName(want.dtype()));
  if (got.shape() != want.shape()) return "shape " + got.shape().ToString() + ", expected " + want.shape().ToString();
  int64_t n = want.numel();
  if (want.dtype() == DataType::kString) {
    for (int64_t i = 0; i < n; ++i)
      if (got.data<std::string>()[i] != want.data<std::string>()[i])
        return "element " + std::to_string(i) + ": '" + got.data<std::string>()[i] + "', expected '" +
               want.data<std::string>()[i] + "'";
    return "";
  }
  if (IsFloating(want.dtype())) {
    Tol tol = TolFor(want.dtype());
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < n; ++i) {
      double g = ReadDouble(got, i), w = ReadDouble(want, i);
      bool ok = (std::isnan(g) && std::isnan(w)) || g == w ||
                (std::isfinite(w) && std::fabs(g - w) <= tol.atol + tol.rtol * std::fabs(w));
      if (!ok && bad++ == 0) first = i;
    }
    if (!bad) return "";
    char buf[256];
    std::snprintf(buf, sizeof buf, "%lld of %lld values out of tolerance; first at %lld: got %.9g, expected %.9g",
                  static_cast<long long>(bad), static_cast<long long>(n), static_cast<long long>(first),
                  ReadDouble(got, first), ReadDouble(want, first));
    return buf;
  }
  if (got.nbytes() && std::memcmp(got.raw(), want.raw(), got.nbytes()) != 0) {
    for (int64_t i = 0; i < n; ++i)
      if (ReadInt(got, i) != ReadInt(want, i))
        return "element " + std::to_string(i) + ": got " + std::to_string(ReadInt(got, i)) + ", expected " +
               std::to_string(ReadInt(want, i));
  }
  return "";
}

json RunCase(const fs::path& dir, const engine::SessionOptions& o) {
  json r = {{"name", dir.filename().string()}, {"backends_used", json::array()}};
  auto s = engine::Session::Load((dir / "model.onnx").string(), o);
  if (!s.ok()) {
    r["status"] = s.status().code() == Code::kUnsupported ? "unsupported" : "failed";
    r["detail"] = s.status().ToString();
    return r;
  }
  std::vector<fs::path> sets;
  for (auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) sets.push_back(e.path());
  std::sort(sets.begin(), sets.end());
  if (sets.empty()) {
    r["status"] = "failed";
    r["detail"] = "no test_data_set_* folder";
    return r;
  }
  std::set<std::string> used;
  for (auto& set : sets) {
    std::vector<std::pair<std::string, Tensor>> inputs;
    const auto& decl = (*s)->inputs();
    for (size_t k = 0;; ++k) {
      fs::path p = set / ("input_" + std::to_string(k) + ".pb");
      if (!fs::exists(p)) break;
      auto t = engine::ReadTensorFile(p.string());
      if (!t.ok()) {
        r["status"] = "failed";
        r["detail"] = "reading " + p.filename().string() + ": " + t.status().ToString();
        return r;
      }
      if (k >= decl.size()) {
        r["status"] = "failed";
        r["detail"] = "the test data has more inputs than the model declares";
        return r;
      }
      inputs.emplace_back(decl[k].name, std::move(t).value());
    }
    auto outs = (*s)->Run(inputs);
    for (auto& b : (*s)->BackendsUsed()) used.insert(b);
    if (!outs.ok()) {
      r["status"] = "failed";
      r["detail"] = set.filename().string() + ": run: " + outs.status().ToString();
      return r;
    }
    for (size_t k = 0; k < outs->size(); ++k) {
      fs::path p = set / ("output_" + std::to_string(k) + ".pb");
      if (!fs::exists(p)) continue;
      auto want = engine::ReadTensorFile(p.string());
      if (!want.ok()) {
        r["status"] = "failed";
        r["detail"] = "reading " + p.filename().string() + ": " + want.status().ToString();
        return r;
      }
      std::string diff = Compare((*outs)[k], *want);
      if (!diff.empty()) {
        r["status"] = "failed";
        r["detail"] = set.filename().string() + " output " + std::to_string(k) + " '" + (*s)->outputs()[k].name +
                      "': " + diff;
        r["backends_used"] = std::vector<std::string>(used.begin(), used.end());
        return r;
      }
    }
  }
  r["status"] = "passed";
  r["detail"] = "";
  r["backends_used"] = std::vector<std::string>(used.begin(), used.end());
  return r;
}

struct Child {
  pid_t pid;
  int fd;
  std::string name;
  std::string out;
  double started;
  size_t index;
};

double Now() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

int CmdConformance(int argc, char** argv) {
  Args a;
  auto specs = BackendFlags();
  specs.push_back({"--report"});
  specs.push_back({"--filter"});
  specs.push_back({"--jobs"});
  specs.push_back({"--timeout"});
  specs.push_back({"--min-passed"});
  specs.push_back({"--min-passed-only-backend"});
  if (!a.Parse(argc, argv, 2, specs, 1, 1)) return Usage(kUsage, a.error());
  if (a.help()) return std::fputs(kUsage, stdout), 0;
  engine::SessionOptions o;
  std::string err;
  if (!BackendOptionsFromArgs(a, &o, &err)) return Usage(kUsage, err);
  long long jobs, timeout, min_passed, min_only;
  if (!a.GetInt("--jobs", 2, 1, 256, &jobs) || !a.GetInt("--timeout", 120, 1, 86400, &timeout) ||
      !a.GetInt("--min-passed", 0, 0, 1 << 30, &min_passed) ||
      !a.GetInt("--min-passed-only-backend", 0, 0, 1 << 30, &min_only))
    return Usage(kUsage, a.error());
  if (o.backend_options.threads == 0) o.backend_options.threads = 1;
  std::regex filter;
  try {  // std::regex reports bad patterns only by exception
    filter = std::regex(a.Get("--filter", ".*"));
  } catch (const std::regex_error& e) {
    return Usage(kUsage, "bad --filter: " + std::string(e.what()));
  }
  fs::path suite = a.positional()[0];
  std::error_code ec;
  if (!fs::is_directory(suite, ec)) {
    std::fprintf(stderr, "outpost: suite directory '%s' does not exist\n", suite.c_str());
    return 1;
  }
  std::vector<fs::path> cases;
  for (auto& e : fs::directory_iterator(suite))
    if (e.is_directory() && fs::exists(e.path() / "model.onnx") &&
        std::regex_search(e.path().filename().string(), filter))
      cases.push_back(e.path());
  std::sort(cases.begin(), cases.end());
  std::vector<json> results(cases.size());
  std::vector<Child> running;
  size_t next = 0;
  std::fflush(stdout);
  while (next < cases.size() || !running.empty()) {
    while (next < cases.size() && running.size() < static_cast<size_t>(jobs)) {
      int fds[2];
      if (pipe(fds) != 0) {
        std::perror("pipe");
        return 1;
      }
      pid_t pid = fork();
      if (pid == 0) {
        close(fds[0]);
        std::string line = RunCase(cases[next], o).dump();
        size_t off = 0;
        while (off < line.size()) {
          ssize_t w = write(fds[1], line.data() + off, line.size() - off);
          if (w <= 0) break;
          off += static_cast<size_t>(w);
        }
        _exit(0);
      }
      close(fds[1]);
      running.push_back({pid, fds[0], cases[next].filename().string(), "", Now(), next});
      ++next;
    }
    std::vector<pollfd> pfds;
    for (auto& c : running) pfds.push_back({c.fd, POLLIN, 0});
    poll(pfds.data(), pfds.size(), 200);
    for (size_t i = 0; i < running.size();) {
      Child& c = running[i];
      bool done = false;
      if (pfds.size() > i && (pfds[i].revents & (POLLIN | POLLHUP))) {
        char buf[65536];
        ssize_t n = read(c.fd, buf, sizeof buf);
        if (n > 0) c.out.append(buf, static_cast<size_t>(n));
        else done = true;
      }
      bool timed_out = !done && Now() - c.started > static_cast<double>(timeout);
      if (timed_out) kill(c.pid, SIGKILL);
      if (done || timed_out) {
        int status = 0;
        waitpid(c.pid, &status, 0);
        close(c.fd);
        json r;
        if (!timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0 && !c.out.empty()) {
          r = json::parse(c.out, nullptr, false);
        }
        if (r.is_discarded() || r.is_null()) {
          r = {{"name", c.name}, {"status", "failed"}, {"backends_used", json::array()}};
          if (timed_out) r["detail"] = "timed out after " + std::to_string(timeout) + " s";
          else if (WIFSIGNALED(status)) r["detail"] = std::string("crashed: ") + strsignal(WTERMSIG(status));
          else r["detail"] = "the case runner exited with status " + std::to_string(WEXITSTATUS(status));
        }
        results[c.index] = std::move(r);
        running.erase(running.begin() + static_cast<long>(i));
        pfds.erase(pfds.begin() + static_cast<long>(i));
        continue;
      }
      ++i;
    }
  }
  int passed = 0, failed = 0, unsupported = 0, only_backend = 0;
  for (auto& r : results) {
    std::string st = r["status"];
    if (st == "passed") {
      ++passed;
      if (r["backends_used"].size() == 1 && r["backends_used"][0] == o.backend) ++only_backend;
    } else if (st == "failed") {
      ++failed;
      std::printf("FAILED %s: %s\n", r["name"].get<std::string>().c_str(), r["detail"].get<std::string>().c_str());
    } else {
      ++unsupported;
    }
  }
  json report = {{"backend", o.backend}, {"passed", passed}, {"failed", failed}, {"unsupported", unsupported},
                 {"passed_only_on_backend", only_backend}, {"cases", results}};
  if (a.Has("--report")) {
    std::ofstream f(a.Get("--report"));
    f << report.dump(1) << "\n";
    if (!f.good()) {
      std::fprintf(stderr, "outpost: cannot write report '%s'\n", a.Get("--report").c_str());
      return 1;
    }
  }
  std::printf("conformance (%s): %d passed, %d failed, %d unsupported, %zu cases; %d passed entirely on %s\n",
              o.backend.c_str(), passed, failed, unsupported, results.size(), only_backend, o.backend.c_str());
  if (passed < min_passed) std::printf("below the floor: %d passed, at least %lld required\n", passed, min_passed);
  if (only_backend < min_only)
    std::printf("below the floor: %d passed entirely on %s, at least %lld required\n", only_backend,
                o.backend.c_str(), min_only);
  return failed || passed < min_passed || only_backend < min_only ? 1 : 0;
}

}  // namespace outpost::cli
