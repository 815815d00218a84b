#!/usr/bin/env bash
# 'hestia experiment' and 'hestia eval' on a seeded store: an experiment is
# added from its JSON definition, request records (with bodies holding
# commas, quotes, newlines and Greek), feedback and shadow results are
# written straight into the file with Python's sqlite3, and then:
#   report/shadow-report show the seeded numbers; decide says NOT ENOUGH DATA
#   (exit 4) before expert scores; eval export writes a balanced CSV that
#   Python's csv module reads back exactly; eval import of the filled sheet
#   makes decide say PROMOTE (exit 0) for a clearly better B, KEEP (exit 3)
#   for a worse one; a bad cell is one error line naming FILE:LINE and column,
#   and nothing is imported; rollback and promote change the state and the
#   history; usage errors exit 2.
set -u
bin=${HS_BIN:-}
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "SKIP: HS_BIN must name the hestia binary"
    exit 77
fi
command -v python3 >/dev/null || { echo "SKIP: python3 is needed to seed the store"; exit 77; }
tmp=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
store=$tmp/store.db
logline='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z +(DEBUG|INFO|WARN|ERROR) '

# run WANT_RC ARGS...: runs hestia, output in $tmp/out and $tmp/err
run() {
    local want=$1
    shift
    "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    [ "$rc" -eq "$want" ] || fail "hestia $*: exit $rc, want $want; stdout: $(cat "$tmp/out"); stderr: $(cat "$tmp/err")"
}
one_error_line() { # PATTERN: stderr is one "hestia CMD: ..." line matching it
    local lines
    lines=$(grep -Evc "$logline" "$tmp/err")
    [ "$lines" -eq 1 ] || fail "want one error line, got: $(cat "$tmp/err")"
    grep -Ev "$logline" "$tmp/err" | grep -Eq "$1" || fail "error line '$(cat "$tmp/err")' does not match '$1'"
}

# ---- definitions ----
cat >"$tmp/win.json" <<'EOF'
{"name": "win", "route": "triage", "mode": "ab", "a": "base", "b": "base+v2", "weight": "50%",
 "rollback": {"error_ratio": 2.0, "min_samples": 50}}
EOF
cat >"$tmp/lose.json" <<'EOF'
{"name": "lose", "route": "triage", "mode": "canary", "a": "base", "b": "base+v3",
 "canary": [{"weight": "1%"}, {"weight": "5%", "after": "1h"}, {"weight": 1, "at": "2026-12-01T09:00:00Z"}]}
EOF
run 0 experiment add "$tmp/win.json" --store "$store"
grep -q "created experiment 'win'" "$tmp/out" || fail "add: $(cat "$tmp/out")"
run 0 experiment add "$tmp/lose.json" --store "$store"
run 0 experiment add "$tmp/win.json" --store "$store"
grep -q "updated experiment 'win'" "$tmp/out" || fail "second add: $(cat "$tmp/out")"
echo '{"name": "bad", "route": "r", "a": "m", "b": "n", "weight": 2}' >"$tmp/bad.json"
run 1 experiment add "$tmp/bad.json" --store "$store"
one_error_line "^hestia experiment: .*bad.json: experiment 'bad': weight: expected a number in 0..1"

run 0 experiment list --store "$store"
grep -Eq '^NAME +MODE +ROUTE +WEIGHT_B +STEP +STATUS +UPDATED$' "$tmp/out" || fail "list header: $(cat "$tmp/out")"
grep -Eq '^win +ab +triage +50.0% +- +active ' "$tmp/out" || fail "list win: $(cat "$tmp/out")"
grep -Eq '^lose +canary +triage +1.0% +1/3 +active ' "$tmp/out" || fail "list lose: $(cat "$tmp/out")"

# ---- records: 250 per variant of 'win' (B faster, fewer errors), 250 per
# variant of 'lose' (B slower, more errors); bodies on 30 of each ----
python3 - "$store" <<'EOF' || fail "seeding the store"
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
hostile = 'Τι είναι το IDLH; a, "quoted"\nsecond line'
for exp in ("win", "lose"):
    for v in ("A", "B"):
        for i in range(250):
            rid = f"{exp}-{v}-{i:03d}"
            if exp == "win":
                bad = (i % 50 == 0) if v == "A" else (i % 125 == 0)
                lat = (300 if v == "A" else 280) + (i % 100)
            else:
                bad = (i % 50 == 0) if v == "A" else (i % 10 == 0)
                lat = 300 + (i % 100) + (0 if v == "A" else 200)
            flags = "overconfident" if i % 100 == 7 else None
            db.execute("INSERT INTO requests (id, ts_ms, endpoint, model, backend, status, latency_ms,"
                       " safety_flags, confidence, experiment, variant) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                       (rid, 1764000000000 + i, "/v1/chat/completions", "triage", "local",
                        500 if bad else 200, lat, flags, 0.8, exp, v))
            if i < 30:
                req = json.dumps({"model": "triage", "messages": [{"role": "user", "content": f"{hostile} #{i}"}]})
                resp = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant",
                                   "content": f"answer {v}{i}, with \"quotes\"\r\nand =1+1"}}]})
                db.execute("INSERT INTO bodies (request_id, request, response) VALUES (?,?,?)", (rid, req, resp))
            if i < 20:
                db.execute("INSERT INTO feedback (request_id, ts_ms, feedback, updated_ms) VALUES (?,?,?,?)",
                           (rid, 1764000001000, 1 if (v == "B" or i % 2) else -1, 1764000001000))
