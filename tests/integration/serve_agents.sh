#!/usr/bin/env bash
# Expert agents and LoRA adapters in `hestia serve`, on a small synthetic base
# with random adapters made here (runs anywhere):
#  - /v1/models lists the model, its adapters (with their parent) and the
#    agents; /v1/agents describes every agent;
#  - a request naming an agent, an adapter, or the base with "lora" answers
#    exactly (greedy, same bits) what it answers alone when all of them run
#    at once in one batch; the adapters really change the answer; an adapter
#    named as the model equals the base with that adapter in "lora";
#  - structured output: an agent with a schema and a request with
#    response_format json_schema always give JSON that validates;
#  - POST /v1/assess: every agent's answer, together and streamed; each
#    agent's request is its own record, with the agent and the parent id;
#  - /admin/adapters: unload while a stream uses the adapter leaves that
#    stream exactly as it is alone; afterwards the adapter is refused; load
#    it again; an adapter for another base and a taken name are refused;
#  - bad agent configurations stop `hestia serve` with the file and line.
. "$(dirname "$0")/lib.sh"
hs_require_bin
hs_require_serve
command -v sqlite3 >/dev/null || skip "the sqlite3 command is needed"

d=$HS_TMP/agents
mkdir -p "$d"
"$HS_BIN" synth -o "$d/base.gguf" --n-embd 64 --n-layer 2 --n-head 4 --n-head-kv 2 --n-ff 96 --n-vocab 300 \
    --untied -q 2>"$d/err" || fail "synth: $(cat "$d/err")"
for spec in "a 1" "b 2" "c 3"; do
    set -- $spec
    python3 tests/integration/tools/peft_random.py "$d/peft-$1" 64 "$2" 0.3 || fail "peft $1"
    "$HS_BIN" lora convert "$d/peft-$1" --base "$d/base.gguf" -o "$d/$1.gguf" 2>"$d/err" ||
        fail "lora convert $1: $(cat "$d/err")"
done
# a wider base, for which these adapters are "for another base model"
"$HS_BIN" synth -o "$d/wide.gguf" --n-embd 128 --n-layer 2 --n-head 4 --n-head-kv 2 --n-ff 96 --n-vocab 300 \
    --untied -q 2>/dev/null || fail "synth wide"
cat >"$d/agents.yaml" <<'EOF'
adapters:
  - name: lora-a
    path: AGENTS_DIR/a.gguf
  - name: lora-b
    path: AGENTS_DIR/b.gguf
    scale: 0.7
agents:
  - id: alpha
    name: Alpha expert
    role: first test persona
    expertise: nothing in particular
    system_prompt: You are alpha.
    adapters: [lora-a]
    sampling: { temperature: 0, max_tokens: 24 }
  - id: beta
    name: Beta expert
    system_prompt: You are beta.
    adapters:
      - { name: lora-b, scale: 1.5 }
      - lora-a
    sampling: { temperature: 0, max_tokens: 24 }
  - id: plain
    name: Plain persona
    system_prompt: You are plain.
    sampling: { temperature: 0, max_tokens: 24 }
  - id: structured
    name: Structured expert
    system_prompt: You answer in JSON.
    adapters: [lora-a]
    sampling: { temperature: 1.0, max_tokens: 120 }
    schema:
      type: object
      properties:
        risk_level: { type: string, enum: [low, moderate, high, critical] }
        actions: { type: array, items: { type: string, maxLength: 12 }, maxItems: 3 }
        confidence: { type: number }
        evacuate: { type: boolean }
      required: [risk_level, actions, confidence, evacuate]
EOF
sed -i "s|AGENTS_DIR|$d|g" "$d/agents.yaml"

hs_start ag -m "$d/base.gguf" --alias base --agents "$d/agents.yaml" --parallel 8 --ctx 512 || exit 1
url=${HS_URL[ag]}
db=${HS_DB[ag]}

python3 - "$url" "$d" <<'PY' || fail "see above"
import json, sys, threading, urllib.request, urllib.error
url, d = sys.argv[1], sys.argv[2]
errors = []
def err(msg):
    errors.append(msg)
    print("FAIL:", msg)

