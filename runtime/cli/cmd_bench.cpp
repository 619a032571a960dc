// outpost bench: load time, first run, latency percentiles, peak RSS.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>

#include <nlohmann/json.hpp>

#include "common.h"

namespace outpost::cli {
namespace {
const char* kBenchUsage =
    "usage: outpost bench MODEL [--backend cpu|opencl] [--threads N] [--warmup N] [--runs N]\n"
    "                     [--input NAME=FILE ...] [--dim N] [--json] [--profile]\n"
    "\n"
    "Measures load time, first-run time, p50/p90/p99 latency over --runs runs (after --warmup),\n"
    "and peak RSS. Inputs default to deterministic random data, symbolic dimensions set to --dim\n"
    "(default 1). --json prints one object with load_ms, first_run_ms, p50_ms, p90_ms, p99_ms,\n"
    "mean_ms, peak_rss_mb, runs, the placement summary and \"backends\" (each backend's\n"
    "description, with the path its 8-bit kernels take). --profile times every node (the device\n"
    "is synchronized after each one, so latencies rise) and prints the time per op type and\n"
    "backend per run (in --json: \"profile\": [{op, backend, calls, ms}]).\n";

double Ms(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}
}  // namespace

int CmdBench(int argc, char** argv) {
  Args a;
  auto specs = BackendFlags();
  specs.push_back({"--warmup"});
  specs.push_back({"--runs"});
  specs.push_back({"--input", true, true});
  specs.push_back({"--dim"});
  specs.push_back({"--json", false});
  specs.push_back({"--profile", false});
  if (!a.Parse(argc, argv, 2, specs, 1, 1)) return Usage(kBenchUsage, a.error());
  if (a.help()) return std::fputs(kBenchUsage, stdout), 0;
  engine::SessionOptions o;
  std::string err;
  long long warmup, runs, dim;
  if (!BackendOptionsFromArgs(a, &o, &err)) return Usage(kBenchUsage, err);
  if (!a.GetInt("--warmup", 5, 0, 1000000, &warmup) || !a.GetInt("--runs", 50, 1, 10000000, &runs) ||
      !a.GetInt("--dim", 1, 1, 1 << 20, &dim))
    return Usage(kBenchUsage, a.error());
  o.profile = a.Has("--profile");
  auto t0 = std::chrono::steady_clock::now();
  auto s = engine::Session::Load(a.positional()[0], o);
  auto t1 = std::chrono::steady_clock::now();
  if (!s.ok()) {
    return Fail(s.status());
  }
  auto inputs = a.Has("--input") ? ReadInputs(a.All("--input")) : RandomInputs(**s, dim);
  if (!inputs.ok()) {
    return Fail(inputs.status());
  }
  auto r0 = std::chrono::steady_clock::now();
  auto first = (*s)->Run(*inputs);
  auto r1 = std::chrono::steady_clock::now();
  if (!first.ok()) {
    return Fail(first.status());
  }
  for (long long i = 0; i < warmup; ++i) (void)(*s)->Run(*inputs);
  const std::vector<engine::OpProfile> before = (*s)->Profile();
  std::vector<double> lat;
  lat.reserve(runs);
  for (long long i = 0; i < runs; ++i) {
    auto b = std::chrono::steady_clock::now();
    auto out = (*s)->Run(*inputs);
    auto e = std::chrono::steady_clock::now();
    if (!out.ok()) {
      std::fprintf(stderr, "outpost: run %lld: %s\n", i, out.status().ToString().c_str());
      return 1;
    }
    lat.push_back(Ms(b, e));
  }
  std::vector<double> sorted = lat;
  std::sort(sorted.begin(), sorted.end());
  auto pct = [&](double p) { return sorted[std::min(sorted.size() - 1, static_cast<size_t>(p * (sorted.size() - 1) + 0.5))]; };
  double mean = 0;
  for (double x : lat) mean += x;
  mean /= static_cast<double>(lat.size());
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double rss_mb = static_cast<double>(ru.ru_maxrss) / 1024.0;
  // Per-run time by op type over the measured runs (warmup and first run subtracted).
  nlohmann::json prof = nlohmann::json::array();
  std::string prof_text;
  for (const auto& p : (*s)->Profile()) {
    double ms = p.total_ms;
    int64_t calls = p.calls;
    for (const auto& q : before)
      if (q.op_type == p.op_type && q.backend == p.backend) ms -= q.total_ms, calls -= q.calls;
    const double per_run = ms / static_cast<double>(runs);
    prof.push_back({{"op", p.op_type}, {"backend", p.backend}, {"calls", calls / runs}, {"ms", per_run}});
    char line[160];
    std::snprintf(line, sizeof line, "  %-28s %-7s %5lld calls %9.3f ms\n", p.op_type.c_str(), p.backend.c_str(),
                  static_cast<long long>(calls / runs), per_run);
    prof_text += line;
  }
  std::map<std::string, int> placement;
  for (auto& p : (*s)->report().placement) placement[p.backend]++;
  if (a.Has("--json")) {
    nlohmann::json j = {{"model", a.positional()[0]}, {"backend", o.backend}, {"threads", o.backend_options.threads},
                        {"load_ms", Ms(t0, t1)}, {"first_run_ms", Ms(r0, r1)}, {"p50_ms", pct(0.5)},
                        {"p90_ms", pct(0.9)}, {"p99_ms", pct(0.99)}, {"mean_ms", mean}, {"min_ms", sorted.front()},
                        {"peak_rss_mb", rss_mb}, {"runs", runs}, {"placement", placement},
                        {"planned_peak_mb", static_cast<double>((*s)->report().planned_peak_bytes) / 1e6},
                        {"backends", (*s)->report().backends}};
    if (o.profile) j["profile"] = prof;
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("model: %s (backend %s)\n", a.positional()[0].c_str(), o.backend.c_str());
    for (const std::string& b : (*s)->report().backends) std::printf("  %s\n", b.c_str());
    std::printf("load: %.2f ms, first run: %.2f ms\n", Ms(t0, t1), Ms(r0, r1));
    std::printf("latency over %lld runs: p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, mean %.3f ms, min %.3f ms\n", runs,
                pct(0.5), pct(0.9), pct(0.99), mean, sorted.front());
    std::printf("peak RSS: %.1f MB\nplacement:", rss_mb);
    for (auto& [b, n] : placement) std::printf(" %s=%d", b.c_str(), n);
    std::printf("\n");
    if (o.profile) std::printf("time per run by op (profiled, device synchronized per node):\n%s", prof_text.c_str());
  }
  return 0;
}

}  // namespace outpost::cli
