// The OTA agent's minimal HTTP/1.1 client (Connection: close, numeric IPv4 only), used by the
// health gate's probe and by model-only updates to talk V2 to the running outpostd.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "outpost/core/status.h"
#include "outpost/ota/gate_probe.h"

namespace outpost::ota::internal {

using Reply = HttpReply;  // the public one-GET helper (gate_probe.h) answers the same type

// One request; kUnavailable when no complete answer came within `timeout_ms`. A body is sent as
// application/json; `json_length` set: as the V2 binary tensor data extension (the JSON header's
// length in Inference-Header-Content-Length, application/octet-stream).
Expected<Reply> Http(const std::string& host, uint16_t port, const std::string& method,
                     const std::string& path, const std::string& body, int timeout_ms,
                     std::optional<size_t> json_length = std::nullopt);

}  // namespace outpost::ota::internal
