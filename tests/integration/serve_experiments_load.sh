#!/usr/bin/env bash
# A bounded load test with an experiment on (issue 7): LOAD_CLIENTS clients
# (default 16) for LOAD_SECONDS (default 15) on a route split 50/50 between a
# local model (A) and a loopback upstream (B, tools/mock_openai.py) that fails
# 30 % of its requests (HTTP 500, seeded). It must end with:
#  - zero errors seen by the clients: every B failure was answered by A;
#  - B rolled back by the error-ratio rule, within the rule's window of the
#    first B failure, with a critical alert;
#  - every request in the store exactly once: the x-request-ids the clients
#    saw against the store's ids after a graceful stop, each with its variant.
. "$(dirname "$0")/lib.sh"
hs_require_bin
hs_require_serve
clients=${LOAD_CLIENTS:-16}
seconds=${LOAD_SECONDS:-15}
model=$(hs_model_tiny)

hs_mock mock --models cand-remote --fail-rate 0.3 --seed 7
mock=${HS_MOCK_URL[mock]}

window_s=30
cat >"$HS_TMP/load.yaml" <<EOF
server:
  queue: 64
models:
  - name: base
    path: $model
  - name: cand
    upstream:
      url: $mock/v1
      model: cand-remote
experiments:
  - name: load1
    route: triage
    mode: ab
    a: base
    b: cand
    weight: 50%
    sticky_by: user
    rollback:
      error_ratio: {limit: 2.0, min_samples: 30}
      p95_margin_ms: off
      safety_rate: off
      window: ${window_s}s
EOF
db=$HS_TMP/load.db
hs_start load --config "$HS_TMP/load.yaml" --store "$db" --ctx 256 --parallel 8 || exit 1
url=${HS_URL[load]}

python3 - "$url" "$clients" "$seconds" "$HS_TMP/ids.txt" "$HS_TMP/client.json" <<'EOF'
import json, sys, threading, time, urllib.request, urllib.error
url, clients, seconds, ids_path, out_path = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
lock = threading.Lock()
ids, bad, by_variant, fallbacks = [], [], {}, 0
end = time.time() + seconds
def client(k):
    global fallbacks
    n = 0
    while time.time() < end:
        n += 1
        body = {"model": "triage", "user": "u%d-%d" % (k, n % 7),
                "messages": [{"role": "user", "content": "Casualties at the port, request %d" % n}],
                "max_tokens": 4, "stream": n % 3 == 0}
        req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                data = r.read()
                rid, v, fb = r.headers.get("x-request-id"), r.headers.get("x-hestia-variant"), r.headers.get("x-hestia-fallback")
                ok = r.status == 200 and (b"[DONE]" in data if body["stream"] else b'"choices"' in data)
                with lock:
                    ids.append(rid)
                    by_variant[v] = by_variant.get(v, 0) + 1
                    fallbacks += fb == "B"
                    if not ok:
                        bad.append("HTTP %d %r" % (r.status, data[:200]))
        except urllib.error.HTTPError as e:
            with lock:
                ids.append(e.headers.get("x-request-id"))
                bad.append("HTTP %d %r" % (e.code, e.read()[:200]))
        except Exception as e:
            with lock:
                bad.append("transport: %r" % e)
ts = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
for t in ts: t.start()
for t in ts: t.join()
open(ids_path, "w").write("\n".join(i for i in ids if i) + "\n")
json.dump({"requests": len(ids), "bad": bad[:10], "n_bad": len(bad), "by_variant": by_variant,
           "fallbacks": fallbacks}, open(out_path, "w"))
print("load: %d requests, %d bad, by variant %s, %d answered by A after B failed" % (len(ids), len(bad), by_variant, fallbacks))
EOF
n_req=$(hs_json "$HS_TMP/client.json" "j['requests']")
check '[ "$(hs_json "$HS_TMP/client.json" "j['"'"'n_bad'"'"']")" = 0 ]' "clients saw errors: $(hs_json "$HS_TMP/client.json" "j['bad']")"
check '[ "$(hs_json "$HS_TMP/client.json" "j['"'"'fallbacks'"'"']")" -ge 1 ]' "no B failure was answered by A"
hs_http GET "$url/admin/experiments/load1"
check '[ "$(hs_json "$HS_TMP/resp.body" "j['"'"'state'"'"']['"'"'status'"'"']")" = rolled_back ]' \
    "B was not rolled back: $(hs_json "$HS_TMP/resp.body" "j['state'], j['window']")"
hs_http GET "$url/api/alerts"
check '[ "$(hs_json "$HS_TMP/resp.body" "sum(1 for a in j['"'"'data'"'"'] if a['"'"'type'"'"'] == '"'"'experiment_rollback'"'"')")" -ge 1 ]' \
    "no experiment_rollback alert"
hs_stop load
# the rollback came within the window of the first failure B answered
first_fail=$(hs_sql "$db" "SELECT min(ts_ms) FROM requests WHERE experiment = 'load1' AND variant = 'B' AND error IS NOT NULL")
rb=$(hs_sql "$db" "SELECT min(ts_ms) FROM experiment_events WHERE name = 'load1' AND kind = 'rollback'")
check '[ -n "$first_fail" ] && [ -n "$rb" ] && [ $((rb - first_fail)) -le $((window_s * 1000)) ]' \
    "rollback at $rb, first B failure at $first_fail: more than the ${window_s} s window apart"
# every request exactly once, each with its variant
sort "$HS_TMP/ids.txt" | uniq -d >"$HS_TMP/dup.txt"
check '[ ! -s "$HS_TMP/dup.txt" ]' "clients saw repeated ids: $(head -3 "$HS_TMP/dup.txt")"
hs_sql "$db" "SELECT id FROM requests WHERE endpoint = '/v1/chat/completions' AND parent_id IS NULL" | sort >"$HS_TMP/stored.txt"
sort "$HS_TMP/ids.txt" >"$HS_TMP/seen.txt"
check 'cmp -s "$HS_TMP/seen.txt" "$HS_TMP/stored.txt"' \
    "store vs clients: $(wc -l <"$HS_TMP/stored.txt") stored, $(wc -l <"$HS_TMP/seen.txt") seen; diff: $(diff "$HS_TMP/seen.txt" "$HS_TMP/stored.txt" | head -4)"
check '[ "$(hs_sql "$db" "SELECT count(*) FROM requests WHERE experiment = '"'load1'"' AND variant IN ('"'A'"', '"'B'"')")" = "$n_req" ]' \
    "records with their variant: $(hs_sql "$db" "SELECT variant, count(*) FROM requests GROUP BY 1")"
hs_finish "experiment under load: B failing 30 %, zero client errors, rolled back, every request stored once"
