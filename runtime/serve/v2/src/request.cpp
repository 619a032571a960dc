// Inference request decoding: JSON header, JSON tensor data, binary tensor data extension.
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <unordered_set>

#include "json_util.h"
#include "outpost/serve/v2/v2.h"

namespace outpost::serve::v2 {

static_assert(std::endian::native == std::endian::little,
              "the binary tensor data extension is little-endian; add byte swapping");

namespace {

using json = nlohmann::json;
using internal::RequestErrors;

std::string Quoted(std::string_view s) { return internal::JsonString(s); }

// A short rendering of a JSON value for error messages.
std::string Brief(const json& v) {
  std::string s;
  switch (v.type()) {
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    case json::value_t::null:
      return "null";
    case json::value_t::string: {
      const auto& str = v.get_ref<const std::string&>();
      s = "the string " + Quoted(str.size() > 32 ? str.substr(0, 32) + "..." : str);
      return s;
    }
    default:
      return v.dump();
  }
}

// Counts the failure under `reason` and returns it as kInvalidArgument.
Status Fail(const char* reason, std::string message) {
  RequestErrors(reason).Inc();
  return InvalidArgument(std::move(message));
}

std::string InputLabel(const std::string& name, size_t index) {
  return name.empty() ? "input " + std::to_string(index) : "input " + Quoted(name);
}

// `parameters` must be an object whose values are strings, numbers or booleans ($parameters).
Status CheckParameters(const json& p, const std::string& where) {
  if (!p.is_object()) return Fail("schema", where + ": \"parameters\" must be an object");
  for (auto it = p.begin(); it != p.end(); ++it) {
    if (!it.value().is_primitive() || it.value().is_null())
      return Fail("schema", where + ": parameter " + Quoted(it.key()) +
                                " must be a string, number or boolean, not " + Brief(it.value()));
  }
  return Status::Ok();
}

// Removes `key` from a parameters object, returning the removed value (null when absent). An
// object left empty becomes null.
json TakeParameter(json* params, const char* key) {
  json v;
  if (!params->is_object()) return v;
  auto it = params->find(key);
  if (it != params->end()) {
    v = std::move(*it);
    params->erase(it);
  }
  if (params->empty()) *params = json();
  return v;
}

// ---- Element conversion ----------------------------------------------------------------------

enum class Bad { kNone, kType, kFraction, kRange };

template <typename T>
Bad ToInteger(const json& v, T* out) {
  using L = std::numeric_limits<T>;
  switch (v.type()) {
    case json::value_t::number_unsigned: {
      uint64_t u = v.get_ref<const json::number_unsigned_t&>();
      if (u > static_cast<uint64_t>(L::max())) return Bad::kRange;
      *out = static_cast<T>(u);
      return Bad::kNone;
    }
    case json::value_t::number_integer: {
      int64_t s = v.get_ref<const json::number_integer_t&>();
      if constexpr (L::is_signed) {
        if (s < static_cast<int64_t>(L::min()) || s > static_cast<int64_t>(L::max()))
          return Bad::kRange;
      } else {
        if (s < 0 || static_cast<uint64_t>(s) > static_cast<uint64_t>(L::max())) return Bad::kRange;
      }
      *out = static_cast<T>(s);
      return Bad::kNone;
    }
    case json::value_t::number_float: {
      // A float with an integral value (2.0, 1e3) is accepted; 2.5 is not.
      double d = v.get_ref<const json::number_float_t&>();
      if (!std::isfinite(d)) return Bad::kRange;
      if (d != std::trunc(d)) return Bad::kFraction;
      // 2^63 and 2^64 are exact doubles; the limits of smaller types are exact too.
      constexpr double kHi =
          sizeof(T) == 8 ? (L::is_signed ? 0x1p63 : 0x1p64) : static_cast<double>(L::max()) + 1.0;
      constexpr double kLo = L::is_signed ? static_cast<double>(L::min()) : 0.0;
      if (d < kLo || d >= kHi) return Bad::kRange;
      *out = static_cast<T>(d);
      return Bad::kNone;
    }
    default:
      return Bad::kType;
  }
}

// Any JSON number, as a double (integers beyond 2^53 round, as they must for a float type).
bool ToDouble(const json& v, double* out) {
  switch (v.type()) {
    case json::value_t::number_unsigned:
      *out = static_cast<double>(v.get_ref<const json::number_unsigned_t&>());
      return true;
    case json::value_t::number_integer:
      *out = static_cast<double>(v.get_ref<const json::number_integer_t&>());
      return true;
    case json::value_t::number_float:
      *out = v.get_ref<const json::number_float_t&>();
      return true;
    default:
      return false;
  }
}

// Converts one element into slot `i` of `t`. `v` is non-const so that BYTES strings can be moved
// out of the parsed document.
Bad ConvertElement(json& v, const Tensor& t, size_t i) {
  void* p = t.raw();
  switch (t.dtype()) {
    case DataType::kBool:
      if (!v.is_boolean()) return Bad::kType;
      static_cast<bool*>(p)[i] = v.get<bool>();
      return Bad::kNone;
    case DataType::kUInt8:
      return ToInteger(v, static_cast<uint8_t*>(p) + i);
    case DataType::kUInt16:
      return ToInteger(v, static_cast<uint16_t*>(p) + i);
    case DataType::kUInt32:
      return ToInteger(v, static_cast<uint32_t*>(p) + i);
    case DataType::kUInt64:
      return ToInteger(v, static_cast<uint64_t*>(p) + i);
    case DataType::kInt8:
      return ToInteger(v, static_cast<int8_t*>(p) + i);
    case DataType::kInt16:
      return ToInteger(v, static_cast<int16_t*>(p) + i);
    case DataType::kInt32:
      return ToInteger(v, static_cast<int32_t*>(p) + i);
    case DataType::kInt64:
      return ToInteger(v, static_cast<int64_t*>(p) + i);
    case DataType::kFloat: {
      double d;
      if (!ToDouble(v, &d)) return Bad::kType;
      float f = static_cast<float>(d);  // round to nearest even
      if (std::isinf(f)) return Bad::kRange;
      static_cast<float*>(p)[i] = f;
      return Bad::kNone;
    }
    case DataType::kDouble: {
      double d;
      if (!ToDouble(v, &d)) return Bad::kType;
      static_cast<double*>(p)[i] = d;
      return Bad::kNone;
    }
    case DataType::kFloat16: {
      double d;
      if (!ToDouble(v, &d)) return Bad::kType;
      uint16_t h = internal::RoundToFloat16(d);
      if ((h & 0x7fffu) == 0x7c00u) return Bad::kRange;
      static_cast<uint16_t*>(p)[i] = h;
      return Bad::kNone;
    }
    case DataType::kBFloat16: {
      double d;
      if (!ToDouble(v, &d)) return Bad::kType;
      uint16_t h = internal::RoundToBFloat16(d);
      if ((h & 0x7fffu) == 0x7f80u) return Bad::kRange;
      static_cast<uint16_t*>(p)[i] = h;
      return Bad::kNone;
    }
    case DataType::kString:
      if (!v.is_string()) return Bad::kType;
      static_cast<std::string*>(p)[i] = std::move(v.get_ref<std::string&>());
      return Bad::kNone;
    default:
      return Bad::kType;
  }
}

std::string_view Expectation(DataType t) {
  switch (t) {
    case DataType::kBool:
      return "true or false";
    case DataType::kString:
      return "a string";
    case DataType::kFloat:
    case DataType::kDouble:
    case DataType::kFloat16:
    case DataType::kBFloat16:
      return "a number";
    default:
      return "an integer";
  }
}

// ---- JSON tensor data ------------------------------------------------------------------------

// Walks the leaves of `data` (a flat or nested array) in row-major order. Every leaf must sit at
// the same depth; when that depth equals the rank, every level must match the shape exactly.
class DataWalker {
 public:
  DataWalker(const std::string& label, const Shape& shape) : label_(label), shape_(shape) {}

