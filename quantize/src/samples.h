// Calibration and evaluation sample sets on disk, and their labels.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "outpost/core/status.h"
#include "outpost/core/tensor.h"
#include "outpost/engine/session.h"

namespace outpost::quantize {

// One sample: a tensor per model input, named.
using Sample = std::vector<std::pair<std::string, Tensor>>;

// Reads a sample folder (see Options::calibration_dir) and checks every tensor against the model's
// inputs (dtype, rank, fixed dims). `what` names the set in errors ("calibration", "eval").
Expected<std::vector<Sample>> LoadSamples(const std::string& dir,
                                          const std::vector<engine::ValueInfo>& inputs,
                                          const std::string& what);

// One integer class per line; exactly `count` lines (blank trailing lines ignored).
Expected<std::vector<int64_t>> LoadLabels(const std::string& path, size_t count);

}  // namespace outpost::quantize
