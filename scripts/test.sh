#!/usr/bin/env bash
# Installs what is needed, builds, and runs every test (unit, conformance, integration).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
# PoCL keeps its own kernel cache; keep it (and ours) inside the build tree for hermetic runs.
export POCL_CACHE_DIR="$PWD/build/.pocl-cache"
export XDG_CACHE_HOME="$PWD/build/.cache"
export OUTPOST_SUITE_DIR="${OUTPOST_SUITE_DIR:-$(cd .. && pwd)/shared/onnx-node-tests}"
ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"
