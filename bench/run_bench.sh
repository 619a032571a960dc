#!/usr/bin/env bash
# Outpost vs ONNX Runtime on MobileNetV2, ResNet-18, SqueezeNet 1.1 and a transformer block.
#
#   bench/run_bench.sh [--outpost PATH] [--rounds N] [--warmup N] [--runs N] [--threads N]
#                      [--models "mobilenet_v2 resnet18 ..."] [--no-opencl] [--out FILE.jsonl]
#
# Each round runs, per model, ORT (onnxruntime-node), `outpost bench --backend cpu` and
# `outpost bench --backend opencl` one after the other (interleaved, so machine noise hits all
# alike); the table reports the median over rounds of each run's p50 / p90 latency, the ratio
# ours / ORT, peak RSS, and OpenCL load time with an empty (cold) and a filled (warm) program
# cache (XDG_CACHE_HOME). See bench/README.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
OUTPOST="${OUTPOST:-}"
ROUNDS=3 WARMUP=5 RUNS=20 THREADS=2 OPENCL=1
MODELS="mobilenet_v2 resnet18 squeezenet1_1 transformer_block"
OUT=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --outpost) OUTPOST="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --models) MODELS="$2"; shift 2 ;;
    --no-opencl) OPENCL=0; shift ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "run_bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [[ -z "$OUTPOST" ]]; then
  for b in "$ROOT"/build/bin/outpost "$ROOT"/build-*/bin/outpost; do
    [[ -x "$b" ]] && { OUTPOST="$b"; break; }
  done
fi
[[ -x "$OUTPOST" ]] || { echo "run_bench.sh: no outpost binary (build it, or pass --outpost)" >&2; exit 1; }

# ONNX Runtime for Node, installed here (never by hand): bench/node_modules is gitignored.
if [[ ! -d "$HERE/node_modules/onnxruntime-node" ]]; then
  (cd "$HERE" && npm install --ignore-scripts --no-audit --no-fund >&2)
fi
/usr/bin/python3 "$HERE/make_bench_models.py" >&2

OUT="${OUT:-$(mktemp /tmp/outpost-bench.XXXXXX.jsonl)}"
: > "$OUT"
WORK="$(mktemp -d /tmp/outpost-bench.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

shape_of() { [[ "$1" == transformer_block ]] && echo 1,128,256 || echo 1,3,224,224; }

# record MODEL ENGINE ROUND CMD...: runs CMD, appends its JSON line tagged with model/engine/round.
record() {
  local model="$1" engine="$2" round="$3"; shift 3
  local line
  if line="$("$@" 2>"$WORK/err")"; then
    line="$(tail -n 1 <<<"$line")"
  else
    line="{\"error\": $(/usr/bin/python3 -c 'import json,sys; print(json.dumps(sys.stdin.read().strip()[-400:]))' <"$WORK/err")}"
  fi
  /usr/bin/python3 -c 'import json,sys; j=json.loads(sys.argv[1]); j.update(tag_model=sys.argv[2], tag_engine=sys.argv[3], tag_round=int(sys.argv[4])); print(json.dumps(j))' \
    "$line" "$model" "$engine" "$round" >>"$OUT"
}

for m in $MODELS; do
  model="$HERE/models/$m.onnx"
  echo "== $m" >&2
  if [[ $OPENCL == 1 ]]; then
    # Cold: empty program cache; warm: the same cache again.
    mkdir -p "$WORK/cache-$m"
    for kind in cold warm; do
      XDG_CACHE_HOME="$WORK/cache-$m" record "$m" "opencl-load-$kind" 0 \
        "$OUTPOST" bench "$model" --backend opencl --threads "$THREADS" --warmup 0 --runs 1 --json
    done
  fi
  for ((r = 1; r <= ROUNDS; r++)); do
    record "$m" ort "$r" node "$HERE/ort_bench.js" "$model" --shape "$(shape_of "$m")" \
      --threads "$THREADS" --warmup "$WARMUP" --runs "$RUNS"
    record "$m" cpu "$r" "$OUTPOST" bench "$model" --backend cpu --threads "$THREADS" \
      --warmup "$WARMUP" --runs "$RUNS" --json
    if [[ $OPENCL == 1 ]]; then
      XDG_CACHE_HOME="$WORK/cache-$m" record "$m" opencl "$r" "$OUTPOST" bench "$model" \
        --backend opencl --threads "$THREADS" --warmup "$WARMUP" --runs "$RUNS" --json
    fi
  done
done

/usr/bin/python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def pick(model, engine, key):
    v = [r[key] for r in rows if r["tag_model"] == model and r["tag_engine"] == engine and key in r]
    return statistics.median(v) if v else None
def err(model, engine):
    e = [r["error"] for r in rows if r["tag_model"] == model and r["tag_engine"] == engine and "error" in r]
    return e[0] if e else None
fmt = lambda x, f="{:.2f}": "-" if x is None else f.format(x)
models = list(dict.fromkeys(r["tag_model"] for r in rows))
print(f"\nmedian over rounds of per-run p50 / p90 latency (ms); ratio = ours / ORT (lower is better)")
print(f"{'model':<18} {'engine':<8} {'p50':>9} {'p90':>9} {'ratio':>7} {'load ms':>9} {'peak RSS MB':>12} {'RSS ratio':>9}")
for m in models:
    ort50, ortrss = pick(m, "ort", "p50_ms"), pick(m, "ort", "peak_rss_mb")
    for e in ("ort", "cpu", "opencl"):
        if not any(r["tag_model"] == m and r["tag_engine"] == e for r in rows):
            continue
        p50, p90, rss = pick(m, e, "p50_ms"), pick(m, e, "p90_ms"), pick(m, e, "peak_rss_mb")
        ratio = p50 / ort50 if p50 and ort50 else None
        rr = rss / ortrss if rss and ortrss else None
        print(f"{m:<18} {e:<8} {fmt(p50):>9} {fmt(p90):>9} {fmt(ratio):>7} "
              f"{fmt(pick(m, e, 'load_ms'), '{:.1f}'):>9} {fmt(rss, '{:.1f}'):>12} {fmt(rr):>9}")
        if p50 is None and err(m, e):
            print(f"{'':<18} {'':<8} error: {err(m, e)[-300:]}")
    cold, warm = pick(m, "opencl-load-cold", "load_ms"), pick(m, "opencl-load-warm", "load_ms")
    if cold is not None or warm is not None:
        print(f"{m:<18} opencl load: cold cache {fmt(cold, '{:.1f}')} ms, warm cache {fmt(warm, '{:.1f}')} ms")
    elif err(m, "opencl-load-cold"):
        print(f"{m:<18} opencl cold-cache run error: {err(m, 'opencl-load-cold')[-300:]}")
print(f"\nraw results: {sys.argv[1]}")
PY

# The machine's FP32 FMA peak, the yardstick for the kernels' GFLOP/s (bench/fma_peak.cpp).
if g++ -O2 -std=c++20 -pthread -Wno-psabi "$HERE/fma_peak.cpp" -o "$WORK/fma_peak" 2>"$WORK/err"; then
  echo "FP32 FMA peak, GFLOP/s: $("$WORK/fma_peak")"
else
  echo "fma_peak did not build: $(tail -3 "$WORK/err")"
fi