  // First pass: structure and element count, no conversion.
  Status Count(const json& data, size_t* count) {
    leaf_depth_ = -1;
    count_ = 0;
    OP_RETURN_IF_ERROR(Visit(data, 0));
    if (leaf_depth_ > 1 && leaf_depth_ == shape_.rank()) {
      // Natural multi-dimensional form: check each level against the shape.
      OP_RETURN_IF_ERROR(CheckNested(data, 0));
    }
    *count = count_;
    return Status::Ok();
  }

  // Second pass: convert every leaf into `t` (whose element count equals the leaf count).
  Status Fill(json& data, const Tensor& t) {
    size_t i = 0;
    return FillRec(data, t, &i);
  }

 private:
  Status Visit(const json& a, int depth) {
    // `a` is an array at nesting `depth` (0 = the data array itself).
    for (const json& v : a) {
      if (v.is_array()) {
        OP_RETURN_IF_ERROR(Visit(v, depth + 1));
        continue;
      }
      int d = depth + 1;
      if (leaf_depth_ < 0) {
        leaf_depth_ = d;
      } else if (leaf_depth_ != d) {
        return Fail("data", label_ +
                                ": \"data\" mixes nested arrays and values at different "
                                "depths (" +
                                std::to_string(leaf_depth_) + " and " + std::to_string(d) + ")");
      }
      ++count_;
    }
    return Status::Ok();
  }

