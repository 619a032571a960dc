#!/usr/bin/env bash
# Model-only update: time from the download complete to the new version serving (issue #6's
# target: under 2 s for the digits and MobileNetV2 models, zero failed requests).
#
#   bench/ota/model_swap.sh [--build DIR] [--rounds N]
#                           [--models "digits_cnn mobilenet_v2 mobilenet_v2_full"]
#                           [--out FILE.jsonl]
#
# digits_cnn and mobilenet_v2 are tests/models' (with their ONNX Runtime goldens; that
# MobileNetV2 is width 0.25 at 96x96); mobilenet_v2_full is bench/models/mobilenet_v2.onnx
# (width 1.0, 224x224, made by bench/make_bench_models.py when missing) with a random golden
# input and ONNX Runtime's output for it (bench/node_modules, as run_bench.sh installs it).
# Per model: a signing key (GnuPG home in a temp dir), `outpost image build` commits version 1
# of the model's bundle (the model with its goldens), a real
# outpostd on 127.0.0.1:0 with an empty manifest directory, `outpost ota models update` installs
# version 1 (file:// remote, GPG-verified), then each round commits version k+1 (same model,
# another version: a new commit) and updates to it. Each update's JSON is one line of the
# output file; the table prints swap_ms (end of the pull -> new version serving: checkout,
# file check, manifest, outpostd's load beside the old version, warm-up, golden check, swap,
# index confirming it) and verify_ms (the V2 golden check after it). A client (load_client.py)
# sends the model's golden input back to back across all updates of a model and counts the
# requests that were not answered 200. Nothing asserted here: correctness is tests/ota
# (ota_models_tests).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BUILD="$ROOT/build" ROUNDS=5 MODELS="digits_cnn mobilenet_v2 mobilenet_v2_full" OUT=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) BUILD="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --models) MODELS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "model_swap.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
OUTPOST="$BUILD/bin/outpost" OUTPOSTD="$BUILD/bin/outpostd"
for b in "$OUTPOST" "$OUTPOSTD"; do
  [[ -x "$b" ]] || { echo "model_swap.sh: $b not built" >&2; exit 1; }
done
OUT="${OUT:-$(mktemp /tmp/outpost-model-swap.XXXXXX.jsonl)}"
: > "$OUT"
WORK="$(mktemp -d /tmp/omswap.XXXXXX)"  # short: gpg-agent's socket lives in the GnuPG home
DPID="" LPID=""
cleanup() {
  [[ -n "$LPID" ]] && kill "$LPID" 2>/dev/null || true
  [[ -n "$DPID" ]] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null || true
  gpgconf --homedir "$WORK/g" --kill gpg-agent 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/g" && chmod 700 "$WORK/g"
gpg --homedir "$WORK/g" --batch --passphrase '' --quick-gen-key 'Bench <bench@test.invalid>' \
  ed25519 sign never 2>/dev/null
FPR="$(gpg --homedir "$WORK/g" --with-colons --list-keys Bench | awk -F: '/^fpr/{print $10; exit}')"
gpg --homedir "$WORK/g" --armor --export "$FPR" > "$WORK/bench.asc"
mkdir -p "$WORK/base/usr/lib/modules/6.1.0" "$WORK/base/etc"
echo kernel > "$WORK/base/usr/lib/modules/6.1.0/vmlinuz"
printf '#!/bin/sh\n' > "$WORK/outpostd-stub" && chmod 755 "$WORK/outpostd-stub"

# model_file MODEL, golden_dir MODEL: where the model and its input_0.npy/output_0.npy are.
model_file() {
  [[ "$1" == mobilenet_v2_full ]] && echo "$ROOT/bench/models/mobilenet_v2.onnx" ||
    echo "$ROOT/tests/models/$1.onnx"
}
golden_dir() {
  [[ "$1" == mobilenet_v2_full ]] && echo "$WORK/golden-full" || echo "$ROOT/tests/models/golden/$1"
}
# The full-size MobileNetV2 and its goldens: a random input (seed 0), ONNX Runtime's output.
prepare_full() {
  [[ -f "$ROOT/bench/models/mobilenet_v2.onnx" ]] || /usr/bin/python3 "$ROOT/bench/make_bench_models.py" >&2
  if [[ ! -d "$ROOT/bench/node_modules/onnxruntime-node" ]]; then
    (cd "$ROOT/bench" && npm install --ignore-scripts --no-audit --no-fund >&2)
  fi
  mkdir -p "$WORK/golden-full"
  /usr/bin/python3 - "$WORK/golden-full/input_0.npy" <<'PY'
import random, struct, sys
random.seed(0)
n = 3 * 224 * 224
h = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 224, 224), }"
h += " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
with open(sys.argv[1], "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode())
    f.write(struct.pack("<%df" % n, *(random.gauss(0, 1) for _ in range(n))))
PY
  NODE_PATH="$ROOT/bench/node_modules" node "$ROOT/tests/models/ort_reference.js" \
    "$ROOT/bench/models/mobilenet_v2.onnx" "$WORK/golden-full" "$WORK/golden-full/input_0.npy" >&2
}

