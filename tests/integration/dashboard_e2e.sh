#!/usr/bin/env bash
# The dashboard in a real browser (issue 6): headless chromium (Debian's
# /usr/bin/chromium, or $HS_CHROMIUM) driven by playwright-core
# (tests/e2e/dashboard.test.mjs) loads /dashboard from a server whose store
# holds known data, and checks every card, chart, alert and agent row against
# values the test computes itself from that data. The screenshots are kept as
# build/artifacts/dashboard.png and build/artifacts/dashboard-experiments.png.
#
# The seeded store:
#  - 40 request records spread over the last 20 hours (hestia logs import),
#    with known latencies, statuses, agents, safety flags and feedback;
#    (issue 7) 32 of them carry the experiment dash-ab and a variant (A or B),
#    so the experiments view has per-variant numbers to show;
#  - two alerts (written into the store's alerts table, as the store sink
#    writes them);
#  - one data-drift and one concept-drift run, made by the real `hestia drift`
#    commands against a helper server (its own store, so that its embedding
#    and chat requests do not count among the seeded ones); the expected card
#    is the status the command's exit code reported.
# The server under test has the experiment dash-ab in its config (A and B: two
# model entries on the same synthetic GGUF); the browser test changes B's
# weight and rolls it back through the admin routes before it loads the page.
# Skips (77) when chromium, node or tests/e2e/node_modules (scripts/install-js.sh)
# is absent.
. "$(dirname "$0")/lib.sh"
hs_require_bin
hs_require_serve
chromium=${HS_CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || skip "no chromium at $chromium (Debian: apt-get install chromium; or set HS_CHROMIUM)"
command -v node >/dev/null || skip "node is needed for the browser test"
[ -f tests/e2e/node_modules/playwright-core/package.json ] ||
    skip "tests/e2e/node_modules is absent: run scripts/install-js.sh (npm ci in tests/e2e)"
"$HS_BIN" logs import --help >/dev/null 2>&1 || skip "this hestia has no 'logs import' to seed the store"
model=$(hs_model_tiny)
[ -n "$model" ] || exit 1
seed=$HS_TMP/seed
mkdir -p "$seed"
db=$seed/dash.db
now_ms=$(($(date +%s) * 1000))

# ---- the records: 40 over the last 20 hours ----
# Latencies are chosen so that p50 and p95 are the same under any usual
# quantile rule and whether or not failed requests count: 12 x 120 ms,
# 14 x 300, 5 x 450, 5 x 900 among the 36 answered ones, and the 4 failed
# ones at 300 ms.
python3 - "$now_ms" "$seed/records.jsonl" "$seed/alerts.json" <<'EOF'
import json, sys
now, out, alerts_out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
lat_ok = [120] * 12 + [300] * 14 + [450] * 5 + [900] * 5
agents = ["triage", "hazmat", None, "triage", "hazmat"]       # 16, 16, 8 of 40
fail_at = {5, 13, 22, 31}                                     # 4 failures
flag_at = {2: "unsafe_recommendation", 17: "overconfident", 29: "hazmat_mismatch,overconfident"}
# feedback on 10 answers: 7 up, 3 down
fb_at = {0: 1, 3: 1, 7: -1, 9: 1, 14: 1, 18: -1, 21: 1, 26: 1, 33: -1, 38: 1}
recs, k = [], 0
for i in range(40):
    ts = now - (20 * 3600 * 1000) + i * 30 * 60 * 1000 + 7 * 60 * 1000  # every 30 min, from 20 h ago
    failed = i in fail_at
    lat = 300.0 if failed else float(lat_ok[(k * 7) % 36])
    if not failed:
        k += 1
    r = {"id": "seed-%02d" % i, "ts_ms": ts, "endpoint": "/v1/chat/completions", "model": "tiny", "backend": "local",
         "agent": agents[i % 5], "status": 500 if failed else 200,
         "error": "backend failure" if failed else None,
         "latency_ms": lat, "ttft_ms": lat / 3, "queue_ms": 1.0,
         "tokens_in": 12, "tokens_out": 0 if failed else 20,
         "confidence": None if failed else 0.5 + (i % 5) / 10,
         "safety_flags": flag_at.get(i), "stream": False, "finish_reason": None if failed else "stop"}
    if i % 5 != 2:  # (issue 7) the experiment's records: B on odd i, A on even
        r["experiment"] = "dash-ab"
        r["variant"] = "B" if i % 2 else "A"
    if i in fb_at:
        r["feedback"] = {"value": fb_at[i], "comment": "seeded", "ts_ms": ts + 60 * 1000}
    recs.append(r)
# 36 answered with the intended latency multiset (7 is prime to 36: a permutation)
assert sorted(r["latency_ms"] for r in recs if r["status"] == 200) == sorted(lat_ok)
with open(out, "w") as f:
    for r in recs:
        f.write(json.dumps(r) + "\n")
alerts = [
    {"ts_ms": now - 30 * 60 * 1000, "type": "safety_rate", "severity": "critical",
     "message": "safety flags on 7.5% of answers (limit 5%)", "count": 1, "first_ms": now - 30 * 60 * 1000},
    {"ts_ms": now - 2 * 3600 * 1000, "type": "high_latency_p95", "severity": "warning",
     "message": "12 high-latency alerts since 10:04", "count": 12, "first_ms": now - 5 * 3600 * 1000},
]
json.dump(alerts, open(alerts_out, "w"))
EOF
[ -s "$seed/records.jsonl" ] || { echo "FAIL: could not write the seed records"; exit 1; }

# ---- drift runs, by the real commands, against a helper server ----
hs_start helper -m "$model" --alias tiny || exit 1
# one pool of prompts, each round of four dealt alternately to the two samples: the same
# distribution, so STABLE is expected (the card must show what the command says)
for i in $(seq 1 8); do
    echo "evacuate the building when the fire alarm sounds, floor $i"
    echo "what is the IDLH of chlorine in ppm, tank $i?"
    echo "how far should people stay from a propane leak, truck $i?"
    echo "which gloves protect against ammonia, crew $i?"
done >"$seed/pool.txt"
awk 'int((NR - 1) / 4) % 2 == 0' "$seed/pool.txt" >"$seed/ref.txt"
awk 'int((NR - 1) / 4) % 2 == 1' "$seed/pool.txt" >"$seed/cur.txt"
"$HS_BIN" drift data --backend "${HS_URL[helper]}/v1" --model tiny --reference "$seed/ref.txt" \
    --current "$seed/cur.txt" --permutations 200 --store "$db" --json >"$seed/data.json" 2>"$seed/data.err"
rc=$?
case $rc in
0) data_status=STABLE ;;
3) data_status=DRIFTED ;;
*) fail "hestia drift data exited $rc: $(cat "$seed/data.err")"; data_status=none ;;
esac
printf '%s\n' '{"question":"What is the IDLH of ammonia?","expected":"300 ppm","facts":["300"]}' \
    '{"question":"Which gas smells of rotten eggs?","expected":"hydrogen sulfide"}' \
    '{"question":"What number do you call for the fire brigade in Europe?","expected":"112","facts":["112"]}' \
    >"$seed/qa.jsonl"
