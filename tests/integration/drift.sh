#!/usr/bin/env bash
# hestia drift data|concept against a running hestia serve (stories260K, or the
# synthetic model when ../shared is absent), through its serving path:
#  - data: prompts about fires against prompts about cooking (a topic shift)
#    -> exit 3, DRIFTED, p < 0.05; against other prompts about fires -> exit 0,
#    STABLE; --json is one document; the runs are in the store's drift_runs;
#  - concept: a 5-item reference set whose first two expected answers are the
#    server's own greedy answers (asked with curl beforehand) -> 2 of 5 right (40%;
#    the synthetic model answers blanks: 0 of 5); --record keeps it in the store;
#    --recorded 100 -> the drop (60 points), exit 3, and exit 0 under a higher
#    --threshold; without --recorded the store's accuracy is the reference -> exit 0;
#  - bad input: one line on stderr, exit 2 for usage, 1 for an unreadable file.
. "$(dirname "$0")/lib.sh"
hs_require_bin
hs_require_serve
"$HS_BIN" drift --help >/dev/null 2>&1 || skip "this hestia has no 'drift' command yet"
if [ -f "$HS_SHARED/models/stories260K.gguf" ]; then
    model=$(hs_model_stories)
else
    model=$(hs_model_tiny) || exit 1
fi
hs_start d -m "$model" --alias m || exit 1
url=${HS_URL[d]}
db=$HS_TMP/drift.db

# ---- the prompt sets, from word grids: the reference and the no-shift set are
# two disjoint random draws from one grid of fire sentences, the shifted set
# comes from a grid of cooking sentences
python3 tests/integration/tools/topic_prompts.py "$HS_TMP" || fail "topic_prompts.py failed"

data() {
    "$HS_BIN" drift data --backend "$url" --model m --reference "$HS_TMP/ref.txt" --permutations 200 \
        --store "$db" "$@" >"$HS_TMP/out" 2>"$HS_TMP/err"
}

# ---- data drift: a topic shift
data --current "$HS_TMP/cook.txt"
rc=$?
check '[ $rc -eq 3 ]' "fires -> cooking: exit $rc, want 3 (DRIFTED); $(cat "$HS_TMP/out" "$HS_TMP/err")"
check 'grep -q "^verdict *DRIFTED" "$HS_TMP/out"' "fires -> cooking: no DRIFTED verdict"
data --current "$HS_TMP/cook.txt" --json
rc=$?
check '[ $rc -eq 3 ]' "fires -> cooking --json: exit $rc, want 3"
check '[ "$(hs_json "$HS_TMP/out" "j[\"status\"]")" = DRIFTED ]' "--json status: $(head -c 300 "$HS_TMP/out")"
check '[ "$(hs_json "$HS_TMP/out" "j[\"p_value\"] < 0.05")" = true ]' \
    "fires -> cooking: p = $(hs_json "$HS_TMP/out" 'j["p_value"]'), want < 0.05"
check '[ "$(hs_json "$HS_TMP/out" "[j[\"n_ref\"], j[\"n_cur\"], j[\"permutations\"]]")" = "[40, 40, 200]" ]' \
    "--json sizes: $(hs_json "$HS_TMP/out" '[j["n_ref"], j["n_cur"], j["permutations"]]')"
check '[ "$(hs_json "$HS_TMP/out" "j[\"run_id\"] > 0 and j[\"dim\"] > 0")" = true ]' "--json: no run_id or dim"
# ---- no shift (the same kind of prompts, from a JSONL file)
data --current "$HS_TMP/fire.jsonl"
rc=$?
check '[ $rc -eq 0 ]' "fires -> fires: exit $rc, want 0 (STABLE); $(cat "$HS_TMP/out" "$HS_TMP/err")"
check 'grep -q "^verdict *STABLE" "$HS_TMP/out"' "fires -> fires: no STABLE verdict"
check '[ "$(hs_sql "$db" "select group_concat(kind || \":\" || status, \" \") from drift_runs where kind = \"data\" order by id")" = "data:DRIFTED data:DRIFTED data:STABLE" ]' \
    "drift_runs (data): $(hs_sql "$db" 'select kind, status from drift_runs order by id' | tr '\n\t' '; ')"

# ---- concept drift: two expected answers are the server's own greedy ones
ask() {
    python3 - "$1" >"$HS_TMP/chat.json" <<'EOF'
import json, sys
print(json.dumps({"model": "m", "messages": [{"role": "user", "content": sys.argv[1]}],
                  "temperature": 0, "max_tokens": 16}))
EOF
    hs_http POST "$url/v1/chat/completions" "$HS_TMP/chat.json"
    [ "$HTTP_STATUS" = 200 ] || fail "chat: HTTP $HTTP_STATUS"
    hs_json "$HS_TMP/resp.body" 'j["choices"][0]["message"]["content"]'
}
a1=$(ask "Once upon a time")
a2=$(ask "What is the number for the fire brigade?")
# A model that answers only blanks (the synthetic one) gives no expected answer
# to copy: such an item gets one no answer can match, and the accuracy is lower.
python3 - "$a1" "$a2" "$HS_TMP/concept.jsonl" >"$HS_TMP/k" <<'EOF'
import json, sys
own = [a if a.strip() else "Unanswerable placeholder 4242." for a in sys.argv[1:3]]
items = [
    {"id": "story", "question": "Once upon a time", "expected": own[0], "facts": []},
    {"id": "brigade", "question": "What is the number for the fire brigade?", "expected": own[1], "facts": []},
    {"id": "distance", "question": "How far from a gas leak?", "expected": "Keep 50 metres away.",
     "facts": ["zyzzyva 50 metres"]},
    {"question": "What do you do first?", "expected": "Quintessential xylophone quagmire number 1234."},
    {"question": "Which exit?", "expected": "Zebra jukebox 987 quartz.", "facts": ["987 quartz"]},
]
with open(sys.argv[3], "w") as f:
    f.writelines(json.dumps(it) + "\n" for it in items)
