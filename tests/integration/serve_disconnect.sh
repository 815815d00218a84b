#!/usr/bin/env bash
# A client that goes away frees its slot at once. One slot (--parallel 1) and a
# synthetic model slow enough that a 2000-token answer takes tens of seconds:
#  1. a long stream is cut by its client after a few chunks: within 3 s the running
#     gauge is 0, and a short request is then served within 8 s (bounds with room for
#     a loaded machine and ASan; the cut answer would have taken 20-40 s more);
#  2. the same for a long non-streamed request whose client gives up;
#  3. four queued streams and one running, all cut at once: the next request is
#     still served promptly (cancelled jobs in the queue do not hold anything);
#  4. a client that sends half a request and stalls is cut after --timeout;
#  5. each cut request is in the store once, with fewer tokens than it asked for;
#  6. SIGTERM during a long stream: the stream still ends with data: [DONE], the
#     server exits 0, and the stream's record is in the store (flushed at exit);
#  7. with one slot and --queue 1, a third request is refused at once: 503 with
#     Retry-After and an error object, recorded in the store.
. "$(dirname "$0")/lib.sh"
hs_require_bin
hs_require_serve
model=$HS_TMP/slow.gguf
"$HS_BIN" synth -o "$model" -q --n-embd 1024 --n-layer 6 --n-ff 2816 --ctx 4096 --type q8_0 >/dev/null 2>&1 ||
    { echo "FAIL: hestia synth"; exit 1; }
hs_start s -m "$model" --parallel 1 --threads 1 --ctx 4096 --timeout 3 --drain-timeout 2 || exit 1
url=${HS_URL[s]}
long_body='{"model":"slow","prompt":"hello there","max_tokens":2000,"ignore_eos":true,"temperature":0,"stream":STREAM}'
short_body='{"model":"slow","prompt":"hi","max_tokens":8,"temperature":0}'

running() { hs_metric_sum "$url" '^hestia:num_requests_running'; }
waiting() { hs_metric_sum "$url" '^hestia:num_requests_waiting'; }
# wait_gauges_zero WHAT: running and waiting gauges at 0 within 3 s
wait_gauges_zero() {
    local i r w
    for i in $(seq 1 30); do
        r=$(running) w=$(waiting)
        [ "$r" = 0 ] && [ "$w" = 0 ] && return 0
        sleep 0.1
    done
    fail "$1: 3 s after the disconnect /metrics says running=$r waiting=$w, want 0 and 0"
}
# short_request WHAT: a short request is served within 8 s (the cut one would take tens)
short_request() {
    local t0=$SECONDS
    HS_HTTP_TIMEOUT=20 hs_http POST "$url/v1/completions" -d "$short_body"
    [ "$HTTP_STATUS" = 200 ] || fail "$1: the next request got HTTP $HTTP_STATUS"
    [ $((SECONDS - t0)) -le 8 ] || fail "$1: the next request took $((SECONDS - t0)) s, want <= 8 (was the slot still busy?)"
}
# start_stream ID: a long stream in the background; sets STREAM_PID (curl's PID)
start_stream() {
    curl -sS -N --max-time 120 -H 'Content-Type: application/json' -H "x-request-id: $1" \
        --data-binary "${long_body/STREAM/true}" -o "$HS_TMP/$1.out" "$url/v1/completions" 2>/dev/null &
    STREAM_PID=$!
    HS_BG_PIDS+=("$STREAM_PID")
}
# wait_chunks FILE N: until the file holds N SSE chunks (20 s at most)
wait_chunks() {
    local i
    for i in $(seq 1 200); do
        [ -f "$1" ] && [ "$(grep -c '^data: ' "$1")" -ge "$2" ] && return 0
        sleep 0.1
    done
    return 1
}

# Measure how long the long answer would take: tokens per second for 64 tokens.
t0=$(date +%s.%N)
hs_http POST "$url/v1/completions" -d '{"model":"slow","prompt":"hello","max_tokens":64,"ignore_eos":true,"temperature":0}'
t1=$(date +%s.%N)
tps=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", 64 / (b - a) }')
echo "speed: about $tps tokens/s; a 2000-token answer would take about $((2000 / (tps > 0 ? tps : 1))) s"
[ "$((2000 / (tps > 0 ? tps : 1)))" -ge 10 ] || echo "note: this machine is fast; the long answers are shorter than the test assumes"

# 1. a stream cut after 3 chunks
start_stream e2e-cut-stream
pid=$STREAM_PID
if wait_chunks "$HS_TMP/e2e-cut-stream.out" 3; then
    [ "$(running)" = 1 ] || fail "stream: running gauge is '$(running)' while a stream runs, want 1"
    { kill -KILL "$pid"; wait "$pid"; } 2>/dev/null
    wait_gauges_zero "stream cut"
    short_request "stream cut"
else
    fail "stream: no 3 chunks within 20 s: $(head -c 300 "$HS_TMP/e2e-cut-stream.out")"
    kill -KILL "$pid" 2>/dev/null
fi

# 2. a non-streamed request whose client gives up after 1.5 s
curl -sS --max-time 1.5 -H 'Content-Type: application/json' -H 'x-request-id: e2e-cut-plain' \
    --data-binary "${long_body/STREAM/false}" -o /dev/null "$url/v1/completions" 2>/dev/null
