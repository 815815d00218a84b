#!/usr/bin/env bash
# hestia assess: one scenario to several agents, in parallel, on an OpenAI-compatible server.
#  1. against `hestia serve` (stories260K, or a synthetic model) with --model and an agents
#     file of 3 agents made here: --json parses, every agent answered with content and
#     tokens; the table names every agent; without --model the server's first model is used;
#  2. against a loopback mock of another vendor's server (tools/mock_openai.py) that answers
#     with what it received: each agent's answer carries its own system prompt and the
#     scenario, the key is sent, a schema goes as response_format json_schema, 503s are
#     retried, the agent listed by the server under its own id is asked by that id, and a
#     model the server refuses fails every agent (exit 1, the table still printed);
#  3. bad input: an unknown flag, a missing or malformed scenario, a missing agents file,
#     an unreachable backend: a non-zero exit and one line on stderr, nothing on stdout.
. "$(dirname "$0")/lib.sh"
hs_require_bin
"$HS_BIN" assess --help >/dev/null 2>&1 || skip "this hestia has no 'assess' command yet"

cat >"$HS_TMP/agents.yaml" <<'EOF'
agents:
  - id: fire-chief
    name: Fire Chief
    role: Leads fire suppression.
    system_prompt: You are the fire chief. Say what the fire will do next.
    sampling: {max_tokens: 24}
  - id: police-chief
    name: Police Chief
    role: Closes roads and runs evacuations.
    system_prompt: You are the police chief. Say which roads to close.
  - id: chem-engineer
    name: Chemical Engineer
    role: Keeps the chemical plant safe.
    system_prompt: You are the plant's safety engineer. Rate the risk.
    schema:
      type: object
      properties:
        risk: {type: string, enum: [low, high]}
      required: [risk]
EOF
cat >"$HS_TMP/scenario.json" <<'EOF'
{"title": "Wildfire near a chemical plant", "location": "Aspropyrgos, Attica",
 "time": "2025-07-23T15:40+03:00", "description": "A wind-driven fire is 3 km from the plant.",
 "wind": {"from": "NW", "kmh": 50}}
EOF

# one_line_error NAME RC_WANT_NONZERO: the last run printed exactly one line on stderr and
# nothing on stdout, and exited non-zero.
one_line_error() {
    local what=$1 rc=$2 lines
    lines=$(wc -l <"$HS_TMP/err")
    check '[ "$rc" -ne 0 ]' "$what: exit 0, want non-zero"
    check '[ "$lines" -eq 1 ]' "$what: $lines lines on stderr, want 1: $(head -c 400 "$HS_TMP/err")"
    check '[ ! -s "$HS_TMP/out" ]' "$what: wrote to stdout: $(head -c 200 "$HS_TMP/out")"
}

# ---------------------------------------------------------------------------
# 1. hestia itself
if "$HS_BIN" serve --help >/dev/null 2>&1; then
    if [ -f "$HS_SHARED/models/stories260K.gguf" ]; then
        model=$(hs_model_stories)
    else
        echo "note: stories260K is absent; using a synthetic model"
        model=$(hs_model_tiny) || exit 1
    fi
    hs_start h -m "$model" --alias tiny --parallel 3 --ctx 512 || exit 1
    "$HS_BIN" assess --backend "${HS_URL[h]}/v1" --model tiny --agents "$HS_TMP/agents.yaml" \
        --max-tokens 16 --temperature 0 --seed 1 --timeout 120 --json "$HS_TMP/scenario.json" \
        >"$HS_TMP/h.json" 2>"$HS_TMP/h.err"
    rc=$?
    check '[ "$rc" -eq 0 ]' "assess against hestia: exit $rc: $(head -c 600 "$HS_TMP/h.err") $(head -c 1500 "$HS_TMP/h.json")"
    python3 - "$HS_TMP/h.json" "${HS_URL[h]}/v1" <<'EOF' || fail "assess --json against hestia: see above"
import json, sys
j = json.load(open(sys.argv[1], encoding="utf-8"))
assert j["backend"] == sys.argv[2], "backend %r" % j["backend"]
assert j["scenario"]["title"] == "Wildfire near a chemical plant", "scenario %r" % j["scenario"]
assert j["wall_ms"] > 0
ids = [a["id"] for a in j["agents"]]
assert ids == ["fire-chief", "police-chief", "chem-engineer"], "agents %r" % ids
for a in j["agents"]:
    assert a["status"] == "ok" and a["error"] is None, "%s: %s %s" % (a["id"], a["status"], a["error"])
    assert a["model"] == "tiny", "%s: model %r" % (a["id"], a["model"])
    assert isinstance(a["content"], str) and a["content"], "%s: no content" % a["id"]
    assert a["prompt_tokens"] > 0 and 0 < a["completion_tokens"] <= 16, "%s: tokens %r/%r" % (
        a["id"], a["prompt_tokens"], a["completion_tokens"])
    assert 0 < a["ttft_ms"] <= a["latency_ms"], "%s: ttft %r latency %r" % (a["id"], a["ttft_ms"], a["latency_ms"])
    assert a["name"], a["id"]
