#!/usr/bin/env bash
# Several upstreams behind one model name (issue 7): hestia serve with a model whose
# `upstream:` is a list of two loopback mocks (tools/mock_openai.py):
#  - traffic spreads over both (sequential requests: round robin), streamed or not;
#  - one mock killed by its PID: every request still succeeds (retried on the other),
#    the health thread marks it down in the log (upstream.down) within a few seconds,
#    and from then on no request goes to it;
#  - the survivor failing every request: its breaker opens (upstream.breaker state=open)
#    and the model answers 503 "no healthy upstream for 'cluster'" with Retry-After;
#  - config errors of the list form name FILE:LINE.
. "$(dirname "$0")/lib.sh"
hs_require_bin
hs_require_serve

# start_mock NAME: sets MOCK_PID[NAME], MOCK_URL[NAME] (with /v1)
declare -A MOCK_PID=() MOCK_URL=()
start_mock() {
    hs_mock "$1" --models cluster-remote
    MOCK_PID[$1]=${HS_MOCK_PID[$1]}
    MOCK_URL[$1]=${HS_MOCK_URL[$1]}/v1
}
# chats NAME: chat requests the mock has received so far
chats() {
    grep -c '"path": "/v1/chat/completions"' "$HS_TMP/$1.log"
}

start_mock m1
start_mock m2
cat >"$HS_TMP/c.yaml" <<EOF
models:
  - name: cluster
    upstream:
      - url: ${MOCK_URL[m1]}
        model: cluster-remote
      - url: ${MOCK_URL[m2]}
        model: cluster-remote
        api_key: sk-second
    health_interval_s: 1
    retries: 1
    breaker_failures: 3
    breaker_cooldown_s: 60
    timeout_s: 10
EOF
hs_start c --config "$HS_TMP/c.yaml" || exit 1
C=${HS_URL[c]}
msgs='"messages":[{"role":"user","content":"Tell me about a dog."}]'

# 1. traffic spreads over both
errors=0
for i in $(seq 1 10); do
    stream=false
    [ $((i % 3)) -eq 0 ] && stream=true
    hs_http POST "$C/v1/chat/completions" -d '{"model":"cluster",'"$msgs"',"max_tokens":8,"stream":'$stream'}'
    if [ "$HTTP_STATUS" != 200 ]; then
        errors=$((errors + 1))
        echo "  request $i: HTTP $HTTP_STATUS $(head -c 200 "$HS_TMP/resp.body")"
    elif [ "$stream" = true ]; then
        grep -q '^data: \[DONE\]' "$HS_TMP/resp.body" || fail "streamed request $i does not end with [DONE]"
    fi
done
[ "$errors" = 0 ] || fail "$errors of 10 requests failed with both upstreams up"
n1=$(chats m1) n2=$(chats m2)
[ "$n1" -eq 5 ] && [ "$n2" -eq 5 ] || fail "10 sequential requests: m1 got $n1, m2 got $n2 (want 5 and 5)"
python3 - "$HS_TMP/m1.log" "$HS_TMP/m2.log" <<'EOF' || fail "the members did not get the remote name and their own key"
import json, sys
for path, key in ((sys.argv[1], None), (sys.argv[2], "Bearer sk-second")):
    chats = [json.loads(l) for l in open(path) if '"/v1/chat/completions"' in l]
    assert chats and all(c["body"]["model"] == "cluster-remote" for c in chats), path
    assert all(c["authorization"] == key for c in chats), (path, [c["authorization"] for c in chats])
    models = [json.loads(l) for l in open(path) if '"GET"' in l]
    assert models and all(m["path"] == "/v1/models" for m in models), "health checks " + path
EOF

# each record names the member that answered
hs_wait_sql "${HS_DB[c]}" "SELECT count(DISTINCT backend) FROM requests WHERE model = 'cluster'" 2 ||
    fail "records should name both members: $(hs_sql "${HS_DB[c]}" "SELECT backend, count(*) FROM requests GROUP BY 1")"
check '[ "$(hs_sql "${HS_DB[c]}" "SELECT count(*) FROM requests WHERE model = '"'cluster'"' AND backend = '"'${MOCK_URL[m2]}'"'")" = 5 ]' \
    "records answered by m2: $(hs_sql "${HS_DB[c]}" "SELECT backend, count(*) FROM requests GROUP BY 1")"

# 2. kill m2: requests keep succeeding, m2 is marked down, then gets nothing
{ kill -KILL "${MOCK_PID[m2]}"; wait "${MOCK_PID[m2]}"; } 2>/dev/null
t0=$SECONDS
errors=0
for i in $(seq 1 10); do
    hs_http POST "$C/v1/chat/completions" -d '{"model":"cluster",'"$msgs"',"max_tokens":8}'
    [ "$HTTP_STATUS" = 200 ] || { errors=$((errors + 1)); echo "  after the kill, request $i: HTTP $HTTP_STATUS $(head -c 200 "$HS_TMP/resp.body")"; }
