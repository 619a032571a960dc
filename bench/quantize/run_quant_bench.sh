#!/usr/bin/env bash
# INT8 vs FP32 latency on MobileNetV2 and ResNet-18 (full size, 224x224, random weights), ours
# and ONNX Runtime's on the same files (issue #3's speed targets).
#
#   bench/quantize/run_quant_bench.sh [--outpost PATH] [--rounds N] [--runs N] [--threads N]
#                                     [--models "mobilenet_v2 resnet18"] [--no-opencl]
#                                     [--quantize-args "--per-channel"]
#
# Makes the FP32 models (bench/make_bench_models.py, on demand, gitignored), quantizes each with
# `outpost quantize` (per-channel int8 weights, int8... as --quantize-args says; calibration: 16
# deterministic random inputs, which is fine for speed), then, per round and interleaved, times
# FP32 and INT8 with ONNX Runtime (onnxruntime-node, CPU EP), `outpost bench --backend cpu` and
# `--backend opencl`. The table has the median over rounds of each run's p50, the INT8/FP32
# ratio per engine and ours/ORT on the INT8 file. Raw JSON lines go to --out (default: a temp
# file, printed). See bench/README.md, "Quantized models".
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BENCH="$(cd "$HERE/.." && pwd)"
ROOT="$(cd "$BENCH/.." && pwd)"
OUTPOST="" ROUNDS=3 RUNS=20 WARMUP=5 THREADS=2 OPENCL=1 MODELS="mobilenet_v2 resnet18"
QARGS="--per-channel" OUT=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --outpost) OUTPOST="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --models) MODELS="$2"; shift 2 ;;
    --no-opencl) OPENCL=0; shift ;;
    --quantize-args) QARGS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "run_quant_bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
OUTPOST="${OUTPOST:-$ROOT/build/bin/outpost}"
[[ -x "$OUTPOST" ]] || { echo "run_quant_bench.sh: no outpost binary at $OUTPOST" >&2; exit 1; }
if [[ ! -d "$BENCH/node_modules/onnxruntime-node" ]]; then
  (cd "$BENCH" && npm install --ignore-scripts --no-audit --no-fund >&2)
fi
/usr/bin/python3 "$BENCH/make_bench_models.py" >&2
MODELDIR="$BENCH/models"
OUT="${OUT:-$(mktemp /tmp/outpost-quant-bench.XXXXXX.jsonl)}"
: >"$OUT"
WORK="$(mktemp -d /tmp/outpost-quant-bench.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

for m in $MODELS; do
  q="$MODELDIR/${m}_int8.onnx"
  if [[ ! -f "$q" || "$q" -ot "$MODELDIR/$m.onnx" ]]; then
    mkdir -p "$WORK/calib_$m"
    /usr/bin/python3 - "$WORK/calib_$m" <<'PY'
import sys, numpy as np
rng = np.random.default_rng(7)
for i in range(16):
    np.save(f"{sys.argv[1]}/{i:03d}.npy", rng.standard_normal((1, 3, 224, 224)).astype(np.float32))
PY
    echo "quantizing $m: $OUTPOST quantize $MODELDIR/$m.onnx $q --calibration $WORK/calib_$m $QARGS" >&2
    # shellcheck disable=SC2086
    "$OUTPOST" quantize "$MODELDIR/$m.onnx" "$q" --calibration "$WORK/calib_$m" $QARGS >"$WORK/quant_$m.txt" 2>&1 ||
      { cat "$WORK/quant_$m.txt" >&2; exit 1; }
  fi
  echo "$m: FP32 $(stat -c %s "$MODELDIR/$m.onnx") bytes, INT8 $(stat -c %s "$q") bytes" >&2
done

record() {  # MODEL PRECISION ENGINE ROUND CMD...
  local model="$1" prec="$2" engine="$3" round="$4"; shift 4
  local line
  if line="$("$@" 2>"$WORK/err")"; then
    line="$(tail -n 1 <<<"$line")"
    /usr/bin/python3 -c 'import json,sys; j=json.loads(sys.argv[1]); j.update(model=sys.argv[2], precision=sys.argv[3], engine=sys.argv[4], round=int(sys.argv[5])); print(json.dumps(j))' \
      "$line" "$model" "$prec" "$engine" "$round" >>"$OUT"
  else
    echo "FAILED: $model $prec $engine: $(tail -n 3 "$WORK/err")" >&2
  fi
}

for r in $(seq 1 "$ROUNDS"); do
  for m in $MODELS; do
    for prec in fp32 int8; do
      f="$MODELDIR/$m.onnx"; [[ $prec == int8 ]] && f="$MODELDIR/${m}_int8.onnx"
      record "$m" "$prec" ort "$r" node "$BENCH/ort_bench.js" "$f" --shape 1,3,224,224 \
        --threads "$THREADS" --warmup "$WARMUP" --runs "$RUNS"
      record "$m" "$prec" cpu "$r" "$OUTPOST" bench "$f" --backend cpu --threads "$THREADS" \
        --warmup "$WARMUP" --runs "$RUNS" --json
      if [[ $OPENCL == 1 ]]; then
        record "$m" "$prec" opencl "$r" "$OUTPOST" bench "$f" --backend opencl --threads "$THREADS" \
          --warmup "$WARMUP" --runs "$RUNS" --json
      fi
    done
  done
done

/usr/bin/python3 - "$OUT" "$THREADS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
med = {}
for r in rows:
    med.setdefault((r["model"], r["precision"], r["engine"]), []).append(r["p50_ms"])
p = {k: statistics.median(v) for k, v in med.items()}
g = lambda *k: p.get(k)
f = lambda x: "-" if x is None else f"{x:.2f}"
ratio = lambda a, b: "-" if a is None or b is None else f"{a / b:.2f}"
print(f"p50 latency in ms, median over rounds, {sys.argv[2]} threads\n")
print("| model | engine | FP32 | INT8 | INT8 / FP32 | INT8 ours / ORT |")
print("|---|---|---|---|---|---|")
for m in sorted({k[0] for k in p}):
    for e in ("ort", "cpu", "opencl"):
        if g(m, "fp32", e) is None and g(m, "int8", e) is None:
            continue
        vs = "" if e == "ort" else ratio(g(m, "int8", e), g(m, "int8", "ort"))
        print(f"| {m} | {'ONNX Runtime' if e == 'ort' else 'outpost ' + e} | {f(g(m, 'fp32', e))} | "
              f"{f(g(m, 'int8', e))} | {ratio(g(m, 'int8', e), g(m, 'fp32', e))} | {vs} |")
PY
echo "raw: $OUT" >&2
