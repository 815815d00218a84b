#!/usr/bin/env bash
# POST /v1/feedback, and the confidence of each answer, on a synthetic model:
#  - feedback on an answer's id (the x-request-id the client got) is stored at
#    once, even while the record itself may still be queued; a repeat replaces
#    it (one row, "updated": true), never duplicates;
#  - unknown ids are 404, bad values 400 naming the field;
#  - with keys, a user key rates only its own answers (another user's id is
#    404), an admin key any;
#  - every answer's record holds its confidence (mean token probability, in
#    (0, 1]) and share of low-probability tokens ([0, 1]), whether or not the
#    client asked for logprobs.
. "$(dirname "$0")/lib.sh"
hs_require_bin
hs_require_serve
command -v sqlite3 >/dev/null || skip "the sqlite3 command is needed"
model=$(hs_model_tiny)
hs_start fb -m "$model" --alias tiny --parallel 2 --ctx 256 || exit 1
url=${HS_URL[fb]}
db=${HS_DB[fb]}

chat='{"model":"tiny","messages":[{"role":"user","content":"Hello"}],"max_tokens":4}'
hs_http POST "$url/v1/chat/completions" -d "$chat"
id=$(hs_header x-request-id)
check '[ "$HTTP_STATUS" = 200 ] && [ -n "$id" ]' "chat: HTTP $HTTP_STATUS id '$id'"
hs_http POST "$url/v1/feedback" -d '{"request_id":"'"$id"'","feedback":1}'
check '[ "$HTTP_STATUS" = 200 ] && [ "$(hs_json "$HS_TMP/resp.body" "str(j[\"updated\"])")" = False ]' \
    "first feedback: HTTP $HTTP_STATUS $(cat "$HS_TMP/resp.body")"
hs_http POST "$url/v1/feedback" -d '{"request_id":"'"$id"'","feedback":-1,"comment":"wrong number of units"}'
check '[ "$HTTP_STATUS" = 200 ] && [ "$(hs_json "$HS_TMP/resp.body" "str(j[\"updated\"])")" = True ]' \
    "repeated feedback: HTTP $HTTP_STATUS $(cat "$HS_TMP/resp.body")"
check '[ "$(hs_sql "$db" "SELECT count(*), feedback, comment FROM feedback WHERE request_id = '"'$id'"'")" = "$(printf "1\t-1\twrong number of units")" ]' \
    "the store: $(hs_sql "$db" "SELECT * FROM feedback")"
conf=$(hs_sql "$db" "SELECT confidence > 0 AND confidence <= 1 AND low_prob_share >= 0 AND low_prob_share <= 1 FROM requests WHERE id = '$id'")
check '[ "$conf" = 1 ]' "the record's confidence: $(hs_sql "$db" "SELECT confidence, low_prob_share FROM requests WHERE id = '$id'")"
hs_http POST "$url/v1/feedback" -d '{"request_id":"no-such-id","feedback":1}'
check '[ "$HTTP_STATUS" = 404 ] && [ "$(hs_json "$HS_TMP/resp.body" "j[\"error\"][\"param\"]")" = request_id ]' \
    "unknown id: HTTP $HTTP_STATUS"
for bad in '{"request_id":"'"$id"'","feedback":0}|feedback' '{"request_id":"'"$id"'","feedback":"up"}|feedback' \
    '{"feedback":1}|request_id' '{"request_id":"'"$id"'","feedback":1,"comment":5}|comment'; do
    hs_http POST "$url/v1/feedback" -d "${bad%|*}"
    check '[ "$HTTP_STATUS" = 400 ] && [ "$(hs_json "$HS_TMP/resp.body" "j[\"error\"][\"param\"]")" = "${bad##*|}" ]' \
        "bad feedback ${bad%|*}: HTTP $HTTP_STATUS $(cat "$HS_TMP/resp.body")"
done

# keys: users rate their own answers
ka=$("$HS_BIN" keys create --name alice --store "$db" 2>/dev/null)
kb=$("$HS_BIN" keys create --name bob --store "$db" 2>/dev/null)
kadm=$("$HS_BIN" keys create --name ops --scope admin --store "$db" 2>/dev/null)
sleep 2.5 # the server reloads its keys every 2 s
hs_http POST "$url/v1/chat/completions" -d "$chat" -H "Authorization: Bearer $ka"
aid=$(hs_header x-request-id)
check '[ "$HTTP_STATUS" = 200 ]' "alice's chat: HTTP $HTTP_STATUS"
hs_http POST "$url/v1/feedback" -d '{"request_id":"'"$aid"'","feedback":1}' -H "Authorization: Bearer $kb"
check '[ "$HTTP_STATUS" = 404 ]' "bob rated alice's answer: HTTP $HTTP_STATUS"
hs_http POST "$url/v1/feedback" -d '{"request_id":"'"$aid"'","feedback":1}' -H "Authorization: Bearer $ka"
check '[ "$HTTP_STATUS" = 200 ]' "alice rates her answer: HTTP $HTTP_STATUS $(cat "$HS_TMP/resp.body")"
hs_http POST "$url/v1/feedback" -d '{"request_id":"'"$aid"'","feedback":-1}' -H "Authorization: Bearer $kadm"
check '[ "$HTTP_STATUS" = 200 ]' "an admin rates any answer: HTTP $HTTP_STATUS"
hs_http POST "$url/v1/feedback" -d '{"request_id":"'"$aid"'","feedback":1}'
check '[ "$HTTP_STATUS" = 401 ]' "feedback without a key on a keyed server: HTTP $HTTP_STATUS"
hs_stop fb
hs_finish "feedback: stored at once, updated not duplicated, 404/400, per-key ownership; confidence on the record"
