// A model bundle directory as `outpost image build` writes it (manifest.yaml with paths relative
// to the bundle, model.onnx, golden/): its manifest and its golden check for the gate.
#pragma once

#include <string>

#include "outpost/config/manifest.h"
#include "outpost/core/status.h"
#include "outpost/ota/gate_probe.h"

namespace outpost::ota::internal {

// `<dir>/manifest.yaml` loaded with config/ (paths resolved inside `dir`); a bundle without a
// golden input and output is an error (the gate could not check it).
Expected<config::ModelManifest> LoadBundleManifest(const std::string& dir);

// What the probe sends and expects for `m` (its goldens, outpost.io/latency-budget-ms as the
// p95 budget).
GoldenModel GoldenOf(const config::ModelManifest& m, const Tolerance& tol);

}  // namespace outpost::ota::internal
