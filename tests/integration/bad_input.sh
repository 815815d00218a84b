#!/usr/bin/env bash
# The hestia command against bad input: broken and hostile GGUF files, files
# that are not GGUF at all, bad flags, over-long prompts. Every failure must be
# exactly one line on stderr, "hestia <cmd>: <message>", with exit status 1
# (runtime) or 2 (usage), nothing on stdout, no crash, no hang and no
# sanitizer report. Structured log lines ("<time>Z INFO  event ...") may come
# before the error line and are not counted.
# Needs $HS_BIN; builds its own inputs (hestia synth + tools/gguf_craft.py).
# BAD_INPUT_SHOW=1 prints every case's exit status and first message line.
set -u
cd "$(dirname "$0")/../.."
bin=${HS_BIN:-}
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "FAIL: HS_BIN must name the hestia binary"
    exit 1
fi
command -v python3 >/dev/null || { echo "SKIP: python3 is needed to write the hostile GGUF files"; exit 77; }
craft="python3 tests/integration/tools/gguf_craft.py"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0 checks=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}
logline='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z +(DEBUG|INFO|WARN|ERROR) '

# invoke WHAT -- ARGS...: runs hestia with a time limit; leaves rc, out, err.
invoke() {
    what=$1
    shift 2
    checks=$((checks + 1))
    timeout -k 5 30 "$bin" "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
    rc=$?
    grep -v -E "$logline" "$tmp/err" >"$tmp/err.msg"
    [ -n "${BAD_INPUT_SHOW:-}" ] && printf '%-44s rc=%d  %s\n' "$what" "$rc" "$(head -n 1 "$tmp/err.msg")"
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        fail "$what: hung (killed after 30 s): hestia $*"
        return 1
    fi
    if grep -q -E 'Sanitizer|runtime error:' "$tmp/err"; then
        fail "$what: sanitizer report: hestia $*"
        head -n 30 "$tmp/err"
        return 1
    fi
    if [ "$rc" -ge 128 ]; then
        fail "$what: killed by signal $((rc - 128)): hestia $*"
        tail -n 5 "$tmp/err"
        return 1
    fi
    return 0
}

# the error line's shape: one non-log line "hestia CMD: ...", empty stdout
check_error_line() {
    local cmd=$1 n
    n=$(wc -l <"$tmp/err.msg")
    if [ "$n" -ne 1 ] || ! grep -q "^hestia $cmd: ." "$tmp/err.msg"; then
        fail "$what: wanted one 'hestia $cmd: ...' line on stderr, got $n:"
        head -n 10 "$tmp/err.msg"
        return 1
    fi
    # a file's name once, not "f.gguf: f.gguf: ..."
    if grep -q -E "(^|: )($tmp/[^ :]+): \2: " "$tmp/err.msg"; then
        fail "$what: the file name is repeated: $(cat "$tmp/err.msg")"
        return 1
    fi
    if [ -s "$tmp/out" ]; then
        fail "$what: stdout not empty on failure: $(head -c 200 "$tmp/out")"
        return 1
    fi
    return 0
}

# expect_error STATUS WHAT [PATTERN] -- CMD ARGS...: exit STATUS, one error
# line (matching the extended regex PATTERN if given).
expect_error() {
    local want=$1 pat=""
    what=$2
    shift 2
    if [ "$1" != "--" ]; then
        pat=$1
        shift
    fi
    invoke "$what" "$@" || return
    if [ "$rc" -ne "$want" ]; then
        fail "$what: exit status $rc, wanted $want: hestia ${*:2}"
        head -n 5 "$tmp/err.msg"
        return
    fi
    check_error_line "$2" || return
    if [ -n "$pat" ] && ! grep -q -E -- "$pat" "$tmp/err.msg"; then
        fail "$what: message does not match /$pat/: $(cat "$tmp/err.msg")"
    fi
}

# expect_ok WHAT -- CMD ARGS...: exit 0
expect_ok() {
    invoke "$@" || return
    if [ "$rc" -ne 0 ]; then
        fail "$what: exit status $rc, wanted 0: hestia ${*:3}"
        head -n 5 "$tmp/err.msg"
    fi
}

