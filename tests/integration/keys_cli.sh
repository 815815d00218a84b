#!/usr/bin/env bash
# 'hestia keys' and 'hestia logs export' on a temporary store: a key is
# printed once and alone on stdout, only its hash reaches the file, list shows
# it, revoke marks it; bad input is one line on stderr with exit 1 (runtime)
# or 2 (usage). With the sqlite3 shell, records written straight into the
# file come back from 'logs export --jsonl' oldest first, and --since filters.
set -u
bin=${HS_BIN:-}
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "SKIP: HS_BIN must name the hestia binary"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
store=$tmp/store.db
logline='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z +(DEBUG|INFO|WARN|ERROR) '

# expect_error RC WHAT -- ARGS...: exit status RC, nothing on stdout, one
# "hestia <cmd>: " line on stderr (log lines aside).
expect_error() {
    local want=$1 what=$2
    shift 3
    "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    [ "$rc" -eq "$want" ] || fail "$what: exit $rc, want $want ($(cat "$tmp/err"))"
    [ -s "$tmp/out" ] && fail "$what: stdout not empty: $(cat "$tmp/out")"
    local lines
    lines=$(grep -Evc "$logline" "$tmp/err")
    [ "$lines" -eq 1 ] || fail "$what: want one error line, got: $(cat "$tmp/err")"
    grep -Ev "$logline" "$tmp/err" | grep -Eq "^hestia (keys|logs): " || fail "$what: message: $(cat "$tmp/err")"
}

# ---- keys ----
"$bin" keys create --name alice --scope admin --store "$store" >"$tmp/k1" 2>"$tmp/err" || fail "create alice: $(cat "$tmp/err")"
[ "$(wc -l <"$tmp/k1")" -eq 1 ] || fail "create prints more than the key: $(cat "$tmp/k1")"
k1=$(cat "$tmp/k1")
echo "$k1" | grep -Eq '^hs-[A-Za-z0-9_-]{43}$' || fail "key text: $k1"
grep -q "shown only" "$tmp/err" || fail "no note that the key is shown once: $(cat "$tmp/err")"
k2=$("$bin" keys create --name bob --store "$store" 2>/dev/null) || fail "create bob"
[ "$k1" != "$k2" ] || fail "two keys are equal"

"$bin" keys list --store "$store" >"$tmp/list" 2>"$tmp/err" || fail "list: $(cat "$tmp/err")"
head -1 "$tmp/list" | grep -Eq '^NAME +SCOPE +PREFIX +CREATED +REVOKED$' || fail "list header: $(cat "$tmp/list")"
[ "$(wc -l <"$tmp/list")" -eq 3 ] || fail "list rows: $(cat "$tmp/list")"
prefix1=$(awk '$1 == "alice" {print $3}' "$tmp/list")
[ -n "$prefix1" ] && [ "${k1#"$prefix1"}" != "$k1" ] || fail "alice's prefix '$prefix1' does not start her key"
grep -Eq '^alice +admin +hs-[^ ]+ +[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z +-$' "$tmp/list" || fail "alice row: $(cat "$tmp/list")"
grep -Eq '^bob +user +' "$tmp/list" || fail "bob row (default scope user): $(cat "$tmp/list")"

# the secret never reaches the file, in the database or its WAL
for f in "$store" "$store-wal"; do
    [ -e "$f" ] || continue
    grep -qaF -- "$k1" "$f" && fail "key stored in clear in $f"
    grep -qaF -- "${k1#hs-}" "$f" && fail "key body stored in clear in $f"
done

expect_error 1 "duplicate active name" -- keys create --name alice --store "$store"
expect_error 1 "bad name" -- keys create --name 'a b' --store "$store"
expect_error 2 "bad scope" -- keys create --name carol --scope root --store "$store"
expect_error 2 "no name" -- keys create --store "$store"
expect_error 2 "name without value" -- keys create --name
expect_error 2 "unknown option" -- keys list --bogus
expect_error 2 "unknown subcommand" -- keys rotate
expect_error 1 "list on a missing store" -- keys list --store "$tmp/none.db"
[ -e "$tmp/none.db" ] && fail "list created a store"

"$bin" keys revoke --name alice --store "$store" >/dev/null 2>"$tmp/err" || fail "revoke: $(cat "$tmp/err")"
"$bin" keys list --store "$store" >"$tmp/list" 2>/dev/null || fail "list after revoke"
grep -Eq '^alice +admin +hs-[^ ]+ +[0-9T:Z-]+ +[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$' "$tmp/list" ||
    fail "alice not shown revoked: $(cat "$tmp/list")"
