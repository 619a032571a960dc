#!/usr/bin/env bash
# Builds and runs the telemetry benchmarks; prints the figures.
#   bench/telemetry/run.sh [--build-dir build-telemetry] [--records 1000000] [--live 1000]
# Append: every-batch sync, 1M records of ~200 B, (a) one producer with AppendBatch(1024),
# (b) 4 producers with AppendBatch(256) group-committed, (c) 64 producers with AppendBatch(16),
# (d) 64 producers with single-record Append. Drain: a 1M-event backlog to a private mosquitto on
# 127.0.0.1 (ephemeral port, started and stopped here) while a live producer appends metrics.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="$ROOT/build-telemetry"
RECORDS=1000000
LIVE=1000
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) BUILD="$2"; shift 2 ;;
    --records) RECORDS="$2"; shift 2 ;;
    --live) LIVE="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
if [[ ! -f "$BUILD/build.ninja" && ! -f "$BUILD/Makefile" ]]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$BUILD" --target telemetry_bench -j2 >/dev/null
BIN="$BUILD/telemetry/telemetry_bench"
WORK="$(mktemp -d /var/tmp/outpost-telemetry-bench-XXXXXX)"
BROKER_PID=""
cleanup() {
  [[ -n "$BROKER_PID" ]] && kill "$BROKER_PID" 2>/dev/null && wait "$BROKER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== append (every-batch) =="
"$BIN" append "$WORK/a1" "$RECORDS" 1024 1; rm -rf "$WORK/a1"
"$BIN" append "$WORK/a2" "$RECORDS" 256 4; rm -rf "$WORK/a2"
"$BIN" append "$WORK/a3" "$RECORDS" 16 64; rm -rf "$WORK/a3"
"$BIN" append "$WORK/a4" $((RECORDS / 5)) 1 64; rm -rf "$WORK/a4"

echo "== drain to mosquitto =="
chmod 755 "$WORK"
for attempt in 1 2 3 4 5; do
  PORT="$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  cat > "$WORK/mosquitto.conf" <<CONF
listener $PORT 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages 0
log_dest none
CONF
  mosquitto -c "$WORK/mosquitto.conf" & BROKER_PID=$!
  for _ in $(seq 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
    sleep 0.1
  done
  if kill -0 "$BROKER_PID" 2>/dev/null; then break; fi
  BROKER_PID=""
done
[[ -n "$BROKER_PID" ]] || { echo "could not start mosquitto" >&2; exit 1; }
# A subscriber, so the broker really delivers (counted at the end).
mosquitto_sub -h 127.0.0.1 -p "$PORT" -t 'outpost/bench/bench/events' -q 1 > "$WORK/sub.out" &
SUB_PID=$!
sleep 0.3
"$BIN" drain "$WORK/d" "$PORT" "$RECORDS" "$LIVE"
sleep 1
kill "$SUB_PID" 2>/dev/null || true
wait "$SUB_PID" 2>/dev/null || true
echo "subscriber received $(wc -l < "$WORK/sub.out") event batches"
