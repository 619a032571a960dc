#!/usr/bin/env bash
# The serving benchmark of issue #4: outpostd serving the Iris model over HTTP/1.1 keep-alive on
# loopback, measured with wrk (Debian; closed loop) and bench/serve/loadgen.cpp (open loop, fixed
# arrival rate, latency from the scheduled send time).
#
#   bench/serve/run_serve_bench.sh [--outpostd PATH] [--duration S] [--warmup S] [--conns "1 2 4 8"]
#                                  [--models "iris iris-batched"] [--search-duration S]
#                                  [--overload-duration S] [--lg-conns N] [--no-wrk] [--no-open-loop]
#                                  [--out DIR] [--wait-quiet PCT] [--max-other PCT] [--max-stalls N]
#                                  [--server-cpus LIST --client-cpus LIST] [--server-quota PCT]
#                                  [--capacity RPS] [--nice-offset N] [--io-slice-us N] [--lg-spin]
#
# It writes a manifest directory with four Iris variants (tests/models/iris_mlp.onnx):
#   iris               batching off (max-batch-size 1), queue-size 128
#   iris-batched       max-batch-size 8, max-queue-delay-us 0 (the shipped example), queue-size 128
#   iris-q16           batching off, queue-size 16   (overload runs: the excess must be refused)
#   iris-batched-q16   max-batch-size 8, queue-size 16
# and two of the compute-bound MobileNetV2 (tests/models/mobilenet_v2.onnx, 96x96, binary tensor
# data; --models mobilenet; no wrk runs):
#   mobilenet          batching off, queue-size 8
#   mobilenet-q2       batching off, queue-size 2    (its overload runs)
# starts one outpostd on 127.0.0.1:<free port> and runs
#   1. wrk -t1 -cN --latency, N in --conns, single-row requests, each after a 2 s warm-up;
#   2. wrk -t1 -c1 with a [50,4] request (batch of 50 in one request);
#   3. loadgen: capacity search (highest fixed rate with accepted p99 < 5 ms, no refusals, and the
#      rate achieved), then 2x that capacity against the -q16 variants.
# Raw outputs go to bench/serve/results/<UTC time>/ (gitignored); a markdown table is printed at
# the end and saved as summary.md there. See bench/README.md, "Serving (outpostd, Iris)".
# --wait-quiet 20 first waits (up to 15 minutes) until the machine is less than 20% of one core
# busy over 5 s (other builds on a shared machine). --max-other 25 repeats a run (up to 3 more
# times, each after waiting for quiet) when foreign processes took more than 25% of one core
# during it; the table keeps the last attempt and says how many there were.
# --max-stalls N: stallprobe (bench/serve/stallprobe.cpp) spins on every CPU for 2 s before and
# after each run and counts the gaps over 500 µs in which it did not run (a busy host's steal,
# which a VM guest does not see otherwise); every row records them. With --max-stalls, a run
# whose probes saw more than N such gaps is repeated like a disturbed one (after 30 s).
# --server-cpus 0 --client-cpus 1 pins outpostd and the load generators to disjoint CPUs
# (taskset): the server gets one core of its own, and the generator can offer twice the server's
# capacity, which it cannot when both share the two cores (the overload runs need that).
# --server-quota 50 caps outpostd at 50% of one core with the CFS bandwidth controller (a cgroup
# with cpu.max / cfs_quota of 1 ms per 2 ms period; needs root; at least 50), as systemd's CPUQuota=50%
# would on a device: a smaller server that the generator can overload twice over.
# --nice-offset N runs outpostd with compute.nice_offset N (default: the built-in 5; 0 runs the
# model threads at the HTTP threads' priority).
# --io-slice-us N runs outpostd with server.io_slice_us N (default: the built-in 100; 0 leaves the
# HTTP threads the kernel's default time slice).
# --lg-spin makes loadgen poll instead of sleeping, so that its sends leave on time (a VM's timer
# wake-ups come 50-100 µs late); only with --client-cpus, as it takes that CPU whole.
# --capacity RPS skips the capacity ladder: one run at RPS (reported, not judged), then 2x RPS.
# Every run records the CPU taken by outpostd, by the load generator and by everything else
# ("other": foreign load on a shared machine), in % of one core.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUTPOSTD="${OUTPOSTD:-$ROOT/build/bin/outpostd}"
CAPACITY="" DURATION=10 WARMUP=2 CONNS="1 2 4 8" MODELS="iris iris-batched"
SEARCH_DURATION=5 OVERLOAD_DURATION=10 LG_CONNS=64 DO_WRK=1 DO_OPEN=1 OUT="" WAIT_QUIET="" MAX_OTHER=""
MAX_STALLS="" NICE_OFFSET="" IO_SLICE_US="" LG_SPIN=()
SERVER_CPUS="" CLIENT_CPUS="" SERVER_QUOTA=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --outpostd) OUTPOSTD="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --conns) CONNS="$2"; shift 2 ;;
    --models) MODELS="$2"; shift 2 ;;
    --search-duration) SEARCH_DURATION="$2"; shift 2 ;;
    --overload-duration) OVERLOAD_DURATION="$2"; shift 2 ;;
    --lg-conns) LG_CONNS="$2"; shift 2 ;;
    --capacity) CAPACITY="$2"; shift 2 ;;
    --no-wrk) DO_WRK=0; shift ;;
    --no-open-loop) DO_OPEN=0; shift ;;
    --out) OUT="$2"; shift 2 ;;
    --wait-quiet) WAIT_QUIET="$2"; shift 2 ;;
    --max-other) MAX_OTHER="$2"; shift 2 ;;
    --max-stalls) MAX_STALLS="$2"; shift 2 ;;
    --nice-offset) NICE_OFFSET="$2"; shift 2 ;;
    --io-slice-us) IO_SLICE_US="$2"; shift 2 ;;
    --lg-spin) LG_SPIN=(--spin); shift ;;
    --server-cpus) SERVER_CPUS="$2"; shift 2 ;;
    --client-cpus) CLIENT_CPUS="$2"; shift 2 ;;
    --server-quota) SERVER_QUOTA="$2"; shift 2 ;;
    -h|--help) sed -n '2,51p' "$0"; exit 0 ;;
    *) echo "run_serve_bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -x "$OUTPOSTD" ]] || { echo "run_serve_bench.sh: no outpostd at $OUTPOSTD (build it, or pass --outpostd)" >&2; exit 1; }
