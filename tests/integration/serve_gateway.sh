#!/usr/bin/env bash
# The gateway path: hestia A serves stories260K (or a synthetic model) with an API key; hestia B's config
# has an upstream model "remote" pointing at A's /v1 with that key. Through B:
#  - completions, chat (streamed and not) and embeddings equal the same requests
#    sent to A directly (greedy), streaming passed through to [DONE];
#  - B validates before forwarding (a bad request never reaches A);
#  - B records each request in its own store (backend = the upstream URL, tokens
#    from the upstream's usage), A records the forwarded ones under its key, and the
#    x-request-id B gives the client is the one A saw;
#  - B's /v1/models lists "remote" and /metrics counts it;
#  - with A down, B answers 502 with an error object (streamed or not) and records it.
. "$(dirname "$0")/lib.sh"
hs_require_bin
hs_require_serve
if [ -f "$HS_SHARED/models/stories260K.gguf" ]; then
    model=$(hs_model_stories)
else
    echo "note: stories260K is absent; using a synthetic model"
    model=$(hs_model_tiny) || exit 1
fi
name=$(basename "$model" .gguf)
tiny=$(hs_model_tiny) || exit 1

"$HS_BIN" keys create --name gateway --scope user --store "$HS_TMP/a.db" >"$HS_TMP/key" 2>"$HS_TMP/key.err" ||
    { echo "FAIL: keys create: $(cat "$HS_TMP/key.err")"; exit 1; }
key=$(tr -d '\n' <"$HS_TMP/key")
hs_start a -m "$model" --parallel 2 --ctx 256 || exit 1
cat >"$HS_TMP/b.yaml" <<EOF
models:
  - name: remote
    upstream:
      url: ${HS_URL[a]}/v1
      api_key: $key
      model: $name
EOF
hs_start b -m "$tiny" --alias localtiny --parallel 1 --ctx 128 --config "$HS_TMP/b.yaml" || exit 1
A=${HS_URL[a]} B=${HS_URL[b]}
auth=(-H "Authorization: Bearer $key")

# answer FILE: the text of a completion/chat body or of an SSE stream of chunks
# (prints "!DONE-MISSING" when a stream does not end with data: [DONE]).
answer() {
    python3 - "$1" <<'EOF'
import json, sys
raw = open(sys.argv[1], encoding="utf-8").read()
def text_of(c):
    if "text" in c: return c["text"] or ""
    if "message" in c: return c["message"].get("content") or ""
    return (c.get("delta") or {}).get("content") or ""
if raw.lstrip().startswith("{"):
    j = json.loads(raw)
    print("".join(text_of(c) for c in j["choices"]), end="")
else:
    data = [l[6:] for l in raw.split("\n") if l.startswith("data: ")]
    if not data or data[-1] != "[DONE]":
        print("!DONE-MISSING", end="")
    out = []
    for d in data[:-1]:
        for c in json.loads(d).get("choices", []):
            out.append(text_of(c))
    print("".join(out), end="")
EOF
}

same() { # WHAT ENDPOINT BODY-WITH-MODEL-PLACEHOLDER
    local what=$1 ep=$2 body=$3
    hs_http POST "$A$ep" -d "${body//@MODEL@/$name}" "${auth[@]}"
    local sa=$HTTP_STATUS
    answer "$HS_TMP/resp.body" >"$HS_TMP/direct"
    hs_http POST "$B$ep" -d "${body//@MODEL@/remote}"
    local sb=$HTTP_STATUS
    answer "$HS_TMP/resp.body" >"$HS_TMP/gw"
    if [ "$sa" != 200 ] || [ "$sb" != 200 ]; then
        fail "$what: HTTP $sa direct, $sb through the gateway: $(head -c 300 "$HS_TMP/resp.body")"
        return
    fi
    [ "$(hs_header x-request-id)" != "" ] || fail "$what: no x-request-id from the gateway"
    grep -q '!DONE-MISSING' "$HS_TMP/gw" && fail "$what: the gateway's stream does not end with data: [DONE]"
    [ -s "$HS_TMP/direct" ] || fail "$what: the direct answer is empty"
    cmp -s "$HS_TMP/direct" "$HS_TMP/gw" || {
        fail "$what: the gateway's answer differs from A's"
        echo "  direct:  $(head -c 200 "$HS_TMP/direct")"
        echo "  gateway: $(head -c 200 "$HS_TMP/gw")"
    }
}
msgs='"messages":[{"role":"user","content":"Tell me about a dog."}]'
same "completion" /v1/completions '{"model":"@MODEL@","prompt":"Once upon a time","max_tokens":24,"temperature":0}'
same "completion, streamed" /v1/completions '{"model":"@MODEL@","prompt":"Once upon a time","max_tokens":24,"temperature":0,"stream":true}'
same "chat" /v1/chat/completions '{"model":"@MODEL@",'"$msgs"',"max_tokens":20,"temperature":0}'
same "chat, streamed with usage" /v1/chat/completions '{"model":"@MODEL@",'"$msgs"',"max_tokens":20,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}'
gw_id=$(hs_header x-request-id)
python3 - "$HS_TMP/resp.body" "$gw_id" <<'EOF' || fail "chat stream through the gateway: $(tail -c 300 "$HS_TMP/resp.body")"
import json, sys
raw = open(sys.argv[1], encoding="utf-8").read()
data = [json.loads(l[6:]) for l in raw.split("\n") if l.startswith("data: ") and l[6:] != "[DONE]"]
assert data and data[-1].get("usage") and data[-1]["usage"]["completion_tokens"] > 0, "usage in the last chunk"
assert all(d["id"] == sys.argv[2] for d in data), "chunk ids == x-request-id"
EOF

