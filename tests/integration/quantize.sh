#!/usr/bin/env bash
# 'hestia quantize' end to end: a tiny synthetic f32 model quantized to q4_k_m
# and q8_0, both of which 'hestia run' then runs (greedy, twice the same);
# 'hestia info' shows the new file type; a quantized input is refused without
# --allow-requantize; errors are one "hestia quantize: ..." line with exit 1
# (usage: exit 2) and leave no output file.
# Needs $HS_BIN (the hestia binary); exits 77 (skipped) without it.
set -u
cd "$(dirname "$0")/../.."
if [ -z "${HS_BIN:-}" ] || [ ! -x "$HS_BIN" ]; then
    echo "SKIP: HS_BIN must name the hestia binary"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}
export HESTIA_LOG=off

"$HS_BIN" synth -o "$tmp/f32.gguf" -q --n-vocab 300 --untied || { echo "FAIL: synth"; exit 1; }

for t in q4_k_m q8_0; do
    if ! "$HS_BIN" quantize "$tmp/f32.gguf" "$tmp/$t.gguf" "$t" -t 2 2>"$tmp/$t.err"; then
        fail "quantize $t: $(cat "$tmp/$t.err")"
        continue
    fi
    grep -q "100.0%" "$tmp/$t.err" || fail "quantize $t: no progress shown"
    grep -q "bpw" "$tmp/$t.err" || fail "quantize $t: no summary"
    ls "$tmp" | grep -q "tmp-" && fail "quantize $t: a temporary file was left"
    "$HS_BIN" run -m "$tmp/$t.gguf" -p "hello world" -n 12 --temp 0 >"$tmp/$t.out1" 2>"$tmp/$t.rerr" ||
        fail "run $t: $(tail -n 3 "$tmp/$t.rerr")"
    "$HS_BIN" run -m "$tmp/$t.gguf" -p "hello world" -n 12 --temp 0 >"$tmp/$t.out2" 2>/dev/null
    [ -s "$tmp/$t.out1" ] || fail "run $t: no output"
    cmp -s "$tmp/$t.out1" "$tmp/$t.out2" || fail "run $t: greedy runs differ"
done

# the q4_k_m file is smaller than the q8_0 one, which is smaller than f32
s32=$(stat -c %s "$tmp/f32.gguf"); s8=$(stat -c %s "$tmp/q8_0.gguf" 2>/dev/null || echo 0)
s4=$(stat -c %s "$tmp/q4_k_m.gguf" 2>/dev/null || echo 0)
[ "$s4" -gt 0 ] && [ "$s4" -lt "$s8" ] && [ "$s8" -lt "$s32" ] || fail "sizes f32 $s32, q8_0 $s8, q4_k_m $s4"

# requantizing needs the flag
"$HS_BIN" quantize "$tmp/q8_0.gguf" "$tmp/rq.gguf" q4_0 -q 2>"$tmp/rq.err"
rc=$?
[ "$rc" -eq 1 ] || fail "requantize without the flag: exit $rc"
grep -q "^hestia quantize: .*already quantized" "$tmp/rq.err" || fail "requantize message: $(cat "$tmp/rq.err")"
[ "$(wc -l <"$tmp/rq.err")" -eq 1 ] || fail "requantize: more than one line on stderr"
[ -e "$tmp/rq.gguf" ] && fail "requantize refused but left an output"
"$HS_BIN" quantize "$tmp/q8_0.gguf" "$tmp/rq.gguf" q4_0 -q --allow-requantize 2>/dev/null ||
    fail "requantize with --allow-requantize"

# errors: missing input (exit 1), truncated input (exit 1), bad type (exit 2), no output left
"$HS_BIN" quantize "$tmp/none.gguf" "$tmp/e1.gguf" q4_0 2>"$tmp/e1.err"
[ $? -eq 1 ] || fail "missing input: exit status"
grep -q "^hestia quantize: " "$tmp/e1.err" || fail "missing input: message"
head -c 100000 "$tmp/f32.gguf" >"$tmp/trunc.gguf"
"$HS_BIN" quantize "$tmp/trunc.gguf" "$tmp/e2.gguf" q4_0 2>"$tmp/e2.err"
[ $? -eq 1 ] || fail "truncated input: exit status"
"$HS_BIN" quantize "$tmp/f32.gguf" "$tmp/e3.gguf" q9_9 2>/dev/null
[ $? -eq 2 ] || fail "unknown type: exit status"
"$HS_BIN" quantize "$tmp/f32.gguf" 2>/dev/null
[ $? -eq 2 ] || fail "missing arguments: exit status"
for e in e1 e2 e3; do
    [ -e "$tmp/$e.gguf" ] && fail "$e: output left behind"
done
ls "$tmp" | grep -q "tmp-" && fail "a temporary file was left"

if [ "$failures" -gt 0 ]; then
    echo "$failures failure(s)"
    exit 1
fi
echo "ok"
