#include "payload.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

#include "outpost/telemetry/telemetry.h"

namespace outpost::telemetry {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {
void AppendJsonString(std::string* out, std::string_view s) {
  out->append(nlohmann::json(std::string(s))
                  .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}
}  // namespace

std::string EncodeBatch(const MqttOptions& o, const Batch& b) {
  // Built by hand: record payloads are already JSON and are embedded as they are.
  std::string out;
  out.reserve(b.payload_bytes + b.records.size() * 48 + 256);
  const char* stream = StreamName(b.stream);
  out += "{\"v\":1,\"device\":";
  AppendJsonString(&out, o.device_id);
  out += ",\"fleet\":";
  AppendJsonString(&out, o.fleet);
  out += ",\"stream\":\"";
  out += stream;
  out += "\",\"first_seq\":" + std::to_string(b.first_seq);
  out += ",\"last_seq\":" + std::to_string(b.last_seq);
  out += ",\"count\":" + std::to_string(b.records.size());
  out += ",\"key\":";
  AppendJsonString(&out, o.device_id + "/" + stream + "/" + std::to_string(b.first_seq));
  out += ",\"records\":[";
  bool first = true;
  for (const Record& r : b.records) {
    if (!first) out += ',';
    first = false;
    out +=
        "{\"seq\":" + std::to_string(r.seq) + ",\"ts\":" + std::to_string(r.ts_ms) + ",\"data\":";
    if (nlohmann::json::accept(r.payload)) {
      out += r.payload;
    } else {
      AppendJsonString(&out, r.payload);  // not JSON: sent as a string
    }
    out += '}';
  }
  out += "]}";
  return out;
}

std::string EncodeStatus(const MqttOptions& o, const std::string& state, const std::string& reason,
                         int64_t ts_ms) {
  nlohmann::json j = {{"state", state}, {"device", o.device_id}, {"fleet", o.fleet}};
  if (ts_ms) j["ts"] = ts_ms;
  if (!reason.empty()) j["reason"] = reason;
  return j.dump();
}

namespace {

// Parses `name{k="v",...} value` (Prometheus text format 0.0.4).
bool ParseSample(std::string_view line, std::string* name, nlohmann::json* labels, double* value) {
  size_t i = 0;
  while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
  *name = std::string(line.substr(0, i));
  *labels = nlohmann::json::object();
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      size_t eq = line.find('=', i);
      if (eq == std::string_view::npos || eq + 1 >= line.size() || line[eq + 1] != '"')
        return false;
      std::string key(line.substr(i, eq - i));
      std::string val;
      size_t j = eq + 2;
      for (; j < line.size() && line[j] != '"'; ++j) {
        if (line[j] == '\\' && j + 1 < line.size()) {
          ++j;
          val += line[j] == 'n' ? '\n' : line[j];
        } else {
          val += line[j];
        }
      }
      if (j >= line.size()) return false;
      (*labels)[key] = val;
      i = j + 1;
      if (i < line.size() && line[i] == ',') ++i;
    }
    if (i >= line.size()) return false;
    ++i;  // '}'
  }
  while (i < line.size() && line[i] == ' ') ++i;
  std::string v(line.substr(i));
  size_t sp = v.find(' ');  // an optional timestamp follows
  if (sp != std::string::npos) v = v.substr(0, sp);
  if (v.empty()) return false;
  if (v == "+Inf") {
    *value = HUGE_VAL;
  } else if (v == "-Inf") {
    *value = -HUGE_VAL;
  } else {
    char* end = nullptr;
    *value = std::strtod(v.c_str(), &end);
    if (!end || *end) return false;
  }
  return !name->empty();
}

}  // namespace

Expected<std::string> MetricsSnapshotJson(std::string_view text, int64_t ts_ms) {
  std::map<std::string, std::string> types;
  nlohmann::json metrics = nlohmann::json::array();
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.empty()) continue;
    if (line[0] == '#') {
      if (line.substr(0, 7) == "# TYPE ") {
        std::string_view rest = line.substr(7);
        size_t sp = rest.find(' ');
        if (sp != std::string_view::npos)
          types[std::string(rest.substr(0, sp))] = std::string(rest.substr(sp + 1));
      }
      continue;
    }
    std::string name;
    nlohmann::json labels;
    double v = 0;
    if (!ParseSample(line, &name, &labels, &v))
      return InvalidArgument("bad Prometheus sample line: " + std::string(line));
    std::string type = "untyped";
    auto it = types.find(name);
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      if (it != types.end()) break;
      size_t n = std::strlen(suffix);
      if (name.size() > n && name.compare(name.size() - n, n, suffix) == 0)
        it = types.find(name.substr(0, name.size() - n));
    }
    if (it != types.end()) type = it->second;
    nlohmann::json m = {{"name", name}, {"type", type}, {"labels", labels}};
    if (std::isfinite(v)) {
      m["value"] = v;
    } else {
      m["value"] = v > 0 ? "+Inf" : (v < 0 ? "-Inf" : "NaN");
    }
    metrics.push_back(std::move(m));
  }
  nlohmann::json j = {{"ts", ts_ms}, {"metrics", std::move(metrics)}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string EventJson(std::string_view type, const nlohmann::json& fields, int64_t ts_ms) {
  nlohmann::json j = {{"type", std::string(type)}, {"ts", ts_ms}, {"fields", fields}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string LogJson(std::string_view level, std::string_view message, int64_t ts_ms) {
  nlohmann::json j = {
      {"level", std::string(level)}, {"ts", ts_ms}, {"message", std::string(message)}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace outpost::telemetry