for i in range(10):
    db.execute("INSERT INTO shadow_results (request_id, experiment, ts_ms, latency_a_ms, latency_b_ms, status_b,"
               " similarity, answer_a, answer_b) VALUES (?,?,?,?,?,?,?,?,?)",
               (f"sh-{i}", "win", 1764000002000 + i, 100 + i, 150 + i, 200 if i else 503,
                0.9 if i < 7 else 0.2 + i / 100, "A says 10 ppm", f"B says {i} ppm\nmore"))
db.commit()
EOF

run 0 experiment report win --store "$store"
grep -Eq '^VARIANT +REQUESTS +ERRORS +P50_MS +P95_MS +P99_MS +THUMBS_UP +SAFETY +CONFIDENCE +RATED +ACCURACY +SAFETY/5$' "$tmp/out" ||
    fail "report header: $(cat "$tmp/out")"
# A: 5 errors of 250 = 2.0%; B: 2 of 250 = 0.8%; safety 3 of 250 = 1.2%; thumbs B 20 of 20
grep -Eq '^A +250 +2.0% ' "$tmp/out" || fail "report A: $(cat "$tmp/out")"
grep -Eq '^B +250 +0.8% .* 100.0% +1.2% +0.800 +0 ' "$tmp/out" || fail "report B: $(cat "$tmp/out")"
run 0 experiment report win --store "$store" --json
python3 -c "
import json,sys
j=json.load(open('$tmp/out'))
b=j['variants']['B']; a=j['variants']['A']
assert a['requests']==250 and b['requests']==250, j
assert b['errors']==2 and a['errors']==5, j
assert abs(b['thumbs_up_rate']-1.0)<1e-9 and abs(a['thumbs_up_rate']-0.5)<1e-9, j
assert b['expert_accuracy'] is None, j
" || fail "report --json: $(cat "$tmp/out")"

run 0 experiment shadow-report win --store "$store" --samples 2
grep -q "results 10, B errors 1, agreement 70.0%" "$tmp/out" || fail "shadow-report: $(cat "$tmp/out")"
grep -q "similarity 0.27" "$tmp/out" || fail "shadow-report samples (least similar first): $(cat "$tmp/out")"
grep -q "B: B says 7 ppm..." "$tmp/out" || fail "shadow-report excerpt: $(cat "$tmp/out")"

# no expert scores yet
run 4 experiment decide win --store "$store"
grep -q "^verdict: NOT ENOUGH DATA$" "$tmp/out" || fail "decide without scores: $(cat "$tmp/out")"

# ---- expert evaluation ----
run 0 eval export win --n 20 -o "$tmp/sheet.csv" --seed 7 --store "$store"
grep -q "wrote 20 answers (10 A, 10 B)" "$tmp/out" || fail "export: $(cat "$tmp/out")"
cp "$tmp/sheet.csv" "$tmp/sheet1.csv"
run 0 eval export win --n 20 -o "$tmp/sheet2.csv" --seed 7 --store "$store"
cmp -s "$tmp/sheet1.csv" "$tmp/sheet2.csv" || fail "the same seed gave another sheet"
python3 - "$tmp/sheet.csv" "$tmp/filled.csv" <<'EOF' || fail "the exported sheet does not read back"
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="", encoding="utf-8")))
assert rows[0] == ["request_id", "variant", "question", "answer", "accuracy", "safety", "comment"], rows[0]
body = rows[1:]
assert len(body) == 20 and sum(r[1] == "A" for r in body) == 10, body
for r in body:
    i = int(r[0].split("-")[-1])
    assert r[0].startswith("win-" + r[1] + "-"), r
    assert r[2] == 'Τι είναι το IDLH; a, "quoted"\nsecond line #%d' % i, repr(r[2])
    assert r[3] == 'answer %s%d, with "quotes"\r\nand =1+1' % (r[1], i), repr(r[3])
# experts: B clearly better (4-5) than A (2-4)
w = csv.writer(open(sys.argv[2], "w", newline="", encoding="utf-8"))
w.writerow(rows[0])
for n, r in enumerate(body):
    acc = (4 + n % 2) if r[1] == "B" else (2 + n % 3)
    w.writerow(r[:4] + [str(acc), "5", "Σχόλιο, \"ok\"\nline 2"])
EOF
run 0 eval import "$tmp/filled.csv" --rater ann --store "$store"
grep -q "imported 20 scores by ann" "$tmp/out" || fail "import: $(cat "$tmp/out")"
run 0 experiment decide win --store "$store"
grep -q "^verdict: PROMOTE$" "$tmp/out" || fail "decide win: $(cat "$tmp/out")"
grep -Eq '^significance .* pass ' "$tmp/out" || fail "decide significance: $(cat "$tmp/out")"
run 0 experiment decide win --store "$store" --json
python3 -c "
import json
j=json.load(open('$tmp/out'))
assert j['verdict']=='PROMOTE' and len(j['criteria'])==7, j
assert all(c['result']=='pass' for c in j['criteria']), j
assert 0 < j['p_value'] < 0.05, j
" || fail "decide --json: $(cat "$tmp/out")"

