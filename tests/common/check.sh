# Shared by the shell tests (tests/cli/cli_test.sh, tests/quantize/quantize_cli_test.sh): a temp
# dir removed on exit, `check NAME CONDITION...` counting passes and failures, `rc CMD...` running
# a command with its stdout in $tmp/out and stderr in $tmp/err and printing its exit status, and
# `finish` printing the counts and failing when any check failed. Source it after `set -uo pipefail`.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0
check() {  # check NAME CONDITION...
  local name=$1; shift
  if "$@"; then passes=$((passes + 1)); else echo "FAIL: $name"; fails=$((fails + 1)); fi
}
rc() { "$@" >"$tmp/out" 2>"$tmp/err"; echo $?; }
finish() {
  echo "$passes passed, $fails failed"
  test "$fails" = 0
}
