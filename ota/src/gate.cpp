// The health gate's verdict (pure).
#include "outpost/ota/gate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "outpost/core/metrics.h"

namespace outpost::ota {
namespace {

std::string Num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", v);
  return b;
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
    if (m.got.size() != m.golden.size()) {
      fail(who + ": " + std::to_string(m.got.size()) + " output values, golden has " +
           std::to_string(m.golden.size()));
      continue;
    }
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < m.golden.size(); ++i) {
      double lim = m.tol.atol + m.tol.rtol * std::fabs(m.golden[i]);
      bool ok = std::fabs(m.got[i] - m.golden[i]) <= lim;  // NaN fails
      if (!ok && bad++ == 0) first = i;
    }
    if (bad > 0)
      fail(who + ": " + std::to_string(bad) + " of " + std::to_string(m.golden.size()) +
           " outputs outside tolerance (first [" + std::to_string(first) +
           "] = " + Num(m.got[first]) + ", golden " + Num(m.golden[first]) + ")");
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