# recorded at 90%: the random-weight model's answers score far lower, so this
# is expected to report DRIFTED; whatever the command says is what the card must show
"$HS_BIN" drift concept --backend "${HS_URL[helper]}/v1" --model tiny --reference "$seed/qa.jsonl" \
    --recorded 90 --max-tokens 8 --store "$db" --json >"$seed/concept.json" 2>"$seed/concept.err"
rc=$?
case $rc in
0) concept_status=STABLE ;;
3) concept_status=DRIFTED ;;
*) fail "hestia drift concept exited $rc: $(cat "$seed/concept.err")"; concept_status=none ;;
esac
hs_stop helper

# ---- the records and the alerts into the store ----
"$HS_BIN" logs import --store "$db" "$seed/records.jsonl" >"$seed/import.out" 2>&1 ||
    { echo "FAIL: hestia logs import: $(cat "$seed/import.out")"; exit 1; }
python3 - "$db" "$seed/alerts.json" <<'EOF' || { echo "FAIL: could not write the seed alerts"; exit 1; }
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=10)
with db:
    for a in json.load(open(sys.argv[2])):
        db.execute("INSERT INTO alerts (ts_ms, type, severity, message, count, first_ms, details) VALUES (?,?,?,?,?,?,?)",
                   (a["ts_ms"], a["type"], a["severity"], a["message"], a["count"], a["first_ms"], "{}"))
EOF

# ---- the server under test, and the browser ----
# The experiment as the config defines it; the browser test reads the same
# JSON for what the page's header must show and where the weight started.
experiment='{"name":"dash-ab","route":"assistant","mode":"ab","a":"tiny","b":"tiny-b","weight":0.1}'
cat >"$seed/dash.yaml" <<EOF
models:
  - name: tiny
    path: $model
  - name: tiny-b
    path: $model
experiments:
  - name: dash-ab
    route: assistant
    mode: ab
    a: tiny
    b: tiny-b
    weight: 10%
EOF
hs_start dash --config "$seed/dash.yaml" --ctx 256 --store "$db" || exit 1
mkdir -p build/artifacts
rm -f build/artifacts/dashboard.png build/artifacts/dashboard-experiments.png
HS_DASH_URL=${HS_URL[dash]} HS_SEED_RECORDS=$seed/records.jsonl HS_SEED_ALERTS=$seed/alerts.json \
    HS_EXPECT_DATA_DRIFT=$data_status HS_EXPECT_CONCEPT_DRIFT=$concept_status HS_EXPERIMENT=$experiment \
    HS_CHROMIUM=$chromium HS_SCREENSHOT=$PWD/build/artifacts/dashboard.png \
    HS_SCREENSHOT_EXPERIMENTS=$PWD/build/artifacts/dashboard-experiments.png \
    timeout 180 node --test --test-reporter=spec tests/e2e/dashboard.test.mjs >"$HS_TMP/node.log" 2>&1
rc=$?
cat "$HS_TMP/node.log"
check '[ $rc -eq 0 ]' "the browser test failed (exit $rc)"
check '[ -s build/artifacts/dashboard.png ]' "no screenshot at build/artifacts/dashboard.png"
check '[ -s build/artifacts/dashboard-experiments.png ]' "no screenshot at build/artifacts/dashboard-experiments.png"
hs_stop dash
hs_finish "dashboard in chromium: cards, charts, alerts, agents and the experiments view match the seeded store and its admin changes; screenshots in build/artifacts/"
