#!/usr/bin/env bash
# 'hestia convert' end to end:
#  - ../shared/testdata/hf/stories260K-derived converted with --vocab-from
#    stories260K.gguf generates the same greedy text as stories260K.gguf;
#  - --outtype q8_0 and f16 outputs load and generate;
#  - bad input (missing folder, malformed config.json, bad option): exit 1 or 2,
#    one "hestia convert: ..." line naming the file, no output file left.
# Needs $HS_BIN; exits 77 (skipped) when ../shared is absent.
set -u
cd "$(dirname "$0")/../.."
shared=${HESTIA_SHARED:-../shared}
hf=$shared/testdata/hf/stories260K-derived
model=$shared/models/stories260K.gguf
if [ ! -f "$hf/config.json" ] || [ ! -f "$model" ]; then
    echo "SKIP: $hf or $model is absent"
    exit 77
fi
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

if ! "$HS_BIN" convert "$hf" -o "$tmp/s.gguf" --outtype f32 --vocab-from "$model" -q 2>"$tmp/err"; then
    fail "convert failed: $(cat "$tmp/err")"
fi
for prompt in "Once upon a time" "Lily saw a big"; do
    want=$("$HS_BIN" run -m "$model" -p "$prompt" -n 48 --temp 0 -t 2 2>/dev/null)
    got=$("$HS_BIN" run -m "$tmp/s.gguf" -p "$prompt" -n 48 --temp 0 -t 2 2>/dev/null)
    [ -n "$want" ] && [ "$want" = "$got" ] || fail "greedy text differs for '$prompt': '$got' vs '$want'"
done
for t in f16 bf16 q8_0; do
    "$HS_BIN" convert "$hf" -o "$tmp/$t.gguf" --outtype "$t" --vocab-from "$model" -q 2>"$tmp/err" ||
        fail "convert --outtype $t: $(cat "$tmp/err")"
    out=$("$HS_BIN" run -m "$tmp/$t.gguf" -p "Once upon a time" -n 16 --temp 0 -t 2 2>/dev/null) ||
        fail "run on the $t output failed"
    [ -n "$out" ] || fail "run on the $t output printed nothing"
done

# Bad input: exit status, one line naming the file, nothing left behind.
expect_fail() { # want_rc needle args...
    local want=$1 needle=$2
    shift 2
    rm -f "$tmp"/bad.gguf*
    "$HS_BIN" convert "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    [ "$rc" -eq "$want" ] || fail "convert $*: exit $rc, wanted $want"
    grep -q "^hestia convert: .*$needle" "$tmp/err" || fail "convert $*: stderr lacks '$needle': $(cat "$tmp/err")"
    ls "$tmp"/bad.gguf* >/dev/null 2>&1 && fail "convert $*: left an output file"
}
mkdir -p "$tmp/broken"
cp "$hf/model.safetensors" "$tmp/broken/"
expect_fail 1 "config.json" "$tmp/broken" -o "$tmp/bad.gguf" --vocab-from "$model"
printf '{"architectures": ["LlamaForCausalLM"], "hidden_size": }' >"$tmp/broken/config.json"
expect_fail 1 "config.json" "$tmp/broken" -o "$tmp/bad.gguf" --vocab-from "$model"
sed 's/"intermediate_size": *[0-9]*/"intermediate_size": 180/' "$hf/config.json" >"$tmp/broken/config.json"
grep -q '"intermediate_size": 180' "$tmp/broken/config.json" || fail "could not edit config.json"
expect_fail 1 "mlp" "$tmp/broken" -o "$tmp/bad.gguf" --vocab-from "$model"
expect_fail 1 "nonexistent" "$tmp/nonexistent" -o "$tmp/bad.gguf"
expect_fail 2 "outtype" "$hf" -o "$tmp/bad.gguf" --outtype q4_0
expect_fail 2 "missing -o" "$hf"

if [ "$failures" -ne 0 ]; then
    echo "convert.sh: $failures failure(s)"
    exit 1
fi
echo "convert.sh: ok"