# expect_any WHAT -- CMD ARGS...: a damaged file that may still load: exit 0,
# or exit 1 with one error line; never a crash.
expect_any() {
    invoke "$@" || return
    case $rc in
    0) ;;
    1) check_error_line "$3" ;;
    *) fail "$what: exit status $rc, wanted 0 or 1: hestia ${*:3}"; head -n 5 "$tmp/err.msg" ;;
    esac
}

# ---- inputs ----
m=$tmp/tiny.gguf
"$bin" synth -o "$m" --shape tiny --type q8_0 -q 2>"$tmp/synth.err" ||
    { echo "FAIL: hestia synth failed:"; cat "$tmp/synth.err"; exit 1; }
"$bin" synth -o "$tmp/vocab.gguf" --shape tiny --vocab-only -q 2>"$tmp/synth.err" ||
    { echo "FAIL: hestia synth --vocab-only failed:"; cat "$tmp/synth.err"; exit 1; }
$craft layout "$m" >"$tmp/layout" || { echo "FAIL: gguf_craft layout"; exit 1; }
at() { awk -v k="$1" '$1 == k { print $2 }' "$tmp/layout"; }
header_end=$(at header_end) kv_end=$(at kv_end) info_end=$(at info_end)
data_start=$(at data_start) file_end=$(at file_end)
tokens_at=$(at kv:tokenizer.ggml.tokens)
tinfo2_at=$(at tensor:blk.0.attn_q.weight)
run_args=(-p "Once upon a time" -n 4 --temp 0 -t 1 --no-warmup)

# ---- files that are not there or not GGUF ----
expect_error 1 "bench: nonexistent model" -- bench -m "$tmp/none.gguf" -p 8 -n 1 -t 1 -r 1 --no-bw
expect_error 1 "run: nonexistent model" "none\.gguf" -- run -m "$tmp/none.gguf" "${run_args[@]}"
expect_error 1 "info: nonexistent file" "none\.gguf" -- info "$tmp/none.gguf"
expect_error 1 "tokenize: nonexistent model" -- tokenize -m "$tmp/none.gguf" -p hi
mkdir "$tmp/dir.gguf"
: >"$tmp/empty.gguf"
printf 'hello, I am not a model\n' >"$tmp/text.gguf"
for f in dir empty text; do
    expect_error 1 "run: $f" -- run -m "$tmp/$f.gguf" "${run_args[@]}"
    expect_error 1 "info: $f" -- info "$tmp/$f.gguf"
    expect_error 1 "tokenize: $f" -- tokenize -m "$tmp/$f.gguf" -p hi
done
expect_error 1 "bench: empty" -- bench -m "$tmp/empty.gguf" -p 8 -n 1 -t 1 -r 1 --no-bw

# ---- truncated files ----
mid_data=$(( (data_start + file_end) / 2 ))
for cut in 3 10 $((header_end + 5)) $((tokens_at + 100)) $kv_end $((tinfo2_at + 10)) \
    $(( (kv_end + info_end) / 2 )) $info_end $data_start $mid_data $((file_end - 1)); do
    head -c "$cut" "$m" >"$tmp/cut.gguf"
    expect_error 1 "run: truncated at byte $cut of $file_end" -- run -m "$tmp/cut.gguf" "${run_args[@]}"
    expect_error 1 "info: truncated at byte $cut of $file_end" -- info "$tmp/cut.gguf"
done

# ---- flipped bits: the file may still load, but nothing may crash ----
for spec in "0 4 1 1" "4 8 1 2" "8 24 1 3" "8 24 2 4" "$header_end $kv_end 3 5" "$header_end $kv_end 8 6" \
    "$tokens_at $((tokens_at + 64)) 2 7" "$kv_end $info_end 3 8" "$kv_end $info_end 8 9" "$data_start $file_end 64 10"; do
    cp "$m" "$tmp/flip.gguf"
    set -- $spec
    $craft flip "$tmp/flip.gguf" "$1" "$2" "$3" "$4"
    expect_any "run: $3 bits flipped in [$1, $2) (seed $4)" -- run -m "$tmp/flip.gguf" "${run_args[@]}"
    expect_any "info: $3 bits flipped in [$1, $2) (seed $4)" -- info "$tmp/flip.gguf"
done

