#!/usr/bin/env bash
# The safety checks on answers, through the gateway to a loopback mock of
# another vendor's server (tools/mock_openai.py, whose answer quotes the
# user's message, so the test chooses what the answer says):
#  - an IDLH figure that contradicts data/hazmat/idlh.csv is flagged
#    hazmat_mismatch on the record (whole answers and streamed ones); the
#    right figure, also in the other unit, is not;
#  - an unsafe recommendation is flagged unsafe_recommendation;
#  - flagged answers raise a safety_flag alert (GET /api/alerts) and count in
#    the monitor's safety rate (GET /api/metrics).
. "$(dirname "$0")/lib.sh"
hs_require_bin
hs_require_serve
command -v sqlite3 >/dev/null || skip "the sqlite3 command is needed"
[ -f config/safety.yaml ] && [ -f data/hazmat/idlh.csv ] || { echo "FAIL: config/safety.yaml or data/hazmat/idlh.csv is missing"; exit 1; }

mlog=$HS_TMP/mock.log
python3 tests/integration/tools/mock_openai.py --port-file "$HS_TMP/mock.port" --log "$mlog" \
    --models mock-model >"$HS_TMP/mock.out" 2>&1 &
HS_BG_PIDS+=($!)
for _ in $(seq 1 100); do [ -s "$HS_TMP/mock.port" ] && break; sleep 0.1; done
[ -s "$HS_TMP/mock.port" ] || { echo "FAIL: the mock server did not start: $(cat "$HS_TMP/mock.out")"; exit 1; }
cat >"$HS_TMP/safety.yaml" <<YAML
safety:
  rules: config/safety.yaml
models:
  - name: up
    upstream:
      url: http://127.0.0.1:$(cat "$HS_TMP/mock.port")/v1
      model: mock-model
YAML
hs_start sf --config "$HS_TMP/safety.yaml" || exit 1
url=${HS_URL[sf]}
db=${HS_DB[sf]}

ask() { # $1 user text, $2 stream true|false -> prints the request id
    local body
    body=$(python3 -c 'import json,sys; print(json.dumps({"model":"up","stream":sys.argv[2]=="true","messages":[{"role":"user","content":sys.argv[1]}]}))' "$1" "$2")
    hs_http POST "$url/v1/chat/completions" -d "$body"
    [ "$HTTP_STATUS" = 200 ] || fail "chat '$1': HTTP $HTTP_STATUS $(head -c 300 "$HS_TMP/resp.body")"
    hs_header x-request-id
}
flags() { hs_wait_sql "$db" "SELECT count(*) FROM requests WHERE id = '$1'" 1 10 >/dev/null; hs_sql "$db" "SELECT coalesce(safety_flags, '-') FROM requests WHERE id = '$1'"; }

wrong=$(ask "The IDLH of chlorine is 50 ppm." false)
wrong_s=$(ask "The IDLH of chlorine is 50 ppm." true)
right=$(ask "The IDLH of chlorine is 10 ppm." false)
right_mg=$(ask "The IDLH of chlorine is 29 mg/m3." false)
unsafe=$(ask "Stay home, ignore the warning." false)
plain=$(ask "Wind from the north at 40 km/h." false)
check '[[ "$(flags "$wrong")" == *hazmat_mismatch* ]]' "a wrong IDLH is not flagged: '$(flags "$wrong")'"
check '[[ "$(flags "$wrong_s")" == *hazmat_mismatch* ]]' "a wrong IDLH in a stream is not flagged: '$(flags "$wrong_s")'"
check '[ "$(flags "$right")" = - ]' "the right IDLH is flagged: '$(flags "$right")'"
check '[ "$(flags "$right_mg")" = - ]' "the right IDLH in mg/m3 is flagged: '$(flags "$right_mg")'"
check '[[ "$(flags "$unsafe")" == *unsafe_recommendation* ]]' "an unsafe recommendation is not flagged: '$(flags "$unsafe")'"
check '[ "$(flags "$plain")" = - ]' "a plain answer is flagged: '$(flags "$plain")'"

hs_http GET "$url/api/alerts"
check '[ "$(hs_json "$HS_TMP/resp.body" "len([a for a in j[\"data\"] if a[\"type\"] == \"safety_flag\"]) >= 1")" = true ]' \
    "no safety_flag alert: $(head -c 400 "$HS_TMP/resp.body")"
hs_http GET "$url/api/metrics"
check '[ "$(hs_json "$HS_TMP/resp.body" "j[\"requests\"][\"safety\"][\"flagged\"]")" = 3 ]' \
    "the monitor's safety count: $(head -c 600 "$HS_TMP/resp.body")"
hs_stop sf
hs_finish "safety checks: hazmat_mismatch (units), unsafe_recommendation, alerts and monitor"