wait_gauges_zero "non-streamed request cut"
short_request "non-streamed request cut"

# 3. one running and four queued, all cut
pids=()
for i in 1 2 3 4 5; do
    start_stream "e2e-cut-many-$i"
    pids+=("$STREAM_PID")
    [ "$i" = 1 ] && wait_chunks "$HS_TMP/e2e-cut-many-1.out" 1
done
sleep 0.5
[ "$(waiting)" = 4 ] || echo "note: waiting gauge is '$(waiting)' with four queued streams (want 4)"
{
    for p in "${pids[@]}"; do kill -KILL "$p"; done
    for p in "${pids[@]}"; do wait "$p"; done
} 2>/dev/null
wait_gauges_zero "five streams cut"
short_request "five streams cut"

# 4. a stalled client is cut after --timeout 3
python3 - "${HS_PORT[s]}" <<'EOF' || fail "a stalled client was not cut within 10 s (--timeout 3)"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"mo")
s.settimeout(10)
t0 = time.time()
try:
    while s.recv(4096):
        pass  # a 408 answer is fine; the connection must close
except socket.timeout:
    sys.exit(1)
except ConnectionResetError:
    pass
print("stalled client cut after %.1f s" % (time.time() - t0))
EOF
short_request "after the stalled client"

# 5. the store: every request once; the cut ones generated less than they asked for
hs_wait_sql "${HS_DB[s]}" "SELECT count(*) FROM requests WHERE id LIKE 'e2e-cut-%'" 7 ||
    fail "store: want 7 records of cut requests, got '${HS_SQL_LAST:-}'"
over=$(hs_sql "${HS_DB[s]}" "SELECT id || ' ' || tokens_out FROM requests WHERE id LIKE 'e2e-cut-%' AND tokens_out >= 2000")
[ -z "$over" ] || fail "store: cut requests that generated everything: $over"
dup=$(hs_sql "${HS_DB[s]}" "SELECT id FROM requests GROUP BY id HAVING count(*) > 1")
[ -z "$dup" ] || fail "store: ids recorded twice: $dup"
echo "cut requests as recorded (id, status, tokens_out, error):"
hs_sql "${HS_DB[s]}" "SELECT id, status, tokens_out, error FROM requests WHERE id LIKE 'e2e-cut-%'" | sed 's/^/  /'

# 6. SIGTERM while a long stream runs
start_stream e2e-sigterm
pid=$STREAM_PID
wait_chunks "$HS_TMP/e2e-sigterm.out" 2 || fail "sigterm: the stream did not start"
t0=$SECONDS
hs_stop s
echo "graceful stop took $((SECONDS - t0)) s with a stream running"
wait "$pid" 2>/dev/null
grep -v '^$' "$HS_TMP/e2e-sigterm.out" | tail -n 1 | grep -qx 'data: \[DONE\]' ||
    fail "sigterm: the running stream did not end with data: [DONE]: $(tail -c 200 "$HS_TMP/e2e-sigterm.out")"
[ "$(hs_sql "${HS_DB[s]}" "SELECT count(*) FROM requests WHERE id = 'e2e-sigterm'")" = 1 ] ||
    fail "sigterm: the stream's record is not in the store after the server exited"

# 7. a full queue: one slot, one place in the queue; a third request is 503 at once,
# with Retry-After and an error object, and recorded.
hs_start q -m "$model" --parallel 1 --queue 1 --threads 1 --ctx 4096 --drain-timeout 1 || hs_finish serve_disconnect
url=${HS_URL[q]}
start_stream e2e-q-running
p1=$STREAM_PID
wait_chunks "$HS_TMP/e2e-q-running.out" 1 || fail "queue: the first stream did not start"
start_stream e2e-q-waiting
p2=$STREAM_PID
for i in $(seq 1 50); do [ "$(waiting)" = 1 ] && break; sleep 0.1; done
[ "$(waiting)" = 1 ] || fail "queue: waiting gauge is '$(waiting)' with one request queued"
t0=$(date +%s%N)
hs_http POST "$url/v1/completions" -d "$short_body" -H 'x-request-id: e2e-q-full'
ms=$((($(date +%s%N) - t0) / 1000000))
if [ "$HTTP_STATUS" != 503 ]; then
    fail "queue full: HTTP $HTTP_STATUS, want 503"
else
    ra=$(hs_header retry-after)
    [[ "$ra" =~ ^[0-9]+$ ]] && [ "$ra" -ge 1 ] || fail "queue full: Retry-After '$ra'"
    [ "$(hs_json "$HS_TMP/resp.body" 'sorted(j["error"].keys())')" = '["code", "message", "param", "type"]' ] ||
        fail "queue full: no error object: $(head -c 200 "$HS_TMP/resp.body")"
    [ "$ms" -lt 2000 ] || fail "queue full: the 503 took $ms ms (it must not wait for a place)"
fi
{ kill -KILL "$p1" "$p2"; wait "$p1" "$p2"; } 2>/dev/null
wait_gauges_zero "queue streams cut"
hs_wait_sql "${HS_DB[q]}" "SELECT status, tokens_out FROM requests WHERE id = 'e2e-q-full'" "$(printf '503\t0')" ||
    fail "queue full: the store has '${HS_SQL_LAST:-}' for the refused request, want 503 and 0 tokens"
short_request "after the full queue"
hs_stop q
hs_finish serve_disconnect