[[ ${#LG_SPIN[@]} -eq 0 || -n "$CLIENT_CPUS" ]] || { echo "run_serve_bench.sh: --lg-spin needs --client-cpus" >&2; exit 2; }
SERVER_PIN=() CLIENT_PIN=()
[[ -n "$SERVER_CPUS" ]] && SERVER_PIN=(taskset -c "$SERVER_CPUS")
[[ -n "$CLIENT_CPUS" ]] && CLIENT_PIN=(taskset -c "$CLIENT_CPUS")
command -v wrk >/dev/null || { echo "run_serve_bench.sh: wrk not found (apt-get install wrk)" >&2; exit 1; }

# Waits (up to 15 minutes) until the whole machine is less than $1 % of one core busy over 5 s.
wait_quiet() {
  local b0 b1 busy
  for _ in $(seq 1 180); do
    b0="$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat)"; sleep 5
    b1="$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat)"
    busy=$(( (b1 - b0) * 100 / ($(getconf CLK_TCK) * 5) ))
    [[ $busy -lt $1 ]] && return 0
    echo "== machine ${busy}% busy (of one core) >= $1%: waiting" >&2
  done
}
[[ -n "$WAIT_QUIET" ]] && wait_quiet "$WAIT_QUIET"
OUT="${OUT:-$HERE/results/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
SUMMARY="$OUT/summary.jsonl"
: >"$SUMMARY"
WORK="$(mktemp -d /tmp/outpost-serve-bench.XXXXXX)"
PID=""
cleanup() {
  if [[ -n "$PID" ]] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
  [[ -n "${CGROUP:-}" ]] && rmdir "$CGROUP" 2>/dev/null
  return 0
}
trap cleanup EXIT

log() { echo "== $*" >&2; }
load1() { cut -d' ' -f1 /proc/loadavg; }
HZ="$(getconf CLK_TCK)"

# CPU accounting around one measured run, in % of one core (2 cores = 200%): the whole machine
# (/proc/stat), outpostd (/proc/PID/stat), the load generator (bash `time`), and the rest:
# "other" is what foreign processes (builds on the shared machine) took during the run.
cpu_begin() {
  T0="$(date +%s.%N)"
  B0="$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat)"
  S0="$(awk '{print $14+$15}' "/proc/$PID/stat")"
}
cpu_end() {  # CLIENT_CPU_SECONDS -> JSON fields
  local t1 b1 s1
  t1="$(date +%s.%N)"
  b1="$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat)"
  s1="$(awk '{print $14+$15}' "/proc/$PID/stat")"
  /usr/bin/python3 -c 'import sys
t0, t1, b0, b1, s0, s1, hz, client = map(float, sys.argv[1:])
w = max(t1 - t0, 1e-9)
busy = (b1 - b0) / hz / w * 100; server = (s1 - s0) / hz / w * 100; cl = client / w * 100
print("\"cpu_busy_pct\": %.0f, \"cpu_server_pct\": %.0f, \"cpu_client_pct\": %.0f, \"cpu_other_pct\": %.0f"
      % (busy, server, cl, max(0.0, busy - server - cl)))' "$T0" "$t1" "$B0" "$b1" "$S0" "$s1" "$HZ" "$1"
}
# The machine's own stalls: stallprobe on every CPU at once for 2 s -> "gaps lost_ms max_us"
# (gaps over 500 µs summed over the CPUs, time lost summed, the longest gap).
probe_stalls() {
  local c pids=() out
  for c in $(seq 0 $(($(nproc) - 1))); do
    taskset -c "$c" "$STALLPROBE" 2 >"$WORK/stall.$c" & pids+=($!)
  done
  wait "${pids[@]}"
  cat "$WORK"/stall.* | /usr/bin/python3 -c 'import json,sys
r = [json.loads(l) for l in sys.stdin if l.strip()]
print(sum(x["gaps_over_500us"] for x in r), "%.1f" % sum(x["lost_ms"] for x in r), "%.0f" % max(x["max_gap_us"] for x in r))'
}
STALLS_BEFORE=""
stalls_begin() { STALLS_BEFORE="$(probe_stalls)"; }
stalls_end() {  # sets STALL_GAPS and STALL_JSON (JSON fields)
  local b a
  read -r -a b <<<"$STALLS_BEFORE"
  read -r -a a <<<"$(probe_stalls)"
  STALL_GAPS=$((b[0] + a[0]))
  STALL_JSON="\"stall_gaps_500us\": $STALL_GAPS, \"stall_lost_ms\": $(/usr/bin/python3 -c "print(round(${b[1]} + ${a[1]}, 1))"), \"stall_max_us\": $((b[2] > a[2] ? b[2] : a[2]))"
}
# True when --max-stalls is set and the probes around the run saw more gaps than that.
stalled() { [[ -n "$MAX_STALLS" && "$STALL_GAPS" -gt "$MAX_STALLS" ]]; }
# True when --max-other is set and foreign processes took more than that during the run.
disturbed() {
  [[ -n "$MAX_OTHER" ]] || return 1
  local other; other="$(sed -n 's/.*"cpu_other_pct": \([0-9]*\).*/\1/p' <<<"$1")"
  [[ "${other:-0}" -gt "$MAX_OTHER" ]]
}
TIMEFORMAT='%U %S'
timed() {  # OUTFILE CMD... : runs CMD with stdout to OUTFILE; sets CLIENT_CPU (user+sys seconds)
  local out="$1" t
  shift
  t="$( { time "$@" >"$out" 2>>"$WORK/client.err"; } 2>&1 )"
  CLIENT_CPU="$(awk '{print $1 + $2}' <<<"$t")"
}

# --- the open-loop load generator ---------------------------------------------------------------
g++ -O2 -std=c++20 -Wall -Wextra -Werror "$HERE/loadgen.cpp" -o "$WORK/loadgen"
LOADGEN="$WORK/loadgen"
g++ -O2 -std=c++20 -Wall -Wextra -Werror "$HERE/stallprobe.cpp" -o "$WORK/stallprobe"
STALLPROBE="$WORK/stallprobe"

# --- manifests and request bodies ---------------------------------------------------------------
mkdir -p "$WORK/manifests"
manifest() {  # NAME MAX_BATCH QUEUE [MODEL_FILE]
  cat >"$WORK/manifests/$1.yaml" <<EOF
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: $1
  annotations:
    outpost.io/backend: cpu
    outpost.io/threads: "1"
    outpost.io/max-batch-size: "$2"
    outpost.io/max-queue-delay-us: "0"
    outpost.io/queue-size: "$3"
    outpost.io/timeout-ms: "1000"
spec:
  predictor:
    model:
      modelFormat:
        name: onnx
      protocolVersion: v2
      storageUri: ${4:-iris_mlp.onnx}
EOF
}
manifest iris 1 128
manifest iris-batched 8 128
manifest iris-q16 1 16
manifest iris-batched-q16 8 16
# The compute-bound case: tests/models/mobilenet_v2.onnx (MobileNetV2 at 96x96, 0.5 ms a run on
# one thread), binary tensor data. Its overload variant queues 2: accepted requests wait for at
# most two runs ahead of them. Loaded only when benchmarked.
WANT_MOBILENET=0
[[ " $MODELS " == *" mobilenet "* ]] && WANT_MOBILENET=1
if [[ $WANT_MOBILENET == 1 ]]; then
  manifest mobilenet 1 8 mobilenet_v2.onnx
  manifest mobilenet-q2 1 2 mobilenet_v2.onnx
fi

/usr/bin/python3 - "$WORK" <<'PY'
import json, sys
row = [5.1, 3.5, 1.4, 0.2]
def body(n):
    data = []
    for i in range(n):
        data += [round(x + 0.01 * (i % 7), 2) for x in row]
    return json.dumps({"inputs": [{"name": "input", "shape": [n, 4], "datatype": "FP32", "data": data}]},
                      separators=(",", ":"))
open(sys.argv[1] + "/body1.json", "w").write(body(1))
open(sys.argv[1] + "/body50.json", "w").write(body(50))
# MobileNetV2: one [1,3,96,96] image as binary tensor data (the JSON header's length goes in the
# Inference-Header-Content-Length field), the 100 logits back as JSON.
import struct
pixels = [((i * 7919) % 255) / 127.5 - 1.0 for i in range(3 * 96 * 96)]
head = json.dumps({"inputs": [{"name": "input", "shape": [1, 3, 96, 96], "datatype": "FP32",
                               "parameters": {"binary_data_size": 4 * len(pixels)}}]},
                  separators=(",", ":")).encode()
open(sys.argv[1] + "/bodymnv2.bin", "wb").write(head + struct.pack("<%df" % len(pixels), *pixels))
open(sys.argv[1] + "/bodymnv2.hlen", "w").write(str(len(head)))
PY
cp "$WORK/manifests/"*.yaml "$WORK/body1.json" "$WORK/body50.json" "$OUT/"
# MobileNetV2's requests carry the JSON header's length (the binary tensor data extension).
MNV2_HEADER="Inference-Header-Content-Length: $(cat "$WORK/bodymnv2.hlen")"
# Request body, capacity ladder and overload variant of each benchmarked model.
body_of() { case "$1" in mobilenet*) echo "$WORK/bodymnv2.bin" ;; *) echo "$WORK/body1.json" ;; esac; }
overload_of() { case "$1" in mobilenet) echo mobilenet-q2 ;; *) echo "$1-q16" ;; esac; }
ladder_of() {
  case "$1" in
    mobilenet*) echo 300 600 900 1200 1500 1800 2100 2400 2700 3000 ;;
    *) echo 2000 4000 6000 8000 10000 12000 14000 16000 18000 20000 22000 24000 26000 28000 30000 34000 38000 42000 46000 50000 ;;
  esac
}