# ---- well-formed GGUF, wrong model ----
# bad NAME STATUS PATTERN EDIT...: a crafted variant of the tiny model given to run
bad() {
    local name=$1 want=$2 pat=$3
    shift 3
    $craft edit "$m" "$tmp/$name.gguf" "$@" || { fail "$name: gguf_craft failed"; return; }
    expect_error "$want" "run: $name" "$pat" -- run -m "$tmp/$name.gguf" "${run_args[@]}"
}
bad arch-gpt2 1 "architecture 'gpt2'" --set general.architecture str gpt2
bad arch-mamba 1 "architecture 'mamba'" --set general.architecture str mamba
bad no-arch 1 "general\.architecture" --del-key general.architecture
bad type-iq2_xxs 1 "blk\.0\.attn_q\.weight" --tensor-type blk.0.attn_q.weight 16
bad type-i32 1 "blk\.1\.ffn_up\.weight" --tensor-type blk.1.ffn_up.weight 26
bad shape-k 1 "blk\.0\.attn_k\.weight.*shape" --tensor-shape blk.0.attn_k.weight 256,96
bad shape-3d 1 "blk\.0\.attn_v\.weight" --tensor-shape blk.0.attn_v.weight 256,64,2
bad shape-norm 1 "blk\.1\.attn_norm\.weight" --tensor-shape blk.1.attn_norm.weight 255
bad shape-embd 1 "token_embd" --tensor-shape token_embd.weight 256,100
bad missing-tensor 1 "blk\.1\.ffn_down\.weight" --drop-tensor blk.1.ffn_down.weight
bad missing-embd 1 "token_embd" --drop-tensor token_embd.weight
bad missing-key 1 "block_count" --del-key llama.block_count
bad missing-tokens 1 "tokenizer" --del-key tokenizer.ggml.tokens
bad layers-0 1 "" --set llama.block_count u32 0
bad layers-3 1 "blk\.2" --set llama.block_count u32 3
bad layers-huge 1 "" --set llama.block_count u32 4000000000
bad heads-0 1 "" --set llama.attention.head_count u32 0
bad heads-kv-0 1 "" --set llama.attention.head_count_kv u32 0
bad heads-kv-3 1 "" --set llama.attention.head_count_kv u32 3
bad embd-0 1 "" --set llama.embedding_length u32 0
bad ff-0 1 "" --set llama.feed_forward_length u32 0
bad head-dim-0 1 "" --set llama.attention.key_length u32 0 --set llama.attention.value_length u32 0
bad rope-dim-huge 1 "" --set llama.rope.dimension_count u32 1000
bad eps-negative 1 "" --set llama.attention.layer_norm_rms_epsilon f32 -1
bad eps-nan 1 "" --set llama.attention.layer_norm_rms_epsilon f32 nan
bad block-count-str 1 "block_count" --set llama.block_count str two
bad arch-u32 1 "general\.architecture" --set general.architecture u32 7
bad freq-base-str 1 "freq_base" --set llama.rope.freq_base str x
bad tok-model-u32 1 "tokenizer\.ggml\.model" --set tokenizer.ggml.model u32 1
bad tokens-u32 1 "tokenizer\.ggml\.tokens" --set tokenizer.ggml.tokens u32 3
expect_error 1 "tokenize: tokens-u32" "tokenizer\.ggml\.tokens" -- tokenize -m "$tmp/tokens-u32.gguf" -p hi
bad tokens-0 1 "" --arr-truncate tokenizer.ggml.tokens 0
bad scores-short 1 "scores" --arr-truncate tokenizer.ggml.scores 10
bad types-short 1 "token_type" --arr-truncate tokenizer.ggml.token_type 10
# an out-of-range special id may be refused or ignored (llama.cpp warns and ignores it)
$craft edit "$m" "$tmp/bos.gguf" --set tokenizer.ggml.bos_token_id u32 100000 --set tokenizer.ggml.eos_token_id i32 -7
expect_any "run: bos/eos ids out of range" -- run -m "$tmp/bos.gguf" "${run_args[@]}"
bad tok-model-unknown 1 "" --set tokenizer.ggml.model str no-such-tokenizer
bad version-4 1 "version" --version 4
bad version-0 1 "version" --version 0
bad n-tensors-huge 1 "" --n-tensors 0x4000000000000000
bad n-kv-huge 1 "" --n-kv 0x4000000000000000
bad n-tensors-more 1 "" --n-tensors 21
bad offset-past-end 1 "output_norm" --tensor-offset output_norm.weight 0x7fffffff00
bad offset-misaligned 1 "blk\.0\.ffn_norm" --tensor-offset blk.0.ffn_norm.weight 1
bad offset-overflow 1 "" --tensor-offset output_norm.weight 0xffffffffffffffe0
bad dup-key 1 "" --dup-key llama.block_count
bad dup-tensor 1 "" --dup-tensor blk.0.attn_q.weight
bad alignment-0 1 "alignment" --set general.alignment u32 0
bad alignment-odd 1 "alignment" --set general.alignment u32 3
expect_any "info: dup-key" -- info "$tmp/dup-key.gguf"
expect_any "info: arch-gpt2" -- info "$tmp/arch-gpt2.gguf"

