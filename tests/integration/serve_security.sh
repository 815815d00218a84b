#!/usr/bin/env bash
# Validation, keys, scopes and rate limits of hestia serve, from outside, with curl.
#  - Every validation rule: the bad request gets its status and an error object
#    {"error":{"message","type","param","code"}} naming the field; the request is
#    in the store exactly once with that status and no tokens out; the x-request-id
#    we sent comes back; and nothing else changed: no generation happened
#    (/metrics generation and prompt token counters unchanged), and the server
#    still gives the same greedy answer as before the bad requests.
#  - Keys: open on loopback with no keys; refuses to bind 0.0.0.0 without keys
#    (non-zero exit and a message), unless --insecure; with keys, a missing,
#    malformed, wrong or revoked key is 401 while /health stays open.
#  - Rate limits (config file): requests per minute per key (other keys unaffected),
#    tokens per minute and requests per hour per address: 429 with Retry-After and
#    x-ratelimit-* headers, recorded in the store, no generation; no x-ratelimit-*
#    headers when limits are off.
#  - Bodies: none stored without --log-bodies; with it, redacted (API keys, e-mail
#    addresses); `hestia logs export --jsonl` writes every record once.
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
limits=(--max-messages 4 --max-input-tokens 64 --max-body 16384)
hs_start v -m "$model" --parallel 2 --ctx 256 "${limits[@]}" || exit 1
url=${HS_URL[v]}
db=${HS_DB[v]}

good_body='{"model":"'$name'","prompt":"Once upon a time","max_tokens":24,"temperature":0}'
hs_http POST "$url/v1/completions" -d "$good_body"
[ "$HTTP_STATUS" = 200 ] || { fail "a good request: HTTP $HTTP_STATUS $(head -c 300 "$HS_TMP/resp.body")"; hs_finish serve_security; }
good_text=$(hs_json "$HS_TMP/resp.body" 'j["choices"][0]["text"]')
[ -z "$(grep -i '^x-ratelimit' "$HS_TMP/resp.headers")" ] || fail "x-ratelimit-* headers sent although no limit is configured"

# A client cannot keep its requests out of the log by reusing an x-request-id: two
# requests sent with the same id leave two records.
hs_wait_sql "$db" "SELECT count(*) FROM requests" 1 || fail "store: the first request is not recorded"
n_before=$(hs_sql "$db" "SELECT count(*) FROM requests")
hs_http POST "$url/v1/completions" -d "$good_body" -H 'x-request-id: e2e-dup-1'
hs_http POST "$url/v1/completions" -d "$good_body" -H 'x-request-id: e2e-dup-1'
[ "$HTTP_STATUS" = 200 ] || fail "a reused x-request-id: HTTP $HTTP_STATUS"
hs_wait_sql "$db" "SELECT count(*) - $n_before FROM requests" 2 5 ||
    fail "two requests with the same x-request-id left $(( ${HS_SQL_LAST:-0} )) new record(s) in the store, want 2 (a record is lost)"

gen_before=$(hs_metric_sum "$url" '^hestia:generation_tokens_total')
prompt_before=$(hs_metric_sum "$url" '^hestia:prompt_tokens_total')
records_before=$(hs_sql "$db" "SELECT count(*) FROM requests")
[ "${gen_before:-0}" -gt 0 ] || fail "/metrics: hestia:generation_tokens_total is '${gen_before}' after a request that generated"

# Bodies too big for a table line
long_words=$(python3 -c 'print(" ".join(["story"] * 300))')
big_content=$(python3 -c 'print("x" * 20000)')
nested=$(python3 -c 'print("{\"model\":\"m\",\"prompt\":" + "[" * 15000)')
bad_utf8=$(printf '{"model":"%s","prompt":"caf\xe9 \xff","max_tokens":2}' "$name")
msgs5='[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"},{"role":"assistant","content":"d"},{"role":"user","content":"e"}]'
M='"model":"'$name'"'
U='"messages":[{"role":"user","content":"hi"}]'