# a bad cell: one line naming file, line and column; nothing imported
python3 - "$tmp/filled.csv" "$tmp/broken.csv" <<'EOF'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="", encoding="utf-8")))
rows[5][4] = "7"
csv.writer(open(sys.argv[2], "w", newline="", encoding="utf-8")).writerows(rows)
EOF
# rows 1..4 each hold embedded line breaks: find the physical line of row 5
line=$(python3 -c "
import csv
f=open('$tmp/broken.csv', newline='', encoding='utf-8'); r=csv.reader(f)
for i in range(5): next(r)
print(r.line_num + 1)")
before=$(python3 -c "import sqlite3; print(sqlite3.connect('$store').execute('select count(*) from eval_scores').fetchone()[0])")
run 1 eval import "$tmp/broken.csv" --rater bob --store "$store"
one_error_line "^hestia eval: .*broken.csv:$line: column accuracy: expected a whole number 1..5, got '7'$"
after=$(python3 -c "import sqlite3; print(sqlite3.connect('$store').execute('select count(*) from eval_scores').fetchone()[0])")
[ "$before" = "$after" ] || fail "a failed import stored scores ($before -> $after)"
# an unknown request id: the whole sheet is refused too
printf 'request_id,accuracy,safety\r\nwin-A-000,3,3\r\nnobody,4,4\r\n' >"$tmp/unknown.csv"
run 1 eval import "$tmp/unknown.csv" --store "$store"
one_error_line "^hestia eval: .*unknown.csv:3: no request has the id 'nobody'; nothing was imported$"

# the losing candidate: rated lower, slower, more errors
run 0 eval export lose --n 40 -o "$tmp/lose.csv" --blind --store "$store"
head -1 "$tmp/lose.csv" | grep -q '^request_id,question,answer,accuracy,safety,comment' || fail "blind header: $(head -1 "$tmp/lose.csv")"
python3 - "$tmp/lose.csv" <<'EOF'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="", encoding="utf-8")))
w = csv.writer(open(sys.argv[1], "w", newline="", encoding="utf-8"))
w.writerow(rows[0])
for n, r in enumerate(rows[1:]):
    acc = (2 + n % 2) if "-B-" in r[0] else (4 + n % 2)
    w.writerow(r[:3] + [str(acc), "4", ""])
EOF
run 0 eval import "$tmp/lose.csv" --store "$store"
run 3 experiment decide lose --store "$store"
grep -q "^verdict: KEEP$" "$tmp/out" || fail "decide lose: $(cat "$tmp/out")"
grep -Eq '^accuracy .* fail ' "$tmp/out" || fail "decide lose accuracy: $(cat "$tmp/out")"

# ---- rollback and promote ----
run 0 experiment rollback lose --reason "too slow" --store "$store"
grep -q "rolled back 'lose'" "$tmp/out" || fail "rollback: $(cat "$tmp/out")"
run 1 experiment rollback lose --store "$store"
one_error_line "^hestia experiment: 'lose' is already rolled_back$"
run 0 experiment promote win --store "$store"
run 0 experiment list --store "$store"
grep -Eq '^lose +canary +triage +0.0% +1/3 +rolled_back ' "$tmp/out" || fail "list after rollback: $(cat "$tmp/out")"
grep -Eq '^win +ab +triage +100.0% +- +promoted ' "$tmp/out" || fail "list after promote: $(cat "$tmp/out")"
run 0 experiment show lose --store "$store"
grep -Eq ' created +1.0% *$' "$tmp/out" || fail "show history created: $(cat "$tmp/out")"
grep -Eq ' rollback +0.0% +manual: too slow$' "$tmp/out" || fail "show history rollback: $(cat "$tmp/out")"
run 0 experiment show win --store "$store" --json
python3 -c "
import json
j=json.load(open('$tmp/out'))
assert j['state']['status']=='promoted' and j['state']['weight_b']==1, j
assert [h['kind'] for h in j['history']]==['created','promote'], j
assert j['history'][1]['reason']=='manual', j
" || fail "show --json: $(cat "$tmp/out")"

# ---- usage and missing things ----
run 2 experiment
run 2 experiment report --store "$store"
run 2 experiment frobnicate win --store "$store"
run 2 experiment decide win --bogus --store "$store"
run 2 eval export win -o "$tmp/x.csv" --store "$store"
run 2 eval export win --n 1 -o "$tmp/x.csv" --store "$store"
run 1 experiment report nobody --store "$store"
one_error_line "^hestia experiment: no experiment is named 'nobody'$"
run 1 experiment list --store "$tmp/none.db"
[ -e "$tmp/none.db" ] && fail "a missing store was created"
run 0 experiment --help
echo "experiment_cli: ok"
