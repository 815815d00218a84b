#!/usr/bin/env bash
# hestia report retrain over stores seeded here (rows written with sqlite3
# into a store the binary created, so the schema is the real one):
#  - a model in trouble: 30% satisfaction, 10% flagged answers, data drift in
#    every weekly run for 4 weeks, trained long ago -> each says retrain, the
#    latest concept run is STABLE -> ok; exit 3;
#  - a healthy one: exit 0, every criterion ok; no training date -> unknown;
#  - an empty store: every criterion unknown (never a silent pass); exit 0;
#  - bad flags and a missing store: exit 2 / 1 with one line.
. "$(dirname "$0")/lib.sh"
hs_require_bin
command -v sqlite3 >/dev/null || skip "the sqlite3 command is needed"
now=$(date +%s%3N)
day=86400000

mkstore() { # $1 path: a store with the current schema
    "$HS_BIN" keys create --name seed --store "$1" >/dev/null 2>&1 || fail "keys create on $1"
}
seed() { # $1 db, $2 answers, $3 flagged, $4 up, $5 down, $6 data status, $7 concept status
    local db=$1 sql="BEGIN;" i
    for ((i = 0; i < $2; i++)); do
        local flags=NULL
        [ "$i" -lt "$3" ] && flags="'hazmat_mismatch'"
        sql+="INSERT INTO requests (id, ts_ms, endpoint, backend, status, safety_flags) VALUES ('r$i', $((now - i * 60000)), '/v1/chat/completions', 'local', 200, $flags);"
    done
    for ((i = 0; i < $4 + $5; i++)); do
        local v=1
        [ "$i" -ge "$4" ] && v=-1
        sql+="INSERT INTO feedback (request_id, ts_ms, feedback, updated_ms) VALUES ('r$i', $((now - i * 60000)), $v, $((now - i * 60000)));"
    done
    for w in 0 1 2 3; do
        sql+="INSERT INTO drift_runs (ts_ms, kind, status, score, p_value) VALUES ($((now - w * 7 * day - day)), 'data', '$6', 0.1, 0.01);"
    done
    sql+="INSERT INTO drift_runs (ts_ms, kind, status, score) VALUES ($((now - 2 * day)), 'concept', 'DRIFTED', 60);"
    sql+="INSERT INTO drift_runs (ts_ms, kind, status, score) VALUES ($((now - day)), 'concept', '$7', 88);"
    sql+="COMMIT;"
    sqlite3 "$db" "$sql" || fail "seeding $db"
}
verdicts() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(" ".join("%s=%s" % (c["criterion"], c["verdict"]) for c in j["criteria"]))' "$1"; }

bad=$HS_TMP/bad.db
mkstore "$bad"
seed "$bad" 100 10 3 7 DRIFTED STABLE
"$HS_BIN" report retrain --store "$bad" --trained 2020-01-01 --json >"$HS_TMP/r.json" 2>"$HS_TMP/r.err"
rc=$?
check '[ $rc -eq 3 ]' "a model in trouble: exit $rc, want 3: $(cat "$HS_TMP/r.err")"
check '[ "$(verdicts "$HS_TMP/r.json")" = "concept_drift=ok satisfaction=retrain safety_flag_rate=retrain data_drift=retrain model_age=retrain" ]' \
    "verdicts: $(verdicts "$HS_TMP/r.json")"
check '[ "$(hs_json "$HS_TMP/r.json" "round(j[\"criteria\"][1][\"value\"], 3)")" = 0.3 ] && [ "$(hs_json "$HS_TMP/r.json" "round(j[\"criteria\"][2][\"value\"], 3)")" = 0.1 ]' \
    "values: $(cat "$HS_TMP/r.json")"
"$HS_BIN" report retrain --store "$bad" >"$HS_TMP/r.txt" 2>&1
check 'grep -q "^satisfaction *retrain *30.0% thumbs up (3 up, 7 down" "$HS_TMP/r.txt" && grep -q "retraining is recommended" "$HS_TMP/r.txt"' \
    "the table: $(cat "$HS_TMP/r.txt")"

good=$HS_TMP/good.db
mkstore "$good"
seed "$good" 100 2 9 1 STABLE STABLE
"$HS_BIN" report retrain --store "$good" --json >"$HS_TMP/g.json" 2>"$HS_TMP/g.err"
rc=$?
check '[ $rc -eq 0 ]' "a healthy model: exit $rc: $(cat "$HS_TMP/g.err")"
check '[ "$(verdicts "$HS_TMP/g.json")" = "concept_drift=ok satisfaction=ok safety_flag_rate=ok data_drift=ok model_age=unknown" ]' \
    "verdicts: $(verdicts "$HS_TMP/g.json")"

empty=$HS_TMP/empty.db
mkstore "$empty"
"$HS_BIN" report retrain --store "$empty" --json >"$HS_TMP/e.json" 2>&1
rc=$?
check '[ $rc -eq 0 ] && [ "$(verdicts "$HS_TMP/e.json")" = "concept_drift=unknown satisfaction=unknown safety_flag_rate=unknown data_drift=unknown model_age=unknown" ]' \
    "an empty store: exit $rc $(verdicts "$HS_TMP/e.json")"

"$HS_BIN" report retrain --store "$good" --trained 2020-13-45 >/dev/null 2>"$HS_TMP/x.err"
rc=$?
check '[ $rc -eq 2 ] && [ "$(wc -l <"$HS_TMP/x.err")" -eq 1 ]' "a bad date: exit $rc $(cat "$HS_TMP/x.err")"
"$HS_BIN" report retrain --store "$HS_TMP/none.db" >/dev/null 2>"$HS_TMP/x.err"
rc=$?
check '[ $rc -eq 1 ] && [ ! -e "$HS_TMP/none.db" ]' "a missing store: exit $rc"
"$HS_BIN" report weekly >/dev/null 2>&1
rc=$?
check '[ $rc -eq 2 ]' "an unknown report: exit $rc"
hs_finish "report retrain: each criterion with its value and verdict"
