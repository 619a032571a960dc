// KServe V2 / Open Inference Protocol codec: pure encode/decode of HTTP bodies (no HTTP, no
// engine), so that every byte a client can send is fuzzable. Covers the inference request and
// response (JSON tensors, the `outputs` selection, `id`, `parameters`), the binary tensor data
// extension (Inference-Header-Content-Length, binary_data_size, binary_data, binary_data_output),
// error bodies, server/model metadata, health bodies and the model repository extension.
// See runtime/serve/v2/README.md for the rules this codec follows where the spec leaves a choice.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/core/dtype.h"
#include "outpost/core/status.h"
#include "outpost/core/tensor.h"

namespace outpost::serve::v2 {

// ---- Data types ---------------------------------------------------------------------------------
// "BOOL", "UINT8".."UINT64", "INT8".."INT64", "FP16", "BF16", "FP32", "FP64", "BYTES" (case-
// sensitive, as the spec says of all strings). nullopt for anything else. The reverse direction is
// outpost::DataTypeV2Name (dtype.h).
std::optional<DataType> DataTypeFromV2Name(std::string_view name);

// ---- Inference request --------------------------------------------------------------------------
struct Limits {
  size_t max_elements = size_t{1} << 26;  // per tensor, checked from the shape before allocation
  size_t max_inputs = 64;
  size_t max_outputs = 64;     // requested outputs
  size_t max_rank = 8;         // clamped to Shape::kMaxRank
  size_t max_json_depth = 64;  // nesting of arrays/objects in the JSON header
};

struct InferInput {
  std::string name;
  DataType dtype = DataType::kUndefined;
  Shape shape;
  Tensor tensor;  // owned host tensor holding the decoded data (kString elements for BYTES)
  // The input's parameters minus the extension's `binary_data_size`; null when none were given.
  nlohmann::json parameters;
  bool binary = false;  // the data came from the binary section
};

struct RequestedOutput {
  std::string name;
  // `parameters.binary_data` of this output when given; overrides the request-level
  // `binary_data_output` (binary extension).
  std::optional<bool> binary;
  nlohmann::json parameters;  // minus `binary_data`; null when none were left
};

struct InferRequest {
  std::string id;             // "" when absent
  nlohmann::json parameters;  // minus `binary_data_output`; null when none were left
  std::vector<InferInput> inputs;
  std::vector<RequestedOutput> outputs;  // empty: the client wants every output
  bool all_outputs_binary = false;       // request-level `parameters.binary_data_output`