def call(path, body=None, method=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method or ("POST" if data else "GET"),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")

# --- listings
st, models = call("/v1/models")
ids = {m["id"]: m for m in models["data"]}
for want in ("base", "lora-a", "lora-b", "alpha", "beta", "plain", "structured"):
    if want not in ids:
        err("/v1/models lacks %s: %s" % (want, sorted(ids)))
if ids.get("lora-a", {}).get("parent") != "base" or ids.get("alpha", {}).get("parent") != "base":
    err("adapters and agents must name their parent model: %r" % ids.get("lora-a"))
st, one = call("/v1/models/alpha")
if st != 200 or one.get("hestia", {}).get("kind") != "agent":
    err("/v1/models/alpha: %s %r" % (st, one))
st, agents = call("/v1/agents")
byid = {a["id"]: a for a in agents["data"]}
if sorted(byid) != ["alpha", "beta", "plain", "structured"]:
    err("/v1/agents: %r" % sorted(byid))
if byid.get("beta", {}).get("adapters") != [{"name": "lora-b", "scale": 1.5}, {"name": "lora-a", "scale": None}]:
    err("/v1/agents beta adapters: %r" % byid.get("beta", {}).get("adapters"))

# --- exactness: alone, then all at once
msgs = [{"role": "user", "content": "The river is rising near the bridge."}]
reqs = {
    "alpha": {"model": "alpha", "messages": msgs},
    "beta": {"model": "beta", "messages": msgs},
    "plain": {"model": "plain", "messages": msgs},
    "adapter-as-model": {"model": "lora-a", "messages": msgs, "max_tokens": 24, "temperature": 0},
    "base+lora": {"model": "base", "messages": msgs, "max_tokens": 24, "temperature": 0,
                  "lora": [{"name": "lora-a"}]},
    "base+ids": {"model": "base", "messages": msgs, "max_tokens": 24, "temperature": 0,
                 "lora": [{"id": 1, "scale": 0.5}, {"id": 0, "scale": -1}]},
    "base": {"model": "base", "messages": msgs, "max_tokens": 24, "temperature": 0},
}
for r in reqs.values():
    r["ignore_eos"] = True
alone = {}
for k, r in reqs.items():
    st, j = call("/v1/chat/completions", r)
    if st != 200:
        err("%s alone: HTTP %s %r" % (k, st, j))
        continue
    alone[k] = j["choices"][0]["message"]["content"]
together = {}
def run(k, r):
    st, j = call("/v1/chat/completions", r)
    together[k] = j["choices"][0]["message"]["content"] if st == 200 else "HTTP %s" % st
for rnd in range(2):
    ths = [threading.Thread(target=run, args=(k, r)) for k, r in reqs.items()]
    for t in ths: t.start()
    for t in ths: t.join()
    for k in reqs:
        if together.get(k) != alone.get(k):
            err("%s: in a mixed batch %r, alone %r" % (k, together.get(k), alone.get(k)))
if alone.get("adapter-as-model") != alone.get("base+lora"):
    err("an adapter named as the model differs from the base with it in lora")
if alone.get("base+lora") == alone.get("base"):
    err("the adapter changed nothing: %r" % alone.get("base"))
if alone.get("base+ids") in (alone.get("base"), alone.get("base+lora")):
    err("adapters by id changed nothing")

# --- structured output
def check_doc(txt, where):
    try:
        doc = json.loads(txt)
    except Exception as e:
        err("%s: not JSON (%s): %r" % (where, e, txt))
        return
    ok = (isinstance(doc, dict) and doc.get("risk_level") in ("low", "moderate", "high", "critical")
          and isinstance(doc.get("actions"), list) and len(doc["actions"]) <= 3
          and all(isinstance(a, str) and len(a) <= 12 for a in doc["actions"])
          and isinstance(doc.get("confidence"), (int, float)) and not isinstance(doc.get("confidence"), bool)
          and isinstance(doc.get("evacuate"), bool))
    if not ok:
        err("%s: does not validate: %r" % (where, txt))
for seed in range(8):
    st, j = call("/v1/chat/completions", {"model": "structured", "messages": msgs, "seed": seed})
    if st != 200:
        err("structured agent: HTTP %s %r" % (st, j))
        continue
    check_doc(j["choices"][0]["message"]["content"], "structured agent seed %d" % seed)
schema = {"type": "object", "properties": {"n": {"type": "integer"}, "tags": {"type": "array",
          "items": {"type": "string", "enum": ["fire", "flood"]}, "maxItems": 2}}, "required": ["n", "tags"]}
for seed in range(4):
    st, j = call("/v1/chat/completions", {"model": "base", "messages": msgs, "seed": seed, "temperature": 1,
                 "max_tokens": 60, "response_format": {"type": "json_schema",
                 "json_schema": {"name": "t", "schema": schema}}})
    txt = j["choices"][0]["message"]["content"] if st == 200 else None
    try:
        doc = json.loads(txt)
        assert isinstance(doc["n"], int) and all(t in ("fire", "flood") for t in doc["tags"]) and len(doc["tags"]) <= 2
    except Exception as e:
        err("response_format json_schema seed %d: %s %r" % (seed, st, txt))
st, j = call("/v1/chat/completions", {"model": "base", "messages": msgs, "max_tokens": 60,
             "response_format": {"type": "json_object"}, "temperature": 1, "seed": 3})
try:
    assert isinstance(json.loads(j["choices"][0]["message"]["content"]), dict)
except Exception:
    err("json_object: %s %r" % (st, j))
st, j = call("/v1/chat/completions", {"model": "base", "messages": msgs, "response_format": {"type": "json_schema",
             "json_schema": {"name": "t", "schema": {"$ref": "#/x"}}}})
if st != 400 or j["error"]["param"] != "response_format.json_schema.schema":
    err("an unsupported schema: %s %r" % (st, j))

# --- bad names
st, j = call("/v1/chat/completions", {"model": "base", "messages": msgs, "lora": [{"name": "nope"}]})
if st != 404 or j["error"]["param"] != "lora[0].name":
    err("unknown adapter in lora: %s %r" % (st, j))
st, j = call("/v1/chat/completions", {"model": "base", "messages": msgs, "lora": [{"id": 7}]})
if st != 404 or j["error"]["param"] != "lora[0].id":
    err("unknown adapter id: %s %r" % (st, j))
st, j = call("/v1/embeddings", {"model": "alpha", "input": "x"})
if st != 400:
    err("embeddings from an agent: %s %r" % (st, j))

# --- /v1/assess
st, a = call("/v1/assess", {"scenario": {"title": "Flood", "description": "The river is rising."}})
if st != 200 or a.get("object") != "assessment" or len(a.get("agents", [])) != 4:
    err("/v1/assess: %s %r" % (st, a))
else:
    for r in a["agents"]:
        if r["status"] != 200 or not isinstance(r["content"], str) or r["usage"]["completion_tokens"] < 1 \
                or r["latency_ms"] is None:
            err("/v1/assess agent %r" % r)
    s = [r for r in a["agents"] if r["agent"] == "structured"][0]
    if not isinstance(s.get("parsed"), dict):
        err("/v1/assess: the structured agent's answer is not parsed: %r" % s)
    open(d + "/assess_id", "w").write(a["id"])
st, a = call("/v1/assess", {"scenario": "x", "agents": ["alpha", "ghost"]})
if st != 404 or a["error"]["param"] != "agents[1]":
    err("/v1/assess unknown agent: %s %r" % (st, a))
st, a = call("/v1/assess", {"agents": ["alpha"]})
if st != 400 or a["error"]["param"] != "scenario":
    err("/v1/assess without scenario: %s %r" % (st, a))
req = urllib.request.Request(url + "/v1/assess", data=json.dumps({"scenario": "Smoke over the port.",
                             "agents": ["plain", "alpha"], "stream": True, "max_tokens": 8}).encode(),
                             headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=120) as r:
    lines = [l for l in r.read().decode().split("\n") if l]
events = [json.loads(l[6:]) for l in lines if l.startswith("data: ") and l != "data: [DONE]"]
if lines[-1] != "data: [DONE]" or [e["object"] for e in events] != ["assessment.agent"] * 2 + ["assessment"] \
        or sorted(e["result"]["agent"] for e in events[:2]) != ["alpha", "plain"]:
    err("/v1/assess stream: %r" % lines)

# --- admin: load errors
st, j = call("/admin/adapters", {"name": "lora-a", "path": d + "/c.gguf"})
if st != 409:
    err("a taken name: %s %r" % (st, j))
st, j = call("/admin/adapters", {"name": "alpha", "path": d + "/c.gguf"})
if st != 409:
    err("an agent's name: %s %r" % (st, j))
st, j = call("/admin/adapters", {"name": "lora-x", "path": d + "/missing.gguf"})
if st != 400:
    err("a missing file: %s %r" % (st, j))
st, j = call("/admin/adapters", {"name": "lora-c", "path": d + "/c.gguf", "scale": 0.5})
if st != 201 or j.get("model") != "base":
    err("load lora-c: %s %r" % (st, j))
st, j = call("/v1/chat/completions", {"model": "lora-c", "messages": msgs, "max_tokens": 4})
if st != 200:
    err("a loaded adapter answers: %s %r" % (st, j))

# --- unload during a stream
long = {"model": "alpha", "messages": msgs, "max_tokens": 400, "ignore_eos": True}
st, ref = call("/v1/chat/completions", long)
ref_text = ref["choices"][0]["message"]["content"]
got = {}
def stream():
    body = dict(long, stream=True)
    rq = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                headers={"Content-Type": "application/json"})
    text = []
    with urllib.request.urlopen(rq, timeout=120) as r:
        first = True
        for line in r:
            line = line.decode().strip()
            if first and line.startswith("data: {"):
                first = False
                got["started"] = True
                started.set()
            if line.startswith("data: {"):
                c = json.loads(line[6:])
                if c["choices"]:
                    text.append(c["choices"][0]["delta"].get("content") or "")
    got["text"] = "".join(text)