# name | endpoint | status | type | code | param | body
# type and param are regular expressions with ~ for alternation; param null = JSON null.
cases=$(cat <<EOF
invalid_json|/v1/chat/completions|400|invalid_request_error|invalid_json|null|{"model": "$name", "messages": [
not_an_object|/v1/chat/completions|400|invalid_request_error|invalid_type|null|[1, 2, 3]
empty_body|/v1/chat/completions|400|invalid_request_error|invalid_json|null|
deep_nesting|/v1/completions|400|invalid_request_error|invalid_json|null|$nested
invalid_utf8|/v1/completions|400|invalid_request_error|invalid_json|null|$bad_utf8
nul_in_string|/v1/completions|400|invalid_request_error|invalid_json|null|{$M,"prompt":"a\u0000b"}
missing_model|/v1/chat/completions|400|invalid_request_error|missing_required_parameter|model|{$U}
model_type|/v1/chat/completions|400|invalid_request_error|invalid_type|model|{"model":5,$U}
unknown_model|/v1/chat/completions|404|(invalid_request_error~not_found_error)|model_not_found|(model~null)|{"model":"no-such-model",$U}
unknown_model_compl|/v1/completions|404|(invalid_request_error~not_found_error)|model_not_found|(model~null)|{"model":"no-such-model","prompt":"x"}
unknown_model_embed|/v1/embeddings|404|(invalid_request_error~not_found_error)|model_not_found|(model~null)|{"model":"no-such-model","input":"x"}
missing_messages|/v1/chat/completions|400|invalid_request_error|missing_required_parameter|messages|{$M}
messages_type|/v1/chat/completions|400|invalid_request_error|invalid_type|messages|{$M,"messages":"hi"}
messages_empty|/v1/chat/completions|400|invalid_request_error|invalid_value|messages|{$M,"messages":[]}
too_many_messages|/v1/chat/completions|400|invalid_request_error|invalid_value|messages|{$M,"messages":$msgs5}
message_type|/v1/chat/completions|400|invalid_request_error|invalid_type|messages\[0\]|{$M,"messages":["hi"]}
bad_role|/v1/chat/completions|400|invalid_request_error|invalid_value|messages\[0\]\.role|{$M,"messages":[{"role":"wizard","content":"hi"}]}
role_type|/v1/chat/completions|400|invalid_request_error|invalid_type|messages\[0\]\.role|{$M,"messages":[{"role":1,"content":"hi"}]}
missing_role|/v1/chat/completions|400|invalid_request_error|missing_required_parameter|messages\[0\]\.role|{$M,"messages":[{"content":"hi"}]}
bad_role_second|/v1/chat/completions|400|invalid_request_error|invalid_value|messages\[1\]\.role|{$M,"messages":[{"role":"user","content":"hi"},{"role":"robot","content":"x"}]}
content_type|/v1/chat/completions|400|invalid_request_error|invalid_type|messages\[0\]\.content|{$M,"messages":[{"role":"user","content":5}]}
missing_content|/v1/chat/completions|400|invalid_request_error|missing_required_parameter|messages\[0\]\.content|{$M,"messages":[{"role":"user"}]}
content_part_type|/v1/chat/completions|400|invalid_request_error|unsupported_value|messages\[0\]\.content\[0\]\.type|{$M,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"http://example.com/a.png"}}]}]}
content_part_no_text|/v1/chat/completions|400|invalid_request_error|missing_required_parameter|messages\[0\]\.content\[0\]\.text|{$M,"messages":[{"role":"user","content":[{"type":"text"}]}]}
content_part_second|/v1/chat/completions|400|invalid_request_error|unsupported_value|messages\[0\]\.content\[1\]\.type|{$M,"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"input_audio","input_audio":{}}]}]}
too_many_tokens_chat|/v1/chat/completions|400|invalid_request_error|context_length_exceeded|messages|{$M,"messages":[{"role":"user","content":"$long_words"}]}
too_many_tokens_compl|/v1/completions|400|invalid_request_error|context_length_exceeded|prompt|{$M,"prompt":"$long_words"}
too_many_tokens_embed|/v1/embeddings|400|invalid_request_error|context_length_exceeded|input|{$M,"input":"$long_words"}
n_zero|/v1/chat/completions|400|invalid_request_error|invalid_value|n|{$M,$U,"n":0}
n_big|/v1/chat/completions|400|invalid_request_error|invalid_value|n|{$M,$U,"n":17}
n_type|/v1/chat/completions|400|invalid_request_error|invalid_type|n|{$M,$U,"n":"2"}
temperature_high|/v1/chat/completions|400|invalid_request_error|invalid_value|temperature|{$M,$U,"temperature":2.5}
temperature_negative|/v1/completions|400|invalid_request_error|invalid_value|temperature|{$M,"prompt":"x","temperature":-0.1}
temperature_type|/v1/chat/completions|400|invalid_request_error|invalid_type|temperature|{$M,$U,"temperature":"hot"}
top_p_high|/v1/chat/completions|400|invalid_request_error|invalid_value|top_p|{$M,$U,"top_p":1.5}
top_p_negative|/v1/completions|400|invalid_request_error|invalid_value|top_p|{$M,"prompt":"x","top_p":-0.5}
top_p_type|/v1/chat/completions|400|invalid_request_error|invalid_type|top_p|{$M,$U,"top_p":[1]}
top_k_negative|/v1/chat/completions|400|invalid_request_error|invalid_value|top_k|{$M,$U,"top_k":-1}
min_p_high|/v1/chat/completions|400|invalid_request_error|invalid_value|min_p|{$M,$U,"min_p":1.5}
presence_penalty|/v1/chat/completions|400|invalid_request_error|invalid_value|presence_penalty|{$M,$U,"presence_penalty":3}
frequency_penalty|/v1/chat/completions|400|invalid_request_error|invalid_value|frequency_penalty|{$M,$U,"frequency_penalty":-2.5}
max_tokens_zero|/v1/chat/completions|400|invalid_request_error|invalid_value|max_tokens|{$M,$U,"max_tokens":0}
max_tokens_type|/v1/chat/completions|400|invalid_request_error|invalid_type|max_tokens|{$M,$U,"max_tokens":"10"}
max_tokens_fraction|/v1/completions|400|invalid_request_error|invalid_type|max_tokens|{$M,"prompt":"x","max_tokens":1.5}
max_completion_tokens|/v1/chat/completions|400|invalid_request_error|invalid_value|max_completion_tokens|{$M,$U,"max_completion_tokens":-3}
stream_type|/v1/chat/completions|400|invalid_request_error|invalid_type|stream|{$M,$U,"stream":"yes"}
stream_options_alone|/v1/chat/completions|400|invalid_request_error|invalid_value|stream_options|{$M,$U,"stream_options":{"include_usage":true}}
include_usage_type|/v1/chat/completions|400|invalid_request_error|invalid_type|stream_options\.include_usage|{$M,$U,"stream":true,"stream_options":{"include_usage":1}}
stop_type|/v1/chat/completions|400|invalid_request_error|invalid_type|stop|{$M,$U,"stop":5}
stop_too_many|/v1/chat/completions|400|invalid_request_error|invalid_value|stop|{$M,$U,"stop":["a","b","c","d","e"]}
stop_item_type|/v1/chat/completions|400|invalid_request_error|invalid_type|stop\[1\]|{$M,$U,"stop":["a",1]}
seed_type|/v1/chat/completions|400|invalid_request_error|invalid_type|seed|{$M,$U,"seed":"x"}
logprobs_type|/v1/chat/completions|400|invalid_request_error|invalid_type|logprobs|{$M,$U,"logprobs":"yes"}
top_logprobs_big|/v1/chat/completions|400|invalid_request_error|invalid_value|top_logprobs|{$M,$U,"logprobs":true,"top_logprobs":21}
compl_logprobs_big|/v1/completions|400|invalid_request_error|invalid_value|logprobs|{$M,"prompt":"x","logprobs":6}
user_type|/v1/chat/completions|400|invalid_request_error|invalid_type|user|{$M,$U,"user":5}
ignore_eos_type|/v1/completions|400|invalid_request_error|invalid_type|ignore_eos|{$M,"prompt":"x","ignore_eos":"x"}
echo_type|/v1/completions|400|invalid_request_error|invalid_type|echo|{$M,"prompt":"x","echo":"x"}
missing_prompt|/v1/completions|400|invalid_request_error|missing_required_parameter|prompt|{$M}
prompt_type|/v1/completions|400|invalid_request_error|invalid_type|prompt|{$M,"prompt":5}
prompt_token_out_of_vocab|/v1/completions|400|invalid_request_error|invalid_value|prompt.*|{$M,"prompt":[1,99999999]}
missing_input|/v1/embeddings|400|invalid_request_error|missing_required_parameter|input|{$M}
input_type|/v1/embeddings|400|invalid_request_error|invalid_type|input|{$M,"input":5}
encoding_format|/v1/embeddings|400|invalid_request_error|invalid_value|encoding_format|{$M,"input":"x","encoding_format":"hex"}
body_too_large|/v1/chat/completions|413|invalid_request_error|request_too_large|null|{$M,"messages":[{"role":"user","content":"$big_content"}]}
EOF
)

