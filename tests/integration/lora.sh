#!/usr/bin/env bash
# 'hestia lora convert|merge' and 'hestia run --lora' end to end, on a tiny
# synthetic base and a PEFT folder written here (random A/B, F32):
#  - the adapter converts; merged and run-time-applied models give the same
#    greedy text; scale 0 gives the base's text;
#  - an adapter for another base model is refused by convert, merge and run
#    (exit 1, "adapter for another base model", no output file left).
# Needs $HS_BIN and python3 (no packages).
set -u
cd "$(dirname "$0")/../.."
if [ -z "${HS_BIN:-}" ] || [ ! -x "$HS_BIN" ]; then
    echo "FAIL: HS_BIN must name the hestia binary"
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}
export HESTIA_LOG=warn

# PEFT folder: $1 dir, $2 rows of q_proj's B (64 fits the base), $3 seed
peft() {
    python3 tests/integration/tools/peft_random.py "$1" "$2" "$3"
}

"$HS_BIN" synth -o "$tmp/base.gguf" --n-embd 64 --n-layer 2 --n-head 4 --n-head-kv 2 --n-ff 96 --n-vocab 300 \
    --untied -q 2>"$tmp/err" || fail "synth: $(cat "$tmp/err")"
"$HS_BIN" synth -o "$tmp/other.gguf" --n-embd 128 --n-layer 2 --n-head 4 --n-head-kv 2 --n-ff 96 --n-vocab 300 \
    -q 2>"$tmp/err" || fail "synth other: $(cat "$tmp/err")"
peft "$tmp/peft" 64 1 || fail "writing the PEFT folder"
peft "$tmp/peft2" 64 2 || fail "writing the second PEFT folder"
peft "$tmp/peftbad" 128 3 || fail "writing the bad PEFT folder"

"$HS_BIN" lora convert "$tmp/peft" --base "$tmp/base.gguf" -o "$tmp/a.gguf" 2>"$tmp/err" ||
    fail "lora convert: $(cat "$tmp/err")"
"$HS_BIN" lora convert "$tmp/peft2" --base "$tmp/base.gguf" -o "$tmp/b.gguf" --outtype f16 2>"$tmp/err" ||
    fail "lora convert f16: $(cat "$tmp/err")"
"$HS_BIN" info "$tmp/a.gguf" >"$tmp/info" 2>&1 || fail "info on the adapter"
grep -q 'blk.0.attn_q.weight.lora_a' "$tmp/info" || fail "the adapter has no blk.0.attn_q.weight.lora_a"
grep -q 'adapter.lora.alpha' "$tmp/info" || fail "the adapter has no adapter.lora.alpha"

"$HS_BIN" lora merge "$tmp/base.gguf" "$tmp/a.gguf:0.5" "$tmp/b.gguf:-1.5" -o "$tmp/merged.gguf" 2>"$tmp/err" ||
    fail "lora merge: $(cat "$tmp/err")"
gen() { "$HS_BIN" run -p "hello world" -n 24 --temp 0 -t 2 --no-warmup "$@" 2>"$tmp/err"; }
base_text=$(gen -m "$tmp/base.gguf")
merged_text=$(gen -m "$tmp/merged.gguf")
rt_text=$(gen -m "$tmp/base.gguf" --lora "$tmp/a.gguf:0.5" --lora "$tmp/b.gguf:-1.5") ||
    fail "run --lora: $(cat "$tmp/err")"
zero_text=$(gen -m "$tmp/base.gguf" --lora "$tmp/a.gguf:0")
[ -n "$merged_text" ] && [ "$merged_text" = "$rt_text" ] ||
    fail "run-time and merged greedy text differ: '$rt_text' vs '$merged_text'"
[ "$merged_text" != "$base_text" ] || fail "the adapters changed nothing"
[ "$zero_text" = "$base_text" ] || fail "scale 0 differs from the base: '$zero_text' vs '$base_text'"

# an adapter for another base model
"$HS_BIN" lora convert "$tmp/peftbad" --base "$tmp/base.gguf" -o "$tmp/bad.gguf" 2>"$tmp/err"
rc=$?
[ $rc -eq 1 ] || fail "convert of a mismatched adapter exited $rc"
grep -q "adapter_model.safetensors: adapter for another base model: blk.0.attn_q.weight is \[64, 64\] in the base but the adapter's B has 128 rows" "$tmp/err" ||
    fail "unclear message: $(cat "$tmp/err")"
[ ! -e "$tmp/bad.gguf" ] || fail "a partial output file was left behind"
ls "$tmp" | grep -q 'tmp-' && fail "a temporary file was left behind"
"$HS_BIN" lora merge "$tmp/other.gguf" "$tmp/a.gguf" -o "$tmp/bad2.gguf" 2>"$tmp/err"
rc=$?
[ $rc -eq 1 ] && grep -q 'adapter for another base model' "$tmp/err" || fail "merge into another base: rc $rc, $(cat "$tmp/err")"
[ ! -e "$tmp/bad2.gguf" ] || fail "merge left an output file"
"$HS_BIN" run -m "$tmp/other.gguf" --lora "$tmp/a.gguf" -p hi -n 2 --no-warmup >/dev/null 2>"$tmp/err"
rc=$?
[ $rc -eq 1 ] && grep -q 'adapter for another base model' "$tmp/err" || fail "run --lora on another base: rc $rc, $(cat "$tmp/err")"
"$HS_BIN" lora convert "$tmp/nope" --base "$tmp/base.gguf" -o "$tmp/c.gguf" 2>"$tmp/err"
[ $? -eq 1 ] && grep -q 'adapter_config.json' "$tmp/err" || fail "missing folder: $(cat "$tmp/err")"
"$HS_BIN" lora merge "$tmp/base.gguf" -o "$tmp/c.gguf" 2>/dev/null
[ $? -eq 2 ] || fail "merge without adapters is not a usage error"

if [ $failures -gt 0 ]; then
    echo "$failures failure(s)"
    exit 1
fi
echo "ok: lora convert, merge, run --lora, mismatched base refused"
