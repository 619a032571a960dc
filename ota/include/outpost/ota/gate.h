// The health gate's verdict, as pure code: given what the checks observed through the running
// outpostd (readiness, each model's outputs on its golden inputs and its call latencies, the MQTT
// broker, the time taken), pass or fail with every reason named. Collecting those observations
// over the V2 HTTP API is not written yet (ota/README.md).
#pragma once

#include <string>
#include <vector>

namespace outpost::ota {

struct Tolerance {
  double atol = 1e-4;  // |got - golden| <= atol + rtol * |golden|, element-wise
  double rtol = 1e-3;
};

struct ModelCheck {
  std::string model;
  std::vector<double> golden;        // expected outputs, flattened
  std::vector<double> got;           // what the daemon answered, flattened
  std::string error;                 // the call failed (load, HTTP, decoding): why
  std::vector<double> latencies_ms;  // one per golden call
  double p95_budget_ms = 0;          // 0: no latency budget
  Tolerance tol;
};

struct GateInput {
  bool daemon_ready = false;     // /v2/health/ready said ready
  bool broker_required = false;  // the device config names an MQTT broker
  bool broker_reachable = false;
  double elapsed_ms = 0;           // from the start of the gate to the last check
  double deadline_ms = 0;          // 0: none
  std::vector<ModelCheck> models;  // every model the device config declares
};

struct GateVerdict {
  bool pass = false;
  std::vector<std::string> failures;  // each names the model or the check
};

// Nearest-rank 95th percentile (the smallest value with at least 95% of samples at or below it).
// 0 for no samples.
double P95(std::vector<double> samples);

GateVerdict Judge(const GateInput& in);

}  // namespace outpost::ota
