#!/usr/bin/env bash
# Installs what is needed, builds, and runs the bundled example model end to end.
# (The serving daemon outpostd is the next step of the roadmap; until it lands, the main job is
# the engine: classify a held-out digit with the bundled digits CNN on both backends.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
model=tests/models/digits_cnn.onnx
sample=tests/models/golden/digits_cnn/input_0.npy
build/bin/outpost inspect "$model" | sed -n '1,12p'
for backend in cpu opencl; do
  echo "== outpost run ($backend)"
  build/bin/outpost run "$model" --input "input=$sample" --backend "$backend" --output-dir "build/out-$backend"
done