n_cases=0
declare -A case_status=()
while IFS='|' read -r cname endpoint status etype ecode eparam body; do
    [ -n "$cname" ] || continue
    n_cases=$((n_cases + 1))
    rid="e2e-bad-$n_cases-$cname"
    printf '%s' "$body" >"$HS_TMP/case.body"
    hs_http POST "$url$endpoint" "$HS_TMP/case.body" -H "x-request-id: $rid"
    case_status[$rid]=$status
    msg=$(python3 - "$HS_TMP/resp.body" "$HS_TMP/resp.headers" "$HTTP_STATUS" "$status" "$etype" "$ecode" "$eparam" "$rid" <<'EOF'
import json, re, sys
body, headers, got_status, status, etype, ecode, eparam, rid = sys.argv[1:]
etype, eparam = etype.replace("~", "|"), eparam.replace("~", "|")
problems = []
if got_status != status:
    problems.append("HTTP %s, want %s" % (got_status, status))
hdr = {}
for line in open(headers, encoding="latin-1"):
    if ":" in line:
        k, v = line.split(":", 1)
        hdr[k.strip().lower()] = v.strip()
if not hdr.get("content-type", "").startswith("application/json"):
    problems.append("content-type %r" % hdr.get("content-type"))
if hdr.get("x-request-id") != rid:
    problems.append("x-request-id %r, want %r" % (hdr.get("x-request-id"), rid))
text = open(body, encoding="utf-8", errors="replace").read()
try:
    e = json.loads(text)["error"]
    if not {"message", "type", "param", "code"} <= set(e.keys()):
        problems.append("error object keys %s" % sorted(e.keys()))
    if not isinstance(e.get("message"), str) or not e["message"]:
        problems.append("empty message")
    if not re.fullmatch(etype, str(e.get("type"))):
        problems.append("type %r, want %s" % (e.get("type"), etype))
    if e.get("code") != ecode:
        problems.append("code %r, want %r" % (e.get("code"), ecode))
    p = e.get("param")
    if not re.fullmatch(eparam, "null" if p is None else str(p)):
        problems.append("param %r, want %s" % (p, eparam))
except Exception as ex:
    problems.append("no error object (%s)" % ex)
if problems:
    print("; ".join(problems) + " -- body: " + text[:200])
    sys.exit(1)
EOF
) || fail "validation '$cname' ($endpoint): $msg"
done <<<"$cases"
echo "checked: $n_cases validation cases"