# manifest MODEL VERSION: a manifest of the model with its goldens.
manifest() {
  local m="$1" v="$2" g
  g="$(golden_dir "$1")"
  mkdir -p "$WORK/src-$v"
  cat > "$WORK/src-$v/$m.yaml" <<EOF
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: ${m//_/-}
  annotations:
    outpost.io/version: "$v"
    outpost.io/golden-input: "$g/input_0.npy"
    outpost.io/golden-output: "$g/output_0.npy"
spec:
  predictor:
    model:
      modelFormat:
        name: onnx
      storageUri: "$(model_file "$m")"
EOF
  echo "$WORK/src-$v/$m.yaml"
}

# publish MODEL VERSION: commits version VERSION of the model's bundle (and an OS commit).
publish() {
  "$OUTPOST" image build --repo "$WORK/srv" --ref outpost/bench/x86_64 --base "$WORK/base" \
    --outpostd "$WORK/outpostd-stub" --systemd-dir "$ROOT/runtime/outpostd/systemd" \
    --config "$ROOT/config/examples/device.yaml" --version "os-$2" --model "$(manifest "$1" "$2")" \
    --timestamp "$((1700000000 + $2))" --gpg-homedir "$WORK/g" --gpg-key "$FPR" >/dev/null
}

update() {
  "$OUTPOST" ota models update "$1" --remote "file://$WORK/srv" --trusted-key "$WORK/bench.asc" \
    --repo "$WORK/dev/repo" --ref-prefix outpost/bench/models --models-root "$WORK/dev/models" \
    --manifest-dir "$WORK/dev/manifests" --state-dir "$WORK/dev/ota" \
    --outpostd "127.0.0.1:$PORT" 2>"$WORK/update.log"
}

for model in $MODELS; do
  [[ "$model" == mobilenet_v2_full ]] && prepare_full
  name="${model//_/-}"
  rm -rf "$WORK/srv" "$WORK/dev" && mkdir -p "$WORK/dev/manifests"
  "$OUTPOSTD" --listen 127.0.0.1:0 --manifests "$WORK/dev/manifests" --models "$ROOT/tests/models" \
    > "$WORK/outpostd.out" 2> "$WORK/outpostd.log" &
  DPID=$!
  PORT=""
  for _ in $(seq 300); do
    PORT="$(sed -n 's/^outpostd listening on .*:\([0-9]*\)$/\1/p' "$WORK/outpostd.out")"
    [[ -n "$PORT" ]] && break
    sleep 0.1
  done
  [[ -n "$PORT" ]] || { echo "outpostd did not start:"; cat "$WORK/outpostd.log"; exit 1; } >&2
  publish "$model" 1
  update "$name" > /dev/null || { cat "$WORK/update.log" >&2; exit 1; }
  # A client sending the golden input back to back across every update of this model.
  rm -f "$WORK/stop"
  /usr/bin/python3 "$HERE/load_client.py" "$PORT" "$name" "$(golden_dir "$model")/input_0.npy" \
    "$WORK/stop" "$WORK/load-$model.json" &
  LPID=$!
  sleep 1
  for k in $(seq 2 $((ROUNDS + 1))); do
    publish "$model" "$k"
    t0="$(date +%s.%N)"
    if ! line="$(update "$name")"; then
      echo "$line" >&2; cat "$WORK/update.log" >&2; exit 1
    fi
    t1="$(date +%s.%N)"
    jq -c --arg m "$model" --arg b "$(stat -c %s "$(model_file "$model")")" \
      --arg t0 "$t0" --arg t1 "$t1" \
      '{model: $m, model_bytes: ($b|tonumber), outcome, commit, download_ms, swap_ms, verify_ms,
        update_start: ($t0|tonumber), update_end: ($t1|tonumber)}' <<<"$line" >> "$OUT"
  done
  sleep 1
  touch "$WORK/stop" && wait "$LPID"
  LPID=""
  jq -c --arg m "$model" '{model: $m, load: .}' "$WORK/load-$model.json" >> "$OUT"
  kill "$DPID" && wait "$DPID" 2>/dev/null || true
  DPID=""
done

echo "results: $OUT"
printf '%-18s %6s %10s %12s %12s %12s %10s %8s %10s\n' model rounds bytes "swap_ms p50" \
  "swap_ms max" "verify_ms p50" requests failed "in update"
jq -rs '[.[] | select(.load)] as $l | [.[] | select(.swap_ms)] | group_by(.model)[] |
  .[0].model as $m | (map(.swap_ms) | sort) as $s | (map(.verify_ms) | sort) as $v |
  ($l | map(select(.model == $m))[0].load) as $ld |
  . as $u | ([$ld.failure_times[] | select(. as $t | any($u[]; .update_start <= $t and
   $t <= .update_end))] | length) as $in_update |
  [$m, length, .[0].model_bytes, ($s[(length/2|floor)]|round), ($s[-1]|round),
   ($v[(length/2|floor)]|round), $ld.sent, $ld.failed, $in_update] | @tsv' "$OUT" |
  while IFS=$'\t' read -r m n b p50 mx v50 sent failed inupd; do
    printf '%-18s %6s %10s %12s %12s %12s %10s %8s %10s\n' "$m" "$n" "$b" "$p50" "$mx" "$v50" \
      "$sent" "$failed" "$inupd"
  done