# embeddings: same vectors
hs_http POST "$A/v1/embeddings" -d '{"model":"'$name'","input":["hello","a cat"]}' "${auth[@]}"
cp "$HS_TMP/resp.body" "$HS_TMP/emb.a"
hs_http POST "$B/v1/embeddings" -d '{"model":"remote","input":["hello","a cat"]}'
if [ "$HTTP_STATUS" = 200 ]; then
    python3 - "$HS_TMP/emb.a" "$HS_TMP/resp.body" <<'EOF' || fail "embeddings through the gateway differ from A's"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert [d["embedding"] for d in a["data"]] == [d["embedding"] for d in b["data"]]
EOF
else
    fail "embeddings through the gateway: HTTP $HTTP_STATUS $(head -c 200 "$HS_TMP/resp.body")"
fi

# B lists the upstream model; the local one still works beside it.
hs_http GET "$B/v1/models"
[ "$(hs_json "$HS_TMP/resp.body" '"remote" in [m["id"] for m in j["data"]]')" = true ] || fail "B's /v1/models lacks remote: $(head -c 300 "$HS_TMP/resp.body")"
hs_http POST "$B/v1/completions" -d '{"model":"localtiny","prompt":"hi","max_tokens":3}'
[ "$HTTP_STATUS" = 200 ] || fail "B's local model beside the upstream: HTTP $HTTP_STATUS"

# Validation happens at B: nothing reaches A.
a_before=$(hs_sql "${HS_DB[a]}" "SELECT count(*) FROM requests")
hs_http POST "$B/v1/chat/completions" -d '{"model":"remote",'"$msgs"',"temperature":5}'
[ "$HTTP_STATUS" = 400 ] || fail "a bad request to the upstream model: HTTP $HTTP_STATUS, want 400 from B"
[ "$(hs_json "$HS_TMP/resp.body" 'j["error"]["param"]')" = temperature ] || fail "B's 400 does not name temperature"
sleep 0.5
[ "$(hs_sql "${HS_DB[a]}" "SELECT count(*) FROM requests")" = "$a_before" ] || fail "a request B refused reached A"

# Records: B has its own, with the upstream as backend; A has the forwarded ones under the key.
hs_wait_sql "${HS_DB[b]}" "SELECT count(*) FROM requests WHERE model = 'remote' AND status = 200" 5 ||
    fail "B's store: want 5 records of 200s for remote, got '${HS_SQL_LAST:-}'"
bad=$(hs_sql "${HS_DB[b]}" "SELECT id, backend, tokens_in, tokens_out, endpoint FROM requests WHERE model = 'remote' AND status = 200
    AND (backend IS NULL OR backend NOT LIKE '%127.0.0.1:${HS_PORT[a]}%' OR tokens_in <= 0 OR (tokens_out <= 0 AND endpoint != '/v1/embeddings'))")
[ -z "$bad" ] || fail "B's store: records without the upstream backend or tokens: $bad"
ns=$(hs_sql "${HS_DB[b]}" "SELECT count(*) FROM requests WHERE model = 'remote' AND stream = 1")
[ "$ns" = 2 ] || fail "B's store: $ns streamed records for remote, want 2"
hs_wait_sql "${HS_DB[a]}" "SELECT count(*) FROM requests WHERE key_name = 'gateway' AND status = 200" 10 ||
    fail "A's store: want 10 records under the key (5 direct, 5 forwarded), got '${HS_SQL_LAST:-}'"
[ "$(hs_sql "${HS_DB[a]}" "SELECT count(*) FROM requests WHERE id = '$gw_id'")" = 1 ] ||
    fail "A did not record the gateway's request id $gw_id (the id should travel upstream as x-request-id)"
reqs=$(hs_metric_sum "$B" '^hestia:requests_total[{].*model="remote"')
[ "${reqs:-0}" -ge 5 ] || fail "B's /metrics counts ${reqs:-0} requests for remote, want >= 5"

# A down: 502 with an error object, streamed or not, recorded.
hs_stop a
for stream in false true; do
    hs_http POST "$B/v1/chat/completions" -d '{"model":"remote",'"$msgs"',"max_tokens":4,"stream":'$stream'}' -H "x-request-id: e2e-down-$stream"
    [ "$HTTP_STATUS" = 502 ] || fail "upstream down (stream=$stream): HTTP $HTTP_STATUS, want 502"
    t=$(hs_json "$HS_TMP/resp.body" 'sorted(j["error"].keys()) == ["code", "message", "param", "type"] and len(j["error"]["message"]) > 0')
    [ "$t" = true ] || fail "upstream down (stream=$stream): no error object: $(head -c 200 "$HS_TMP/resp.body")"
done
hs_wait_sql "${HS_DB[b]}" "SELECT count(*) FROM requests WHERE id LIKE 'e2e-down-%' AND status = 502" 2 ||
    fail "B's store: the 502s are not recorded (got '${HS_SQL_LAST:-}')"
hs_http GET "$B/health"
[ "$HTTP_STATUS" = 200 ] || fail "B's /health with the upstream down: $HTTP_STATUS (the local model still serves)"
hs_stop b
hs_finish serve_gateway