# damaged vocabularies that still make sense: no crash, and run only prints
# tokens the vocabulary has (token_embd may have more rows than tokens)
$craft edit "$m" "$tmp/tok10.gguf" --arr-truncate tokenizer.ggml.tokens 10 \
    --arr-truncate tokenizer.ggml.scores 10 --arr-truncate tokenizer.ggml.token_type 10
expect_ok "run: 10 tokens, 512 embedding rows" -- run -m "$tmp/tok10.gguf" -p "hi" -n 8 --temp 0 -t 1 --no-warmup
expect_ok "tokenize: 10 tokens" -- tokenize -m "$tmp/tok10.gguf" -p "hi there" --ids
for e in "token_type 5 99" "token_type 6 -1" "tokens 300 ''" "tokens 301 $'\xff\xfe'" "tokens 302 '<s>'" \
    "tokens 303 '<0x41>'" "tokens 3 hello" "scores 300 nan" "scores 301 inf"; do
    eval "set -- $e"
    $craft edit "$m" "$tmp/tokx.gguf" --arr-set "tokenizer.ggml.$1" "$2" "$3"
    expect_any "run: tokenizer.ggml.$1[$2] = $3" -- run -m "$tmp/tokx.gguf" -p "Once upon a time <s>" -n 4 -t 1 --no-warmup
    expect_any "tokenize: tokenizer.ggml.$1[$2] = $3" -- tokenize -m "$tmp/tokx.gguf" -p "Once upon a <s> time" --parse-special
done
# a byte-level BPE vocabulary with merges that make no sense
$craft edit "$m" "$tmp/bpe.gguf" --set tokenizer.ggml.model str gpt2 --set tokenizer.ggml.pre str llama-bpe \
    --set-arr tokenizer.ggml.merges str '["a b", "ab", " ", "", "x y z", "\u2581 t", "< 0x41>", "\u00ff \u00fe"]'
expect_any "run: BPE with broken merges" -- run -m "$tmp/bpe.gguf" -p "Once upon a time <s>" -n 4 -t 1 --no-warmup
expect_any "tokenize: BPE with broken merges" -- tokenize -m "$tmp/bpe.gguf" -f "$tmp/layout" --parse-special

# a vocabulary without weights: tokenize works, run says why it cannot
expect_error 1 "run: vocab-only file" -- run -m "$tmp/vocab.gguf" "${run_args[@]}"
expect_error 1 "bench: vocab-only file" -- bench -m "$tmp/vocab.gguf" -p 8 -n 1 -t 1 -r 1 --no-bw
expect_ok "tokenize: vocab-only file" -- tokenize -m "$tmp/vocab.gguf" -p "hello world" --ids

# ---- prompts and contexts ----
long="Once upon a time there was a little girl who liked to play in the park with her dog and her cat every day"
expect_error 1 "run: prompt longer than the context" "context holds 16" -- run -m "$m" -p "$long" -c 16 -t 1
yes "Once upon a time there was a girl, aaaaaaaaaaaaaaaaaaaaaaaaaaaaa" | head -c 200000 >"$tmp/big.txt"
expect_error 1 "run: 200 kB prompt, context 64" "context holds 64" -- run -m "$m" -f "$tmp/big.txt" -c 64 -t 1
expect_error 1 "run: prompt file missing" -- run -m "$m" -f "$tmp/none.txt"
expect_error 1 "run: prompt file is a directory" -- run -m "$m" -f "$tmp/dir.gguf"
# generation that outgrows the context stops with a warning, not an error
expect_ok "run: -n larger than the context" -- run -m "$m" -p "hello" -n 100000 -c 24 --temp 0 -t 1 --no-warmup
if [ "$rc" -eq 0 ] && ! grep -q "context is full" "$tmp/err"; then
    fail "run: -n larger than the context: no 'context is full' warning on stderr"
