// Wire payloads (internal): the batch envelope, status messages, metric snapshots.
#pragma once

#include <cstdint>
#include <string>

#include "outpost/telemetry/publisher.h"
#include "outpost/telemetry/queue.h"

namespace outpost::telemetry {

// {"v":1,"device":..,"fleet":..,"stream":..,"first_seq":..,"last_seq":..,"key":..,"count":..,
//  "records":[{"seq":..,"ts":..,"data":<the record's JSON>}]}
std::string EncodeBatch(const MqttOptions& o, const Batch& b);
// {"state":"online"|"offline","device":..,"fleet":..,"ts":..,"reason":..}
std::string EncodeStatus(const MqttOptions& o, const std::string& state, const std::string& reason,
                         int64_t ts_ms);
int64_t NowMs();

}  // namespace outpost::telemetry
