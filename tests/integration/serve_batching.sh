#!/usr/bin/env bash
# Greedy output through the API equals `hestia run`, and batching changes nothing:
#  1. for several prompts, greedy /v1/completions (max_tokens N, temperature 0) gives
#     exactly the continuation `hestia run -p PROMPT -n N --temp 0` prints;
#     (the empty prompt too: BOS only, where the first piece loses its leading space);
#  2. with --parallel 8, eight concurrent greedy requests (all at once, then streamed,
#     then staggered so prompts are processed beside running sequences) each get
#     exactly the text they got alone;
#  3. a prompt sharing a long start with an earlier one is served from the prefix
#     cache (cached_tokens, tokens_cached in the store) and still equals `hestia run`;
#  4. /metrics agrees with the store on requests and prompt/generated tokens.
# Uses stories260K from ../shared, or a synthetic model when it is absent.
. "$(dirname "$0")/lib.sh"
hs_require_bin
hs_require_serve
if [ -f "$HS_SHARED/models/stories260K.gguf" ]; then
    model=$HS_SHARED/models/stories260K.gguf
else
    echo "note: stories260K is absent; using a synthetic model"
    model=$(hs_model_tiny) || exit 1
fi
name=$(basename "$model" .gguf)
ctx=512

prompts=(
    "Once upon a time"
    "Lily and Tom went to the park"
    "The little dog was sad because"
    "One day, a girl named Sue found a big box"
    "Tim had a red ball. He"
    "The sun was hot and the bird"
    "Mom said"
    "There was a boy who liked to"
    ""
)
ntok=(48 40 56 32 64 44 60 36 24)

# 1. hestia run, one prompt at a time
for i in "${!prompts[@]}"; do
    p=${prompts[$i]}
    "$HS_BIN" run -m "$model" -p "$p" -n "${ntok[$i]}" --temp 0 -c "$ctx" -t 1 \
        >"$HS_TMP/run.$i" 2>"$HS_TMP/run.$i.err" || { fail "hestia run '$p' exited $?"; tail -n 3 "$HS_TMP/run.$i.err"; }
    # stdout is the prompt, the continuation, and one newline
    python3 - "$HS_TMP/run.$i" "$p" "$HS_TMP/want.$i" <<'EOF' || fail "hestia run '$p': output does not start with the prompt"
import sys
out = open(sys.argv[1], "rb").read()
p = sys.argv[2].encode()
if not out.startswith(p) or not out.endswith(b"\n"):
    sys.exit(1)
open(sys.argv[3], "wb").write(out[len(p):-1])
EOF
done

hs_start s -m "$model" --parallel 8 --ctx "$ctx" --threads 2 || exit 1
url=${HS_URL[s]}

body() { # body I STREAM
    python3 -c 'import json,sys; print(json.dumps({"model": sys.argv[1], "prompt": sys.argv[2], "max_tokens": int(sys.argv[3]),
        "temperature": 0, "stream": sys.argv[4] == "1"}))' "$name" "${prompts[$1]}" "${ntok[$1]}" "$2" >"$HS_TMP/body.$1.$2"
    echo "$HS_TMP/body.$1.$2"
}
# text FILE: the answer text of a completion response or of an SSE stream of chunks
text() {
    python3 - "$1" <<'EOF'
import json, sys
raw = open(sys.argv[1], encoding="utf-8").read()
if raw.lstrip().startswith("{"):
    j = json.loads(raw)
    sys.stdout.write(j["choices"][0]["text"])
else:
    out = []
    for ev in raw.split("\n\n"):
        for line in ev.split("\n"):
            if line.startswith("data: ") and line[6:] != "[DONE]":
                for c in json.loads(line[6:])["choices"]:
                    out.append(c["text"])
    sys.stdout.write("".join(out))
EOF
}

# 2. alone, one at a time: equals hestia run
for i in "${!prompts[@]}"; do
    hs_http POST "$url/v1/completions" "$(body "$i" 0)"
    if [ "$HTTP_STATUS" != 200 ]; then
        fail "alone '${prompts[$i]}': HTTP $HTTP_STATUS: $(head -c 300 "$HS_TMP/resp.body")"
        continue
    fi
    text "$HS_TMP/resp.body" >"$HS_TMP/alone.$i"
    if ! cmp -s "$HS_TMP/alone.$i" "$HS_TMP/want.$i"; then
        fail "greedy API != hestia run for '${prompts[$i]}' (max_tokens ${ntok[$i]})"
        echo "  run: $(head -c 300 "$HS_TMP/want.$i")"
        echo "  api: $(head -c 300 "$HS_TMP/alone.$i")"
    fi
done
echo "checked: API alone == hestia run for ${#prompts[@]} prompts"

