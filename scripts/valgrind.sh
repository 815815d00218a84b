#!/usr/bin/env bash
# Runs a selection of hestia under valgrind's memcheck: invalid reads and
# writes, uses of uninitialised values, and definite leaks are errors.
# ASan (make test) catches most of this faster; valgrind adds uninitialised
# reads and needs no special build, so it runs the normal -O2 -g build.
#
#   scripts/valgrind.sh            (or: make valgrind [BUILDROOT=build/me])
#
# Builds $BUILDROOT/hestia and the unit tests test_base, test_gguf and
# test_upstream without
# sanitizers, then runs: hestia synth (tiny, q8_0 and q4_k_m), hestia run for
# 16 tokens (on ../shared/models/stories260K.gguf, or the synthetic model
# without it; greedy and sampled), a short run with the reference kernels and
# on each synthetic model, hestia bench, tokenize and info, hestia run on
# broken files (the error paths must free what they took), and the two test
# binaries, then hestia serve answering a few requests and stopping on
# SIGTERM. Valgrind emulates no
# AVX-512, so the kernels are capped at AVX2 ($HESTIA_CPU, unless set).
# Logs: $BUILDROOT/valgrind/<check>.log. Ends with one line:
#   valgrind: N passed, N failed
set -u
cd "$(dirname "$0")/.."
root=${BUILDROOT:-build}
logdir=$root/valgrind
mkdir -p "$logdir"
rm -f "$logdir"/*.log "$logdir"/*.out "$logdir"/*.err

if ! command -v valgrind >/dev/null; then
    echo "valgrind: valgrind is not installed (scripts/install-deps.sh installs it)"
    exit 1
fi
bin=$root/hestia
tests=("$root/tests/test_base" "$root/tests/test_gguf" "$root/tests/test_upstream" "$root/tests/test_csv"
    "$root/tests/test_experiment")
echo "valgrind: building $bin and ${tests[*]} (no sanitizers)"
if ! make --no-print-directory BUILDROOT="$root" SAN=0 -j2 all "${tests[@]}" >"$logdir/build.log" 2>&1; then
    tail -n 30 "$logdir/build.log"
    echo "valgrind: 0 passed, 1 failed (the build failed; see $logdir/build.log)"
    exit 1
fi

# PCRE2 JIT code is machine code written at run time: valgrind cannot follow
# it and reports its reads as uninitialised, so the interpreter runs here.
export HESTIA_CPU=${HESTIA_CPU:-avx2} CMOCKA_MESSAGE_OUTPUT=stdout HESTIA_NO_JIT=1
vg=(valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
    --show-leak-kinds=definite --fair-sched=yes --num-callers=30)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0 failing=()

# check NAME STATUS -- CMD ARGS...: runs CMD under memcheck; passes when it
# exits STATUS and memcheck found nothing.
check() {
    local name=$1 want=$2
    shift 3
    local start=$SECONDS
    "${vg[@]}" --log-file="$logdir/$name.log" "$@" >"$logdir/$name.out" 2>"$logdir/$name.err" </dev/null
    judge "$name" "$want" $? $((SECONDS - start)) "$@"
}

# judge NAME WANT RC SECONDS CMD...: the verdict on one memcheck run.
judge() {
    local name=$1 want=$2 rc=$3 secs=$4
    shift 4
    local log=$logdir/$name.log verdict=ok
    if [ "$rc" -eq 99 ]; then
        verdict="memcheck errors"
    elif [ "$rc" -ne "$want" ]; then
        verdict="exit status $rc, wanted $want"
    elif ! grep -q 'ERROR SUMMARY: 0 errors' "$log"; then
        verdict="memcheck errors"
    fi
    printf '%-26s %-40s (%ds)\n' "$name" "$verdict" "$secs"
    if [ "$verdict" = ok ]; then
        passed=$((passed + 1))
        return
    fi
    failed=$((failed + 1))
    failing+=("$name")
    echo "  command: $*"
    # the first errors with their stacks, then the totals
    sed -n 's/^==[0-9]*== //p' "$log" | awk '
        /^(Invalid|Conditional|Use of uninit|Syscall param|Mismatched|[0-9,]+ .*bytes in .* blocks are definitely)/ { n++; show = n <= 4 }
        /^(HEAP|LEAK|ERROR) SUMMARY/ { show = 1 }
        show' | head -n 120 | sed 's/^/    /'
    [ "$rc" -ne 99 ] && [ "$rc" -ne "$want" ] && tail -n 5 "$logdir/$name.err" | sed 's/^/    stderr: /'
}

check synth 0 -- "$bin" synth -o "$tmp/tiny.gguf" --shape tiny --type q8_0 -t 2 -q
model=../shared/models/stories260K.gguf
if [ ! -f "$model" ]; then
    echo "  ($model is absent: hestia run uses the synthetic tiny model)"
    model=$tmp/tiny.gguf
fi
check run 0 -- "$bin" run -m "$model" -p "Once upon a time" -n 16 --temp 0 -t 2
check run-sampled 0 -- "$bin" run -m "$model" -p "Once upon a time" -n 16 --temp 0.8 --top-p 0.9 \
    --repeat-penalty 1.1 --seed 7 -t 2 --stop "the"
# the scalar reference kernels, and the quantized paths of the synthetic models
HESTIA_CPU=ref check run-ref 0 -- "$bin" run -m "$model" -p "Once upon a time" -n 8 --temp 0 -t 2
if [ -f "$tmp/tiny.gguf" ]; then
    check run-q8_0 0 -- "$bin" run -m "$tmp/tiny.gguf" -p "Once upon a time" -n 8 --temp 0 -t 2
    check synth-q4_k_m 0 -- "$bin" synth -o "$tmp/k.gguf" --shape tiny --type q4_k_m -t 2 -q
    [ -f "$tmp/k.gguf" ] &&
        check run-q4_k_m 0 -- "$bin" run -m "$tmp/k.gguf" -p "Once upon a time" -n 8 --temp 0 -t 2
    check bench 0 -- "$bin" bench -m "$tmp/tiny.gguf" -p 32 -n 8 -t 1,2 -r 1 --no-bw -q
fi
check tokenize 0 -- "$bin" tokenize -m "$model" -p "Hello world, once upon a time. <s> 123" --parse-special
check tokenize-ids 0 -- "$bin" tokenize -m "$model" -p "Hello world" --ids --add-special
check info 0 -- "$bin" info --all "$model"
# error paths free what they took
head -c 5000 "$model" >"$tmp/cut.gguf"
check run-truncated 1 -- "$bin" run -m "$tmp/cut.gguf" -p hi -n 4
check info-truncated 1 -- "$bin" info "$tmp/cut.gguf"
if [ -f "$tmp/tiny.gguf" ] && command -v python3 >/dev/null; then
    python3 tests/integration/tools/gguf_craft.py edit "$tmp/tiny.gguf" "$tmp/miss.gguf" \
        --drop-tensor blk.1.ffn_down.weight
    check run-missing-tensor 1 -- "$bin" run -m "$tmp/miss.gguf" -p hi -n 4 -t 2
fi
check run-long-prompt 1 -- "$bin" run -m "$model" -p "Once upon a time there was a girl who liked the park" \
    -c 8 -t 2
for t in "${tests[@]}"; do
    check "$(basename "$t")" 0 -- "$t"
done

# The server: a chat, a stream, a completion with logprobs, embeddings, a bad
# request, a client that hangs up mid-stream, /metrics, two experiments (an
# A/B split and a shadow whose copy runs on a worker), the dashboard and its
# data routes, then SIGTERM (exit 0, store flushed, everything freed).
serve_check() {
    local start=$SECONDS url pid port="" i rc
    printf '%s\n' 'experiments:' \
        '  - {name: vg-ab, route: split, mode: ab, a: default, b: vg-alias, weight: 50%}' \
        '  - {name: vg-shadow, route: shadowed, mode: shadow, a: default, b: vg-alias}' >"$tmp/serve.yaml"
    "${vg[@]}" --log-file="$logdir/serve.log" "$bin" serve -m "$model" --alias vg-alias --host 127.0.0.1 --port 0 \
        --config "$tmp/serve.yaml" --port-file "$tmp/port" --store "$tmp/serve.db" --threads 2 --parallel 2 \
        >"$logdir/serve.out" 2>"$logdir/serve.err" </dev/null &
    pid=$!
    for i in $(seq 1 600); do
        [ -s "$tmp/port" ] && port=$(cat "$tmp/port") &&
            curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    url=http://127.0.0.1:$port
    local chat='{"model":"default","messages":[{"role":"user","content":"Hello"}],"max_tokens":8'
    curl -s -m 120 "$url/v1/chat/completions" -d "$chat,\"temperature\":0}" >"$tmp/r1" 2>&1
    curl -s -m 120 -N "$url/v1/chat/completions" \
        -d "$chat,\"stream\":true,\"stream_options\":{\"include_usage\":true}}" >"$tmp/r2" 2>&1
    curl -s -m 120 "$url/v1/completions" \
        -d '{"model":"default","prompt":"Once upon a time","max_tokens":6,"logprobs":3}' >"$tmp/r3" 2>&1
    curl -s -m 120 "$url/v1/embeddings" -d '{"model":"default","input":["a cat","a dog"]}' >"$tmp/r4" 2>&1
    curl -s -m 60 "$url/v1/chat/completions" -d '{"model":"default","messages":[]}' >"$tmp/r5" 2>&1
    curl -s -m 2 -N "$url/v1/completions" \
        -d '{"model":"default","prompt":"Once","max_tokens":400,"stream":true,"ignore_eos":true}' \
        >/dev/null 2>&1
    curl -s -m 60 "$url/metrics" >"$tmp/r6" 2>&1
    curl -s -m 120 -D "$tmp/h7" "$url/v1/chat/completions" \
        -d '{"model":"split","user":"u1","messages":[{"role":"user","content":"Hi"}],"max_tokens":4}' >"$tmp/r7" 2>&1
    curl -s -m 120 "$url/v1/chat/completions" \
        -d '{"model":"shadowed","messages":[{"role":"user","content":"Hi"}],"max_tokens":4}' >"$tmp/r8" 2>&1
    for i in $(seq 1 120); do # the shadow copy, answered on its worker
        curl -s -m 60 "$url/api/experiments" >"$tmp/r9" 2>&1
        grep -q '"shadow_done": *1' "$tmp/r9" && break
        sleep 0.5
    done
    curl -s -m 60 "$url/api/timeseries" >"$tmp/r10" 2>&1
    curl -s -m 60 "$url/dashboard" >"$tmp/r11" 2>&1
    kill -TERM "$pid" 2>/dev/null
    wait "$pid"
    rc=$?
    local bad=""
    grep -q '"chat.completion"' "$tmp/r1" || bad="chat answer"
    grep -q 'data: \[DONE\]' "$tmp/r2" || bad="$bad stream"
    grep -q '"logprobs"' "$tmp/r3" || bad="$bad completion"
    grep -q '"embedding"' "$tmp/r4" || bad="$bad embeddings"
    grep -q '"invalid_request_error"' "$tmp/r5" || bad="$bad error object"
    grep -q 'hestia:requests_total' "$tmp/r6" || bad="$bad metrics"
    grep -qi '^x-hestia-variant: [AB]' "$tmp/h7" && grep -q '"chat.completion"' "$tmp/r7" || bad="$bad experiment"
    grep -q '"chat.completion"' "$tmp/r8" || bad="$bad shadowed"
    grep -q '"shadow_done": *1' "$tmp/r9" || bad="$bad shadow-copy"
    grep -q '"points"' "$tmp/r10" || bad="$bad timeseries"
    grep -qi '<html' "$tmp/r11" || bad="$bad dashboard"
    if [ -n "$bad" ]; then
        echo "  serve: unexpected answers:$bad (see $tmp)"
        rc=98
    fi
    judge serve 0 "$rc" $((SECONDS - start)) "$bin" serve -m "$model"
}
if command -v curl >/dev/null; then
    serve_check
else
    echo "  (curl is absent: the server check is skipped)"
fi

[ "$failed" -gt 0 ] && echo "failing: ${failing[*]} (logs in $logdir)"
echo "valgrind: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
