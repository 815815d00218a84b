#!/usr/bin/env bash
# The dashboard's history (issue 6) from a store seeded with `hestia logs import`:
#  - GET /api/timeseries?hours=H&bucket=S: zero-filled points aligned to multiples
#    of the bucket in unix time, oldest first, the last one holding now; each
#    point's numbers recomputed here from the seeded records (python, type-7
#    quantiles), feedback counted by the time it arrived; totals over the range;
#  - GET /api/agents?hours=H: the same per agent (null = no agent), most requests
#    first;
#  - bad hours / bucket values: 400 naming the parameter;
#  - `logs import`: export -> import -> export is identical (experiment and
#    variant included, issue 7); a file with a bad line is refused as
#    FILE:LINE, exit 1, and the store is unchanged.
. "$(dirname "$0")/lib.sh"
hs_require_bin
hs_require_serve
model=$(hs_model_tiny)
db=$HS_TMP/ts.db
seed=$HS_TMP/seed.jsonl

# ~300 records over the last 5 hours (with some older and some not inference),
# feedback arriving up to 40 minutes after its answer.
python3 - "$seed" <<'EOF'
import json, random, sys, time
random.seed(7)
now = int(time.time() * 1000)
eps = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/assess"]
agents = [None, "triage", "hazmat", "triage"]
with open(sys.argv[1], "w") as f:
    for i in range(300):
        ts = now - random.randint(60_000, 5 * 3600_000) if i % 25 else now - 30 * 3600_000 - i
        status = random.choice([200] * 8 + [429, 500])
        r = {"id": "seed-%d" % i, "ts_ms": ts, "endpoint": random.choice(eps),
             "backend": None if i % 17 == 0 else "local", "agent": random.choice(agents),
             "model": "tiny", "status": status, "stream": i % 2 == 0,
             "latency_ms": None if i % 11 == 0 else round(random.uniform(20, 2000), 3),
             "confidence": None if i % 7 == 0 else round(random.random(), 4),
             "safety_flags": "hazmat_mismatch" if i % 9 == 0 else ("" if i % 13 == 0 else None),
             "tokens_in": 10, "tokens_out": 20, "tokens_cached": 0,
             "error": None if status == 200 else "failed"}
        if i % 6 == 1:  # (issue 7) 50 records of an experiment, 25 per variant
            r["experiment"] = "ts-ab"
            r["variant"] = "AB"[(i // 6) % 2]
        if i % 3 == 0:
            r["feedback"] = {"value": random.choice([1, 1, -1]),
                             "ts_ms": min(ts + random.randint(0, 40 * 60_000), now - 1000)}
            if i % 2:
                r["feedback"]["comment"] = "seeded"
        f.write(json.dumps(r) + "\n")
EOF
"$HS_BIN" logs import --store "$db" "$seed" 2>"$HS_TMP/import.err"
rc=$?
check '[ $rc = 0 ] && grep -q "imported 300 records (100 with feedback)" "$HS_TMP/import.err"' \
    "import: $(cat "$HS_TMP/import.err")"

hs_start ts -m "$model" --alias tiny --ctx 256 --store "$db" || exit 1
url=${HS_URL[ts]}

# Recomputes a response from the seed and compares; prints what differs.
verify() { # verify KIND FILE
    python3 - "$1" "$2" "$seed" <<'EOF'
import json, math, sys, time
kind, resp, seed = sys.argv[1:4]
j = json.load(open(resp))
recs = [json.loads(l) for l in open(seed)]
INF = {"/v1/chat/completions", "/v1/completions", "/v1/embeddings"}
inf = [r for r in recs if r["endpoint"] in INF and r["backend"] is not None]
def q7(v, q):
    v = sorted(v); h = (len(v) - 1) * q; lo = math.floor(h)
    return v[lo] if lo + 1 >= len(v) else v[lo] + (h - lo) * (v[lo + 1] - v[lo])
def stats(rs, fbs):
    n = len(rs); err = sum(1 for r in rs if not 200 <= r["status"] < 300)
    lat = [r["latency_ms"] for r in rs if 200 <= r["status"] < 300 and r["latency_ms"] is not None]
    conf = [r["confidence"] for r in rs if r["confidence"] is not None]
    fl = sum(1 for r in rs if r["safety_flags"])
    up = sum(1 for f in fbs if f["value"] > 0); down = len(fbs) - up
    return {"requests": n, "errors": err, "error_rate": err / n if n else None,
            "latency_p50": q7(lat, .5) if lat else None, "latency_p95": q7(lat, .95) if lat else None,
            "thumbs_up": up, "thumbs_down": down, "satisfaction": up / (up + down) if up + down else None,
            "safety_flagged": fl, "safety_rate": fl / n if n else None,
            "confidence_mean": sum(conf) / len(conf) if conf else None}
def differ(got, want, where):
    bad = []
    for k, w in want.items():
        g = got.get(k, "absent")
        ok = (g is None and w is None) if (g is None or w is None) else abs(g - w) < 1e-6 * max(1, abs(w))
        if not ok: bad.append("%s %s: got %s want %s" % (where, k, g, w))
    extra = set(got) - set(want) - {"t", "agent"}
    if extra: bad.append("%s: unexpected fields %s" % (where, sorted(extra)))
    return bad
lo, hi = j["from_ms"], j["to_ms"]
inr = lambda t, a, b: a <= t < b
fb = lambda a, b, rs: [r["feedback"] for r in rs if "feedback" in r and inr(r["feedback"]["ts_ms"], a, b)]
bad = []
if kind.startswith("ts"):
    B = j["bucket_ms"]; pts = j["points"]; now = int(time.time() * 1000)
    want_n = -(-int(kind[2:]) * 3600_000 // B)
    if len(pts) != want_n: bad.append("%d points, want %d" % (len(pts), want_n))
    if lo % B or hi % B or hi - lo != len(pts) * B: bad.append("range %d..%d not aligned to %d" % (lo, hi, B))
    if not (pts[-1]["t"] <= now < pts[-1]["t"] + B + 5000): bad.append("the last point does not hold now")
    for i, p in enumerate(pts):
        if p["t"] != lo + i * B: bad.append("point %d at %d" % (i, p["t"]))
        a, b = p["t"], p["t"] + B
        bad += differ(p, stats([r for r in inf if inr(r["ts_ms"], a, b)], fb(a, b, inf)), "point %d" % i)
    bad += differ(j["totals"], stats([r for r in inf if inr(r["ts_ms"], lo, hi)], fb(lo, hi, inf)), "totals")
    if sum(p["requests"] for p in pts) != j["totals"]["requests"]: bad.append("the points do not sum to the totals")
    if kind != "ts1" and j["totals"]["requests"] < 100 or j["totals"]["thumbs_down"] < 5: bad.append("too little seeded data in range")
else:
    names = [a["agent"] for a in j["agents"]]
    want_names = {r["agent"] for r in inf if inr(r["ts_ms"], lo, hi)}
    if set(names) != want_names or len(names) != len(set(names)): bad.append("agents %s want %s" % (names, want_names))
    reqs = [a["requests"] for a in j["agents"]]
    if reqs != sorted(reqs, reverse=True): bad.append("not sorted by requests: %s" % reqs)
    for a in j["agents"]:
        rs = [r for r in inf if r["agent"] == a["agent"]]
        bad += differ(a, stats([r for r in rs if inr(r["ts_ms"], lo, hi)], fb(lo, hi, rs)), "agent %s" % a["agent"])
print("\n".join(bad[:10]) if bad else "ok")
EOF
}

hs_http GET "$url/api/timeseries?hours=6&bucket=600"
check '[ "$HTTP_STATUS" = 200 ] && [ "$(verify ts6 "$HS_TMP/resp.body")" = ok ]' \
    "timeseries 6 h by 10 min: HTTP $HTTP_STATUS: $(verify ts6 "$HS_TMP/resp.body" 2>&1 | head -5)"
hs_http GET "$url/api/timeseries"
check '[ "$HTTP_STATUS" = 200 ] && [ "$(hs_json "$HS_TMP/resp.body" "j[\"bucket_ms\"]")" = 3600000 ] && [ "$(verify ts24 "$HS_TMP/resp.body")" = ok ]' \
    "timeseries defaults (24 h by 1 h): HTTP $HTTP_STATUS: $(verify ts24 "$HS_TMP/resp.body" 2>&1 | head -5)"
hs_http GET "$url/api/timeseries?hours=1&bucket=60"
check '[ "$HTTP_STATUS" = 200 ] && [ "$(verify ts1 "$HS_TMP/resp.body")" = ok ]' \
    "timeseries 1 h by 1 min: $(verify ts1 "$HS_TMP/resp.body" 2>&1 | head -5)"
hs_http GET "$url/api/agents?hours=6"
check '[ "$HTTP_STATUS" = 200 ] && [ "$(verify agents "$HS_TMP/resp.body")" = ok ]' \
    "agents 6 h: HTTP $HTTP_STATUS: $(verify agents "$HS_TMP/resp.body" 2>&1 | head -5) $(head -c 600 "$HS_TMP/resp.body")"
check '[ "$(hs_json "$HS_TMP/resp.body" "[a[\"agent\"] for a in j[\"agents\"]].count(None)")" = 1 ]' \
    "agents: the records without an agent are one entry with agent null"
hs_http GET "$url/api/agents?hours=48"
check '[ "$HTTP_STATUS" = 200 ] && [ "$(verify agents "$HS_TMP/resp.body")" = ok ]' \
    "agents 48 h (the older records too): $(verify agents "$HS_TMP/resp.body" 2>&1 | head -5)"

for bad in "timeseries?hours=0|hours" "timeseries?hours=721|hours" "timeseries?hours=abc|hours" \
    "timeseries?hours=|hours" "timeseries?bucket=59|bucket" "timeseries?bucket=86401|bucket" \
    "timeseries?bucket=1e3|bucket" "timeseries?hours=720&bucket=60|bucket" "agents?hours=-1|hours" \
    "agents?hours=1000|hours"; do
    hs_http GET "$url/api/${bad%|*}"
    check '[ "$HTTP_STATUS" = 400 ] && [ "$(hs_json "$HS_TMP/resp.body" "j[\"error\"][\"param\"]")" = "${bad##*|}" ]' \
        "/api/${bad%|*}: HTTP $HTTP_STATUS $(cat "$HS_TMP/resp.body")"
done
hs_http GET "$url/api/timeseries?hours=720&bucket=86400"
check '[ "$HTTP_STATUS" = 200 ] && [ "$(hs_json "$HS_TMP/resp.body" "len(j[\"points\"])")" = 30 ]' \
    "720 h by 1 day: 30 points ($HTTP_STATUS)"

# a live answer shows up in the last bucket
hs_http GET "$url/api/timeseries?hours=1&bucket=3600"
before=$(hs_json "$HS_TMP/resp.body" "j[\"points\"][-1][\"requests\"]")
hs_http POST "$url/v1/chat/completions" -d '{"model":"tiny","messages":[{"role":"user","content":"Hi"}],"max_tokens":3}'
check '[ "$HTTP_STATUS" = 200 ]' "chat: HTTP $HTTP_STATUS"
hs_http GET "$url/api/timeseries?hours=1&bucket=3600"
after=$(hs_json "$HS_TMP/resp.body" "j[\"points\"][-1][\"requests\"]")
check '[ "$after" = $((before + 1)) ]' "a live chat in the last bucket: $before -> $after"
hs_stop ts

# export -> import -> export round trip (the live record and the feedback included)
"$HS_BIN" logs export --store "$db" -o "$HS_TMP/e1.jsonl" || fail "export failed"
"$HS_BIN" logs import --store "$HS_TMP/copy.db" "$HS_TMP/e1.jsonl" 2>/dev/null || fail "import of the export failed"
"$HS_BIN" logs export --store "$HS_TMP/copy.db" -o "$HS_TMP/e2.jsonl" || fail "second export failed"
check 'cmp -s "$HS_TMP/e1.jsonl" "$HS_TMP/e2.jsonl" && [ "$(wc -l <"$HS_TMP/e1.jsonl")" = 301 ]' \
    "export -> import -> export differs: $(diff "$HS_TMP/e1.jsonl" "$HS_TMP/e2.jsonl" | head -c 400)"
check '[ "$(grep -c "\"feedback\":{" "$HS_TMP/e2.jsonl")" = 100 ]' "the feedback went along"
check '[ "$(grep -c "\"experiment\":\"ts-ab\",\"variant\":\"A\"" "$HS_TMP/e2.jsonl")" = 25 ] &&
       [ "$(grep -c "\"experiment\":\"ts-ab\",\"variant\":\"B\"" "$HS_TMP/e2.jsonl")" = 25 ] &&
       [ "$(grep -c "\"experiment\"" "$HS_TMP/e2.jsonl")" = 50 ]' \
    "experiment and variant did not go along: $(grep -c "\"experiment\"" "$HS_TMP/e2.jsonl") records name one"

# a bad line: nothing imported, FILE:LINE named, exit 1; a second import of the same ids is refused too
python3 - "$HS_TMP/e1.jsonl" "$HS_TMP/bad.jsonl" <<'EOF'
import json, sys
lines = open(sys.argv[1]).read().splitlines()[:6]
out = []
for i, l in enumerate(lines):
    r = json.loads(l); r["id"] = "new-%d" % i
    if i == 4: r["status"] = "200"
    out.append(json.dumps(r))
open(sys.argv[2], "w").write("\n".join(out) + "\n")
EOF
"$HS_BIN" logs export --store "$HS_TMP/copy.db" -o "$HS_TMP/before.jsonl"
"$HS_BIN" logs import --store "$HS_TMP/copy.db" "$HS_TMP/bad.jsonl" 2>"$HS_TMP/bad.err"
rc=$?
"$HS_BIN" logs export --store "$HS_TMP/copy.db" -o "$HS_TMP/after.jsonl"
check '[ $rc = 1 ] && grep -q "bad.jsonl:5: \"status\"" "$HS_TMP/bad.err" && [ "$(wc -l <"$HS_TMP/bad.err")" = 1 ]' \
    "bad line: exit $rc, '$(cat "$HS_TMP/bad.err")'"
check 'cmp -s "$HS_TMP/before.jsonl" "$HS_TMP/after.jsonl"' "the store changed after a refused import"
"$HS_BIN" logs import --store "$HS_TMP/copy.db" "$HS_TMP/e1.jsonl" 2>"$HS_TMP/dup.err"
rc=$?
check '[ $rc = 1 ] && grep -q "e1.jsonl:1: .*already in the store" "$HS_TMP/dup.err"' "duplicate ids: $(cat "$HS_TMP/dup.err")"
"$HS_BIN" logs import --skip-existing --store "$HS_TMP/copy.db" - <"$HS_TMP/e1.jsonl" 2>"$HS_TMP/skip.err"
rc=$?
check '[ $rc = 0 ] && grep -q "skipped 301" "$HS_TMP/skip.err"' "--skip-existing from stdin: $(cat "$HS_TMP/skip.err")"
hs_finish "ops timeseries: /api/timeseries and /api/agents match the seeded records; 400s; logs import round trip, all or nothing"
