#!/usr/bin/env bash
# The drift jobs inside hestia serve (drift.data and drift.concept on a
# schedule), on stories260K (or the synthetic model when ../shared is absent):
#  - data (every 3s, reference: 40 sentences about fires, seed 42, B = 200):
#    40 chat prompts about cooking -> the next run is DRIFTED with p < 0.05,
#    stored in drift_runs, shown by GET /api/drift with its p-value and
#    schedule, and raised as a data_drift warning (GET /api/alerts); then 40
#    other prompts about fires (which push the cooking ones out of the sample)
#    -> the next run is STABLE;
#  - concept (every 4s, a 2-question reference no answer can satisfy): the
#    first run finds no recorded accuracy and records its own (0%, STABLE);
#    with the record raised to 100% in the store, the next run is DRIFTED
#    (100 points down) and raises concept_drift;
#  - with 10 prompts the data run is skipped; the concept job's own questions
#    are not sampled (the sample holds the 10 client prompts); a SIGTERM while
#    the jobs run exits cleanly;
#  - through an upstream model (a second server forwarding to the first), the
#    data job embeds through the upstream and detects the shift;
#  - a scheduled job without its reference file is a config error naming the
#    file, line and key.
. "$(dirname "$0")/lib.sh"
hs_require_bin
hs_require_serve
if [ -f "$HS_SHARED/models/stories260K.gguf" ]; then
    model=$(hs_model_stories)
else
    model=$(hs_model_tiny) || exit 1
fi

python3 tests/integration/tools/topic_prompts.py "$HS_TMP" || fail "topic_prompts.py failed"
python3 - "$HS_TMP" <<'EOF'
import json, sys
d = sys.argv[1]
items = [{"question": "How far from a gas leak?", "expected": "Keep 50 metres away.",
          "facts": ["zyzzyva 50 metres"]},
         {"question": "Which exit?", "expected": "Zebra jukebox 987 quartz.", "facts": ["987 quartz"]}]
with open(d + "/concept.jsonl", "w") as f:
    f.writelines(json.dumps(it) + "\n" for it in items)
EOF

cfg=$HS_TMP/drift.yaml
cat >"$cfg" <<YAML
drift:
  data:
    every: 3s
    reference: $HS_TMP/ref.txt
    model: m
    permutations: 200
    seed: 42
    max_samples: 40
    min_samples: 20
  concept:
    every: 4s
    reference: $HS_TMP/concept.jsonl
    max_tokens: 8
YAML

# ---- a scheduled job needs its reference: FILE:LINE: key
cat >"$HS_TMP/bad.yaml" <<YAML
drift:
  data:
    every: 1h
YAML
"$HS_BIN" serve -m "$model" --config "$HS_TMP/bad.yaml" --port 0 --store "$HS_TMP/bad.db" >"$HS_TMP/bad.out" 2>&1
rc=$?
check '[ $rc -ne 0 ] && grep -q "bad.yaml:2: drift.data: .*reference" "$HS_TMP/bad.out"' \
    "a job without reference: exit $rc, $(head -c 400 "$HS_TMP/bad.out")"

hs_start d -m "$model" --alias m --config "$cfg" || exit 1
url=${HS_URL[d]}
db=${HS_DB[d]}

chat_all() { # FILE: one chat request per line, a token each
    python3 - "$1" "$url" <<'EOF'
import json, sys, urllib.request
for line in open(sys.argv[1]):
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": line.strip()}],
                       "max_tokens": 1}).encode()
    req = urllib.request.Request(sys.argv[2] + "/v1/chat/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=60).read()
EOF
}
# waits for a run of KIND that started after MS (unix ms); its JSON in $HS_TMP/run.json
wait_run() {
    local kind=$1 after=$2 i
    for i in $(seq 1 150); do
        hs_http GET "$url/api/drift"
        if [ "$HTTP_STATUS" = 200 ] &&
            [ "$(hs_json "$HS_TMP/resp.body" "j['$kind'] is not None and j['$kind']['ts_ms'] > $after")" = true ]; then
            cp "$HS_TMP/resp.body" "$HS_TMP/run.json"
            return 0
        fi
        sleep 0.2
    done
    fail "no $kind run after $after within 30 s: $(cat "$HS_TMP/resp.body")"
    return 1
}
now_ms() { python3 -c 'import time; print(int(time.time() * 1000))'; }