# The body limit holds for chunked uploads too (no Content-Length to check up front).
n_cases=$((n_cases + 1))
case_status[e2e-bad-chunked]=413
python3 -c 'import json,sys; print(json.dumps({"model": sys.argv[1], "prompt": "x" * 20000}))' "$name" >"$HS_TMP/chunked.body"
hs_http POST "$url/v1/completions" "$HS_TMP/chunked.body" -H 'Transfer-Encoding: chunked' -H 'x-request-id: e2e-bad-chunked'
[ "$HTTP_STATUS" = 413 ] || fail "a chunked 20 kB body over --max-body 16384: HTTP $HTTP_STATUS, want 413"
[ "$(hs_json "$HS_TMP/resp.body" 'j["error"]["code"]')" = request_too_large ] || fail "chunked 413: code is not request_too_large"

# An unknown route and a wrong method: an error object too.
hs_http POST "$url/v1/no-such-endpoint" -d '{}'
[ "$HTTP_STATUS" = 404 ] || fail "unknown route: HTTP $HTTP_STATUS, want 404"
[ "$(hs_json "$HS_TMP/resp.body" 'type(j["error"]["message"]).__name__')" = str ] || fail "unknown route: no error object"
hs_http GET "$url/v1/chat/completions"
[ "$HTTP_STATUS" = 405 ] || [ "$HTTP_STATUS" = 404 ] || fail "GET /v1/chat/completions: HTTP $HTTP_STATUS, want 405 (or 404)"

# Nothing else changed: one record per bad request, with its status and no output...
hs_wait_sql "$db" "SELECT count(*) FROM requests WHERE id LIKE 'e2e-bad-%'" "$n_cases" ||
    fail "store: want $n_cases records with our request ids, got '${HS_SQL_LAST:-}'"
while IFS=$'\t' read -r rid st tout cnt; do
    [ "$cnt" = 1 ] || fail "store: request $rid recorded $cnt times"
    [ "$st" = "${case_status[$rid]:-?}" ] || fail "store: request $rid has status $st, want ${case_status[$rid]:-?}"
    [ "${tout:-0}" = 0 ] || fail "store: request $rid has tokens_out $tout"
