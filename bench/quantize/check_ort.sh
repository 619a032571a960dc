#!/usr/bin/env bash
# Quantizes the digits models with `outpost quantize` and checks that ONNX Runtime runs each
# written QDQ file and agrees with Outpost's top-1 on >= 99% of the held-out digits test split.
#
#   bench/quantize/check_ort.sh [--outpost PATH]
#
# ONNX Runtime for Node is installed into bench/node_modules by npm (like run_bench.sh; gitignored).
# Prints one JSON line per model; exits 1 when a model fails to load in ONNX Runtime or agreement is
# below 99%. Outpost runs the QDQ files on its CPU backend (for int4 weights, which Outpost cannot
# hold yet, ONNX Runtime runs the written int4 file and Outpost the same weights held as int8).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
SRC="$(cd "$HERE/../.." && pwd)"
OUTPOST="${OUTPOST:-}"
[[ "${1:-}" == "--outpost" ]] && OUTPOST="$2"
if [[ -z "$OUTPOST" ]]; then
  for b in "$SRC/build/bin/outpost" "$SRC/build-release/bin/outpost"; do
    [[ -x "$b" ]] && { OUTPOST="$b"; break; }
  done
fi
[[ -x "$OUTPOST" ]] || { echo "check_ort.sh: no outpost binary (build it, or pass --outpost)" >&2; exit 1; }
if [[ ! -d "$SRC/bench/node_modules/onnxruntime-node" ]]; then
  (cd "$SRC/bench" && npm install --ignore-scripts --no-audit --no-fund >&2)
fi
Q="$SRC/tests/models/quant"
WORK="$(mktemp -d /tmp/outpost-quant-ort.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
status=0

# check NAME MODEL DATA [outpost quantize flags...]
check() {
  local name=$1 model=$2 data=$3; shift 3
  "$OUTPOST" quantize "$model" "$WORK/$name.onnx" --calibration "$Q/$data/calib" \
    --eval "$Q/$data/test" --labels "$Q/$data/test/labels.txt" --latency none "$@" \
    > "$WORK/$name.report"
  local ours="$WORK/$name.onnx"
  if [[ " $* " == *" int4 "* ]]; then  # Outpost runs the int8-held twin of the same weights
    ours="$WORK/$name.int8twin.onnx"
    "$OUTPOST" quantize "$model" "$ours" --calibration "$Q/$data/calib" --latency none \
      --weights int4 --block-size "${BLOCK:-32}" --int4-as-int8 > /dev/null
  fi
  [[ -f "$WORK/$data.npy" ]] || node "$HERE/ort_check.js" stack "$Q/$data/test" "$WORK/$data.npy"
  "$OUTPOST" run "$ours" --input "input=$WORK/$data.npy" --output-dir "$WORK/$name.out" > /dev/null
  local line
  line="$(node "$HERE/ort_check.js" compare "$WORK/$name.onnx" "$Q/$data/test" "$WORK/$name.out/logits.npy")" || {
    echo "{\"model\":\"$name\",\"error\":\"ONNX Runtime could not run it\"}"; status=1; return; }
  echo "${line/\"model\":\"$name.onnx\"/\"model\":\"$name\"}"
  node -e "process.exit(JSON.parse(process.argv[1]).agreement >= 0.99 ? 0 : 1)" "$line" || status=1
}

check digits_cnn_int8 "$SRC/tests/models/digits_cnn.onnx" digits8
check digits_cnn_int8_perchannel_uint8 "$SRC/tests/models/digits_cnn.onnx" digits8 --per-channel --activations uint8
check digits_mobilenet_int8 "$Q/digits_mobilenet.onnx" digits32
check digits_mobilenet_int8_perchannel "$Q/digits_mobilenet.onnx" digits32 --per-channel
check digits_mlp_int4_b32 "$Q/digits_mlp.onnx" digits8 --weights int4 --block-size 32
check digits_mobilenet_fp16 "$Q/digits_mobilenet.onnx" digits32 --fp16
exit $status