started = threading.Event()
t = threading.Thread(target=stream)
t.start()
started.wait(60)
st, j = call("/admin/adapters/lora-a", {"wait_s": 0}, method="DELETE")
if st not in (200, 202):
    err("unload: %s %r" % (st, j))
print("unload during the stream: HTTP %s %r" % (st, j))
t.join()
if got.get("text") != ref_text:
    err("the stream changed when its adapter was unloaded: %r vs %r" % (got.get("text"), ref_text))
st, j = call("/v1/chat/completions", {"model": "alpha", "messages": msgs, "max_tokens": 4})
if st != 503 or j["error"]["code"] != "adapter_not_loaded":
    err("an agent whose adapter is gone: %s %r" % (st, j))
st, j = call("/v1/chat/completions", {"model": "lora-a", "messages": msgs, "max_tokens": 4})
if st != 404:
    err("an unloaded adapter as the model: %s %r" % (st, j))
st, j = call("/admin/adapters/lora-a", method="DELETE")
if st != 404:
    err("unloading twice: %s %r" % (st, j))
st, j = call("/admin/adapters", {"name": "lora-a", "path": d + "/a.gguf"})
st2, j2 = call("/v1/chat/completions", long)
if st != 201 or st2 != 200 or j2["choices"][0]["message"]["content"] != ref_text:
    err("reloaded lora-a does not answer as before: %s %s" % (st, st2))
