#!/usr/bin/env bash
# What telemetry costs the request path: outpostd serving Iris (single rows, batching off) under
# wrk (closed loop, keep-alive, 127.0.0.1), once with telemetry off and once with it on against a
# private mosquitto (metric snapshots every second, routing/overload aggregates, and with
# --input-stats the drift statistics of every request). Alternates the two a few times.
#
#   bench/telemetry/serve_overhead.sh [--outpostd PATH] [--duration S] [--conns N] [--rounds R]
#                                     [--input-stats]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUTPOSTD="$ROOT/build/bin/outpostd"
DURATION=8 CONNS=2 ROUNDS=2 INPUT_STATS=false
while [[ $# -gt 0 ]]; do
  case "$1" in
    --outpostd) OUTPOSTD="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --conns) CONNS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --input-stats) INPUT_STATS=true; shift ;;
    *) echo "serve_overhead.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "serve_overhead.sh: wrk not found" >&2; exit 1; }
WORK="$(mktemp -d /tmp/outpost-telemetry-overhead-XXXXXX)"
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

BROKER_PORT=$(free_port)
mkdir -p "$WORK/mq" "$WORK/manifests" && chmod 777 "$WORK/mq"
printf 'persistence false\nlog_dest file %s/mq/log\nlistener %s 127.0.0.1\nallow_anonymous true\n' \
  "$WORK" "$BROKER_PORT" >"$WORK/mq/conf"
/usr/sbin/mosquitto -c "$WORK/mq/conf" & PIDS+=($!)
cat >"$WORK/manifests/iris.yaml" <<EOF
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: iris
  annotations:
    outpost.io/threads: "1"
    outpost.io/queue-size: "128"
spec:
  predictor:
    model:
      modelFormat:
        name: onnx
      storageUri: iris_mlp.onnx
EOF
cat >"$WORK/on.yaml" <<EOF
telemetry:
  enabled: true
  broker_url: mqtt://127.0.0.1:$BROKER_PORT
  device_id: bench
  buffer_dir: $WORK/buffer
  metrics_interval_ms: 1000
  aggregate_interval_ms: 1000
  input_stats:
    enabled: $INPUT_STATS
EOF
echo 'telemetry:
  enabled: false' >"$WORK/off.yaml"
echo '{"inputs":[{"name":"input","datatype":"FP32","shape":[1,4],"data":[5.1,3.5,1.4,0.2]}]}' \
  >"$WORK/body.json"

run() {  # $1 = on|off; prints requests/s and p50/p99 in microseconds
  local port out pid
  port=$(free_port)
  "$OUTPOSTD" --config "$WORK/$1.yaml" --listen "127.0.0.1:$port" --manifests "$WORK/manifests" \
    --models "$ROOT/tests/models" >/dev/null 2>"$WORK/outpostd-$1.log" &
  pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null && break; sleep 0.1; done
  BODY_FILE="$WORK/body.json" wrk -t1 -c"$CONNS" -d2s -s "$ROOT/bench/serve/infer.lua" \
    "http://127.0.0.1:$port/v2/models/iris/infer" >/dev/null
  out=$(BODY_FILE="$WORK/body.json" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency \
    -s "$ROOT/bench/serve/infer.lua" "http://127.0.0.1:$port/v2/models/iris/infer" | grep WRKJSON)
  kill -TERM "$pid"; wait "$pid" || true
  echo "$1 ${out#WRKJSON }"
}
for r in $(seq "$ROUNDS"); do run off; run on; done
