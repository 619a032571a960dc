// libFuzzer target for the V2 codec (runtime/serve/v2): ParseInferRequest on hostile bodies and,
// when a request is accepted, EncodeInferResponse of its inputs echoed back as outputs.
//
// Input layout: the first 2 bytes choose the Inference-Header-Content-Length header, the rest is
// the HTTP body. Bit 0 of byte 0 says whether the header is present; its value is
// (byte0 >> 1) | (byte1 << 7) (0..32767, possibly beyond the body, which must be refused).
// Seeds live in tests/fuzz/corpus/v2_infer_request_fuzz/.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/serve/v2/v2.h"

namespace {

// A broken invariant: crash so that libFuzzer records the input.
void Check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace outpost::serve::v2;
  if (size < 2) return 0;
  std::optional<size_t> json_length;
  if (data[0] & 1) json_length = static_cast<size_t>((data[0] >> 1) | (data[1] << 7));
  std::string_view body(reinterpret_cast<const char*>(data) + 2, size - 2);

  Limits limits;
  limits.max_elements = size_t{1} << 20;  // keep allocations small under the fuzzer
  auto req = ParseInferRequest(body, json_length, limits);
  if (!req.ok()) {
    Check(!req.status().message().empty());
    Check(nlohmann::json::accept(EncodeError(req.status().message())));
    return 0;
  }

  // Every accepted input is a host tensor whose shape and type match what was declared.
  std::vector<InferOutput> outputs;
  for (size_t i = 0; i < req->inputs.size(); ++i) {
    const InferInput& in = req->inputs[i];
    Check(in.tensor.has_data() && in.tensor.dtype() == in.dtype && in.tensor.shape() == in.shape);
    // Alternate JSON and binary outputs; honour the request's choice where it made one.
    bool binary = req->OutputBinary(in.name) || (i % 2 == 1);
    outputs.push_back({in.name, in.tensor, binary, in.parameters});
  }

  auto resp = EncodeInferResponse("fuzz", "1", req->id, req->parameters, outputs);
  if (!resp.ok()) {
    // Only BYTES that are not UTF-8 may fail to go out as JSON.
    Check(!resp.status().message().empty());
    return 0;
  }
  std::string_view header = resp->body;
  if (resp->json_length) {
    Check(*resp->json_length <= resp->body.size());
    header = header.substr(0, *resp->json_length);
  }
  // The JSON part is always strict JSON (non-finite numbers are written as null by default).
  Check(nlohmann::json::accept(header));
  return 0;
}
