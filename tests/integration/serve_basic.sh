#!/usr/bin/env bash
# hestia serve, smoke test with curl on a synthetic model (runs anywhere):
#  - start on a free loopback port (--port 0 --port-file), wait for /health 200;
#  - one chat completion: 200, chat.completion, the x-request-id we sent is the
#    header and the body's id;
#  - one streamed chat completion: data: chunks, a usage chunk, data: [DONE];
#  - keys: after `hestia keys create`, a request without the key is 401 with an
#    OpenAI error object, /health stays open, the key works;
#  - SIGTERM (by PID): exit status 0, and the store holds one record per request.
# The broader API, security, batching and load tests are the other serve_*.sh.
. "$(dirname "$0")/lib.sh"
hs_require_bin
hs_require_serve
command -v sqlite3 >/dev/null || skip "the sqlite3 command is needed"
model=$(hs_model_tiny)
hs_start basic -m "$model" --alias tiny --parallel 2 --ctx 256 || exit 1
url=${HS_URL[basic]}
db=${HS_DB[basic]}
sent=0 # requests that must leave a record (every one but /health)

hs_http GET "$url/health"
check '[ "$HTTP_STATUS" = 200 ]' "/health: HTTP $HTTP_STATUS"
check '[ "$(hs_json "$HS_TMP/resp.body" "j[\"status\"]")" = ok ]' "/health body: $(cat "$HS_TMP/resp.body")"

chat='{"model":"tiny","messages":[{"role":"user","content":"Hello there"}],"max_tokens":8,"temperature":0}'
hs_http POST "$url/v1/chat/completions" -d "$chat" -H 'x-request-id: smoke-chat-1'
sent=$((sent + 1))
check '[ "$HTTP_STATUS" = 200 ]' "chat: HTTP $HTTP_STATUS $(head -c 300 "$HS_TMP/resp.body")"
check '[ "$(hs_json "$HS_TMP/resp.body" "j[\"object\"]")" = chat.completion ]' "chat: not a chat.completion"
check '[ "$(hs_json "$HS_TMP/resp.body" "j[\"id\"]")" = smoke-chat-1 ]' "chat: the body's id is not the x-request-id sent"
check '[ "$(hs_header x-request-id)" = smoke-chat-1 ]' "chat: x-request-id header is '$(hs_header x-request-id)'"
n_out=$(hs_json "$HS_TMP/resp.body" 'j["usage"]["completion_tokens"]')
check '[ "$n_out" -ge 1 ] && [ "$n_out" -le 8 ]' "chat: completion_tokens $n_out, want 1..8"

stream='{"model":"tiny","messages":[{"role":"user","content":"Hello there"}],"max_tokens":8,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}'
curl -sN --max-time 60 -D "$HS_TMP/stream.headers" -H 'Content-Type: application/json' --data-binary "$stream" \
    "$url/v1/chat/completions" >"$HS_TMP/stream.txt"
sent=$((sent + 1))
python3 - "$HS_TMP/stream.txt" "$HS_TMP/resp.body" <<'EOF' || fail "stream: see above"
import json, sys
lines = [l for l in open(sys.argv[1], encoding="utf-8").read().split("\n") if l]
whole = json.load(open(sys.argv[2], encoding="utf-8"))
assert all(l.startswith("data: ") for l in lines), "a line that is not 'data: ...'"
assert lines[-1] == "data: [DONE]", "the stream does not end with data: [DONE]"
chunks = [json.loads(l[6:]) for l in lines[:-1]]
assert all(c["object"] == "chat.completion.chunk" for c in chunks), "a chunk is not chat.completion.chunk"
assert len({c["id"] for c in chunks}) == 1, "chunks carry different ids"
usage = chunks[-1].get("usage")
assert usage and chunks[-1]["choices"] == [], "no usage chunk at the end"
text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
want = whole["choices"][0]["message"]["content"]
assert text == want, "streamed text %r differs from the non-streamed greedy answer %r" % (text, want)
assert usage["completion_tokens"] == whole["usage"]["completion_tokens"], "usage differs from the non-streamed answer"
EOF
grep -qi '^content-type: text/event-stream' "$HS_TMP/stream.headers" || fail "stream: content-type is not text/event-stream"

# Keys: the running server sees a key created by the cli within a few seconds.
key=$("$HS_BIN" keys create --name smoke --store "$db" 2>/dev/null)
check '[ -n "$key" ]' "hestia keys create printed no key"
code=200
for _ in $(seq 1 50); do
    hs_http GET "$url/v1/models"
    sent=$((sent + 1))
    code=$HTTP_STATUS
    [ "$code" = 401 ] && break
    sleep 0.1
done
check '[ "$code" = 401 ]' "no key after keys create: HTTP $code, want 401"
check '[ "$(hs_json "$HS_TMP/resp.body" "j[\"error\"][\"type\"]")" = authentication_error ]' \
    "401 body: $(cat "$HS_TMP/resp.body")"
hs_http POST "$url/v1/chat/completions" -d "$chat" -H "Authorization: Bearer hs-wrong"
sent=$((sent + 1))
check '[ "$HTTP_STATUS" = 401 ]' "a wrong key: HTTP $HTTP_STATUS, want 401"
hs_http GET "$url/health"
check '[ "$HTTP_STATUS" = 200 ]' "/health with keys and no key: HTTP $HTTP_STATUS, want 200"
# the server reloads its key list every 2 s: retry a little
for _ in $(seq 1 30); do
    hs_http POST "$url/v1/chat/completions" -d "$chat" -H "Authorization: Bearer $key"
    sent=$((sent + 1))
    [ "$HTTP_STATUS" = 401 ] || break
    sleep 0.2
done
check '[ "$HTTP_STATUS" = 200 ]' "the right key: HTTP $HTTP_STATUS $(head -c 200 "$HS_TMP/resp.body")"

hs_stop basic
rows=$(sqlite3 "$db" "SELECT count(*) FROM requests")
check '[ "$rows" = "$sent" ]' "the store holds $rows records; $sent requests were sent"
check '[ "$(sqlite3 "$db" "SELECT status || '"'"' '"'"' || tokens_out FROM requests WHERE id = '"'"'smoke-chat-1'"'"'")" = "200 $n_out" ]' \
    "the chat's record: '$(sqlite3 "$db" "SELECT status, tokens_out FROM requests WHERE id = 'smoke-chat-1'")'"
check '[ "$(sqlite3 "$db" "SELECT count(*) FROM requests WHERE stream = 1 AND status = 200")" = 1 ]' "no record of the stream"
check '[ "$(sqlite3 "$db" "SELECT count(*) FROM requests WHERE status = 401")" -ge 2 ]' "no records of the 401s"
check '[ "$(sqlite3 "$db" "SELECT key_name FROM requests WHERE status = 200 ORDER BY ts_ms DESC LIMIT 1")" = smoke ]' \
    "the keyed request's record does not name the key"
hs_finish serve_basic