# the agent with a schema: the server enforces it, so the answer parses and validates
chem = j["agents"][2]
assert chem["parsed"] is not None and chem["parsed"].get("risk") in ("low", "high"), "chem: %r" % chem["content"]
assert chem["schema_valid"] is True, "chem: schema_valid %r" % chem["schema_valid"]
assert j["agents"][0]["schema_valid"] is None
EOF
    # the table, without --model: the server's first listed model answers every agent
    first=$(curl -s --max-time 10 "${HS_URL[h]}/v1/models" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')
    "$HS_BIN" assess --backend "${HS_URL[h]}" --agents "$HS_TMP/agents.yaml" --only police-chief,fire-chief \
        --max-tokens 8 --parallel 1 "$HS_TMP/scenario.json" >"$HS_TMP/table.txt" 2>"$HS_TMP/table.err"
    rc=$?
    check '[ "$rc" -eq 0 ]' "assess table against hestia: exit $rc: $(head -c 600 "$HS_TMP/table.err")"
    check 'head -n 1 "$HS_TMP/table.txt" | grep -q "agent .*model .*status .*TTFT ms .*latency ms"' \
        "table header: $(head -n 1 "$HS_TMP/table.txt")"
    check 'grep -qE "^fire-chief +$first +ok" "$HS_TMP/table.txt"' "table: no ok row for fire-chief on $first: $(head -n 4 "$HS_TMP/table.txt")"
    check 'grep -qE "^police-chief +$first +ok" "$HS_TMP/table.txt"' "table: no ok row for police-chief"
    check '! grep -q "^chem-engineer" "$HS_TMP/table.txt"' "table: --only let chem-engineer through"
    check 'grep -q "^== Police Chief \[police-chief\] ==" "$HS_TMP/table.txt"' "table: no answer heading for police-chief"
    check 'grep -q "2 of 2 agents answered" "$HS_TMP/table.txt"' "table: no summary line"
    hs_stop h
else
    echo "note: this hestia has no working 'serve'; part 1 skipped"
fi

# ---------------------------------------------------------------------------
# 2. a loopback mock of another server
hs_mock mock --fail-first 2 --models vendor-model,police-chief
mlog=$HS_TMP/mock.log
M=${HS_MOCK_URL[mock]}/v1

HESTIA_API_KEY=sk-mock-123 "$HS_BIN" assess --backend "$M" --agents "$HS_TMP/agents.yaml" --json \
    "$HS_TMP/scenario.json" >"$HS_TMP/m.json" 2>"$HS_TMP/m.err"
rc=$?
check '[ "$rc" -eq 0 ]' "assess against the mock: exit $rc: $(head -c 600 "$HS_TMP/m.err")"
python3 - "$HS_TMP/m.json" "$mlog" <<'EOF' || fail "assess against the mock: see above"
import json, sys
j = json.load(open(sys.argv[1], encoding="utf-8"))
log = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
prompts = {  # as written in agents.yaml above
    "fire-chief": "You are the fire chief. Say what the fire will do next.",
    "police-chief": "You are the police chief. Say which roads to close.",
    "chem-engineer": "You are the plant's safety engineer. Rate the risk.",
}
by_id = {a["id"]: a for a in j["agents"]}
assert set(by_id) == set(prompts), by_id.keys()
want_model = {"fire-chief": "vendor-model", "police-chief": "police-chief", "chem-engineer": "vendor-model"}
for aid, a in by_id.items():
    assert a["status"] == "ok", "%s: %s" % (aid, a["error"])
    echo = a["parsed"]  # the mock's answer: what this agent's request carried
    assert echo["system"] == prompts[aid], "%s got the system prompt %r" % (aid, echo["system"])
    assert echo["user_head"].startswith("Title: Wildfire near a chemical plant\nLocation: Aspropyrgos"), echo["user_head"]
    assert echo["model"] == want_model[aid] == a["model"], "%s: model %r / %r" % (aid, echo["model"], a["model"])
    assert a["prompt_tokens"] > 0 and a["completion_tokens"] > 0
chats = [e for e in log if e["path"] == "/v1/chat/completions"]
assert len(chats) == 5, "%d chat requests, want 3 + 2 retried after 503" % len(chats)
assert sum(a["attempts"] for a in j["agents"]) == 5, [a["attempts"] for a in j["agents"]]
assert all(e["authorization"] == "Bearer sk-mock-123" for e in log), "a request without the key"
sent = {}
for e in chats:
    b = e["body"]
    msgs = b["messages"]
    assert [m["role"] for m in msgs] == ["system", "user"], msgs
    assert b["stream"] is True and b["stream_options"] == {"include_usage": True}
    sent[msgs[0]["content"]] = b
assert set(sent) == set(prompts.values()), "the mock did not receive every system prompt"
chem = sent[prompts["chem-engineer"]]
rf = chem["response_format"]
assert rf["type"] == "json_schema" and rf["json_schema"]["name"] == "chem-engineer", rf
assert rf["json_schema"]["schema"]["required"] == ["risk"], rf
assert "response_format" not in sent[prompts["fire-chief"]]
assert sent[prompts["fire-chief"]]["max_tokens"] == 24 and sent[prompts["police-chief"]]["max_tokens"] == 512
# the mock's answer has no "risk": the chem agent answered, but not to its schema
assert by_id["chem-engineer"]["schema_valid"] is False and by_id["fire-chief"]["schema_valid"] is None
EOF

# a model the server refuses: every agent fails with its message, the table is still printed
"$HS_BIN" assess --backend "$M" --model broken --agents "$HS_TMP/agents.yaml" "$HS_TMP/scenario.json" \
    >"$HS_TMP/b.txt" 2>"$HS_TMP/b.err"
rc=$?
check '[ "$rc" -eq 1 ]' "assess with a refused model: exit $rc, want 1"
check '[ "$(grep -cE " failed " "$HS_TMP/b.txt")" -eq 3 ]' "refused model: not 3 failed rows: $(head -n 5 "$HS_TMP/b.txt")"
check 'grep -q "HTTP 400: model .broken. is not loaded" "$HS_TMP/b.txt"' "refused model: the server's message is missing"

# the scenario from stdin, as text
echo "A ferry is on fire off Piraeus." | "$HS_BIN" assess --backend "$M" --agents "$HS_TMP/agents.yaml" \
    --only fire-chief --json - >"$HS_TMP/s.json" 2>"$HS_TMP/s.err"
rc=$?
check '[ "$rc" -eq 0 ]' "assess from stdin: exit $rc: $(cat "$HS_TMP/s.err")"
check '[ "$(hs_json "$HS_TMP/s.json" "j[\"agents\"][0][\"parsed\"][\"user_head\"]")" = "A ferry is on fire off Piraeus." ]' \
    "stdin scenario: $(hs_json "$HS_TMP/s.json" 'j["agents"][0]["parsed"]')"

# ---------------------------------------------------------------------------
# 3. bad input
"$HS_BIN" assess --backend "$M" --frobnicate "$HS_TMP/scenario.json" >"$HS_TMP/out" 2>"$HS_TMP/err"
rc=$?
one_line_error "an unknown flag" "$rc"
check '[ "$rc" -eq 2 ]' "an unknown flag: exit $rc, want 2"
"$HS_BIN" assess --backend "$M" --agents "$HS_TMP/agents.yaml" "$HS_TMP/no-such.json" >"$HS_TMP/out" 2>"$HS_TMP/err"
one_line_error "a missing scenario" $?
echo '{"title": ' >"$HS_TMP/broken.json"
"$HS_BIN" assess --backend "$M" --agents "$HS_TMP/agents.yaml" "$HS_TMP/broken.json" >"$HS_TMP/out" 2>"$HS_TMP/err"
one_line_error "a malformed scenario" $?
"$HS_BIN" assess --backend "$M" --agents "$HS_TMP/none.yaml" "$HS_TMP/scenario.json" >"$HS_TMP/out" 2>"$HS_TMP/err"
one_line_error "a missing agents file" $?
"$HS_BIN" assess --backend "$M" --agents "$HS_TMP/agents.yaml" --only nobody "$HS_TMP/scenario.json" \
    >"$HS_TMP/out" 2>"$HS_TMP/err"
one_line_error "--only an unknown agent" $?
"$HS_BIN" assess --agents "$HS_TMP/agents.yaml" "$HS_TMP/scenario.json" >"$HS_TMP/out" 2>"$HS_TMP/err"
one_line_error "no --backend" $?
# a port where nothing listens (bound, read, released)
dead=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
"$HS_BIN" assess --backend "http://127.0.0.1:$dead/v1" --agents "$HS_TMP/agents.yaml" --model x \
    "$HS_TMP/scenario.json" >"$HS_TMP/out" 2>"$HS_TMP/err"
one_line_error "an unreachable backend" $?
check 'grep -q "127.0.0.1:$dead" "$HS_TMP/err"' "unreachable backend: the message does not name it: $(cat "$HS_TMP/err")"

hs_finish assess
