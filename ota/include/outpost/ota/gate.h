// The health gate's verdict, as pure code: given what the checks observed through the running
// outpostd (readiness, each model's outputs on its golden inputs and its call latencies, the MQTT
// broker, the time taken), pass or fail with every reason named. gate_probe.h collects them over
// the V2 HTTP API.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace outpost::ota {

struct Tolerance {
  double atol = 1e-4;  // |got - golden| <= atol + rtol * |golden|, element-wise
  double rtol = 1e-3;
};

// One output of a model on its golden inputs.
struct OutputCheck {
  std::string name;          // the model's output name
  std::string datatype;      // the golden's V2 datatype ("FP32", "INT64", ...)
  std::string got_datatype;  // the answer's; empty: not checked
  // Floating point: |got - golden| <= atol + rtol*|golden| element-wise (NaN fails).
  std::vector<double> golden;  // flattened
  std::vector<double> got;
  // Integers and BOOL (exact = true): compared exactly, as int64 (uint64 bit for bit).
  bool exact = false;
  std::vector<int64_t> golden_int;
  std::vector<int64_t> got_int;
};

struct ModelCheck {
  std::string model;
  std::vector<OutputCheck> outputs;  // every golden output (a golden directory: each file)
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
