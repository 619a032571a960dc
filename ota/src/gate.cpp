// The health gate's verdict (pure).
#include "outpost/ota/gate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "outpost/core/metrics.h"

namespace outpost::ota {
namespace {

std::string Num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", v);
  return b;
}

template <typename Fail>
void JudgeOutput(const std::string& who, const OutputCheck& o, const Tolerance& tol, Fail fail) {
  if (!o.got_datatype.empty() && o.got_datatype != o.datatype) {
    fail(who + ": answered " + o.got_datatype + ", golden is " + o.datatype);
    return;
  }
  const size_t n = o.exact ? o.golden_int.size() : o.golden.size();
  const size_t got = o.exact ? o.got_int.size() : o.got.size();
  if (got != n) {
    fail(who + ": " + std::to_string(got) + " values, golden has " + std::to_string(n));
    return;
  }
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < n; ++i) {
    bool ok = o.exact ? o.got_int[i] == o.golden_int[i]
                      : std::fabs(o.got[i] - o.golden[i]) <=
                            tol.atol + tol.rtol * std::fabs(o.golden[i]);  // NaN fails
    if (!ok && bad++ == 0) first = i;
  }
  if (bad == 0) return;
  if (o.exact)
    fail(who + ": " + std::to_string(bad) + " of " + std::to_string(n) +
         " values differ, compared exactly (first [" + std::to_string(first) +
         "] = " + std::to_string(o.got_int[first]) + ", golden " +
         std::to_string(o.golden_int[first]) + ")");
  else
    fail(who + ": " + std::to_string(bad) + " of " + std::to_string(n) +
         " values outside tolerance (first [" + std::to_string(first) + "] = " +
         Num(o.got[first]) + ", golden " + Num(o.golden[first]) + ")");
}

}  // namespace

double P95(std::vector<double> s) {
  if (s.empty()) return 0;
  std::sort(s.begin(), s.end());
  size_t rank = static_cast<size_t>(std::ceil(0.95 * static_cast<double>(s.size())));
  return s[std::max<size_t>(rank, 1) - 1];
}

GateVerdict Judge(const GateInput& in) {
  GateVerdict v;
  auto fail = [&](std::string why) { v.failures.push_back(std::move(why)); };
  if (!in.daemon_ready) fail("outpostd is not ready");
  if (in.broker_required && !in.broker_reachable) fail("the MQTT broker is unreachable");
  if (in.deadline_ms > 0 && in.elapsed_ms > in.deadline_ms)
    fail("deadline: the gate took " + Num(in.elapsed_ms) + " ms, over " + Num(in.deadline_ms) +
         " ms");
  if (in.models.empty()) fail("no model was checked");
  for (const auto& m : in.models) {
    const std::string who = "model '" + m.model + "'";
    if (!m.error.empty()) {
      fail(who + ": " + m.error);
      continue;
    }
    if (m.outputs.empty()) fail(who + ": no golden output was compared");
    for (const auto& o : m.outputs) JudgeOutput(who + " output '" + o.name + "'", o, m.tol, fail);
    if (m.p95_budget_ms > 0) {
      if (m.latencies_ms.empty()) {
        fail(who + ": no latency measured against its budget");
      } else if (double p = P95(m.latencies_ms); p > m.p95_budget_ms) {
        fail(who + ": p95 latency " + Num(p) + " ms over its budget of " + Num(m.p95_budget_ms) +
             " ms");
      }
    }
  }
  v.pass = v.failures.empty();
  MetricsRegistry::Global()
      .GetCounter("outpost_ota_health_gate_total", "OTA health gate verdicts",
                  {{"verdict", v.pass ? "pass" : "fail"}})
      .Inc();
  return v;
}

}  // namespace outpost::ota
