#!/usr/bin/env bash
# Experiments in the server (issue 7), with a local model as A and a loopback
# upstream (tools/mock_openai.py, whose failures and slowness the test turns
# on and off) as B:
#  - A/B: every answer says its variant (x-hestia-variant) and the record has
#    it; one user always gets one variant; both variants get traffic;
#  - fallback: with B failing (and no rollback rule on), B's users still get
#    200 answers, from A, and the records keep B as the variant with B's error;
#  - rollback: once both variants have the rule's minimum sample, B's error
#    rate (against A's 0 %) trips the rule: B goes to 0 %, a critical alert is raised, and the
#    change is in the store's history with its reason;
#  - kill -9 and a restart resume the same state; a weight set through
#    /admin, a rollback made with `hestia experiment rollback` and an
#    experiment added with `hestia experiment add` on the store reach the
#    running server;
#  - shadow: A answers at A's speed while B is slow on purpose; both answers
#    are stored side by side with their latencies; a full queue drops copies;
#  - canary: the weight climbs its schedule while B is healthy.
. "$(dirname "$0")/lib.sh"
hs_require_bin
hs_require_serve
model=$(hs_model_tiny)
"$HS_BIN" synth --lora-for "$model" -o "$HS_TMP/tuned.gguf" -q >/dev/null 2>"$HS_TMP/lora.err" ||
    { echo "FAIL: synth --lora-for: $(cat "$HS_TMP/lora.err")"; exit 1; }

hs_mock mock --models cand-remote
mock=${HS_MOCK_URL[mock]}
mock_config() { curl -s -o /dev/null -d "$1" "$mock/mock/config"; }

cfg=$HS_TMP/ex.yaml
cat >"$cfg" <<EOF
models:
  - name: base
    path: $model
  - name: cand
    upstream:
      url: $mock/v1
      model: cand-remote
adapters:
  - name: tuned
    path: $HS_TMP/tuned.gguf
    model: base
experiments:
  - name: lora1
    route: expert
    mode: ab
    a: base
    b: tuned
    weight: 50%
  - name: ab1
    route: triage
    mode: ab
    a: base
    b: cand
    weight: 50%
    rollback:
      error_ratio: {limit: 2.0, min_samples: 10}
      p95_margin_ms: off
      safety_rate: off
      window: 10m
  - name: fb1
    route: fallbacky
    mode: ab
    a: base
    b: cand
    weight: 100%
    rollback: {error_ratio: off, p95_margin_ms: off, safety_rate: off}
  - name: sh1
    route: shadowed
    mode: shadow
    a: base
    b: cand
    shadow_queue: 2
  - name: can1
    route: canaried
    mode: canary
    a: base
    b: cand
    canary:
      - weight: 10%
      - {weight: 50%, after: 2s}
      - {weight: 100%, after: 2s}
EOF
db=$HS_TMP/ex.db
hs_start ex --config "$cfg" --store "$db" --ctx 256 --parallel 4 || exit 1
url=${HS_URL[ex]}

chat() { # chat ROUTE USER -> HTTP_STATUS, headers
    hs_http POST "$url/v1/chat/completions" \
        -d '{"model":"'"$1"'","user":"'"$2"'","messages":[{"role":"user","content":"Status of sector 4?"}],"max_tokens":4}'
}

# --- A/B: variants on headers and records, stickiness ---
declare -A first
nb=0
for round in 1 2; do
    for i in $(seq 1 30); do
        chat triage "user$i"
        v=$(hs_header x-hestia-variant)
        check '[ "$HTTP_STATUS" = 200 ] && { [ "$v" = A ] || [ "$v" = B ]; }' "ab: HTTP $HTTP_STATUS variant '$v'"
        if [ "$round" = 1 ]; then
            first[$i]=$v
            [ "$v" = B ] && nb=$((nb + 1))
        else
            check '[ "$v" = "${first[$i]}" ]' "user$i got ${first[$i]} then $v (not sticky)"
        fi
    done
done
check '[ "$nb" -ge 5 ] && [ "$nb" -le 25 ]' "30 users at 50 %: $nb on B (want 5..25, a 4-sigma band)"
hs_wait_sql "$db" "SELECT count(*) FROM requests WHERE experiment = 'ab1' AND variant IN ('A', 'B') AND model = 'triage'" 60 ||
    fail "60 records of ab1 with their variant: got $HS_SQL_LAST"
check '[ "$(hs_sql "$db" "SELECT count(*) FROM requests WHERE experiment = '"'ab1'"' AND variant = '"'B'"' AND backend LIKE '"'http%'"'")" = $((nb * 2)) ]' \
    "B's records should name the upstream: $(hs_sql "$db" "SELECT variant, backend, count(*) FROM requests GROUP BY 1, 2")"