done < <(hs_sql "$db" "SELECT id, status, tokens_out, count(*) FROM requests WHERE id LIKE 'e2e-bad-%' GROUP BY id")
bad_err=$(hs_sql "$db" "SELECT count(*) FROM requests WHERE id LIKE 'e2e-bad-%' AND (error IS NULL OR error = '')")
[ "$bad_err" = 0 ] || fail "store: $bad_err refused requests have no error message"
# ... no generation, no prompt processing ...
gen_after=$(hs_metric_sum "$url" '^hestia:generation_tokens_total')
prompt_after=$(hs_metric_sum "$url" '^hestia:prompt_tokens_total')
[ "$gen_after" = "$gen_before" ] || fail "/metrics generation tokens went from $gen_before to $gen_after during bad requests"
[ "$prompt_after" = "$prompt_before" ] || fail "/metrics prompt tokens went from $prompt_before to $prompt_after during bad requests"
# ... and the server still answers as before.
hs_http POST "$url/v1/completions" -d "$good_body"
[ "$HTTP_STATUS" = 200 ] || fail "after the bad requests: HTTP $HTTP_STATUS"
[ "$(hs_json "$HS_TMP/resp.body" 'j["choices"][0]["text"]')" = "$good_text" ] ||
    fail "after the bad requests the greedy answer changed"
hs_http GET "$url/health"
[ "$HTTP_STATUS" = 200 ] || fail "/health after bad requests: $HTTP_STATUS"
hs_wait_sql "$db" "SELECT count(*) FROM requests" "$((records_before + n_cases + 3))" 5 ||
    echo "note: the store holds ${HS_SQL_LAST:-?} records after $((records_before + n_cases + 3)) requests (unknown routes may go unrecorded)"
hs_stop v

# ---- keys ----
# No keys: open on loopback (shown above). A non-loopback address without keys is refused...
rm -f "$HS_TMP/wild.port"
timeout -k 5 60 "$HS_BIN" serve -m "$model" --host 0.0.0.0 --port 0 --port-file "$HS_TMP/wild.port" \
    --store "$HS_TMP/wild.db" >"$HS_TMP/wild.out" 2>"$HS_TMP/wild.err"
rc=$?
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    fail "serve --host 0.0.0.0 with no keys kept running (it must refuse)"
elif [ "$rc" -eq 0 ]; then
    fail "serve --host 0.0.0.0 with no keys exited 0 (want a refusal, non-zero)"
else
    grep -q -- '--insecure' "$HS_TMP/wild.err" || fail "the refusal to bind 0.0.0.0 does not mention --insecure: $(tail -n 3 "$HS_TMP/wild.err")"
    grep -qi 'key' "$HS_TMP/wild.err" || fail "the refusal to bind 0.0.0.0 does not mention keys: $(tail -n 3 "$HS_TMP/wild.err")"
fi
[ -s "$HS_TMP/wild.port" ] && fail "serve wrote a port file although it refused to serve"
# ... unless --insecure.
hs_start insecure -m "$model" --parallel 1 --ctx 128 --host 0.0.0.0 --insecure ||
    fail "serve --host 0.0.0.0 --insecure did not come up"
[ -n "${HS_PID[insecure]:-}" ] && hs_stop insecure

# With keys: Bearer auth.
kdb=$HS_TMP/keys.db
"$HS_BIN" keys create --name alice --scope user --store "$kdb" >"$HS_TMP/alice" 2>"$HS_TMP/keys.err" || fail "keys create alice: $(cat "$HS_TMP/keys.err")"
"$HS_BIN" keys create --name bob --scope user --store "$kdb" >"$HS_TMP/bob" 2>>"$HS_TMP/keys.err" || fail "keys create bob"
"$HS_BIN" keys create --name root --scope admin --store "$kdb" >"$HS_TMP/root" 2>>"$HS_TMP/keys.err" || fail "keys create root"
"$HS_BIN" keys create --name alice --scope user --store "$kdb" >/dev/null 2>&1 && fail "a second active key named alice was created"
alice=$(tr -d '\n' <"$HS_TMP/alice") bob=$(tr -d '\n' <"$HS_TMP/bob") root=$(tr -d '\n' <"$HS_TMP/root")
[ "$(wc -l <"$HS_TMP/alice")" = 1 ] || fail "keys create printed more than the key on stdout"
[ "$alice" != "$bob" ] || fail "two keys are the same"
# the store keeps hashes only
for f in "$kdb" "$kdb-wal"; do
    [ -f "$f" ] && grep -qF "$alice" "$f" && fail "the key's text is in $f (the store must keep hashes only)"
done

cat >"$HS_TMP/keys.yaml" <<EOF
rate_limits:
  per_key:
    requests_per_minute: 3
