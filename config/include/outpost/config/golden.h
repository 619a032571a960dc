// Golden tensor files of a manifest (`outpost.io/golden-input` / `golden-output`): one file, or a
// directory holding one `<tensor name>.npy` or `<tensor name>.pb` per tensor. Only names and
// paths: reading the tensors is the caller's (outpostd through the engine, the OTA gate through
// runtime/core's tensor_file.h).
#pragma once

#include <string>
#include <vector>

#include "outpost/core/status.h"

namespace outpost::config {

struct GoldenFile {
  std::string tensor;  // the model's input or output name
  std::string path;
};

// The files of a golden-input or golden-output path. A regular file: one entry, tensor empty
// (it stands for the model's only input, or its first output). A directory: one entry per
// `NAME.npy` / `NAME.pb`, sorted by name; anything else in it, a name given twice (`a.npy` and
// `a.pb`) or no file at all is kInvalidArgument naming the directory.
Expected<std::vector<GoldenFile>> ListGoldenFiles(const std::string& path);

// Golden inputs matched to the model's input names: a file needs a one-input model; a directory
// must hold exactly one file per input. kInvalidArgument names the path and the input.
Expected<std::vector<GoldenFile>> MatchGoldenInputs(const std::string& path,
                                                    const std::vector<std::string>& inputs);

// Golden outputs matched to the model's output names: a file is the first output; in a directory
// every file must name an output (outputs without a file are not compared).
Expected<std::vector<GoldenFile>> MatchGoldenOutputs(const std::string& path,
                                                     const std::vector<std::string>& outputs);

}  // namespace outpost::config