done
[ "$errors" = 0 ] || fail "$errors of 10 requests failed after one upstream was killed (want 0: retries)"
down=""
for _ in $(seq 1 50); do
    down=$(grep "upstream.down" "${HS_LOG[c]}" | grep -F "${MOCK_URL[m2]}")
    [ -n "$down" ] && break
    sleep 0.1
done
[ -n "$down" ] || fail "no upstream.down for the killed member in the log within 5 s: $(grep upstream "${HS_LOG[c]}" | tail -5)"
[ $((SECONDS - t0)) -le 8 ] || fail "marking the dead member down took $((SECONDS - t0)) s"
grep -q "upstream.retry.*url=${MOCK_URL[m2]}" "${HS_LOG[c]}" || fail "no upstream.retry away from the killed member in the log"
before=$(chats m1)
for i in $(seq 1 6); do
    hs_http POST "$C/v1/chat/completions" -d '{"model":"cluster",'"$msgs"',"max_tokens":8,"stream":true}'
    [ "$HTTP_STATUS" = 200 ] || fail "with m2 down, request $i: HTTP $HTTP_STATUS"
done
retries_before=$(grep -c "upstream.retry" "${HS_LOG[c]}")
for i in $(seq 1 4); do
    hs_http POST "$C/v1/chat/completions" -d '{"model":"cluster",'"$msgs"',"max_tokens":8}'
    [ "$HTTP_STATUS" = 200 ] || fail "with m2 down, request $i: HTTP $HTTP_STATUS"
done
[ "$(chats m1)" -eq $((before + 10)) ] || fail "with m2 down m1 got $(($(chats m1) - before)) of 10 requests"
[ "$(grep -c "upstream.retry" "${HS_LOG[c]}")" = "$retries_before" ] || fail "requests were still tried on the member marked down"

# 3. the survivor fails everything: retried, its breaker opens, then 503 naming the model
curl -s -o /dev/null -X POST "${MOCK_URL[m1]%/v1}/mock/config" -d '{"fail_rate": 1.0}'
codes=""
for i in $(seq 1 3); do
    hs_http POST "$C/v1/chat/completions" -d '{"model":"cluster",'"$msgs"',"max_tokens":8}'
    codes="$codes $HTTP_STATUS"
done
grep -q "upstream.breaker.*url=${MOCK_URL[m1]} state=open" "${HS_LOG[c]}" ||
    fail "no upstream.breaker state=open for m1 after failures (statuses:$codes)"
hs_http POST "$C/v1/chat/completions" -d '{"model":"cluster",'"$msgs"',"max_tokens":8}'
[ "$HTTP_STATUS" = 503 ] || fail "with every breaker open: HTTP $HTTP_STATUS, want 503"
[ "$(hs_json "$HS_TMP/resp.body" 'j["error"]["message"]')" = "no healthy upstream for 'cluster'" ] ||
    fail "the 503's message: $(head -c 300 "$HS_TMP/resp.body")"
ra=$(hs_header Retry-After)
[ -n "$ra" ] && [ "$ra" -ge 1 ] || fail "the 503 has no Retry-After (got '$ra')"
hs_wait_sql "${HS_DB[c]}" "SELECT count(*) > 0 FROM requests WHERE model = 'cluster' AND status = 503" 1 ||
    fail "the 503 is not recorded (got '${HS_SQL_LAST:-}')"
hs_stop c

# 4. config errors name the file and line
bad() { # WHAT YAML-MODELS-PART WANT-SUBSTRING
    printf 'models:\n%s\n' "$2" >"$HS_TMP/bad.yaml"
    "$HS_BIN" serve --host 127.0.0.1 --port 0 --config "$HS_TMP/bad.yaml" --store "$HS_TMP/bad.db" \
        >"$HS_TMP/bad.out" 2>&1 &
    local pid=$! i
    HS_BG_PIDS+=($pid)
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"
        fail "$1: the server started"
        return
    fi
    grep -qF "$3" "$HS_TMP/bad.out" || fail "$1: want '$3' in: $(head -c 300 "$HS_TMP/bad.out")"
}
bad "a member without url" '  - name: x
    upstream:
      - url: http://127.0.0.1:9/v1
      - api_key: k' "bad.yaml:5: models[0].upstream[1]: an upstream needs a url"
bad "a member listed twice" '  - name: x
    upstream:
      - url: http://127.0.0.1:9/v1
      - url: http://127.0.0.1:9/v1' "bad.yaml:5: models[0].upstream[1]: upstream url 'http://127.0.0.1:9/v1' is listed twice"
bad "an unknown member key" '  - name: x
    upstream:
      - url: http://127.0.0.1:9/v1
        wieght: 2' "bad.yaml:5: models[0].upstream[0].wieght: unknown key"
bad "an empty list" '  - name: x
    upstream: []' "bad.yaml:3: models[0].upstream: the list of upstreams is empty"
bad "pool settings on a local model" '  - name: x
    path: nowhere.gguf
    retries: 2' "retries, health_interval_s and breaker_* apply to an upstream"
hs_finish serve_cluster