expect_error 1 "revoke twice" -- keys revoke --name alice --store "$store"
expect_error 1 "revoke unknown" -- keys revoke --name nobody --store "$store"
# a revoked name can be used again
"$bin" keys create --name alice --store "$store" >/dev/null 2>&1 || fail "re-create a revoked name"
[ "$("$bin" keys list --store "$store" 2>/dev/null | grep -c '^alice ')" -eq 2 ] || fail "two alice rows"

# the default store is ./hestia.db
(cd "$tmp" && "$bin" keys create --name here >/dev/null 2>&1) || fail "create in the default store"
[ -f "$tmp/hestia.db" ] || fail "default store ./hestia.db not created"

"$bin" keys --help >/dev/null || fail "keys --help"

# ---- logs export ----
"$bin" logs export --jsonl --store "$store" >"$tmp/empty.jsonl" 2>"$tmp/err" || fail "export: $(cat "$tmp/err")"
[ -s "$tmp/empty.jsonl" ] && fail "export of a store with no requests is not empty"
expect_error 1 "export from a missing store" -- logs export --store "$tmp/none.db"
expect_error 2 "bad --since" -- logs export --since yesterday --store "$store"
expect_error 2 "impossible date" -- logs export --since 2026-02-30 --store "$store"
expect_error 2 "unknown logs subcommand" -- logs import

if ! command -v sqlite3 >/dev/null; then
    echo "SKIP: the sqlite3 shell is absent; export of records not checked"
    echo ok
    exit 0
fi
sqlite3 "$store" "
  INSERT INTO requests (id, ts_ms, endpoint, model, status, tokens_in, tokens_out, ttft_ms)
    VALUES ('r-late', 1764160000000, '/v1/chat/completions', 'm', 200, 5, 7, 12.5);
  INSERT INTO requests (id, ts_ms, endpoint, model, status, error)
    VALUES ('r-early', 1764150000000, '/v1/completions', 'm', 400, 'bad \"x\"');
  INSERT INTO bodies (request_id, request, response) VALUES ('r-late', '{\"q\":1}', 'hi');
" || fail "sqlite3 insert"
"$bin" logs export --jsonl --store "$store" -o "$tmp/all.jsonl" 2>"$tmp/err" || fail "export -o: $(cat "$tmp/err")"
[ "$(wc -l <"$tmp/all.jsonl")" -eq 2 ] || fail "export lines: $(cat "$tmp/all.jsonl")"
ls "$tmp" | grep -q '\.tmp\.' && fail "temporary export file left behind"
if command -v jq >/dev/null; then
    [ "$(jq -r .id "$tmp/all.jsonl" | tr '\n' ' ')" = "r-early r-late " ] || fail "order: $(cat "$tmp/all.jsonl")"
    [ "$(jq -r 'select(.id=="r-early") | .error' "$tmp/all.jsonl")" = 'bad "x"' ] || fail "error field"
    [ "$(jq -r 'select(.id=="r-late") | .request_body' "$tmp/all.jsonl")" = '{"q":1}' ] || fail "request body"
    [ "$(jq -r 'select(.id=="r-late") | .ttft_ms' "$tmp/all.jsonl")" = 12.5 ] || fail "ttft_ms"
    [ "$(jq -r 'select(.id=="r-early") | has("request_body")' "$tmp/all.jsonl")" = false ] || fail "body where none"
else
    head -1 "$tmp/all.jsonl" | grep -q '"id":"r-early"' || fail "order: $(cat "$tmp/all.jsonl")"
fi
# --since as milliseconds and as an ISO time (1764160000000 = 2025-11-26T12:26:40Z)
for since in 1764155000000 2025-11-26T12:00:00Z 2025-11-26T13:00:00+01:00 "2025-11-26 12:26:40"; do
    "$bin" logs export --jsonl --since "$since" --store "$store" >"$tmp/since.jsonl" 2>"$tmp/err" ||
        fail "export --since $since: $(cat "$tmp/err")"
    [ "$(wc -l <"$tmp/since.jsonl")" -eq 1 ] && grep -q '"r-late"' "$tmp/since.jsonl" ||
        fail "--since $since: $(cat "$tmp/since.jsonl")"
done
"$bin" logs export --since 2025-11-26T12:26:40.001Z --store "$store" >"$tmp/since.jsonl" 2>/dev/null || fail "since ms"
[ -s "$tmp/since.jsonl" ] && fail "--since after the last record is not empty"
echo ok