  Status CheckNested(const json& a, int dim) {
    if (!a.is_array() || static_cast<int64_t>(a.size()) != shape_[dim])
      return Fail("data", label_ + ": nested \"data\" has " + std::to_string(a.size()) +
                              " entries at dimension " + std::to_string(dim) + " but shape " +
                              shape_.ToString() + " says " + std::to_string(shape_[dim]));
    if (dim + 1 < shape_.rank())
      for (const json& v : a) OP_RETURN_IF_ERROR(CheckNested(v, dim + 1));
    return Status::Ok();
  }

  Status FillRec(json& a, const Tensor& t, size_t* i) {
    for (json& v : a) {
      if (v.is_array()) {
        OP_RETURN_IF_ERROR(FillRec(v, t, i));
        continue;
      }
      Bad bad = ConvertElement(v, t, *i);
      if (bad != Bad::kNone) return ElementError(bad, v, t.dtype(), *i);
      ++*i;
    }
    return Status::Ok();
  }

  Status ElementError(Bad bad, const json& v, DataType dt, size_t i) {
    std::string where = label_ + ": element " + std::to_string(i) + " of " +
                        std::string(DataTypeV2Name(dt)) + " data is " + Brief(v);
    switch (bad) {
      case Bad::kFraction:
        return Fail("data", where + ", which is not an integer");
      case Bad::kRange:
        return Fail("data",
                    where + ", which is out of range for " + std::string(DataTypeV2Name(dt)));
      default:
        return Fail("data", where + ", expected " + std::string(Expectation(dt)));
    }
  }