# --- two local variants: the base model and the base with an adapter ---
declare -A lv
for i in $(seq 1 20); do
    chat expert "e$i"
    lv[$i]=$(hs_header x-hestia-variant)
    check '[ "$HTTP_STATUS" = 200 ]' "lora1: HTTP $HTTP_STATUS"
done
for i in 1 2 3 4 5; do
    chat expert "e$i"
    check '[ "$(hs_header x-hestia-variant)" = "${lv[$i]}" ]' "lora1: e$i moved from ${lv[$i]} to $(hs_header x-hestia-variant)"
done
hs_wait_sql "$db" "SELECT count(*) FROM requests WHERE experiment = 'lora1'" 25 || fail "lora1 records: $HS_SQL_LAST"
check '[ "$(hs_sql "$db" "SELECT count(*) FROM requests WHERE experiment = '"'lora1'"' AND ((variant = '"'B'"') <> (adapters LIKE '"'tuned:%'"'))")" = 0 ]' \
    "lora1: B's records should carry the adapter and A's none: $(hs_sql "$db" "SELECT variant, adapters, count(*) FROM requests WHERE experiment = 'lora1' GROUP BY 1, 2")"
check '[ "$(hs_sql "$db" "SELECT count(DISTINCT variant) FROM requests WHERE experiment = '"'lora1'"'")" = 2 ]' \
    "lora1: 20 users at 50 % should reach both variants"

# --- fallback: B fails, clients see A's answers ---
mock_config '{"fail_rate": 1.0}'
for i in $(seq 1 6); do
    chat fallbacky "user$i"
    check '[ "$HTTP_STATUS" = 200 ] && [ "$(hs_header x-hestia-fallback)" = B ] && [ "$(hs_header x-hestia-variant)" = A ]' \
        "fallback for user$i: HTTP $HTTP_STATUS variant $(hs_header x-hestia-variant) fallback '$(hs_header x-hestia-fallback)'"
done
hs_wait_sql "$db" "SELECT count(*) FROM requests WHERE experiment = 'fb1' AND variant = 'B' AND status = 200 AND error LIKE 'variant B%answered by A%'" 6 ||
    fail "fallback records: $(hs_sql "$db" "SELECT variant, status, error FROM requests WHERE experiment = 'fb1' LIMIT 3")"

# --- rollback: both variants past the minimum sample, B failing ---
for i in $(seq 1 30); do chat triage "user$i"; done
rolled=""
for _ in $(seq 1 50); do
    hs_http GET "$url/admin/experiments/ab1"
    rolled=$(hs_json "$HS_TMP/resp.body" "j['state']['status']")
    [ "$rolled" = rolled_back ] && break
    sleep 0.2
done
check '[ "$rolled" = rolled_back ]' "ab1 was not rolled back: $(head -c 600 "$HS_TMP/resp.body")"
check '[ "$(hs_json "$HS_TMP/resp.body" "j['"'"'state'"'"']['"'"'weight_b'"'"']")" = 0.0 ]' "weight after rollback"
check '[ "$(hs_sql "$db" "SELECT count(*) FROM experiment_events WHERE name = '"'ab1'"' AND kind = '"'rollback'"' AND reason LIKE '"'%error rate%'"'")" = 1 ]' \
    "the rollback event: $(hs_sql "$db" "SELECT kind, weight_b, reason FROM experiment_events")"
hs_http GET "$url/api/alerts"
check '[ "$(hs_json "$HS_TMP/resp.body" "sum(1 for a in j['"'"'data'"'"'] if a['"'"'type'"'"'] == '"'"'experiment_rollback'"'"' and a['"'"'severity'"'"'] == '"'"'critical'"'"')")" -ge 1 ]' \
    "no critical experiment_rollback alert: $(head -c 400 "$HS_TMP/resp.body")"
for i in 1 2 3 4 5 6; do
    chat triage "user$i"
    check '[ "$(hs_header x-hestia-variant)" = A ] && [ -z "$(hs_header x-hestia-fallback)" ]' "after the rollback user$i got $(hs_header x-hestia-variant)"
done
mock_config '{"fail_rate": 0.0}'

# --- kill -9, restart: the same state ---
before=$(hs_sql "$db" "SELECT name, state FROM experiments ORDER BY name")
kill -KILL "${HS_PID[ex]}"
wait "${HS_PID[ex]}" 2>/dev/null
HS_PID[ex]=""
hs_start ex --config "$cfg" --store "$db" --ctx 256 --parallel 4 || exit 1
url=${HS_URL[ex]}
after=$(hs_sql "$db" "SELECT name, state FROM experiments ORDER BY name")
check '[ "$before" = "$after" ]' "state changed across kill -9: before '$before' after '$after'"
hs_http GET "$url/admin/experiments/ab1"
check '[ "$(hs_json "$HS_TMP/resp.body" "j['"'"'state'"'"']['"'"'status'"'"']")" = rolled_back ]' "after the restart: $(head -c 300 "$HS_TMP/resp.body")"