EOF
hs_start k -m "$model" --parallel 2 --ctx 128 --store "$kdb" --config "$HS_TMP/keys.yaml" || hs_finish serve_security
kurl=${HS_URL[k]}
small='{"model":"'$name'","prompt":"Once","max_tokens":2,"temperature":0}'
expect_401() { # WHAT [curl args]
    local what=$1
    shift
    hs_http POST "$kurl/v1/completions" -d "$small" "$@"
    if [ "$HTTP_STATUS" != 401 ]; then
        fail "$what: HTTP $HTTP_STATUS, want 401"
        return
    fi
    local t
    t=$(hs_json "$HS_TMP/resp.body" 'j["error"]["type"] + " " + str(j["error"]["code"])')
    [ "$t" = "authentication_error invalid_api_key" ] || fail "$what: error type/code '$t', want 'authentication_error invalid_api_key'"
    [ -n "$(hs_header www-authenticate)" ] || echo "note: $what: no WWW-Authenticate header"
}
expect_401 "no key"
expect_401 "a wrong key" -H "Authorization: Bearer hs-0000000000000000000000000000000000000000000"
expect_401 "a key without Bearer" -H "Authorization: $alice"
expect_401 "a Basic header" -H "Authorization: Basic $(printf 'x:%s' "$alice" | base64 -w0)"
expect_401 "a key with one character changed" -H "Authorization: Bearer ${alice%?}$([ "${alice: -1}" = A ] && echo B || echo A)"
hs_http GET "$kurl/v1/models"
[ "$HTTP_STATUS" = 401 ] || fail "GET /v1/models without a key: HTTP $HTTP_STATUS, want 401"
hs_http GET "$kurl/health"
[ "$HTTP_STATUS" = 200 ] || fail "/health must not need a key: HTTP $HTTP_STATUS"

# The right key: 200 with the per-key window in the headers.
for i in 1 2 3; do
    hs_http POST "$kurl/v1/completions" -d "$small" -H "Authorization: Bearer $alice"
    [ "$HTTP_STATUS" = 200 ] || fail "alice request $i: HTTP $HTTP_STATUS $(head -c 200 "$HS_TMP/resp.body")"
    [ "$(hs_header x-ratelimit-limit-requests)" = 3 ] || fail "alice request $i: x-ratelimit-limit-requests '$(hs_header x-ratelimit-limit-requests)', want 3"
    [ "$(hs_header x-ratelimit-remaining-requests)" = $((3 - i)) ] ||
        fail "alice request $i: x-ratelimit-remaining-requests '$(hs_header x-ratelimit-remaining-requests)', want $((3 - i))"
done
gen_before=$(hs_metric_sum "$kurl" '^hestia:generation_tokens_total')
[ "$gen_before" -gt 0 ] 2>/dev/null || fail "/metrics with keys: no generation counted ('$gen_before'; does /metrics need a key?)"
hs_http POST "$kurl/v1/completions" -d "$small" -H "Authorization: Bearer $alice" -H "x-request-id: e2e-limited-1"
if [ "$HTTP_STATUS" != 429 ]; then
    fail "alice's 4th request in a minute: HTTP $HTTP_STATUS, want 429"
else
    ra=$(hs_header retry-after)
    [[ "$ra" =~ ^[0-9]+$ ]] && [ "$ra" -ge 1 ] && [ "$ra" -le 60 ] || fail "429: Retry-After '$ra', want 1..60 seconds"
    [ "$(hs_header x-ratelimit-remaining-requests)" = 0 ] || fail "429: x-ratelimit-remaining-requests '$(hs_header x-ratelimit-remaining-requests)'"
    [ "$(hs_header x-ratelimit-limit-requests)" = 3 ] || fail "429: x-ratelimit-limit-requests '$(hs_header x-ratelimit-limit-requests)'"
    [ -n "$(hs_header x-ratelimit-reset-requests)" ] || fail "429: no x-ratelimit-reset-requests"
    t=$(hs_json "$HS_TMP/resp.body" 'j["error"]["type"] + " " + str(j["error"]["code"])')
    [ "$t" = "rate_limit_error rate_limit_exceeded" ] || fail "429: error type/code '$t'"
fi
hs_wait_sql "$kdb" "SELECT status, key_name, tokens_out FROM requests WHERE id = 'e2e-limited-1'" "$(printf '429\talice\t0')" ||
    fail "store: the 429 is recorded as '${HS_SQL_LAST:-}', want 429, alice, 0 tokens"
