#!/usr/bin/env bash
# Runs every test binary given (cmocka), from the repository root, and prints
# one closing line: "tests: N passed, N failed, N skipped".
# Each binary's own output is kept in build/test-logs/<name>.log and shown when it fails.
set -u
cd "$(dirname "$0")/.."
logdir=${TEST_LOGS:-build/test-logs}
mkdir -p "$logdir"
passed=0 failed=0 skipped=0 bad_bins=()
for bin in "$@"; do
    name=$(basename "$bin")
    log="$logdir/$name.log"
    start=$(date +%s)
    CMOCKA_MESSAGE_OUTPUT=stdout "$bin" >"$log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - start ))
    # cmocka's own summary: "[  PASSED  ] N test(s)." and, when non-zero,
    # "[  FAILED  ] N test(s), listed below:" / "[  SKIPPED ] N test(s), ..."
    p=$(grep -E '^\[  PASSED  \] [0-9]+ test' "$log" | sed -E 's/.*\] ([0-9]+) test.*/\1/' | awk '{s+=$1} END {print s+0}')
    f=$(grep -E '^\[  FAILED  \] [0-9]+ test' "$log" | sed -E 's/.*\] ([0-9]+) test.*/\1/' | awk '{s+=$1} END {print s+0}')
    s=$(grep -E '^\[  SKIPPED \] [0-9]+ test' "$log" | sed -E 's/.*\] ([0-9]+) test.*/\1/' | awk '{s+=$1} END {print s+0}')
    # a crash or sanitizer report counts as a failure even if cmocka said nothing
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
    printf '%-28s %3d passed %3d failed %3d skipped  (%ds)\n' "$name" "$p" "$f" "$s" "$secs"
    if [ "$rc" -ne 0 ]; then
        bad_bins+=("$name")
        echo "----- $log (last 60 lines) -----"
        tail -n 60 "$log"
        echo "-----"
    fi
    grep -h 'SKIP ' "$log" | sed 's/^/    /' | sort -u | head -5
done
if [ -n "${HS_BIN:-}" ] && [ -d tests/integration ]; then
    for t in tests/integration/*.sh; do
        [ -e "$t" ] || continue
        name=$(basename "$t" .sh)
        [ "$name" = lib ] && continue # helpers the tests source, not a test
        log="$logdir/$name.log"
        HS_BIN="$HS_BIN" bash "$t" >"$log" 2>&1
        rc=$?
        if [ "$rc" -eq 0 ]; then passed=$((passed + 1)); r=passed
        elif [ "$rc" -eq 77 ]; then skipped=$((skipped + 1)); r=skipped
        else failed=$((failed + 1)); r=FAILED; bad_bins+=("$name"); tail -n 40 "$log"; fi
        printf '%-28s %s\n' "$name" "$r"
    done
fi
echo
[ ${#bad_bins[@]} -gt 0 ] && echo "failing: ${bad_bins[*]}"
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