st, lst = call("/admin/adapters")
if sorted(a["id"] for a in lst["data"]) != ["lora-a", "lora-b", "lora-c"]:
    err("GET /admin/adapters: %r" % lst)
sys.exit(1 if errors else 0)
PY

# every agent of the assessment left its own record, pointing at the assessment
aid=$(cat "$d/assess_id" 2>/dev/null)
hs_wait_sql "$db" "SELECT count(*) FROM requests WHERE parent_id = '$aid' AND agent IS NOT NULL" 4 10 ||
    fail "the store lacks the assessment's 4 agent records: $(hs_sql "$db" "SELECT id, agent, parent_id FROM requests WHERE parent_id IS NOT NULL")"
check '[ "$(hs_sql "$db" "SELECT adapters FROM requests WHERE parent_id = '"'$aid'"' AND agent = '"'beta'"'")" = "lora-b:1.5,lora-a:1" ]' \
    "beta's adapters in the record: $(hs_sql "$db" "SELECT agent, adapters FROM requests WHERE parent_id = '$aid'")"
hs_stop ag

# bad configurations stop the server at load, naming the file and the line
bad() { # $1 label, $2 expected text; the yaml on stdin
    cat >"$d/bad.yaml"
    timeout 60 "$HS_BIN" serve -m "$d/base.gguf" --agents "$d/bad.yaml" --port 0 --store "$d/bad.db" >"$d/bad.log" 2>&1
    local rc=$?
    [ $rc -ne 0 ] && grep -q "$2" "$d/bad.log" ||
        fail "$1: exit $rc, want an error with '$2': $(tail -n 3 "$d/bad.log")"
}
printf 'agents:\n  - id: x\n    system_prompt: hi\n    adapters: [ghost]\n' |
    bad "unknown adapter" "bad.yaml:2: agents\[0\] (x): unknown adapter 'ghost'"
printf 'agents:\n  - id: x\n    system_prompt: hi\n  - id: x\n    system_prompt: hi\n' |
    bad "duplicate agent id" "bad.yaml:4:.*x"
printf 'adapters:\n  - name: m\n    path: %s/none.gguf\n' "$d" | bad "missing file" "bad.yaml:2: adapters\[0\] (m):.*none.gguf"
printf 'adapters:\n  - name: w\n    path: %s/a.gguf\n' "$d" >"$d/wide.yaml"
timeout 60 "$HS_BIN" serve -m "$d/wide.gguf" --agents "$d/wide.yaml" --port 0 --store "$d/bad.db" >"$d/bad.log" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q "wide.yaml:2" "$d/bad.log" && grep -q "another base" "$d/bad.log" ||
    fail "adapter for another base: exit $rc: $(tail -n 3 "$d/bad.log")"
hs_finish "agents and adapters: listings, exact mixed batches, structured output, assess, admin, bad configs"
