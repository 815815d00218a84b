#!/usr/bin/env bash
# The monitor inside hestia serve, on a synthetic model:
#  - every answered request is observed: GET /api/metrics (loopback) shows the
#    last-N and hourly windows (count, latency percentiles, errors, feedback,
#    confidence);
#  - the first baseline_requests requests become the baseline, which is kept
#    in the store and read back by a restarted server;
#  - feedback counts in the windows; a threshold crossed after min_samples is
#    reported by the monitor thread (a monitor.breach log line) within its
#    interval, off the request path, and goes out as an alert: in the store
#    (GET /api/alerts) and in a JSONL sink; repeats within the throttle
#    window are grouped, not sent again;
#  - hestia baseline show / set --last N / clear on the store; a restarted
#    server reads the stored baseline.
. "$(dirname "$0")/lib.sh"
hs_require_bin
hs_require_serve
model=$(hs_model_tiny)
cfg=$HS_TMP/monitor.yaml
cat >"$cfg" <<YAML
alerts:
  sinks:
    - kind: jsonl
      path: $HS_TMP/alerts.jsonl
monitor:
  baseline_requests: 5
  interval_s: 1
  min_samples: 3
  thresholds:
    latency_p95_ms: 0.001
YAML
hs_start mon -m "$model" --alias tiny --config "$cfg" || exit 1
url=${HS_URL[mon]}
chat='{"model":"tiny","messages":[{"role":"user","content":"Hello"}],"max_tokens":4}'
ids=()
for i in 1 2 3 4 5 6; do
    hs_http POST "$url/v1/chat/completions" -d "$chat"
    ids+=("$(hs_header x-request-id)")
done
hs_http POST "$url/v1/chat/completions" -d '{"model":"nope","messages":[{"role":"user","content":"x"}]}'
for id in "${ids[0]}" "${ids[1]}"; do
    hs_http POST "$url/v1/feedback" -d '{"request_id":"'"$id"'","feedback":-1}'
done
hs_http GET "$url/api/metrics"
check '[ "$HTTP_STATUS" = 200 ]' "/api/metrics: HTTP $HTTP_STATUS"
m=$HS_TMP/resp.body
check '[ "$(hs_json "$m" "j[\"requests\"][\"count\"]")" = 6 ]' "requests window count: $(cat "$m")"
check '[ "$(hs_json "$m" "j[\"requests\"][\"feedback\"][\"down\"]")" = 2 ]' "thumbs down in the window: $(cat "$m")"
check '[ "$(hs_json "$m" "j[\"baseline\"][\"count\"]")" = 5 ]' "the baseline is the first 5 requests: $(cat "$m")"
check '[ "$(hs_json "$m" "str(0 < j[\"requests\"][\"confidence\"][\"mean\"] <= 1)")" = True ]' "confidence mean: $(cat "$m")"
check '[ "$(hs_json "$m" "str(j[\"hour\"][\"latency_ms\"][\"p95\"] > 0)")" = True ]' "hour window p95: $(cat "$m")"
for _ in $(seq 1 30); do
    grep -q 'monitor.breach.*type=high_latency_p95' "${HS_LOG[mon]}" && break
    sleep 0.2
done
grep -q 'monitor.breach.*type=high_latency_p95' "${HS_LOG[mon]}" ||
    fail "no high_latency_p95 breach reported: $(grep monitor "${HS_LOG[mon]}" | tail -n 5)"
sleep 2.5 # two more monitor rounds: the breach repeats, but is throttled
hs_http GET "$url/api/alerts"
check '[ "$HTTP_STATUS" = 200 ]' "/api/alerts: HTTP $HTTP_STATUS"
n_lat=$(hs_json "$HS_TMP/resp.body" 'len([a for a in j["data"] if a["type"] == "high_latency_p95"])')
check '[ "$n_lat" = 1 ]' "high_latency_p95 alerts in the store: $n_lat, want 1 (throttled): $(cat "$HS_TMP/resp.body")"
check '[ "$(grep -c high_latency_p95 "$HS_TMP/alerts.jsonl" 2>/dev/null)" = 1 ]' \
    "the JSONL sink: $(cat "$HS_TMP/alerts.jsonl" 2>/dev/null)"
hs_stop mon
db=${HS_DB[mon]}
# hestia baseline: the captured one is in the store; set replaces it with the
# statistics of the last N requests on record; a restart reads it back
"$HS_BIN" baseline show --store "$db" >"$HS_TMP/b.json" 2>"$HS_TMP/b.err"
check '[ "$(hs_json "$HS_TMP/b.json" "j[\"count\"]")" = 5 ]' "baseline show: $(cat "$HS_TMP/b.json" "$HS_TMP/b.err")"
"$HS_BIN" baseline set --last 3 --store "$db" >"$HS_TMP/b.json" 2>"$HS_TMP/b.err"
check '[ "$(hs_json "$HS_TMP/b.json" "j[\"count\"]")" = 3 ] && [ "$(hs_json "$HS_TMP/b.json" "j[\"errors\"]")" = 0 ]' \
    "baseline set --last 3: $(cat "$HS_TMP/b.json" "$HS_TMP/b.err")"
hs_start mon2 -m "$model" --alias tiny --config "$cfg" --store "$db" || exit 1
hs_http GET "${HS_URL[mon2]}/api/metrics"
check '[ "$(hs_json "$HS_TMP/resp.body" "j[\"baseline\"][\"count\"]")" = 3 ]' "baseline after a restart: $(cat "$HS_TMP/resp.body")"
hs_stop mon2
"$HS_BIN" baseline clear --store "$db" >/dev/null 2>&1 || fail "baseline clear failed"
"$HS_BIN" baseline show --store "$db" >/dev/null 2>"$HS_TMP/b.err"
rc=$?
check '[ $rc -eq 1 ] && [ "$(wc -l <"$HS_TMP/b.err")" -eq 1 ]' "baseline show after clear: exit $rc $(cat "$HS_TMP/b.err")"
"$HS_BIN" baseline set --store "$HS_TMP/none.db" >/dev/null 2>&1
rc=$?
check '[ $rc -eq 1 ] && [ ! -e "$HS_TMP/none.db" ]' "baseline set on a missing store: exit $rc"
# monitor.enabled: false: no windows, /api/metrics says so, answers and feedback go on
printf 'monitor:\n  enabled: false\n' >"$HS_TMP/off.yaml"
hs_start off -m "$model" --alias tiny --config "$HS_TMP/off.yaml" || exit 1
hs_http POST "${HS_URL[off]}/v1/chat/completions" -d '{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":2}'
oid=$(hs_header x-request-id)
check '[ "$HTTP_STATUS" = 200 ]' "chat with the monitor off: HTTP $HTTP_STATUS"
hs_http POST "${HS_URL[off]}/v1/feedback" -d '{"request_id":"'"$oid"'","feedback":1}'
check '[ "$HTTP_STATUS" = 200 ]' "feedback with the monitor off: HTTP $HTTP_STATUS"
hs_http GET "${HS_URL[off]}/api/metrics"
check '[ "$(hs_json "$HS_TMP/resp.body" "str(j[\"enabled\"]) + str(j[\"requests\"])")" = FalseNone ]' \
    "/api/metrics with the monitor off: $(cat "$HS_TMP/resp.body")"
hs_stop off
hs_finish "monitor: windows, baseline captured and kept across restarts, feedback, breaches as throttled alerts"
