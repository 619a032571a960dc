#!/usr/bin/env bash
# End-to-end checks of the outpost command line: usage errors, run, inspect, bench, conformance.
# Usage: cli_test.sh OUTPOST_BINARY SOURCE_DIR SUITE_DIR
set -uo pipefail
bin=$1 src=$2 suite=$3
# shellcheck source=../common/check.sh
. "$(dirname "${BASH_SOURCE[0]}")/../common/check.sh"

# Usage errors exit 2 and say what is wrong; --help exits 0.
check "no command" test "$(rc "$bin")" = 2
check "unknown command" test "$(rc "$bin" frobnicate)" = 2
check "unknown command named" grep -q "unknown command 'frobnicate'" "$tmp/err"
check "unknown flag" test "$(rc "$bin" run m.onnx --bogus 1)" = 2
check "unknown flag named" grep -q "unknown option '--bogus'" "$tmp/err"
check "bad backend" test "$(rc "$bin" run m.onnx --backend tpu)" = 2
check "bad threads" test "$(rc "$bin" bench m.onnx --threads lots)" = 2
check "missing model arg" test "$(rc "$bin" inspect)" = 2
for cmd in run inspect bench conformance; do
  check "$cmd --help" test "$(rc "$bin" $cmd --help)" = 0
  check "$cmd --help text" grep -q "usage: outpost $cmd" "$tmp/out"
done

# run: writes <output>.npy with the sanitized name, summarizes on stdout, matches ORT's golden.
model=$src/tests/models/digits_cnn.onnx
golden=$src/tests/models/golden/digits_cnn
check "run ok" test "$(rc "$bin" run "$model" --input "input=$golden/input_0.npy" --output-dir "$tmp/o")" = 0
check "run summary" grep -q "^logits: float32\[" "$tmp/out"
check "run wrote npy" test -s "$tmp/o/logits.npy"
check "run npy magic" bash -c "head -c 6 '$tmp/o/logits.npy' | grep -q NUMPY"
check "run npy size equals golden" test "$(stat -c %s "$tmp/o/logits.npy")" = "$(stat -c %s "$golden/output_0.npy")"
# Missing file and wrong input name are clean errors (exit 1), not crashes.
check "missing input file" test "$(rc "$bin" run "$model" --input "input=$tmp/nope.npy")" = 1
check "missing input file named" grep -q "nope.npy" "$tmp/err"
check "wrong input name" test "$(rc "$bin" run "$model" --input "bogus=$golden/input_0.npy")" = 1
check "wrong input name named" grep -q "no input named 'bogus'" "$tmp/err"
check "bad model" test "$(rc "$bin" run "$src/tests/models/bad/not_onnx.onnx" --input "x=$golden/input_0.npy")" = 1
check "bad model says why" grep -q "INVALID_MODEL" "$tmp/err"

# inspect shows placement and planned memory, on both backends.
check "inspect cpu" test "$(rc "$bin" inspect "$model")" = 0
check "inspect memory" grep -q "planned peak" "$tmp/out"
check "inspect opencl" test "$(rc "$bin" inspect "$model" --backend opencl)" = 0
check "inspect opencl placement" grep -q "placement (preferred backend: opencl): .*opencl=" "$tmp/out"

# bench --json has the documented keys.
check "bench json" test "$(rc "$bin" bench "$model" --runs 5 --warmup 1 --json)" = 0
for k in load_ms first_run_ms p50_ms p90_ms p99_ms peak_rss_mb runs backends; do
  check "bench key $k" grep -q "\"$k\"" "$tmp/out"
done
# ... and the CPU backend says which path its 8-bit products take.
check "bench backend description" grep -q '"cpu: CPU, [0-9]* threads, 8-bit products' "$tmp/out"

# bench --profile reports time per op type; the digits CNN's Conv+Relu pairs are fused.
check "bench profile" test "$(rc "$bin" bench "$model" --runs 3 --warmup 1 --profile)" = 0
check "profile lists fused conv" grep -q "^  Conv+Relu  *cpu" "$tmp/out"
check "inspect shows fusion" test "$(rc "$bin" inspect "$model")" = 0
check "inspect fused op" grep -q "Conv+Relu" "$tmp/out"

# inspect on a QDQ model names the nodes that run in integer and what they were fused from.
check "inspect qdq" test "$(rc "$bin" inspect "$src/tests/models/qdq_small.onnx")" = 0
check "inspect qdq counts" grep -q "^precision (nodes that run): convert=2 integer=3, 3 fused from QDQ" "$tmp/out"
check "inspect qdq conv" grep -Eq "^  conv +QLinearConv\+Relu +integer  # fused from QDQ Conv\+Relu" "$tmp/out"
check "inspect qdq pool" grep -Eq "^  pool +MaxPool +integer  # fused from QDQ MaxPool" "$tmp/out"
check "inspect qdq add" grep -Eq "^  residual +QLinearAdd +integer  # fused from QDQ Add" "$tmp/out"

# conformance on a filtered subset writes the report shape the issue specifies.
check "conformance subset" test "$(rc "$bin" conformance "$suite" --filter '^test_(relu|abs)$' --report "$tmp/r.json")" = 0
check "report counts" grep -q '"passed": 2' "$tmp/r.json"
check "report backends_used" grep -q '"backends_used"' "$tmp/r.json"

finish