hs_http GET "$url/api/drift"
check '[ "$HTTP_STATUS" = 200 ]' "/api/drift: HTTP $HTTP_STATUS"
check '[ "$(hs_json "$HS_TMP/resp.body" "[j[\"schedule\"][\"data_every_ms\"], j[\"schedule\"][\"concept_every_ms\"]]")" = "[3000, 4000]" ]' \
    "the schedule: $(cat "$HS_TMP/resp.body")"
check '[ "$(hs_json "$HS_TMP/resp.body" "j[\"schedule\"][\"next_data_ms\"] > 0 and j[\"schedule\"][\"concept_model\"] == \"m\"")" = true ]' \
    "next_data_ms / the first model: $(cat "$HS_TMP/resp.body")"

# ---- the first rounds: too few prompts for a data run; the concept run records
head -n 10 "$HS_TMP/cook.txt" >"$HS_TMP/cook1.txt"
tail -n +11 "$HS_TMP/cook.txt" >"$HS_TMP/cook2.txt"
chat_all "$HS_TMP/cook1.txt" || fail "the first cooking prompts were not answered"
if wait_run concept 0; then
    check '[ "$(hs_json "$HS_TMP/run.json" "[j[\"concept\"][\"status\"], j[\"concept\"][\"score\"], j[\"concept\"][\"details\"][\"recorded_now\"]]")" = "[\"STABLE\", 0.0, true]" ]' \
        "the first concept run: $(cat "$HS_TMP/run.json")"
    check '[ "$(hs_json "$HS_TMP/run.json" "j[\"schedule\"][\"recent_prompts\"]")" = 10 ]' \
        "the sample holds the 10 client prompts, not the concept job's questions: $(cat "$HS_TMP/run.json")"
fi
check '[ "$(hs_sql "$db" "select json_extract(details, \"$.accuracy\") from baselines where name = \"concept_accuracy\"")" = 0.0 ]' \
    "the first run's accuracy is not recorded: $(hs_sql "$db" 'select * from baselines')"
check 'grep -q "drift.skip.*kind=data recent=10 need=20" "${HS_LOG[d]}"' \
    "no skipped data run with 10 prompts: $(grep drift "${HS_LOG[d]}" | head -n 5)"
concept_t=$(hs_json "$HS_TMP/run.json" 'j["concept"]["ts_ms"]')
python3 - "$db" <<'EOF2'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=10)
db.execute("UPDATE baselines SET details = '{\"accuracy\": 100.0}' WHERE name = 'concept_accuracy'")
db.commit()
EOF2

# ---- data drift: a topic shift
chat_all "$HS_TMP/cook2.txt" || fail "the cooking prompts were not answered"
t=$(now_ms)
if wait_run data "$t"; then
    r=$HS_TMP/run.json
    check '[ "$(hs_json "$r" "j[\"data\"][\"status\"]")" = DRIFTED ]' "fires -> cooking: $(cat "$r")"
    check '[ "$(hs_json "$r" "j[\"data\"][\"p_value\"] < 0.05 and j[\"data\"][\"details\"][\"p_value\"] == j[\"data\"][\"p_value\"]")" = true ]' \
        "fires -> cooking: p = $(hs_json "$r" 'j["data"]["p_value"]'), want < 0.05"
    check '[ "$(hs_json "$r" "[j[\"data\"][\"details\"][k] for k in (\"n_ref\", \"n_cur\", \"permutations\", \"model\")]")" = "[40, 40, 200, \"m\"]" ]' \
        "the run's details: $(cat "$r")"
    id=$(hs_json "$r" 'j["data"]["id"]')
    echo "data run $id (cooking): p = $(hs_json "$r" 'j["data"]["p_value"]')"
    check '[ "$(hs_sql "$db" "select kind || \":\" || status from drift_runs where id = $id")" = data:DRIFTED ]' \
        "drift_runs row $id: $(hs_sql "$db" 'select id, kind, status from drift_runs' | tr '\n\t' '; ')"
