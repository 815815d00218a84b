# Shared helpers for the `hestia serve` integration tests (tests/integration/serve_*.sh).
# Source it; it moves to the repository root, makes a temporary folder ($HS_TMP)
# and installs an EXIT trap that stops every server this shell started (by its
# PID, never by name) and removes the folder (HS_KEEP_TMP=1 keeps it).
#
#   hs_require_bin                  fail unless $HS_BIN is an executable
#   hs_require_serve                skip (77) when the binary has no `serve` command
#   hs_require_stories              skip (77) when ../shared/models/stories260K.gguf is absent
#   hs_model_stories | hs_model_tiny   print a small model's path (stories260K, or a synthetic one)
#   hs_mock NAME [mock flags]       start tools/mock_openai.py (another vendor's server) on a free
#                                   loopback port, log $HS_TMP/NAME.log; sets HS_MOCK_URL[NAME]
#                                   (the base, without /v1) and HS_MOCK_PID[NAME]
#   hs_start NAME [serve flags]     start a server on a free loopback port, store $HS_TMP/NAME.db;
#                                   waits for /health 200; sets HS_URL[NAME], HS_PID[NAME],
#                                   HS_DB[NAME], HS_LOG[NAME]
#   hs_stop NAME                    SIGTERM, wait, check exit status 0
#   hs_http METHOD URL [BODYFILE|-d TEXT] [curl args]   one request; sets HTTP_STATUS,
#                                   files $HS_TMP/resp.body and $HS_TMP/resp.headers
#   hs_header NAME                  a header of the last response (case-insensitive)
#   hs_json FILE EXPR               python expression over j = the parsed JSON file
#   hs_sql DB QUERY                 rows of a read-only query, tab-separated
#   hs_wait_sql DB QUERY WANT [S]   polls until the query prints WANT (the store writes
#                                   asynchronously) or S seconds pass
#   fail MSG / check COND MSG / hs_finish NAME   count failures, print the verdict, exit
#
# Every test exits 0 (pass), 77 (skipped, with a reason on stdout) or 1 (fail).

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    # scripts/run-tests.sh runs every tests/integration/*.sh; this one is only sourced.
    echo "lib.sh: helpers for the serve_*.sh tests; nothing to run on its own"
    exit 0
fi
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
HS_SHARED=${HESTIA_SHARED:-../shared}
HS_TMP=$(mktemp -d "${TMPDIR:-/tmp}/hestia-serve-XXXXXX")
HS_START_TIMEOUT=${HS_START_TIMEOUT:-90}
declare -A HS_PID=() HS_URL=() HS_DB=() HS_LOG=() HS_PORT=() HS_MOCK_URL=() HS_MOCK_PID=()
HS_BG_PIDS=() # other background processes we started (curl, node)
hs_failures=0

