// Inference response encoding: JSON tensor data and binary tensor data extension.
#include <cstring>
#include <limits>
#include <string>

#include "json_util.h"
#include "outpost/serve/v2/v2.h"

namespace outpost::serve::v2 {

namespace {

using json = nlohmann::json;
using internal::AppendJsonString;

Status EncodeFail(std::string message) {
  internal::EncodeErrors().Inc();
  return InvalidArgument(std::move(message));
}

std::string Label(const InferOutput& o) { return "output " + internal::JsonString(o.name); }

// Appends `,"parameters":{...}` for a non-empty object of scalars; binary_data_size first when
// given. Fails on anything that is not such an object.
Status AppendParameters(std::string* out, const json& params, std::optional<size_t> binary_size,
                        const std::string& where) {
  bool has_params = !params.is_null() && !(params.is_object() && params.empty());
  if (has_params && !params.is_object())
    return EncodeFail(where + ": parameters must be a JSON object");
  if (!has_params && !binary_size) return Status::Ok();
  *out += ",\"parameters\":{";
  bool first = true;
  if (binary_size) {
    *out += "\"binary_data_size\":";
    internal::AppendUInt(out, *binary_size);
    first = false;
  }
  if (has_params) {
    for (auto it = params.begin(); it != params.end(); ++it) {
      if (binary_size && it.key() == "binary_data_size") continue;
      if (!first) out->push_back(',');
      first = false;
      if (!AppendJsonString(out, it.key(), /*replace_invalid=*/false))
        return EncodeFail(where + ": a parameter name is not valid UTF-8");
      out->push_back(':');
      const json& v = it.value();
      if (v.is_string()) {
        if (!AppendJsonString(out, v.get_ref<const std::string&>(), false))
          return EncodeFail(where + ": parameter " + internal::JsonString(it.key()) +
                            " is not valid UTF-8");
      } else if (v.is_boolean()) {
        *out += v.get<bool>() ? "true" : "false";
      } else if (v.is_number_unsigned()) {
        internal::AppendUInt(out, v.get<uint64_t>());
      } else if (v.is_number_integer()) {
        internal::AppendInt(out, v.get<int64_t>());
      } else if (v.is_number_float()) {
        internal::AppendDouble(out, v.get<double>(), false);
      } else {
        return EncodeFail(where + ": parameter " + internal::JsonString(it.key()) +
                          " must be a string, number or boolean");
      }
    }
  }
  out->push_back('}');
  return Status::Ok();
}

template <typename T, typename F>
void AppendArray(std::string* out, const void* p, size_t n, F append) {
  const T* v = static_cast<const T*>(p);
  for (size_t i = 0; i < n; ++i) {
    if (i) out->push_back(',');
    append(v[i]);
  }
}

// Appends the JSON array of the tensor's elements, flattened in row-major order.
Status AppendData(std::string* out, const InferOutput& o, bool literals) {
  const Tensor& t = o.tensor;
  const size_t n = static_cast<size_t>(t.numel());
  const void* p = t.raw();
  out->push_back('[');
  switch (t.dtype()) {
    case DataType::kBool:
      AppendArray<bool>(out, p, n, [&](bool b) { *out += b ? "true" : "false"; });
      break;
    case DataType::kUInt8:
      AppendArray<uint8_t>(out, p, n, [&](uint8_t v) { internal::AppendUInt(out, v); });
      break;
    case DataType::kUInt16:
      AppendArray<uint16_t>(out, p, n, [&](uint16_t v) { internal::AppendUInt(out, v); });
      break;
    case DataType::kUInt32:
      AppendArray<uint32_t>(out, p, n, [&](uint32_t v) { internal::AppendUInt(out, v); });
      break;
    case DataType::kUInt64:
      AppendArray<uint64_t>(out, p, n, [&](uint64_t v) { internal::AppendUInt(out, v); });
      break;
    case DataType::kInt8:
      AppendArray<int8_t>(out, p, n, [&](int8_t v) { internal::AppendInt(out, v); });
      break;
    case DataType::kInt16:
      AppendArray<int16_t>(out, p, n, [&](int16_t v) { internal::AppendInt(out, v); });
      break;
    case DataType::kInt32:
      AppendArray<int32_t>(out, p, n, [&](int32_t v) { internal::AppendInt(out, v); });
      break;
    case DataType::kInt64:
      AppendArray<int64_t>(out, p, n, [&](int64_t v) { internal::AppendInt(out, v); });
      break;
    case DataType::kFloat:
      AppendArray<float>(out, p, n, [&](float v) { internal::AppendFloat(out, v, literals); });
      break;
    case DataType::kDouble:
      AppendArray<double>(out, p, n, [&](double v) { internal::AppendDouble(out, v, literals); });
      break;
    case DataType::kFloat16:
      AppendArray<uint16_t>(out, p, n,
                            [&](uint16_t v) { internal::AppendFloat16(out, v, literals); });
      break;
    case DataType::kBFloat16:
      AppendArray<uint16_t>(out, p, n,
                            [&](uint16_t v) { internal::AppendBFloat16(out, v, literals); });
      break;
    case DataType::kString: {
      const auto* s = static_cast<const std::string*>(p);
      for (size_t i = 0; i < n; ++i) {
        if (i) out->push_back(',');
        if (!AppendJsonString(out, s[i], /*replace_invalid=*/false))
          return EncodeFail(Label(o) + ": BYTES element " + std::to_string(i) +
                            " is not valid UTF-8, so it cannot travel as JSON; request the "
                            "output with parameters.binary_data = true");
      }
      break;
    }
    default:
      return EncodeFail(Label(o) + ": unsupported type");  // checked by the caller
  }
  out->push_back(']');
  return Status::Ok();
}

// Size of the binary form of the tensor's data.
Expected<size_t> BinarySize(const InferOutput& o) {
  const Tensor& t = o.tensor;
  if (t.dtype() != DataType::kString) return t.nbytes();
  size_t total = 0;
  const auto* s = static_cast<const std::string*>(t.raw());
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (s[i].size() > std::numeric_limits<uint32_t>::max())
      return EncodeFail(Label(o) + ": BYTES element " + std::to_string(i) +
                        " is longer than the 4-byte length allows");
    total += 4 + s[i].size();
  }
  return total;
}

void AppendBinary(std::string* out, const Tensor& t) {
  if (t.dtype() == DataType::kString) {
    const auto* s = static_cast<const std::string*>(t.raw());
    for (int64_t i = 0; i < t.numel(); ++i) {
      uint32_t len = static_cast<uint32_t>(s[i].size());  // little-endian host (checked)
      out->append(reinterpret_cast<const char*>(&len), 4);
      out->append(s[i]);
    }
  } else if (t.dtype() == DataType::kBool) {
    const bool* b = static_cast<const bool*>(t.raw());
    for (int64_t i = 0; i < t.numel(); ++i) out->push_back(b[i] ? '\1' : '\0');
  } else {
    out->append(static_cast<const char*>(t.raw()), t.nbytes());
  }
}

}  // namespace