fi
hs_http GET "$url/api/alerts"
check '[ "$(hs_json "$HS_TMP/resp.body" "[a[\"severity\"] for a in j[\"data\"] if a[\"type\"] == \"data_drift\"][:1]")" = "[\"warning\"]" ]' \
    "no data_drift warning in /api/alerts: $(head -c 600 "$HS_TMP/resp.body")"

# ---- no shift: other prompts about fires replace the cooking ones
chat_all "$HS_TMP/fire.txt" || fail "the fire prompts were not answered"
t=$(now_ms)
if wait_run data "$t"; then
    r=$HS_TMP/run.json
    check '[ "$(hs_json "$r" "j[\"data\"][\"status\"]")" = STABLE ]' "fires -> fires: $(cat "$r")"
    echo "data run $(hs_json "$r" 'j["data"]["id"]') (fires): p = $(hs_json "$r" 'j["data"]["p_value"]')"
fi

# ---- concept drift: against the 100% record, a later run drifts
t=$concept_t
for _ in 1 2 3 4; do # a run that began before the update still compared with 0%
    wait_run concept "$t" || break
    t=$(hs_json "$HS_TMP/run.json" 'j["concept"]["ts_ms"]')
    [ "$(hs_json "$HS_TMP/run.json" 'j["concept"]["status"]')" = DRIFTED ] && break
done
r=$HS_TMP/run.json
check '[ "$(hs_json "$r" "[j[\"concept\"][\"status\"], j[\"concept\"][\"details\"][\"drop_points\"]]")" = "[\"DRIFTED\", 100.0]" ]' \
    "the concept run after the record: $(cat "$r")"
hs_http GET "$url/api/alerts"
check '[ "$(hs_json "$HS_TMP/resp.body" "len([a for a in j[\"data\"] if a[\"type\"] == \"concept_drift\"])")" = 1 ]' \
    "no concept_drift alert: $(head -c 600 "$HS_TMP/resp.body")"
# the jobs' own requests are recorded under their run
check '[ "$(hs_sql "$db" "select count(*) > 0 from requests where parent_id like \"drift-concept-%\"")" = 1 ]' \
    "no records of the concept job's requests"

# ---- an upstream model: server g forwards "remote" to d; its data job embeds
# through the upstream (20 cooking prompts against 20 of the fire sentences)
cat >"$HS_TMP/g.yaml" <<YAML
models:
  - name: remote
    upstream:
      url: $url/v1
      model: m
drift:
  data:
    every: 2s
    reference: $HS_TMP/ref.txt
    model: remote
    permutations: 100
    max_samples: 20
YAML
if hs_start g -m "$model" --alias local --config "$HS_TMP/g.yaml"; then
    gurl=${HS_URL[g]}
    head -n 20 "$HS_TMP/cook2.txt" >"$HS_TMP/cook3.txt"
    python3 - "$HS_TMP/cook3.txt" "$gurl" <<'EOF2'
import json, sys, urllib.request
for line in open(sys.argv[1]):
    body = json.dumps({"model": "remote", "messages": [{"role": "user", "content": line.strip()}],
                       "max_tokens": 1}).encode()
    req = urllib.request.Request(sys.argv[2] + "/v1/chat/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=60).read()
EOF2
    t=$(now_ms)
    saved=$url
    url=$gurl
    if wait_run data "$t"; then
        r=$HS_TMP/run.json
        check '[ "$(hs_json "$r" "[j[\"data\"][\"status\"], j[\"data\"][\"details\"][\"model\"], j[\"data\"][\"details\"][\"n_ref\"], j[\"data\"][\"details\"][\"n_cur\"]]")" = "[\"DRIFTED\", \"remote\", 20, 20]" ]' \
            "the upstream's data run: $(cat "$r")"
        echo "data run through the upstream: p = $(hs_json "$r" 'j["data"]["p_value"]')"
    fi
    url=$saved
    hs_stop g
fi

hs_stop d
hs_finish serve_drift