# --- manual changes: the admin route and the CLI on the store ---
hs_http POST "$url/admin/experiments/ab1/weight" -d '{"weight": 1.0, "reason": "fixed upstream"}'
check '[ "$HTTP_STATUS" = 200 ]' "set the weight: HTTP $HTTP_STATUS $(head -c 300 "$HS_TMP/resp.body")"
chat triage user1
check '[ "$(hs_header x-hestia-variant)" = B ]' "at 100 % user1 got $(hs_header x-hestia-variant)"
"$HS_BIN" experiment rollback ab1 --store "$db" >"$HS_TMP/rb.out" 2>&1
check '[ $? -eq 0 ]' "hestia experiment rollback: $(cat "$HS_TMP/rb.out")"
v=B
for _ in $(seq 1 30); do
    chat triage user1
    v=$(hs_header x-hestia-variant)
    [ "$v" = A ] && break
    sleep 0.2
done
check '[ "$v" = A ]' "the CLI's rollback did not reach the server"
hs_http POST "$url/admin/experiments/ab1/weight" -d '{"weight": 2}'
check '[ "$HTTP_STATUS" = 400 ]' "weight 2: HTTP $HTTP_STATUS"
hs_http POST "$url/admin/rollback" -d '{"experiment": "nope"}'
check '[ "$HTTP_STATUS" = 404 ]' "rollback of an unknown experiment: HTTP $HTTP_STATUS"

# --- shadow: B slow, A not delayed; both answers stored ---
mock_config '{"delay_ms": 1500}'
slow=0
for i in 1 2; do
    t0=$(date +%s%N)
    chat shadowed "s$i"
    ms=$((($(date +%s%N) - t0) / 1000000))
    check '[ "$HTTP_STATUS" = 200 ] && [ "$(hs_header x-hestia-variant)" = A ]' "shadow answer: HTTP $HTTP_STATUS"
    [ "$ms" -lt 1000 ] || slow=$((slow + 1))
done
check '[ "$slow" = 0 ]' "shadowed requests waited for the slow B"
hs_wait_sql "$db" "SELECT count(*) FROM shadow_results WHERE experiment = 'sh1' AND latency_b_ms >= 1500 AND answer_a IS NOT NULL AND answer_b IS NOT NULL AND status_b = 200" 2 20 ||
    fail "shadow results: $HS_SQL_LAST: $(hs_sql "$db" "SELECT request_id, latency_a_ms, latency_b_ms, status_b, similarity FROM shadow_results")"
for i in $(seq 1 8); do chat shadowed "f$i"; done # the queue holds 2: some copies are dropped
hs_http GET "$url/admin/experiments/sh1"
check '[ "$(hs_json "$HS_TMP/resp.body" "j['"'"'counters'"'"']['"'"'shadow_dropped'"'"']")" -ge 1 ]' \
    "a full shadow queue should drop copies: $(hs_json "$HS_TMP/resp.body" "j['counters']")"
mock_config '{"delay_ms": 0}'

# --- canary: 10 % -> 50 % -> 100 %, 2 s apart ---
w=""
for _ in $(seq 1 60); do
    hs_http GET "$url/admin/experiments/can1"
    w=$(hs_json "$HS_TMP/resp.body" "j['state']['weight_b']")
    [ "$w" = 1.0 ] && break
    sleep 0.2
done
check '[ "$w" = 1.0 ]' "the canary did not reach 100 %: $(hs_json "$HS_TMP/resp.body" "j['state']")"
check '[ "$(hs_sql "$db" "SELECT count(*) FROM experiment_events WHERE name = '"'can1'"' AND kind = '"'advance'"'")" -ge 2 ]' \
    "canary events: $(hs_sql "$db" "SELECT kind, weight_b FROM experiment_events WHERE name = 'can1'")"
chat canaried someone
check '[ "$(hs_header x-hestia-variant)" = B ]' "canary at 100 %: variant $(hs_header x-hestia-variant)"

# --- an experiment added to the store by the CLI is taken up by the running server ---
printf '{"name": "added1", "route": "added", "mode": "ab", "a": "base", "b": "cand", "weight": 1.0}' >"$HS_TMP/added.json"
"$HS_BIN" experiment add "$HS_TMP/added.json" --store "$db" >"$HS_TMP/add.out" 2>&1 ||
    fail "hestia experiment add: $(cat "$HS_TMP/add.out")"
v=""
for _ in $(seq 1 50); do
    chat added someone
    v=$(hs_header x-hestia-variant)
    [ "$v" = B ] && break
    sleep 0.2
done
check '[ "$v" = B ]' "the added experiment was not taken up: HTTP $HTTP_STATUS variant '$v'"

hs_stop ex
hs_finish serve_experiments