# bob has a window of his own
hs_http POST "$kurl/v1/completions" -d "$small" -H "Authorization: Bearer $bob"
[ "$HTTP_STATUS" = 200 ] || fail "bob after alice was limited: HTTP $HTTP_STATUS (limits are per key)"
gen_after=$(hs_metric_sum "$kurl" '^hestia:generation_tokens_total')
[ "$gen_after" -gt "$gen_before" ] 2>/dev/null || fail "bob's request generated nothing?"
# Scopes: the admin routes need an admin key (checked when the server has them).
hs_http GET "$kurl/admin/keys" -H "Authorization: Bearer $bob"
case "$HTTP_STATUS" in
403) [ "$(hs_json "$HS_TMP/resp.body" 'j["error"]["type"]')" = permission_error ] || fail "403 type is not permission_error"
     hs_http GET "$kurl/admin/keys" -H "Authorization: Bearer $root"
     [ "$HTTP_STATUS" = 200 ] || fail "GET /admin/keys with the admin key: HTTP $HTTP_STATUS"
     grep -q "$alice" "$HS_TMP/resp.body" && fail "GET /admin/keys shows a key's secret" ;;
404) echo "note: no /admin routes yet; scope checks skipped" ;;
*) fail "GET /admin/keys with a user key: HTTP $HTTP_STATUS, want 403" ;;
esac
# Revocation by the cli while the server runs: refused within a few seconds.
"$HS_BIN" keys revoke --name bob --store "$kdb" >/dev/null 2>"$HS_TMP/revoke.err" || fail "keys revoke bob: $(cat "$HS_TMP/revoke.err")"
revoked=0
for i in $(seq 1 30); do
    hs_http POST "$kurl/v1/completions" -d "$small" -H "Authorization: Bearer $bob"
    [ "$HTTP_STATUS" = 401 ] && { revoked=1; break; }
    sleep 0.2
done
[ "$revoked" = 1 ] || fail "bob's revoked key still works after 6 s (last HTTP $HTTP_STATUS)"
"$HS_BIN" keys revoke --name bob --store "$kdb" >/dev/null 2>&1 && fail "revoking a revoked key succeeded"
"$HS_BIN" keys list --store "$kdb" >"$HS_TMP/keys.list" 2>&1 || fail "keys list failed"
grep -q "$alice" "$HS_TMP/keys.list" && fail "keys list shows a key's secret"
grep -q alice "$HS_TMP/keys.list" || fail "keys list does not name alice"
n401=$(hs_sql "$kdb" "SELECT count(*) FROM requests WHERE status = 401")
[ "${n401:-0}" -ge 6 ] || fail "store: ${n401:-0} records of 401s, want at least 6"
# With keys, a non-loopback address is allowed without --insecure.
hs_stop k
hs_start kwild -m "$model" --parallel 1 --ctx 128 --store "$kdb" --host 0.0.0.0 ||
    fail "serve --host 0.0.0.0 with keys did not come up"
[ -n "${HS_PID[kwild]:-}" ] && hs_stop kwild

# ---- tokens per minute and requests per hour, per address ----
cat >"$HS_TMP/tpm.yaml" <<EOF
rate_limits:
  per_address:
    tokens_per_minute: 40
EOF
hs_start tpm -m "$model" --parallel 1 --ctx 128 --config "$HS_TMP/tpm.yaml" || hs_finish serve_security
hs_http POST "${HS_URL[tpm]}/v1/completions" -d '{"model":"'$name'","prompt":"Once upon a time","max_tokens":40,"temperature":0,"ignore_eos":true}'
[ "$HTTP_STATUS" = 200 ] || fail "tpm: first request HTTP $HTTP_STATUS"
[ "$(hs_header x-ratelimit-limit-tokens)" = 40 ] || fail "tpm: x-ratelimit-limit-tokens '$(hs_header x-ratelimit-limit-tokens)', want 40"
used=$(hs_json "$HS_TMP/resp.body" 'j["usage"]["total_tokens"]')
hs_http POST "${HS_URL[tpm]}/v1/completions" -d "$small"
if [ "${used:-0}" -ge 40 ]; then
    [ "$HTTP_STATUS" = 429 ] || fail "tpm: after $used tokens of 40 a request got HTTP $HTTP_STATUS, want 429"
    [ "$(hs_header x-ratelimit-remaining-tokens)" = 0 ] || fail "tpm 429: x-ratelimit-remaining-tokens '$(hs_header x-ratelimit-remaining-tokens)'"
    ra=$(hs_header retry-after)
    [[ "$ra" =~ ^[0-9]+$ ]] && [ "$ra" -ge 1 ] && [ "$ra" -le 60 ] || fail "tpm 429: Retry-After '$ra'"