# 3. eight at once (the first eight prompts): ROUND STREAM STAGGER_MS
concurrent() {
    local round=$1 stream=$2 stagger=$3 i pids=()
    for i in 0 1 2 3 4 5 6 7; do
        curl -sS --max-time 120 -H 'Content-Type: application/json' --data-binary "@$(body "$i" "$stream")" \
            -o "$HS_TMP/c$round.$i" -w '%{http_code}' "$url/v1/completions" >"$HS_TMP/c$round.$i.code" 2>&1 &
        pids+=($!)
        HS_BG_PIDS+=($!)
        [ "$stagger" -gt 0 ] && sleep "$(awk -v ms="$stagger" 'BEGIN { print ms / 1000 }')"
    done
    for i in "${!pids[@]}"; do wait "${pids[$i]}"; done
    for i in 0 1 2 3 4 5 6 7; do
        if [ "$(cat "$HS_TMP/c$round.$i.code")" != 200 ]; then
            fail "round $round '${prompts[$i]}': HTTP $(cat "$HS_TMP/c$round.$i.code")"
            continue
        fi
        text "$HS_TMP/c$round.$i" >"$HS_TMP/c$round.$i.txt"
        if ! cmp -s "$HS_TMP/c$round.$i.txt" "$HS_TMP/want.$i"; then
            fail "round $round (stream=$stream stagger=${stagger}ms): '${prompts[$i]}' differs from its answer alone"
            echo "  alone:    $(head -c 300 "$HS_TMP/want.$i")"
            echo "  together: $(head -c 300 "$HS_TMP/c$round.$i.txt")"
        fi
    done
}
concurrent 1 0 0
concurrent 2 1 0
concurrent 3 0 40
concurrent 4 1 15
echo "checked: 4 rounds of 8 concurrent greedy requests"

# 4. The prefix cache: a prompt that shares a long start with an earlier one reuses
# its KV (usage.prompt_tokens_details.cached_tokens, the store's tokens_cached) and
# still gives exactly what `hestia run` gives for it.
shared="Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. One day,"
p1="$shared she saw a big dog" p2="$shared she found a red ball"
"$HS_BIN" run -m "$model" -p "$p2" -n 32 --temp 0 -c "$ctx" -t 1 >"$HS_TMP/run.p2" 2>/dev/null || fail "hestia run (prefix prompt) failed"
want_p2=$(python3 -c 'import sys; o = open(sys.argv[1]).read(); print(o[len(sys.argv[2]):-1], end="")' "$HS_TMP/run.p2" "$p2")
prefix_body() { python3 -c 'import json,sys; print(json.dumps({"model": sys.argv[1], "prompt": sys.argv[2], "max_tokens": 32, "temperature": 0}))' "$name" "$1"; }
hits_before=$(hs_metric_sum "$url" '^hestia:prefix_cache_hits_total')
hs_http POST "$url/v1/completions" -d "$(prefix_body "$p1")"
[ "$HTTP_STATUS" = 200 ] || fail "prefix cache: first request HTTP $HTTP_STATUS"
hs_http POST "$url/v1/completions" -d "$(prefix_body "$p2")" -H 'x-request-id: e2e-prefix-2'
[ "$HTTP_STATUS" = 200 ] || fail "prefix cache: second request HTTP $HTTP_STATUS"
cached=$(hs_json "$HS_TMP/resp.body" 'j["usage"].get("prompt_tokens_details", {}).get("cached_tokens", 0)')
n_prompt=$(hs_json "$HS_TMP/resp.body" 'j["usage"]["prompt_tokens"]')
if [ "${cached:-0}" -lt 20 ] 2>/dev/null; then
    fail "prefix cache: the second prompt ($n_prompt tokens, a long start shared with the first) reused '${cached}' tokens, want >= 20"
fi
echo "checked: prefix cache reused $cached of $n_prompt prompt tokens"
[ "$(hs_json "$HS_TMP/resp.body" 'j["choices"][0]["text"]')" = "$want_p2" ] ||
    fail "prefix cache: the answer from cached KV differs from hestia run's"
hits_after=$(hs_metric_sum "$url" '^hestia:prefix_cache_hits_total')
[ "$hits_after" -gt "$hits_before" ] 2>/dev/null || fail "/metrics prefix_cache_hits_total did not grow ($hits_before -> $hits_after)"
hs_wait_sql "${HS_DB[s]}" "SELECT tokens_cached FROM requests WHERE id = 'e2e-prefix-2'" "$cached" ||
    fail "store: tokens_cached of the cached request is '${HS_SQL_LAST:-}', want $cached"

# Every slot is free again.
running=$(hs_metric "$url" '^hestia:num_requests_running')
[ "$running" = 0 ] || fail "/metrics hestia:num_requests_running is '$running' after all requests ended, want 0"

# Every request is in the store once: 9 alone + 32 together + 2; and /metrics agrees
# with the store on requests and tokens.
hs_wait_sql "${HS_DB[s]}" "SELECT count(*), count(DISTINCT id) FROM requests WHERE status = 200" "$(printf '43\t43')" ||
    fail "store: want 43 records with 43 distinct ids, got '${HS_SQL_LAST:-}'"
store_sums=$(hs_sql "${HS_DB[s]}" "SELECT count(*), sum(tokens_in), sum(tokens_out) FROM requests WHERE model = '$name'")
metric_sums=$(printf '%s\t%s\t%s' "$(hs_metric_sum "$url" "^hestia:requests_total[{].*model=\"$name\"")" \
    "$(hs_metric_sum "$url" "^hestia:prompt_tokens_total[{].*model=\"$name\"")" \
    "$(hs_metric_sum "$url" "^hestia:generation_tokens_total[{].*model=\"$name\"")")
[ "$store_sums" = "$metric_sums" ] ||
    fail "requests, prompt and generated tokens: the store says '$store_sums', /metrics says '$metric_sums'"
e2e_count=$(hs_metric_sum "$url" "^hestia:e2e_request_latency_seconds_count[{].*model=\"$name\"")
[ "$e2e_count" = 43 ] || fail "/metrics e2e latency histogram counts $e2e_count requests, want 43"
hs_stop s
hs_finish serve_batching