fi
printf 'caf\xc3 \xff\xfe bad \xed\xa0\x80 utf-8 \xf4\x90\x80\x80 \xc0\xaf\x00 end\n' >"$tmp/bad-utf8.txt"
expect_ok "tokenize: invalid UTF-8 file" -- tokenize -m "$m" -f "$tmp/bad-utf8.txt" --ids
[ "$rc" -eq 0 ] && ! grep -q -E '^[0-9]+( [0-9]+)+$' "$tmp/out" &&
    fail "tokenize: invalid UTF-8 file: no ids printed: $(head -c 200 "$tmp/out")"
expect_ok "tokenize: invalid UTF-8 file, pieces" -- tokenize -m "$m" -f "$tmp/bad-utf8.txt"
expect_ok "run: invalid UTF-8 prompt file" -- run -m "$m" -f "$tmp/bad-utf8.txt" -n 2 --temp 0 -t 1 --no-warmup
expect_ok "run: empty prompt" -- run -m "$m" -p "" -n 2 --temp 0 -t 1 --no-warmup

# ---- flags ----
expect_error 2 "run: --temp abc" "temp" -- run -m "$m" -p hi --temp abc
expect_error 2 "run: -n x" "-n" -- run -m "$m" -p hi -n x
expect_error 2 "run: -n -5" -- run -m "$m" -p hi -n -5
expect_error 2 "run: -t 0" "-t" -- run -m "$m" -p hi -t 0
expect_error 2 "run: -c 0" -- run -m "$m" -p hi -c 0
expect_error 2 "run: -c 99999999999999999999" -- run -m "$m" -p hi -c 99999999999999999999
expect_error 2 "run: --top-p abc" -- run -m "$m" -p hi --top-p abc
expect_error 2 "run: --top-p 2" -- run -m "$m" -p hi --top-p 2
expect_error 2 "run: --repeat-penalty 0" -- run -m "$m" -p hi --repeat-penalty 0
expect_error 2 "run: --temp nan" -- run -m "$m" -p hi --temp nan
expect_error 2 "run: --seed -1" -- run -m "$m" -p hi --seed -1
expect_error 2 "run: unknown flag" "--no-such-flag" -- run -m "$m" -p hi --no-such-flag 1
expect_error 2 "run: missing value of -m" -- run -m
expect_error 2 "run: missing value of -p" -- run -m "$m" -p
expect_error 2 "run: no model" -- run -p hi
expect_error 2 "run: -p and -f" -- run -m "$m" -p hi -f "$tmp/bad-utf8.txt"
expect_error 2 "tokenize: unknown flag" -- tokenize -m "$m" -p hi --bogus
expect_error 2 "tokenize: missing value" -- tokenize -m "$m" -p
expect_error 2 "tokenize: no text" -- tokenize -m "$m"
expect_error 1 "tokenize: text file missing" -- tokenize -m "$m" -f "$tmp/none.txt"
expect_error 2 "info: no file" -- info
expect_error 2 "info: unknown flag" -- info --bogus "$m"
expect_error 2 "bench: -t 0" -- bench -m "$m" -p 8 -n 1 -t 0 -r 1 --no-bw
expect_error 2 "bench: -p abc" -- bench -m "$m" -p abc -n 1 -t 1 -r 1 --no-bw
expect_error 2 "bench: -r 0" -- bench -m "$m" -p 8 -n 1 -t 1 -r 0 --no-bw
expect_error 2 "bench: unknown flag" -- bench -m "$m" --bogus
expect_error 2 "synth: unknown shape" -- synth -o "$tmp/x.gguf" --shape nope
expect_error 2 "synth: unknown type" -- synth -o "$tmp/x.gguf" --type q9_9
expect_error 2 "synth: no output" -- synth --shape tiny
expect_error 1 "synth: unwritable output" -- synth -o "$tmp/none/x.gguf" --shape tiny -q
invoke "unknown command" -- no-such-command
[ "$rc" -eq 2 ] || fail "unknown command: exit status $rc, wanted 2"
head -n 1 "$tmp/err" | grep -q "^hestia: unknown command 'no-such-command'" ||
    fail "unknown command: first line: $(head -n 1 "$tmp/err")"

echo "bad_input: $checks checks, $failures failure(s)"
[ "$failures" -eq 0 ]
