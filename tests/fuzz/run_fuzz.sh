#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in a separate build and runs one for a bounded time.
#   run_fuzz.sh <source-root> <build-dir> <target> [seconds]
# <target> is the name without "_fuzz" (http_request -> tests/fuzz/http_request_fuzz.cpp).
# Seeds come from tests/fuzz/corpus/<target>/ (never written); new inputs go to
# <build-dir>/corpus/<target>/, crashes to <build-dir>/artifacts/<target>/.
# Env: OUTPOST_FUZZ_SECONDS (default 15), OUTPOST_FUZZ_CXX (default clang++-14 or clang++),
#      OUTPOST_FUZZ_MAX_LEN (default 65536).
# Fails (exit 1) when clang or libFuzzer is missing: install clang and libclang-rt-14-dev.
set -euo pipefail

if [[ $# -lt 3 ]]; then
  echo "usage: $0 <source-root> <build-dir> <target> [seconds]" >&2
  exit 2
fi
SRC=$(cd "$1" && pwd)
BUILD=$2
TARGET=$3
SECS=${4:-${OUTPOST_FUZZ_SECONDS:-15}}
MAX_LEN=${OUTPOST_FUZZ_MAX_LEN:-65536}

CXX=${OUTPOST_FUZZ_CXX:-}
if [[ -z "$CXX" ]]; then
  for c in clang++-14 clang++; do
    if command -v "$c" >/dev/null 2>&1; then CXX=$(command -v "$c"); break; fi
  done
fi
if [[ -z "$CXX" ]]; then
  echo "FAIL: no clang++ found; the fuzz tests need clang and libFuzzer" \
       "(apt-get install clang libclang-rt-14-dev)" >&2
  exit 1
fi

mkdir -p "$BUILD"
# libFuzzer present? (libclang-rt-14-dev ships it)
probe_dir=$(mktemp -d)
trap 'rm -rf "$probe_dir"' EXIT
printf '#include <cstddef>\n#include <cstdint>\nextern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }\n' \
  > "$probe_dir/probe.cpp"
if ! "$CXX" -fsanitize=fuzzer,address "$probe_dir/probe.cpp" -o "$probe_dir/probe" \
     >"$probe_dir/log" 2>&1; then
  echo "FAIL: $CXX cannot link a libFuzzer target (is libclang-rt-14-dev installed?):" >&2
  cat "$probe_dir/log" >&2
  exit 1
fi

GEN=()
command -v ninja >/dev/null 2>&1 && GEN=(-G Ninja)
if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  cmake -S "$SRC/tests/fuzz/standalone" -B "$BUILD" "${GEN[@]}" \
    -DCMAKE_CXX_COMPILER="$CXX" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$BUILD/configure.log" 2>&1 || {
    echo "FAIL: configuring the fuzz build failed:" >&2
    cat "$BUILD/configure.log" >&2
    exit 1
  }
fi
cmake --build "$BUILD" --target "${TARGET}_fuzz" -j2

WORK="$BUILD/corpus/$TARGET"
ART="$BUILD/artifacts/$TARGET"
mkdir -p "$WORK" "$ART"
ARGS=(-max_total_time="$SECS" -rss_limit_mb=512 -malloc_limit_mb=512 -timeout=5
      -max_len="$MAX_LEN" -print_final_stats=1 -artifact_prefix="$ART/")
# Seeds and dictionary: tests/fuzz/corpus/<target>/ and tests/fuzz/<target>.dict, or the same
# with the "_fuzz" suffix.
CORPORA=("$WORK")
for name in "$TARGET" "${TARGET}_fuzz"; do
  [[ -d "$SRC/tests/fuzz/corpus/$name" ]] && CORPORA+=("$SRC/tests/fuzz/corpus/$name")
  [[ -f "$SRC/tests/fuzz/$name.dict" ]] && ARGS+=(-dict="$SRC/tests/fuzz/$name.dict")
done
if [[ ${#CORPORA[@]} -eq 1 ]]; then
  echo "note: no seed corpus in $SRC/tests/fuzz/corpus/$TARGET/" >&2
fi

echo "fuzzing $TARGET for ${SECS}s"
set +e
"$BUILD/${TARGET}_fuzz" "${ARGS[@]}" "${CORPORA[@]}" 2>"$BUILD/$TARGET.log"
rc=$?
set -e
tail -n 25 "$BUILD/$TARGET.log"
if [[ $rc -ne 0 ]]; then
  echo "FAIL: $TARGET fuzzer exited with $rc (crash, leak, timeout or OOM); artifacts in $ART," \
       "full log $BUILD/$TARGET.log" >&2
  exit 1
fi
echo "PASS: $TARGET"