  const std::string& label_;
  const Shape& shape_;
  int leaf_depth_ = -1;
  size_t count_ = 0;
};

// ---- Binary tensor data ----------------------------------------------------------------------

Status DecodeBinary(std::string_view chunk, const std::string& label, InferInput* in) {
  const Shape& shape = in->shape;
  const size_t numel = static_cast<size_t>(shape.numel());
  const std::string_view type = DataTypeV2Name(in->dtype);
  if (in->dtype != DataType::kString) {
    size_t need = numel * DataTypeSize(in->dtype);  // bounded by max_elements: no overflow
    if (chunk.size() != need)
      return Fail("binary", label + ": binary_data_size is " + std::to_string(chunk.size()) +
                                " but " + std::string(type) + " " + shape.ToString() + " needs " +
                                std::to_string(need) + " bytes");
    OP_ASSIGN_OR_RETURN(in->tensor, Tensor::Allocate(in->dtype, shape));
    if (in->dtype == DataType::kBool) {
      auto* dst = static_cast<bool*>(in->tensor.raw());
      for (size_t i = 0; i < numel; ++i) {
        unsigned char b = static_cast<unsigned char>(chunk[i]);
        if (b > 1)
          return Fail("binary", label + ": BOOL byte " + std::to_string(i) + " is " +
                                    std::to_string(b) + "; the binary form of BOOL is 0 or 1");
        dst[i] = b != 0;
      }
    } else if (need) {
      std::memcpy(in->tensor.raw(), chunk.data(), need);
    }
    return Status::Ok();
  }
  // BYTES: each element is a 4-byte little-endian length and then that many bytes. Every element
  // takes at least 4 bytes, so a shape larger than the chunk allows is refused before allocating.
  if (numel > chunk.size() / 4)
    return Fail("binary", label + ": binary_data_size " + std::to_string(chunk.size()) +
                              " is too small for " + std::to_string(numel) +
                              " BYTES elements (4-byte length each)");
  OP_ASSIGN_OR_RETURN(in->tensor, Tensor::Allocate(DataType::kString, shape));
  auto* dst = static_cast<std::string*>(in->tensor.raw());
  size_t pos = 0;
  for (size_t i = 0; i < numel; ++i) {
    if (chunk.size() - pos < 4)
      return Fail("binary", label + ": BYTES element " + std::to_string(i) +
                                " has no room for its 4-byte length");
    uint32_t len;
    std::memcpy(&len, chunk.data() + pos, 4);
    pos += 4;
    if (len > chunk.size() - pos)
      return Fail("binary", label + ": BYTES element " + std::to_string(i) + " claims " +
                                std::to_string(len) + " bytes but only " +
                                std::to_string(chunk.size() - pos) + " remain");
    dst[i].assign(chunk.data() + pos, len);
    pos += len;
  }
  if (pos != chunk.size())
    return Fail("binary", label + ": " + std::to_string(chunk.size() - pos) +
                              " bytes left over after " + std::to_string(numel) +
                              " BYTES elements in binary_data_size " +
                              std::to_string(chunk.size()));
  return Status::Ok();
}

// ---- Request structure -----------------------------------------------------------------------

Status ParseShape(const json& j, const std::string& label, const Limits& limits, Shape* shape) {
  auto it = j.find("shape");
  if (it == j.end()) return Fail("schema", label + ": missing \"shape\"");
  if (!it->is_array()) return Fail("schema", label + ": \"shape\" must be an array of integers");
  size_t max_rank = std::min<size_t>(limits.max_rank, Shape::kMaxRank);
  if (it->size() > max_rank)
    return Fail("limit", label + ": shape has rank " + std::to_string(it->size()) +
                             ", above the limit of " + std::to_string(max_rank));
  uint64_t numel = 1;
  bool overflow = false;
  for (const json& d : *it) {
    int64_t dim;
    if (d.is_number_unsigned()) {
      uint64_t u = d.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        return Fail("limit", label + ": shape " + it->dump() + " has the dimension " +
                                 std::to_string(u) + ", above 2^63 - 1");
      dim = static_cast<int64_t>(u);
    } else if (d.is_number_integer()) {
      dim = d.get<int64_t>();
      if (dim < 0)
        return Fail("schema", label + ": shape " + it->dump() + " has the negative dimension " +
                                  std::to_string(dim));
    } else {
      return Fail("schema", label + ": shape " + it->dump().substr(0, 64) +
                                " has a dimension that is " + Brief(d) +
                                ", expected a non-negative integer");
    }
    shape->push_back(dim);
    if (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(dim))
      overflow = true;
    else
      numel *= static_cast<uint64_t>(dim);
  }
  // A zero dimension makes the tensor empty whatever the others say.
  for (int64_t d : *shape) {
    if (d == 0) {
      numel = 0;
      overflow = false;
    }
  }
  if (overflow || numel > limits.max_elements)
    return Fail("limit", label + ": shape " + shape->ToString() + " has " +
                             (overflow ? std::string("more than 2^64") : std::to_string(numel)) +
                             " elements, above the limit of " +
                             std::to_string(limits.max_elements));
  return Status::Ok();
}

const json* FindString(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? &*it : nullptr;
}

// Decodes inputs[index]. A binary input records its byte count in *binary_size (its data is
// decoded later, once the binary section is located); otherwise the JSON data is decoded now.
Status ParseInput(json& j, size_t index, const Limits& limits, InferInput* in,
                  std::optional<uint64_t>* binary_size) {
  std::string label = "input " + std::to_string(index);
  if (!j.is_object()) return Fail("schema", label + " must be an object");
  auto name_it = j.find("name");
  if (name_it == j.end()) return Fail("schema", label + ": missing \"name\"");
  if (!name_it->is_string()) return Fail("schema", label + ": \"name\" must be a string");
  in->name = name_it->get<std::string>();
  if (in->name.empty()) return Fail("schema", label + ": \"name\" is empty");
  label = InputLabel(in->name, index);

  auto dt_it = j.find("datatype");
  if (dt_it == j.end()) return Fail("schema", label + ": missing \"datatype\"");
  if (!dt_it->is_string()) return Fail("schema", label + ": \"datatype\" must be a string");
  auto dt = DataTypeFromV2Name(dt_it->get_ref<const std::string&>());
  if (!dt)
    return Fail("schema", label + ": unknown datatype " + Quoted(dt_it->get<std::string>()) +
                              " (expected one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, "
                              "INT16, INT32, INT64, FP16, BF16, FP32, FP64, BYTES)");
  in->dtype = *dt;
  OP_RETURN_IF_ERROR(ParseShape(j, label, limits, &in->shape));

  if (auto p = j.find("parameters"); p != j.end()) {
    OP_RETURN_IF_ERROR(CheckParameters(*p, label));
    in->parameters = std::move(*p);
    json size = TakeParameter(&in->parameters, "binary_data_size");
    if (!size.is_null()) {
      if (!size.is_number_integer() || (!size.is_number_unsigned() && size.get<int64_t>() < 0))
        return Fail("binary", label + ": binary_data_size must be a non-negative integer, not " +
                                  Brief(size));
      *binary_size = size.get<uint64_t>();
    }
  }

  auto data_it = j.find("data");
  if (binary_size->has_value()) {
    if (data_it != j.end())
      return Fail("schema", label + ": has both \"data\" and parameters.binary_data_size");
    in->binary = true;
    return Status::Ok();
  }
  if (data_it == j.end())
    return Fail("schema", label + ": missing \"data\" (and no parameters.binary_data_size)");
  if (!data_it->is_array()) return Fail("schema", label + ": \"data\" must be an array");

  DataWalker walker(label, in->shape);
  size_t count = 0;
  OP_RETURN_IF_ERROR(walker.Count(*data_it, &count));
  const uint64_t numel = static_cast<uint64_t>(in->shape.numel());
  if (count != numel)
    return Fail("data", label + ": shape " + in->shape.ToString() + " needs " +
                            std::to_string(numel) + " elements but \"data\" has " +
                            std::to_string(count));
  OP_ASSIGN_OR_RETURN(in->tensor, Tensor::Allocate(in->dtype, in->shape));
  return walker.Fill(*data_it, in->tensor);
}

Status ParseOutputs(json& arr, const Limits& limits, std::vector<RequestedOutput>* outputs) {
  if (!arr.is_array()) return Fail("schema", "\"outputs\" must be an array");
  if (arr.size() > limits.max_outputs)
    return Fail("limit", "the request asks for " + std::to_string(arr.size()) +
                             " outputs, above the limit of " + std::to_string(limits.max_outputs));
  outputs->reserve(arr.size());
  for (size_t i = 0; i < arr.size(); ++i) {
    json& o = arr[i];
    std::string label = "output " + std::to_string(i);
    if (!o.is_object()) return Fail("schema", label + " must be an object");
    const json* name = FindString(o, "name");
    if (!name) return Fail("schema", label + ": missing \"name\" (a string)");
    RequestedOutput out;
    out.name = name->get<std::string>();
    if (out.name.empty()) return Fail("schema", label + ": \"name\" is empty");
    label = "output " + Quoted(out.name);
    for (const RequestedOutput& prev : *outputs)
      if (prev.name == out.name) return Fail("schema", label + " is requested twice");
    if (auto p = o.find("parameters"); p != o.end()) {
      OP_RETURN_IF_ERROR(CheckParameters(*p, label));
      out.parameters = std::move(*p);
      json b = TakeParameter(&out.parameters, "binary_data");
      if (!b.is_null()) {
        if (!b.is_boolean())
          return Fail("binary", label + ": binary_data must be true or false, not " + Brief(b));
        out.binary = b.get<bool>();
      }
    }
    outputs->push_back(std::move(out));
  }
  return Status::Ok();
}

}  // namespace

std::optional<DataType> DataTypeFromV2Name(std::string_view n) {
  static constexpr std::pair<std::string_view, DataType> kTable[] = {
      {"BOOL", DataType::kBool},     {"UINT8", DataType::kUInt8},   {"UINT16", DataType::kUInt16},
      {"UINT32", DataType::kUInt32}, {"UINT64", DataType::kUInt64}, {"INT8", DataType::kInt8},
      {"INT16", DataType::kInt16},   {"INT32", DataType::kInt32},   {"INT64", DataType::kInt64},
      {"FP16", DataType::kFloat16},  {"BF16", DataType::kBFloat16}, {"FP32", DataType::kFloat},
      {"FP64", DataType::kDouble},   {"BYTES", DataType::kString},
  };
  for (const auto& [name, dt] : kTable)
    if (name == n) return dt;
  return std::nullopt;
}

bool InferRequest::OutputBinary(std::string_view name) const {
  for (const RequestedOutput& o : outputs)
    if (o.name == name && o.binary.has_value()) return *o.binary;
  return all_outputs_binary;
}

Expected<InferRequest> ParseInferRequest(std::string_view body, std::optional<size_t> json_length,
                                         const Limits& limits) {
  std::string_view text = body;
  std::string_view binary;
  if (json_length.has_value()) {
    if (*json_length == 0) {
      RequestErrors("binary").Inc();
      return Unsupported(
          "Inference-Header-Content-Length: 0 (a raw binary request) needs the model's input "
          "metadata; it is not an inference request JSON");
    }
    if (*json_length > body.size())
      return Fail("binary", "Inference-Header-Content-Length is " + std::to_string(*json_length) +
                                " but the body has only " + std::to_string(body.size()) + " bytes");
    text = body.substr(0, *json_length);
    binary = body.substr(*json_length);
  }

  json doc;
  if (Status st = internal::ParseJson(text, limits.max_json_depth, "request JSON", &doc);
      !st.ok()) {
    RequestErrors("json").Inc();
    return st;
  }
  if (!doc.is_object()) return Fail("schema", "the request must be a JSON object");

  InferRequest req;
  if (auto it = doc.find("id"); it != doc.end()) {
    if (!it->is_string()) return Fail("schema", "\"id\" must be a string, not " + Brief(*it));
    req.id = std::move(it->get_ref<std::string&>());
  }
  if (auto it = doc.find("parameters"); it != doc.end()) {
    OP_RETURN_IF_ERROR(CheckParameters(*it, "request"));
    req.parameters = std::move(*it);
    json b = TakeParameter(&req.parameters, "binary_data_output");
    if (!b.is_null()) {
      if (!b.is_boolean())
        return Fail("binary", "request: binary_data_output must be true or false, not " + Brief(b));
      req.all_outputs_binary = b.get<bool>();
    }
  }
  if (auto it = doc.find("outputs"); it != doc.end())
    OP_RETURN_IF_ERROR(ParseOutputs(*it, limits, &req.outputs));

  auto inputs_it = doc.find("inputs");
  if (inputs_it == doc.end()) return Fail("schema", "missing \"inputs\"");
  if (!inputs_it->is_array()) return Fail("schema", "\"inputs\" must be an array");
  json& inputs = *inputs_it;
  if (inputs.empty()) return Fail("schema", "\"inputs\" is empty");
  if (inputs.size() > limits.max_inputs)
    return Fail("limit", "the request has " + std::to_string(inputs.size()) +
                             " inputs, above the limit of " + std::to_string(limits.max_inputs));

  req.inputs.resize(inputs.size());
  std::vector<std::optional<uint64_t>> binary_sizes(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    OP_RETURN_IF_ERROR(ParseInput(inputs[i], i, limits, &req.inputs[i], &binary_sizes[i]));
    for (size_t k = 0; k < i; ++k)
      if (req.inputs[k].name == req.inputs[i].name)
        return Fail("schema", "input " + Quoted(req.inputs[i].name) + " appears twice (inputs " +
                                  std::to_string(k) + " and " + std::to_string(i) + ")");
  }

  // The binary section holds the binary inputs' data back to back, in input order, exactly.
  size_t pos = 0;
  bool any_binary = false;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!binary_sizes[i].has_value()) continue;
    any_binary = true;
    std::string label = InputLabel(req.inputs[i].name, i);
    if (!json_length.has_value())
      return Fail("binary", label +
                                ": has binary_data_size but the request has no "
                                "Inference-Header-Content-Length");
    uint64_t size = *binary_sizes[i];
    if (size > binary.size() - pos)
      return Fail("binary", label + ": binary_data_size " + std::to_string(size) +
                                " runs past the end of the body (" +
                                std::to_string(binary.size() - pos) +
                                " bytes of binary data left)");
    OP_RETURN_IF_ERROR(DecodeBinary(binary.substr(pos, size), label, &req.inputs[i]));
    pos += size;
  }
  if (pos != binary.size())
    return Fail("binary", std::to_string(binary.size() - pos) + " bytes of binary data after the " +
                              (any_binary ? "last binary input" : "JSON") +
                              " are not claimed by any binary_data_size");
  return req;
}