Expected<EncodedResponse> EncodeInferResponse(std::string_view model_name,
                                              std::string_view model_version, std::string_view id,
                                              const nlohmann::json& parameters,
                                              const std::vector<InferOutput>& outputs,
                                              const EncodeOptions& options) {
  const bool literals = options.non_finite == NonFinite::kLiterals;
  EncodedResponse r;
  std::string& out = r.body;

  // Validate and size the outputs first so the body is allocated once.
  size_t estimate = 128 + model_name.size() + id.size();
  std::vector<size_t> binary_sizes(outputs.size(), 0);
  size_t binary_total = 0;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const InferOutput& o = outputs[i];
    const Tensor& t = o.tensor;
    if (!t.defined() || DataTypeV2Name(t.dtype()).empty())
      return EncodeFail(Label(o) + ": type " + std::string(DataTypeName(t.dtype())) +
                        " has no V2 datatype");
    if (!t.on_host() || !t.has_data())
      return EncodeFail(Label(o) + ": the tensor has no host data to send");
    estimate += 96 + o.name.size();
    if (o.binary) {
      OP_ASSIGN_OR_RETURN(binary_sizes[i], BinarySize(o));
      binary_total += binary_sizes[i];
    } else {
      estimate += static_cast<size_t>(t.numel()) * (t.dtype() == DataType::kString ? 16 : 12);
    }
  }
  out.reserve(estimate + binary_total);

  out += "{\"model_name\":";
  AppendJsonString(&out, model_name, /*replace_invalid=*/true);
  if (!model_version.empty()) {
    out += ",\"model_version\":";
    AppendJsonString(&out, model_version, true);
  }
  if (!id.empty()) {
    out += ",\"id\":";
    AppendJsonString(&out, id, true);
  }
  OP_RETURN_IF_ERROR(AppendParameters(&out, parameters, std::nullopt, "response"));
  out += ",\"outputs\":[";
  bool any_binary = false;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const InferOutput& o = outputs[i];
    const Tensor& t = o.tensor;
    if (i) out.push_back(',');
    out += "{\"name\":";
    if (!AppendJsonString(&out, o.name, false))
      return EncodeFail("an output name is not valid UTF-8");
    out += ",\"shape\":[";
    for (int d = 0; d < t.rank(); ++d) {
      if (d) out.push_back(',');
      internal::AppendInt(&out, t.dim(d));
    }
    out += "],\"datatype\":\"";
    out += DataTypeV2Name(t.dtype());
    out.push_back('"');
    OP_RETURN_IF_ERROR(AppendParameters(
        &out, o.parameters, o.binary ? std::optional<size_t>(binary_sizes[i]) : std::nullopt,
        Label(o)));
    if (o.binary) {
      any_binary = true;
    } else {
      out += ",\"data\":";
      OP_RETURN_IF_ERROR(AppendData(&out, o, literals));
    }
    out.push_back('}');
  }
  out += "]}";

  if (any_binary) {
    r.json_length = out.size();
    for (const InferOutput& o : outputs)
      if (o.binary) AppendBinary(&out, o.tensor);
    r.content_type = "application/octet-stream";
  } else {
    r.content_type = "application/json";
  }
  return r;
}

Expected<std::vector<InferOutput>> SelectOutputs(const InferRequest& request,
                                                 std::span<const std::string> names,
                                                 std::span<const Tensor> tensors) {
  assert(names.size() == tensors.size());
  std::vector<InferOutput> out;
  if (request.outputs.empty()) {
    out.reserve(names.size());
    for (size_t i = 0; i < names.size(); ++i)
      out.push_back({names[i], tensors[i], request.all_outputs_binary, {}});
    return out;
  }
  out.reserve(request.outputs.size());
  for (const RequestedOutput& r : request.outputs) {
    size_t k = 0;
    while (k < names.size() && names[k] != r.name) ++k;
    if (k == names.size()) {
      std::string known;
      for (const std::string& n : names) known += (known.empty() ? "" : ", ") + n;
      internal::RequestErrors("output").Inc();
      return InvalidArgument("the model has no output " + internal::JsonString(r.name) +
                             " (it has: " + known + ")");
    }
    out.push_back({r.name, tensors[k], r.binary.value_or(request.all_outputs_binary), {}});
  }
  return out;
}

}  // namespace outpost::serve::v2