hs_cleanup() {
    local name pid i
    for pid in "${HS_BG_PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    done
    for name in "${!HS_PID[@]}"; do
        pid=${HS_PID[$name]}
        [ -n "$pid" ] || continue
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null
            for i in $(seq 1 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
        fi
    done
    wait 2>/dev/null
    if [ -n "${HS_KEEP_TMP:-}" ]; then
        echo "kept $HS_TMP"
    else
        rm -rf "$HS_TMP"
    fi
}
trap hs_cleanup EXIT

fail() {
    echo "FAIL: $*"
    hs_failures=$((hs_failures + 1))
}
# check 'shell condition' message: fails with the message when the condition is false.
check() {
    if ! eval "$1"; then fail "$2"; return 1; fi
    return 0
}
skip() {
    echo "SKIP: $*"
    exit 77
}
hs_finish() {
    if [ "$hs_failures" -ne 0 ]; then
        echo "$1: $hs_failures failure(s)"
        exit 1
    fi
    echo "$1: all checks passed"
    exit 0
}

hs_require_bin() {
    if [ -z "${HS_BIN:-}" ] || [ ! -x "$HS_BIN" ]; then
        echo "FAIL: HS_BIN must name the hestia binary"
        exit 1
    fi
    case "$HS_BIN" in /*) ;; *) HS_BIN=$PWD/$HS_BIN ;; esac
    command -v python3 >/dev/null || skip "python3 is needed to read JSON and the store"
    command -v curl >/dev/null || skip "curl is needed"
}
hs_require_serve() {
    "$HS_BIN" serve --help >/dev/null 2>&1 || skip "this hestia has no working 'serve' command yet"
}

# The stories260K model from ../shared: hs_require_stories skips the test when it is
# absent (call it in the test's own shell, not inside $(...)); hs_model_stories prints
# its path.
hs_require_stories() {
    [ -f "$HS_SHARED/models/stories260K.gguf" ] || skip "$HS_SHARED/models/stories260K.gguf is absent"
}
hs_model_stories() {
    echo "$HS_SHARED/models/stories260K.gguf"
}
# A small synthetic model (random weights, 512-token SentencePiece vocabulary), made
# once per test; prints its path (empty, with a FAIL line on stderr, if synth fails).
hs_model_tiny() {
    local m=$HS_TMP/tiny.gguf
    if [ ! -f "$m" ]; then
        "$HS_BIN" synth -o "$m" -q "$@" >/dev/null 2>&1 || { echo "FAIL: hestia synth failed" >&2; return 1; }
    fi
    echo "$m"
}

# hs_mock NAME [flags...]: exits the test (FAIL) when the mock does not start.
hs_mock() {
    local n=$1
    shift
    rm -f "$HS_TMP/$n.port"
    python3 tests/integration/tools/mock_openai.py --port-file "$HS_TMP/$n.port" --log "$HS_TMP/$n.log" "$@" \
        >"$HS_TMP/$n.out" 2>&1 &
    HS_MOCK_PID[$n]=$!
    HS_BG_PIDS+=($!)
    for _ in $(seq 1 100); do [ -s "$HS_TMP/$n.port" ] && break; sleep 0.1; done
    [ -s "$HS_TMP/$n.port" ] || { echo "FAIL: mock $n did not start: $(cat "$HS_TMP/$n.out")"; exit 1; }
    HS_MOCK_URL[$n]=http://127.0.0.1:$(cat "$HS_TMP/$n.port")
}

# hs_start NAME [flags...]: the store is $HS_TMP/NAME.db unless the flags give --store.
hs_start() {
    local name=$1
    shift
    local pf=$HS_TMP/$name.port log=$HS_TMP/$name.log db=$HS_TMP/$name.db a
    local args=("$@") have_store=0
    for a in "${args[@]}"; do [ "$a" = "--store" ] && have_store=1; done
    [ "$have_store" -eq 1 ] || args+=(--store "$db")
    for ((a = 0; a < ${#args[@]}; a++)); do
        [ "${args[$a]}" = "--store" ] && db=${args[$((a + 1))]}
    done
    rm -f "$pf"
    "$HS_BIN" serve --host 127.0.0.1 --port 0 --port-file "$pf" "${args[@]}" >"$log" 2>&1 &
    local pid=$!
    HS_PID[$name]=$pid
    HS_DB[$name]=$db
    HS_LOG[$name]=$log
    local deadline=$((SECONDS + HS_START_TIMEOUT)) port=""
    while [ $SECONDS -lt $deadline ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid"
            echo "FAIL: server $name exited ($?) before it was ready; its log:"
            tail -n 30 "$log"
            HS_PID[$name]=""
            return 1
        fi
        if [ -s "$pf" ]; then
            port=$(tr -dc '0-9' <"$pf")
            [ -n "$port" ] && break
        fi
        sleep 0.1
    done
    if [ -z "$port" ]; then
        echo "FAIL: server $name wrote no port file in ${HS_START_TIMEOUT}s"
        tail -n 30 "$log"
        return 1
    fi
    HS_PORT[$name]=$port
    HS_URL[$name]=http://127.0.0.1:$port
    local code
    while [ $SECONDS -lt $deadline ]; do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "${HS_URL[$name]}/health")
        [ "$code" = 200 ] && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "FAIL: server $name died while loading"
            tail -n 30 "$log"
            return 1
        fi
        sleep 0.1
    done
    echo "FAIL: server $name: /health never answered 200 (last: $code)"
    tail -n 30 "$log"
    return 1
}

# hs_stop NAME: graceful stop; fails the test unless the server exits 0 within 30 s.
hs_stop() {
    local name=$1 pid=${HS_PID[$1]} i rc
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        fail "server $name did not exit within 30 s of SIGTERM"
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid"
    rc=$?
    HS_PID[$name]=""
    if [ "$rc" -ne 0 ]; then
        fail "server $name exited $rc after SIGTERM (want 0); the end of its log:"
        tail -n 40 "${HS_LOG[$name]}"
    fi
    return "$rc"
}

# hs_http METHOD URL [BODYFILE | -d TEXT] [more curl args]
hs_http() {
    local method=$1 url=$2
    shift 2
    local data=()
    if [ $# -gt 0 ]; then
        if [ "$1" = "-d" ]; then
            data=(--data-binary "$2")
            shift 2
        elif [ "${1:0:1}" != "-" ]; then
            data=(--data-binary "@$1")
            shift
        fi
    fi
    [ ${#data[@]} -gt 0 ] && data+=(-H 'Content-Type: application/json')
    HTTP_STATUS=$(curl -sS -X "$method" -o "$HS_TMP/resp.body" -D "$HS_TMP/resp.headers" \
        -w '%{http_code}' --max-time "${HS_HTTP_TIMEOUT:-60}" "${data[@]}" "$@" "$url" 2>"$HS_TMP/resp.curlerr")
    [ -n "$HTTP_STATUS" ] || HTTP_STATUS=000
}
hs_header() {
    awk -v n="$(echo "$1" | tr '[:upper:]' '[:lower:]')" '
        { sub(/\r$/, "") }
        index($0, ":") { k = tolower(substr($0, 1, index($0, ":") - 1)); v = substr($0, index($0, ":") + 1)
                         sub(/^[ \t]+/, "", v); if (k == n) last = v }
        END { if (last != "") print last }' "$HS_TMP/resp.headers"
}

# hs_json FILE EXPR: prints the value (strings bare, the rest as JSON); "!ERR <why>" when
# the file is not JSON or the expression fails.
hs_json() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
try:
    j = json.load(open(sys.argv[1], encoding="utf-8"))
    v = eval(sys.argv[2], {"j": j, "len": len, "isinstance": isinstance, "str": str, "int": int,
                           "float": float, "list": list, "dict": dict, "bool": bool, "sum": sum,
                           "all": all, "any": any, "abs": abs, "type": type})
except Exception as e:
    print("!ERR %s" % e)
    sys.exit(0)
print(v if isinstance(v, str) else json.dumps(v))
EOF
}

hs_sql() {
    python3 - "$1" "$2" <<'EOF'
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=10)
for row in db.execute(sys.argv[2]):
    print("\t".join("" if v is None else str(v) for v in row))
EOF
}
hs_wait_sql() {
    local db=$1 q=$2 want=$3 secs=${4:-10} got=""
    local deadline=$((SECONDS + secs))
    while :; do
        got=$(hs_sql "$db" "$q" 2>/dev/null)
        [ "$got" = "$want" ] && return 0
        [ $SECONDS -ge $deadline ] && break
        sleep 0.2
    done
    HS_SQL_LAST=$got
    return 1
}

# Prints the value of a Prometheus sample (first line whose name and labels match
# the regex), or nothing.
hs_metric() {
    curl -s --max-time 10 "$1/metrics" | awk -v re="$2" '$0 !~ /^#/ && $1 ~ re { print $2; exit }'
}
# Sum of every Prometheus sample whose name{labels} matches the regex (0 when none).
hs_metric_sum() {
    curl -s --max-time 10 "$1/metrics" | awk -v re="$2" '$0 !~ /^#/ && $1 ~ re { s += $2 } END { printf "%.0f\n", s }'
}
