#!/usr/bin/env bash
# 'hestia info': lists a real file's keys and tensors; a bad file gives one
# line "hestia info: <message>" and exit 1; no file is a usage error (2).
set -u
bin=${HS_BIN:?HS_BIN must name the hestia binary}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

printf 'GGUF\001\000\000\000' >"$tmp/v1.gguf"
"$bin" info "$tmp/v1.gguf" >"$tmp/out" 2>"$tmp/err"
[ $? -eq 1 ] || fail "version 1 file: expected exit 1"
[ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "expected one line on stderr, got: $(cat "$tmp/err")"
grep -q "^hestia info: $tmp/v1.gguf: .*version 1.* at byte 4$" "$tmp/err" || fail "message: $(cat "$tmp/err")"
[ -s "$tmp/out" ] && fail "stdout not empty for a bad file"

"$bin" info >/dev/null 2>&1
[ $? -eq 2 ] || fail "no file: expected exit 2"

model=../shared/models/stories260K.gguf
[ -f "$model" ] || { echo "SKIP $model is absent"; exit 77; }
"$bin" info "$model" >"$tmp/out" || fail "info on $model failed"
grep -q '^tensors: 48$' "$tmp/out" || fail "tensor count"
grep -Eq '^  tokenizer.ggml.tokens +str\[512\] +\["<unk>", "<s>", "</s>",.*\.\.\. 504 more\]$' "$tmp/out" ||
    fail "token array line"
grep -Eq '^  token_embd.weight +f32 +\[64, 512\] +0 +131072$' "$tmp/out" || fail "tensor line"
"$bin" info --all "$model" | grep -q '"<s>", "</s>", "<0x00>", "<0x01>", "<0x02>", "<0x03>", "<0x04>", "<0x05>"' ||
    fail "--all shows every element"
echo ok