Expected<InferRequest> ParseRawBinaryInput(std::string_view body, std::string_view input_name,
                                           DataType dtype, std::span<const int64_t> dims,
                                           const Limits& limits) {
  std::string label = "input " + Quoted(input_name);
  if (DataTypeV2Name(dtype).empty() || DataTypeSize(dtype) == 0)
    return Unsupported(label + ": type " + std::string(DataTypeName(dtype)) +
                       " has no V2 datatype");
  if (dims.size() > std::min<size_t>(limits.max_rank, Shape::kMaxRank))
    return Fail("limit", label + ": rank " + std::to_string(dims.size()) + " is above the limit");
  InferInput in;
  in.name = std::string(input_name);
  in.dtype = dtype;
  in.binary = true;
  if (dtype == DataType::kString) {
    // The whole body is the one element (Triton prepends the length itself).
    if (dims.size() != 1 || dims[0] != 1)
      return Fail("binary", label + ": a raw binary request with BYTES needs input shape [1]");
    if (body.size() > std::numeric_limits<uint32_t>::max())
      return Fail("limit", label + ": a BYTES element is at most 4 GiB - 1 bytes");
    in.shape = Shape{1};
    OP_ASSIGN_OR_RETURN(in.tensor, Tensor::Allocate(DataType::kString, in.shape));
    static_cast<std::string*>(in.tensor.raw())[0].assign(body.data(), body.size());
  } else {
    int variable = -1;
    uint64_t known = 1;
    for (size_t i = 0; i < dims.size(); ++i) {
      if (dims[i] < 0) {
        if (variable >= 0)
          return Fail("binary", label +
                                    ": a raw binary request allows at most one variable "
                                    "dimension");
        variable = static_cast<int>(i);
        continue;
      }
      if (dims[i] != 0 && known > limits.max_elements / static_cast<uint64_t>(dims[i]))
        return Fail("limit", label + ": the model's shape is above the element limit");
      known *= static_cast<uint64_t>(dims[i]);
    }
    uint64_t elem = DataTypeSize(dtype);
    uint64_t numel = body.size() / elem;
    if (body.size() % elem != 0 || (variable < 0 && numel != known) ||
        (variable >= 0 && (known == 0 ? numel != 0 : numel % known != 0)))
      return Fail("binary", label + ": " + std::to_string(body.size()) +
                                " bytes do not make a whole " + std::string(DataTypeV2Name(dtype)) +
                                " tensor of the model's shape");
    for (size_t i = 0; i < dims.size(); ++i) {
      int64_t d = dims[i];
      if (static_cast<int>(i) == variable) d = known == 0 ? 0 : static_cast<int64_t>(numel / known);
      in.shape.push_back(d);
    }
    if (numel > limits.max_elements)
      return Fail("limit", label + ": " + std::to_string(numel) + " elements, above the limit of " +
                               std::to_string(limits.max_elements));
    OP_RETURN_IF_ERROR(DecodeBinary(body, label, &in));
  }
  InferRequest req;
  req.inputs.push_back(std::move(in));
  req.all_outputs_binary = true;
  return req;
}

}  // namespace outpost::serve::v2
