// Error bodies, health, server/model metadata and the model repository extension.
#include <string>

#include "json_util.h"
#include "outpost/serve/v2/v2.h"

namespace outpost::serve::v2 {

namespace {

using json = nlohmann::json;
using internal::AppendJsonString;

void AppendStringArray(std::string* out, const std::vector<std::string>& v) {
  out->push_back('[');
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out->push_back(',');
    AppendJsonString(out, v[i], /*replace_invalid=*/true);
  }
  out->push_back(']');
}

Status AppendTensorMetadata(std::string* out, const std::vector<TensorMetadata>& v,
                            const char* kind) {
  out->push_back('[');
  for (size_t i = 0; i < v.size(); ++i) {
    const TensorMetadata& t = v[i];
    std::string_view type = DataTypeV2Name(t.dtype);
    if (type.empty())
      return Unsupported(std::string(kind) + " " + internal::JsonString(t.name) + " has type " +
                         std::string(DataTypeName(t.dtype)) + ", which has no V2 datatype");
    if (i) out->push_back(',');
    *out += "{\"name\":";
    AppendJsonString(out, t.name, true);
    *out += ",\"datatype\":\"";
    *out += type;
    *out += "\",\"shape\":[";
    for (size_t d = 0; d < t.shape.size(); ++d) {
      if (d) out->push_back(',');
      internal::AppendInt(out, t.shape[d] < 0 ? -1 : t.shape[d]);
    }
    *out += "]}";
  }
  out->push_back(']');
  return Status::Ok();
}

// Parses a small control body (empty allowed) that must be a JSON object.
Status ParseControlBody(std::string_view body, const char* what, json* doc) {
  bool blank = body.find_first_not_of(" \t\r\n") == std::string_view::npos;
  if (blank) {
    *doc = json::object();
    return Status::Ok();
  }
  OP_RETURN_IF_ERROR(internal::ParseJson(body, 16, what, doc));
  if (!doc->is_object()) return InvalidArgument(std::string(what) + " must be a JSON object");
  return Status::Ok();
}

}  // namespace

std::string EncodeError(std::string_view message) {
  std::string out = "{\"error\":";
  AppendJsonString(&out, message, /*replace_invalid=*/true);
  out.push_back('}');
  return out;
}

int HttpStatusFor(Code code) {
  switch (code) {
    case Code::kOk:
      return 200;
    case Code::kInvalidArgument:
    case Code::kUnsupported:
    case Code::kInvalidModel:
      return 400;
    case Code::kNotFound:
      return 404;
    case Code::kResourceExhausted:
      return 429;
    case Code::kUnavailable:
      return 503;
    case Code::kDeadlineExceeded:
      return 504;  // google.rpc's mapping of DEADLINE_EXCEEDED
    case Code::kCancelled:
      return 499;  // the client closed the request
    case Code::kIoError:
    case Code::kInternal:
      return 500;
  }
  return 500;
}

std::string EncodeServerLive(bool live) { return live ? "{\"live\":true}" : "{\"live\":false}"; }

std::string EncodeServerReady(bool ready) {
  return ready ? "{\"ready\":true}" : "{\"ready\":false}";
}

std::string EncodeModelReady(std::string_view name, bool ready) {
  std::string out = "{\"name\":";
  AppendJsonString(&out, name, true);
  out += ready ? ",\"ready\":true}" : ",\"ready\":false}";
  return out;
}

std::string EncodeServerMetadata(std::string_view name, std::string_view version,
                                 const std::vector<std::string>& extensions) {
  std::string out = "{\"name\":";
  AppendJsonString(&out, name, true);
  out += ",\"version\":";
  AppendJsonString(&out, version, true);
  out += ",\"extensions\":";
  AppendStringArray(&out, extensions);
  out.push_back('}');
  return out;
}

Expected<std::string> EncodeModelMetadata(std::string_view name,
                                          const std::vector<std::string>& versions,
                                          std::string_view platform,
                                          const std::vector<TensorMetadata>& inputs,
                                          const std::vector<TensorMetadata>& outputs) {
  std::string out = "{\"name\":";
  AppendJsonString(&out, name, true);
  if (!versions.empty()) {
    out += ",\"versions\":";
    AppendStringArray(&out, versions);
  }
  out += ",\"platform\":";
  AppendJsonString(&out, platform, true);
  out += ",\"inputs\":";
  OP_RETURN_IF_ERROR(AppendTensorMetadata(&out, inputs, "input"));
  out += ",\"outputs\":";
  OP_RETURN_IF_ERROR(AppendTensorMetadata(&out, outputs, "output"));
  out.push_back('}');
  return out;
}

Expected<RepositoryIndexRequest> ParseRepositoryIndexRequest(std::string_view body) {
  json doc;
  OP_RETURN_IF_ERROR(ParseControlBody(body, "repository index request", &doc));
  RepositoryIndexRequest r;
  if (auto it = doc.find("ready"); it != doc.end()) {
    if (!it->is_boolean())
      return InvalidArgument("repository index request: \"ready\" must be true or false");
    r.ready = it->get<bool>();
  }
  return r;
}

std::string EncodeRepositoryIndex(const std::vector<RepositoryIndexEntry>& entries) {
  std::string out = "[";
  for (size_t i = 0; i < entries.size(); ++i) {
    const RepositoryIndexEntry& e = entries[i];
    if (i) out.push_back(',');
    out += "{\"name\":";
    AppendJsonString(&out, e.name, true);
    if (!e.version.empty()) {
      out += ",\"version\":";
      AppendJsonString(&out, e.version, true);
    }
    out += ",\"state\":";
    AppendJsonString(&out, e.state, true);
    out += ",\"reason\":";
    AppendJsonString(&out, e.reason, true);
    out.push_back('}');
  }
  out.push_back(']');
  return out;
}

Expected<nlohmann::json> ParseRepositoryModelRequest(std::string_view body) {
  json doc;
  OP_RETURN_IF_ERROR(ParseControlBody(body, "repository model request", &doc));
  auto it = doc.find("parameters");
  if (it == doc.end()) return json();
  if (!it->is_object())
    return InvalidArgument("repository model request: \"parameters\" must be an object");
  for (auto p = it->begin(); p != it->end(); ++p)
    if (!p.value().is_primitive() || p.value().is_null())
      return InvalidArgument("repository model request: parameter " +
                             internal::JsonString(p.key()) +
                             " must be a string, number or boolean");
  return std::move(*it);
}

}  // namespace outpost::serve::v2