# --- outpostd -----------------------------------------------------------------------------------
log "starting $OUTPOSTD"
CONFIG_ARGS=()
if [[ -n "$NICE_OFFSET$IO_SLICE_US" ]]; then
  : >"$WORK/device.yaml"
  [[ -n "$IO_SLICE_US" ]] && printf 'server:\n  io_slice_us: %s\n' "$IO_SLICE_US" >>"$WORK/device.yaml"
  [[ -n "$NICE_OFFSET" ]] && printf 'compute:\n  nice_offset: %s\n' "$NICE_OFFSET" >>"$WORK/device.yaml"
  cp "$WORK/device.yaml" "$OUT/"
  CONFIG_ARGS=(--config "$WORK/device.yaml")
fi
OUTPOST_LOG_LEVEL="${OUTPOST_LOG_LEVEL:-warn}" "${SERVER_PIN[@]}" "$OUTPOSTD" "${CONFIG_ARGS[@]}" --listen 127.0.0.1:0 \
  --manifests "$WORK/manifests" --models "$ROOT/tests/models" >"$OUT/outpostd.stdout" \
  2>"$OUT/outpostd.stderr" &
PID=$!
PORT=""
for _ in $(seq 1 600); do
  PORT="$(sed -n 's/^outpostd listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$OUT/outpostd.stdout")"
  [[ -n "$PORT" ]] && break
  kill -0 "$PID" 2>/dev/null || { cat "$OUT/outpostd.stderr" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$PORT" ]] || { echo "outpostd did not report its port" >&2; exit 1; }
if [[ -n "$SERVER_QUOTA" ]]; then
  # The CFS bandwidth controller, cgroup v2 (cpu.max) or v1 (cpu.cfs_*): a 2 ms period keeps the
  # throttling stalls short (at most the unused part of one period; the kernel's smallest quota
  # is 1 ms, so PCT >= 50).
  quota_us=$((SERVER_QUOTA * 20))
  if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
    CGROUP="/sys/fs/cgroup/outpost-bench-$$"
    mkdir "$CGROUP" && echo "$quota_us 2000" >"$CGROUP/cpu.max"
  else
    CGROUP="/sys/fs/cgroup/cpu/outpost-bench-$$"
    mkdir "$CGROUP" && echo 2000 >"$CGROUP/cpu.cfs_period_us" && echo "$quota_us" >"$CGROUP/cpu.cfs_quota_us"
  fi
  echo "$PID" >"$CGROUP/cgroup.procs"
  log "outpostd capped at ${SERVER_QUOTA}% of one core ($quota_us us per 2000 us) in $CGROUP"
fi
BASE="http://127.0.0.1:$PORT"
curl -sf "$BASE/v2/health/ready" >/dev/null || { echo "outpostd is not ready" >&2; exit 1; }
for m in iris iris-batched iris-q16 iris-batched-q16; do
  for b in body1 body50; do
    code="$(curl -s -o "$WORK/resp.json" -w '%{http_code}' -H 'Content-Type: application/json' \
      --data-binary "@$WORK/$b.json" "$BASE/v2/models/$m/infer")"
    [[ "$code" == 200 ]] || { echo "sanity request $b to $m: HTTP $code: $(cat "$WORK/resp.json")" >&2; exit 1; }
  done
done
cp "$WORK/resp.json" "$OUT/sample_response_batch50.json"
for m in $([[ $WANT_MOBILENET == 0 ]] || echo mobilenet mobilenet-q2); do
  code="$(curl -s -o "$WORK/resp.json" -w '%{http_code}' \
    -H "$MNV2_HEADER" \
    --data-binary "@$WORK/bodymnv2.bin" "$BASE/v2/models/$m/infer")"
  [[ "$code" == 200 ]] || { echo "sanity request to $m: HTTP $code: $(cat "$WORK/resp.json")" >&2; exit 1; }
done
log "outpostd pid $PID on port $PORT; load average $(cut -d' ' -f1-3 /proc/loadavg)"

record() {  # appends a JSON line: {"kind":..., ...tags, ...result}
  /usr/bin/python3 -c 'import json,sys; j=json.loads(sys.argv[2]); j.update(json.loads(sys.argv[1])); print(json.dumps(j))' \
    "$1" "$2" >>"$SUMMARY"
}

# --- 1 + 2: wrk, closed loop --------------------------------------------------------------------
run_wrk() {  # MODEL BODY CONNS KIND
  local m="$1" b="$2" c="$3" kind="$4" raw
  raw="$OUT/wrk_${kind}_${m}_c${c}.txt"
  BODY_FILE="$WORK/$b.json" "${CLIENT_PIN[@]}" wrk -t1 -c"$c" -d"${WARMUP}s" -s "$HERE/infer.lua" \
    "$BASE/v2/models/$m/infer" >/dev/null
  local la cpu attempt
  for attempt in 1 2 3 4; do
    la="$(load1)"
    stalls_begin
    cpu_begin
    BODY_FILE="$WORK/$b.json" timed "$raw" "${CLIENT_PIN[@]}" wrk -t1 -c"$c" -d"${DURATION}s" --latency \
      -s "$HERE/infer.lua" "$BASE/v2/models/$m/infer"
    cpu="$(cpu_end "$CLIENT_CPU"), \"attempts\": $attempt"
    stalls_end
    cpu="$cpu, $STALL_JSON"
    if stalled; then
      log "wrk $kind $m c=$c: the machine stalled ($cpu); again in 30 s"
      sleep 30
      continue
    fi
    disturbed "$cpu" || break
    log "wrk $kind $m c=$c: disturbed by foreign load ($cpu); again when quiet"
    wait_quiet 20
  done
  local j; j="$(sed -n 's/^WRKJSON //p' "$raw")"
  record "{\"kind\": \"$kind\", \"model\": \"$m\", \"conns\": $c, \"load1_before\": $la, \"load1_after\": $(load1), $cpu}" "$j"
  log "wrk $kind $m c=$c: $(/usr/bin/python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print("%.0f req/s, p50 %.0f us, p99 %.0f us, non-2xx %d" % (j["rps"], j["p50_us"], j["p99_us"], j["non2xx"]))' "$j")"
}
if [[ $DO_WRK == 1 ]]; then
  for m in $MODELS; do
    [[ "$m" == iris* ]] || continue  # infer.lua posts the Iris JSON bodies
    for c in $CONNS; do run_wrk "$m" body1 "$c" single; done
    run_wrk "$m" body50 1 batch50
  done
fi

# --- 3: open loop: capacity, then 2x overload ---------------------------------------------------
run_lg() {  # MODEL RATE DURATION KIND -> prints the JSON line
  local m="$1" rate="$2" dur="$3" kind="$4" la j
  local cpu attempt hdr=()
  [[ "$m" != mobilenet* ]] || hdr=(--header "$MNV2_HEADER")
  for attempt in 1 2 3 4; do
    la="$(load1)"
    stalls_begin
    cpu_begin
    timed "$WORK/lg.json" "${CLIENT_PIN[@]}" "$LOADGEN" --port "$PORT" --path "/v2/models/$m/infer" \
      --body "$(body_of "$m")" "${hdr[@]}" --rate "$rate" --duration "$dur" --warmup 1 \
      --connections "$LG_CONNS" "${LG_SPIN[@]}" --raw "$OUT/loadgen_${kind}_${m}_r${rate}.csv"
    cpu="$(cpu_end "$CLIENT_CPU"), \"attempts\": $attempt"
    stalls_end
    cpu="$cpu, $STALL_JSON"
    if stalled; then
      log "loadgen $kind $m @ $rate/s: the machine stalled ($cpu); again in 30 s"
      sleep 30
      continue
    fi
    disturbed "$cpu" || break
    log "loadgen $kind $m @ $rate/s: disturbed by foreign load ($cpu); again when quiet"
    wait_quiet 20
  done
  j="$(cat "$WORK/lg.json")"
  record "{\"kind\": \"$kind\", \"model\": \"$m\", \"rate\": $rate, \"load1_before\": $la, \"load1_after\": $(load1), $cpu}" "$j"
  echo "$j" >"$OUT/loadgen_${kind}_${m}_r${rate}.json"
  echo "$j"
}
# Passes when accepted p99 < 5 ms, nothing refused or lost, and >= 97% of the rate answered.
passes() {
  /usr/bin/python3 -c 'import json,sys; j=json.loads(sys.argv[1]); r=float(sys.argv[2])
ok = j["accepted"]["p99_us"] < 5000 and j["refused"]["count"] == 0 and j["unanswered"] == 0 \
     and j["other"]["count"] == 0 and j["answered_rate"] >= 0.97 * r
sys.exit(0 if ok else 1)' "$1" "$2"
}
if [[ $DO_OPEN == 1 ]]; then
  for m in $MODELS; do
    # Capacity: a rising ladder of fixed rates; the capacity is the last one that passes.
    cap=0
    if [[ -n "$CAPACITY" ]]; then  # given: one run at it (reported, not judged), then 2x
      j="$(run_lg "$m" "$CAPACITY" "$SEARCH_DURATION" search)"
      log "open loop $m @ $CAPACITY/s (given capacity): $j"
    fi
    for rate in $([[ -n "$CAPACITY" ]] || ladder_of "$m"); do
      j="$(run_lg "$m" "$rate" "$SEARCH_DURATION" search)"
      if ! passes "$j" "$rate"; then  # one retry: a single noisy run on a shared machine
        log "open loop $m @ $rate/s: fail, once more: $j"
        j="$(run_lg "$m" "$rate" "$SEARCH_DURATION" search-retry)"
      fi
      if passes "$j" "$rate"; then
        cap=$rate
        log "open loop $m @ $rate/s: pass (p99 $(/usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])["accepted"]["p99_us"])' "$j") us)"
      else
        log "open loop $m @ $rate/s: FAIL: $j"
        break
      fi
    done
    [[ -n "$CAPACITY" ]] && cap=$CAPACITY
    record "{\"kind\": \"capacity\", \"model\": \"$m\"}" "{\"capacity_rps\": $cap}"
    log "capacity of $m (p99 < 5 ms, nothing refused): $cap req/s"
    if [[ $cap -gt 0 ]]; then
      j="$(run_lg "$(overload_of "$m")" $((2 * cap)) "$OVERLOAD_DURATION" overload)"
      log "2x overload $(overload_of "$m") @ $((2 * cap))/s: $j"
    fi
  done
fi

curl -sf "$BASE/metrics" >"$OUT/metrics.txt" || true

# --- the table ----------------------------------------------------------------------------------
PIN_NOTE="${SERVER_CPUS:+; outpostd on CPU $SERVER_CPUS, clients on CPU $CLIENT_CPUS}${SERVER_QUOTA:+; outpostd capped at $SERVER_QUOTA% of a core}" /usr/bin/python3 - "$SUMMARY" "$OUTPOSTD" "$OUT" <<'PY' | tee "$OUT/summary.md"
import json, os, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
us = lambda x: "-" if x is None or x < 0 else f"{x:.0f}"
cpu = lambda r: (f"{r['cpu_server_pct']} / {r['cpu_client_pct']} / {r['cpu_other_pct']}" +
                 (f" ({r['attempts']} tries)" if r.get("attempts", 1) > 1 else "") +
                 (f"; stalls {r['stall_gaps_500us']}, max {r['stall_max_us']} µs"
                  if "stall_gaps_500us" in r else ""))
pin = os.environ.get("PIN_NOTE", "")
print(f"outpostd: {sys.argv[2]}; raw outputs: {sys.argv[3]}{pin}\n")
w = [r for r in rows if r["kind"] in ("single", "batch50")]
if w:
    print("wrk (closed loop, -t1, keep-alive), latency in µs:\n")
    print("| model | request | connections | req/s | p50 | p90 | p99 | p99.9 | max | non-2xx | errors | CPU server / client / other %; machine stalls > 0.5 ms (probes before + after), longest |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in w:
        err = sum(r["errors"].values())
        print(f"| {r['model']} | {'[1,4]' if r['kind'] == 'single' else '[50,4]'} | {r['conns']} | "
              f"{r['rps']:.0f} | {us(r['p50_us'])} | {us(r['p90_us'])} | {us(r['p99_us'])} | "
              f"{us(r['p999_us'])} | {us(r['max_us'])} | {r['non2xx']} | {err} | {cpu(r)} |")
    print()
o = [r for r in rows if r["kind"] in ("search", "search-retry", "overload")]
if o:
    print(f"loadgen (open loop, fixed arrival rate, latency from the scheduled send), µs:\n")
    print("| run | model | target req/s | answered req/s | accepted p50 | p99 | p99.9 | refused | refused p50 | refused p99 | refused p99 from send | other/lost | CPU server / client / other %; machine stalls > 0.5 ms (probes before + after), longest |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in o:
        a, f = r["accepted"], r["refused"]
        print(f"| {r['kind']} | {r['model']} | {r['rate']} | {r['answered_rate']:.0f} | {us(a['p50_us'])} | "
              f"{us(a['p99_us'])} | {us(a['p999_us'])} | {f['count']} ({100 * r['refused_frac']:.1f}%) | "
              f"{us(f['p50_us'])} | {us(f['p99_us'])} | {us(r['refused_service']['p99_us'])} | "
              f"{r['other']['count']}/{r['unanswered']} | {cpu(r)} |")
    print()
    for r in rows:
        if r["kind"] == "capacity":
            print(f"capacity of {r['model']} (accepted p99 < 5 ms, nothing refused): {r['capacity_rps']} req/s")
PY
