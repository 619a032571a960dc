// Pieces shared by the outpost subcommands.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "args.h"
#include "outpost/engine/session.h"

namespace outpost::cli {

// --backend, --threads, --opencl-platform, --opencl-device.
std::vector<FlagSpec> BackendFlags();
bool BackendOptionsFromArgs(Args& a, engine::SessionOptions* o, std::string* error);

// Parses "NAME=FILE" pairs and reads the files.
Expected<std::vector<std::pair<std::string, Tensor>>> ReadInputs(const std::vector<std::string>& specs);
// Deterministic pseudo-random inputs for every model input; symbolic dims become `dim_default`.
Expected<std::vector<std::pair<std::string, Tensor>>> RandomInputs(const engine::Session& s, int64_t dim_default);

// One line: "name: float32[1,10] min=.. max=.. mean=.. first=[...]".
std::string Summarize(const std::string& name, const Tensor& t);
std::string SanitizeFileName(const std::string& name);

}  // namespace outpost::cli