else
    fail "tpm: the first request used only ${used:-?} tokens (ignore_eos and max_tokens 40 should give 40 + prompt)"
fi
hs_stop tpm

cat >"$HS_TMP/rph.yaml" <<EOF
rate_limits:
  per_address:
    requests_per_hour: 2
EOF
hs_start rph -m "$model" --parallel 1 --ctx 128 --config "$HS_TMP/rph.yaml" || hs_finish serve_security
for i in 1 2 3; do hs_http POST "${HS_URL[rph]}/v1/completions" -d "$small"; done
if [ "$HTTP_STATUS" != 429 ]; then
    fail "rph: the 3rd request in an hour got HTTP $HTTP_STATUS, want 429"
else
    ra=$(hs_header retry-after)
    [[ "$ra" =~ ^[0-9]+$ ]] && [ "$ra" -gt 60 ] && [ "$ra" -le 3600 ] || fail "rph 429: Retry-After '$ra', want 61..3600"
    [ "$(hs_header x-ratelimit-limit-requests)" = 2 ] || fail "rph 429: x-ratelimit-limit-requests '$(hs_header x-ratelimit-limit-requests)'"
fi
hs_stop rph

# ---- bodies: kept only with --log-bodies, redacted; exported by `hestia logs export` ----
[ "$(hs_sql "$db" "SELECT count(*) FROM bodies")" = 0 ] || fail "bodies were stored without --log-bodies"
hs_start lb -m "$model" --parallel 1 --ctx 256 --log-bodies || hs_finish serve_security
secret=sk-e2eSECRETabcdefghijklmnopqrstuv0123
mail=alice.e2e@example.com
python3 -c 'import json,sys; print(json.dumps({"model": sys.argv[1], "max_tokens": 4, "temperature": 0,
    "messages": [{"role": "user", "content": "my key is %s and my mail is %s, tell a story" % (sys.argv[2], sys.argv[3])}]}))' \
    "$name" "$secret" "$mail" >"$HS_TMP/lb.body"
hs_http POST "${HS_URL[lb]}/v1/chat/completions" "$HS_TMP/lb.body" -H 'x-request-id: e2e-bodies-1'
[ "$HTTP_STATUS" = 200 ] || fail "--log-bodies: HTTP $HTTP_STATUS"
answer=$(hs_json "$HS_TMP/resp.body" 'j["choices"][0]["message"]["content"]')
hs_wait_sql "${HS_DB[lb]}" "SELECT count(*) FROM bodies WHERE request_id = 'e2e-bodies-1'" 1 ||
    fail "--log-bodies: no bodies row for the request (got '${HS_SQL_LAST:-}')"
req=$(hs_sql "${HS_DB[lb]}" "SELECT request FROM bodies WHERE request_id = 'e2e-bodies-1'")
resp=$(hs_sql "${HS_DB[lb]}" "SELECT response FROM bodies WHERE request_id = 'e2e-bodies-1'")
case "$req" in *"tell a story"*) ;; *) fail "--log-bodies: the stored request lacks its text: ${req:0:200}" ;; esac
case "$req" in *"$secret"* | *"$mail"*) fail "--log-bodies: the API key or e-mail address was stored unredacted" ;; esac
[ -n "$resp" ] || fail "--log-bodies: no response body stored"
hs_stop lb
"$HS_BIN" logs export --jsonl --store "${HS_DB[lb]}" >"$HS_TMP/export.jsonl" 2>"$HS_TMP/export.err" ||
    fail "logs export: $(cat "$HS_TMP/export.err")"
python3 - "$HS_TMP/export.jsonl" "${HS_DB[lb]}" "$secret" "$mail" <<'EOF' || fail "logs export: see above"
import json, sqlite3, sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
recs = [json.loads(l) for l in lines]
db = sqlite3.connect(sys.argv[2])
ids = sorted(r[0] for r in db.execute("SELECT id FROM requests"))
assert sorted(r.get("id") for r in recs) == ids, "exported ids %s != store ids %s" % (sorted(r.get("id") for r in recs), ids)
text = open(sys.argv[1], encoding="utf-8").read()
assert sys.argv[3] not in text and sys.argv[4] not in text, "the export holds the secret"
r = [r for r in recs if r["id"] == "e2e-bodies-1"][0]
assert any("tell a story" in json.dumps(v) for v in r.values()), "the export lacks the stored request body"
for k in ("endpoint", "status", "model", "tokens_in", "tokens_out", "latency_ms"):
    assert k in r, "export record lacks %s: %s" % (k, sorted(r))
EOF

hs_finish serve_security