  // Whether output `name` must be returned as binary data: its own `binary_data` when given, else
  // the request-level `binary_data_output`.
  bool OutputBinary(std::string_view name) const;
};

// `body` is the whole HTTP body. `json_length` is the value of the Inference-Header-Content-Length
// header when the client sent one: the JSON object is body[0, json_length) and the binary tensor
// data of the inputs that carry `binary_data_size` follows, in input order, filling the rest of the
// body exactly. Without it the whole body is JSON. json_length == 0 (the raw binary request, which
// needs model metadata) is refused as kUnsupported: the daemon handles it with ParseRawBinaryInput.
// Every malformed request is kInvalidArgument with a message that names the input and the fault.
Expected<InferRequest> ParseInferRequest(std::string_view body, std::optional<size_t> json_length,
                                         const Limits& limits = {});

// ---- Inference response -------------------------------------------------------------------------
// JSON has no NaN or infinities. kNull writes them as null (valid JSON, the default; a client that
// needs the exact values asks for binary output). kLiterals writes NaN, Infinity and -Infinity as
// Triton does (its clients and Python's json module read them; strict JSON parsers do not).
enum class NonFinite { kNull, kLiterals };

struct EncodeOptions {
  NonFinite non_finite = NonFinite::kNull;
};

struct InferOutput {
  std::string name;
  Tensor tensor;  // host tensor with data, of a type that has a V2 name
  bool binary = false;
  // Extra output parameters (an object of scalars) to send; null for none. `binary_data_size` is
  // added by the encoder for binary outputs.
  nlohmann::json parameters;
};

struct EncodedResponse {
  std::string body;
  // Set when some output is binary: send it as Inference-Header-Content-Length (the JSON part is
  // body[0, *json_length), the binary data of the binary outputs follows in output order).
  std::optional<size_t> json_length;
  std::string_view content_type;  // "application/json" or "application/octet-stream"
};

// `model_version` and `id` are omitted when empty; `parameters` (an object, typically the
// request's parameters, see README) is omitted when null or empty. Fails (kInvalidArgument) on an
// output that is not a host tensor with data, on a type with no V2 name, and on a BYTES element
// that is not valid UTF-8 in a JSON output (the client must ask for it as binary data).
Expected<EncodedResponse> EncodeInferResponse(std::string_view model_name,
                                              std::string_view model_version, std::string_view id,
                                              const nlohmann::json& parameters,
                                              const std::vector<InferOutput>& outputs,
                                              const EncodeOptions& options = {});

// Picks the outputs the request asked for from the model's outputs (`names[i]` is the name of
// `tensors[i]`): in the requested order, or all of them in model order when the request names
// none, with `binary` resolved by InferRequest::OutputBinary. An unknown requested name is
// kInvalidArgument.
Expected<std::vector<InferOutput>> SelectOutputs(const InferRequest& request,
                                                 std::span<const std::string> names,
                                                 std::span<const Tensor> tensors);

// ---- Raw binary request (binary extension, Inference-Header-Content-Length: 0) ------------------
// The whole body is the data of the model's single input, described by `dtype` and `dims` (-1 for
// a variable dimension, at most one of them; BYTES inputs must have shape [1]). Outputs are then
// all binary (the caller sets all_outputs_binary).
Expected<InferRequest> ParseRawBinaryInput(std::string_view body, std::string_view input_name,
                                           DataType dtype, std::span<const int64_t> dims,
                                           const Limits& limits = {});

// ---- Errors -------------------------------------------------------------------------------------
// {"error":"<message>"}, escaped; invalid UTF-8 in the message is replaced by U+FFFD.
std::string EncodeError(std::string_view message);
// The HTTP status for a failed call with this status code: 400 for a bad request (the spec's
// "typically 400"), 404 for an unknown model, 429 when out of resources, 503 while unavailable,
// 504 past a deadline, 499 when the client went away, 500 for our own faults.
int HttpStatusFor(Code code);

// ---- Health and metadata ------------------------------------------------------------------------
std::string EncodeServerLive(bool live);                          // {"live":true}
std::string EncodeServerReady(bool ready);                        // {"ready":true}
std::string EncodeModelReady(std::string_view name, bool ready);  // {"name":..,"ready":..}
// {"name":..,"version":..,"extensions":[..]}
std::string EncodeServerMetadata(std::string_view name, std::string_view version,
                                 const std::vector<std::string>& extensions);

// Extension names as reported in server metadata (Triton's spelling).
inline constexpr std::string_view kExtensionBinaryTensorData = "binary_tensor_data";
inline constexpr std::string_view kExtensionModelRepository = "model_repository";
// Platform name for ONNX models, from the spec's list of platforms ("<project>_<format>").
inline constexpr std::string_view kPlatformOnnx = "onnx_onnxv1";

struct TensorMetadata {
  std::string name;
  DataType dtype = DataType::kUndefined;
  std::vector<int64_t> shape;  // -1 for a variable dimension
};
// {"name":..,"versions":[..],"platform":..,"inputs":[..],"outputs":[..]}; "versions" omitted when
// empty. Fails (kUnsupported) on a tensor whose type has no V2 name.
Expected<std::string> EncodeModelMetadata(std::string_view name,
                                          const std::vector<std::string>& versions,
                                          std::string_view platform,
                                          const std::vector<TensorMetadata>& inputs,
                                          const std::vector<TensorMetadata>& outputs);

// ---- Model repository extension -----------------------------------------------------------------
// POST v2/repository/index with {"ready": bool} (optional; an empty body means ready=false).
struct RepositoryIndexRequest {
  bool ready = false;
};
Expected<RepositoryIndexRequest> ParseRepositoryIndexRequest(std::string_view body);

struct RepositoryIndexEntry {
  std::string name;
  std::string version;  // omitted when empty
  std::string state;    // "READY", "UNAVAILABLE", "LOADING", "UNLOADING" (Triton's states)
  std::string reason;
};
// [{"name":..,"version":..,"state":..,"reason":..}, ...]
std::string EncodeRepositoryIndex(const std::vector<RepositoryIndexEntry>& entries);

// POST v2/repository/models/<name>/load and .../unload: the body is empty or
// {"parameters": {...}}. Returns the parameters object (null when none).
Expected<nlohmann::json> ParseRepositoryModelRequest(std::string_view body);

}  // namespace outpost::serve::v2