print(sum(1 for a in sys.argv[1:3] if a.strip()))
EOF
k=$(cat "$HS_TMP/k")
acc=$((20 * k))
drop=$((100 - acc))
thr=$((drop + 5 > 100 ? 100 : drop + 5))
concept() {
    "$HS_BIN" drift concept --backend "$url" --model m --reference "$HS_TMP/concept.jsonl" --max-tokens 16 \
        --parallel 1 --store "$db" "$@" >"$HS_TMP/out" 2>"$HS_TMP/err"
}
concept --record --json
rc=$?
check '[ $rc -eq 0 ]' "concept --record: exit $rc, want 0; $(cat "$HS_TMP/out" "$HS_TMP/err")"
check '[ "$(hs_json "$HS_TMP/out" "[j[\"n\"], j[\"correct\"], j[\"accuracy\"]]")" = "[5, $k, $acc.0]" ]' \
    "concept: n, correct, accuracy = $(hs_json "$HS_TMP/out" '[j["n"], j["correct"], j["accuracy"]]'), want 5, $k, $acc"
check '[ "$(hs_json "$HS_TMP/out" "[f[\"line\"] for f in j[\"failed\"]][-3:]")" = "[3, 4, 5]" ]' \
    "concept: failed lines $(hs_json "$HS_TMP/out" '[f["line"] for f in j["failed"]]'), want 3 4 5 last"
check '[ "$(hs_sql "$db" "select json_extract(details, \"$.accuracy\") from baselines where name = \"concept_accuracy\"")" = $acc.0 ]' \
    "concept --record: baseline $(hs_sql "$db" 'select details from baselines')"
concept --recorded 100
rc=$?
check '[ $rc -eq 3 ]' "concept --recorded 100: exit $rc, want 3; $(cat "$HS_TMP/out" "$HS_TMP/err")"
check 'grep -q "^drop *$drop.0 points (threshold 15)" "$HS_TMP/out"' "concept --recorded 100: no $drop-point drop in $(cat "$HS_TMP/out")"
check 'grep -q "^verdict *DRIFTED" "$HS_TMP/out"' "concept --recorded 100: no DRIFTED verdict"
check 'grep -q "^failed items:" "$HS_TMP/out" && grep -q "line 3 (distance)" "$HS_TMP/out"' "concept: failed items not listed"
concept --threshold $thr --recorded 100
rc=$?
check '[ $rc -eq 0 ]' "concept --threshold $thr --recorded 100: exit $rc, want 0"
concept
rc=$?
check '[ $rc -eq 0 ]' "concept (recorded from the store): exit $rc, want 0; $(cat "$HS_TMP/out" "$HS_TMP/err")"
check 'grep -q "^recorded *$acc.0% (from the store)" "$HS_TMP/out"' "concept: the store's accuracy not used: $(cat "$HS_TMP/out")"
check '[ "$(hs_sql "$db" "select group_concat(status, \" \") from drift_runs where kind = \"concept\" order by id")" = "STABLE DRIFTED STABLE STABLE" ]' \
    "drift_runs (concept): $(hs_sql "$db" 'select kind, status, score from drift_runs order by id' | tr '\n\t' '; ')"

# ---- bad input: one line on stderr
bad() { # want-rc args...
    local want=$1
    shift
    "$HS_BIN" drift "$@" >"$HS_TMP/out" 2>"$HS_TMP/err"
    local got=$?
    check '[ $got -eq $want ]' "drift $*: exit $got, want $want"
    check '[ "$(wc -l <"$HS_TMP/err")" -eq 1 ] && grep -q "^hestia drift: " "$HS_TMP/err"' \
        "drift $*: stderr is not one 'hestia drift:' line: $(cat "$HS_TMP/err")"
    check '[ ! -s "$HS_TMP/out" ]' "drift $*: wrote to stdout"
}
bad 2 data --backend "$url" --model m --reference "$HS_TMP/ref.txt" --current "$HS_TMP/cook.txt" --bogus
bad 2 data --backend "$url" --model m --reference "$HS_TMP/ref.txt"
bad 2 data --backend "$url" --model m --reference "$HS_TMP/ref.txt" --current "$HS_TMP/cook.txt" --alpha 2
bad 2 concept --backend "$url" --model m --reference "$HS_TMP/concept.jsonl" --record
bad 2 concept --backend "$url" --model m --reference "$HS_TMP/concept.jsonl" --current "$HS_TMP/cook.txt"
bad 2 sideways
bad 1 data --backend "$url" --model m --reference "$HS_TMP/missing.txt" --current "$HS_TMP/cook.txt"
echo '{"prompt": "ok"}' >"$HS_TMP/badfield.jsonl"
echo '{"body": "no prompt here"}' >>"$HS_TMP/badfield.jsonl"
bad 1 data --backend "$url" --model m --reference "$HS_TMP/ref.txt" --current "$HS_TMP/badfield.jsonl"
check 'grep -q "badfield.jsonl:2: " "$HS_TMP/err"' "a bad JSONL line is not named FILE:LINE: $(cat "$HS_TMP/err")"
bad 1 concept --backend "$url" --model m --reference "$HS_TMP/missing.jsonl"
bad 1 data --backend "$url" --model nope --reference "$HS_TMP/ref.txt" --current "$HS_TMP/cook.txt"
hs_stop d
hs_finish drift
