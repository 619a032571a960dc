// Collects the health gate's observations from the running outpostd over the V2 HTTP API:
// readiness, each model's answer to its golden input (timed, `runs` times), the MQTT broker's
// TCP port. Judge() (gate.h) turns them into the verdict. Never links the engine: the gate goes
// through the real serving path.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "outpost/core/status.h"
#include "outpost/ota/gate.h"

namespace outpost::ota {

struct GoldenModel {
  std::string name;           // V2 model name
  // Golden tensors: one .npy or TensorProto .pb file (the model's only input / its first
  // output), or a directory of one <tensor name>.npy|.pb per input / per compared output.
  std::string golden_input;
  std::string golden_output;
  double p95_budget_ms = 0;   // 0: none
  Tolerance tol;
};

struct ProbeConfig {
  std::string host = "127.0.0.1";  // numeric IPv4
  uint16_t port = 0;
  std::vector<GoldenModel> models;
  int runs = 20;  // timed golden calls per model (the first one's outputs are compared)
  double deadline_ms = 60000;  // the whole gate; also bounds each HTTP call
  std::string broker_host;     // empty: no broker check
  uint16_t broker_port = 1883;
};

// Never fails: whatever could not be observed is recorded as a failure for Judge().
GateInput Probe(const ProbeConfig& cfg);

// One GET with the probe's client (Connection: close, numeric IPv4). kUnavailable when no
// complete answer came within timeout_ms (connection refused included).
struct HttpReply {
  int status = 0;
  std::string body;
};
Expected<HttpReply> HttpGet(const std::string& host, uint16_t port, const std::string& path,
                            int timeout_ms);

}  // namespace outpost::ota
