#!/usr/bin/env bash
# `outpost quantize` end to end: usage errors, a written model that `outpost run` accepts, the
# gate's exit status 3 with nothing written, bad input as exit 1 naming the culprit.
# Usage: quantize_cli_test.sh OUTPOST_BINARY SOURCE_DIR
set -uo pipefail
bin=$1 src=$2
# shellcheck source=../common/check.sh
. "$(dirname "${BASH_SOURCE[0]}")/../common/check.sh"
q=$src/tests/models/quant
cnn=$src/tests/models/digits_cnn.onnx
mb=$q/digits_mobilenet.onnx
eval8=(--eval "$q/digits8/test" --labels "$q/digits8/test/labels.txt")
eval32=(--eval "$q/digits32/test" --labels "$q/digits32/test/labels.txt")

check "--help" test "$(rc "$bin" quantize --help)" = 0
check "--help text" grep -q "usage: outpost quantize" "$tmp/out"
check "listed in outpost --help" bash -c "'$bin' --help | grep -q '^  quantize'"
check "no calibration" test "$(rc "$bin" quantize "$cnn" "$tmp/a.onnx")" = 2
check "no calibration named" grep -q -- "--calibration DIR is required" "$tmp/err"
check "bad method" test "$(rc "$bin" quantize "$cnn" "$tmp/a.onnx" --calibration "$q/digits8/calib" --method median)" = 2
check "bad method named" grep -q "unknown calibration method 'median'" "$tmp/err"
check "bad activations" test "$(rc "$bin" quantize "$cnn" "$tmp/a.onnx" --calibration "$q/digits8/calib" --activations int16)" = 2
check "fp16 with int4 refused" test "$(rc "$bin" quantize "$cnn" "$tmp/a.onnx" --calibration "$q/digits8/calib" --fp16 --weights int4)" = 1
check "fp16 with int4 says why" grep -q "does not combine" "$tmp/err"
check "block size without int4" test "$(rc "$bin" quantize "$cnn" "$tmp/a.onnx" --calibration "$q/digits8/calib" --block-size 32)" = 2
check "bad block size" test "$(rc "$bin" quantize "$cnn" "$tmp/a.onnx" --calibration "$q/digits8/calib" --weights int4 --block-size 0)" = 2
check "nothing written on refusal" test ! -e "$tmp/a.onnx"

# A written model: report lines, and the file runs.
check "quantize ok" test "$(rc "$bin" quantize "$cnn" "$tmp/cnn_q.onnx" --calibration "$q/digits8/calib" "${eval8[@]}" --latency cpu)" = 0
check "report size" grep -q "^model size: float 56873 bytes, quantized" "$tmp/out"
check "report accuracy" grep -q "^accuracy (top-1, 450 eval samples): float 98.22%" "$tmp/out"
check "report SNR" grep -q "/features/features.3/Conv .* dB" "$tmp/out"
check "report latency" grep -q "^latency cpu .* ms per sample" "$tmp/out"
check "report wrote" grep -q "^wrote $tmp/cnn_q.onnx" "$tmp/out"
check "written model runs" test "$(rc "$bin" run "$tmp/cnn_q.onnx" --input "input=$q/digits8/test/0000.npy")" = 0
check "written model output" grep -q "^logits: float32\[1,10\]" "$tmp/out"

# The gate: entropy thresholds cost the MobileNet about 8 points; exit 3, nothing written.
check "gate fails" test "$(rc "$bin" quantize "$mb" "$tmp/mb_q.onnx" --calibration "$q/digits32/calib" "${eval32[@]}" --method entropy --max-accuracy-drop 0.5 --latency none)" = 3
check "gate numbers" grep -q "accuracy drop .* points exceeds --max-accuracy-drop 0.50 (float 98.22%, quantized" "$tmp/err"
check "gate wrote nothing" test ! -e "$tmp/mb_q.onnx"
check "gate report says so" grep -q "accuracy gate FAILED: nothing written" "$tmp/out"
check "gate needs labels" test "$(rc "$bin" quantize "$mb" "$tmp/mb_q.onnx" --calibration "$q/digits32/calib" --max-accuracy-drop 0.5)" = 1

# Bad input: exit 1, the culprit named.
check "shape mismatch" test "$(rc "$bin" quantize "$cnn" "$tmp/b.onnx" --calibration "$q/digits32/calib")" = 1
check "shape mismatch named" grep -q "0000.npy: float32\[1,1,32,32\] does not match model input 'input'" "$tmp/err"
mkdir -p "$tmp/empty"
check "empty calibration" test "$(rc "$bin" quantize "$cnn" "$tmp/b.onnx" --calibration "$tmp/empty")" = 1
check "empty calibration named" grep -q "is empty" "$tmp/err"
check "unsupported model" test "$(rc "$bin" quantize "$src/tests/models/iris_mlp_opset9.onnx" "$tmp/b.onnx" --calibration "$q/digits8/calib")" = 1
check "unsupported model named" grep -q "opset 9" "$tmp/err"
check "nothing written on bad input" test ! -e "$tmp/b.onnx"

finish
