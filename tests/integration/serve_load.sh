#!/usr/bin/env bash
# A bounded load test on loopback: LOAD_CLIENTS clients (default 64) for
# LOAD_SECONDS (default 20; `make load-test` runs 180 on the release build), a mix
# of chat and completions, streamed and not, max_tokens LOAD_MAX_TOKENS (16).
# It must end with:
#  - zero 5xx and zero transport errors. The queue is sized (server.queue 64 with
#    8 slots: 72 places for at most 64 requests in flight), so a 503 is a failure too;
#  - every request in the store exactly once: the x-request-ids the clients saw
#    against the store's ids after a graceful stop (SIGTERM flushes the store), and
#    `hestia logs export --jsonl` writes the same records;
#  - the server's memory flat: VmRSS sampled every 0.5 s; after a warm-up (a quarter
#    of the run, at least 5 s) the highest RSS of the second half of the samples may
#    exceed the highest of the first half by at most LOAD_RSS_SLACK_MB (default 8)
#    or 5%, whichever is larger. A leak proportional to traffic grows by the same
#    amount in each half; a server that has reached its working set does not grow.
#    Under ASan, freed memory waits in a quarantine and the allocator keeps what it
#    once used, which looks like steady growth (measured: +1 MiB/s for a minute while
#    the release build stayed flat); this server therefore runs with the quarantine
#    off and free memory returned to the OS every 500 ms (ASAN_OPTIONS below), which
#    makes its RSS as flat as the release build's. LSan still checks leaks at exit.
# Uses stories260K (or a synthetic model when absent), node for the clients.
. "$(dirname "$0")/lib.sh"
hs_require_bin
hs_require_serve
command -v node >/dev/null || skip "node is not installed"
clients=${LOAD_CLIENTS:-64}
seconds=${LOAD_SECONDS:-20}
max_tokens=${LOAD_MAX_TOKENS:-16}
slack_mb=${LOAD_RSS_SLACK_MB:-8}
if [ -f "$HS_SHARED/models/stories260K.gguf" ]; then
    model=$HS_SHARED/models/stories260K.gguf
else
    echo "note: stories260K is absent; using a synthetic model"
    model=$(hs_model_tiny) || exit 1
fi
name=$(basename "$model" .gguf)
cat >"$HS_TMP/load.yaml" <<EOF
server:
  queue: 64
EOF
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0:thread_local_quarantine_size_kb=0:allocator_release_to_os_interval_ms=500"
hs_start s -m "$model" --parallel 8 --ctx 512 --threads 2 --config "$HS_TMP/load.yaml" || exit 1
unset ASAN_OPTIONS
pid=${HS_PID[s]}

( while kill -0 "$pid" 2>/dev/null; do
      echo "$(date +%s.%N) $(awk '/^VmRSS:/ { r = $2 } /^Threads:/ { t = $2 } END { print r, t }' "/proc/$pid/status" 2>/dev/null)"
      sleep 0.5
  done ) >"$HS_TMP/rss" 2>/dev/null &
HS_BG_PIDS+=($!)

echo "load: $clients clients for $seconds s against $name (max_tokens $max_tokens)"
node bench/serve_load.mjs --url "${HS_URL[s]}" --model "$name" --clients "$clients" --duration "$seconds" \
    --mix --max-tokens "$max_tokens" --temperature 0.8 --timeout 120 \
    --ids-out "$HS_TMP/ids" --json-out "$HS_TMP/summary.json"
rc=$?
[ "$rc" -eq 0 ] || fail "bench/serve_load.mjs exited $rc"
t_end=$(date +%s.%N)
running=$(hs_metric_sum "${HS_URL[s]}" '^hestia:num_requests_running')
[ "$running" = 0 ] || fail "/metrics running gauge is $running after the load ended"
hs_stop s
"$HS_BIN" logs export --jsonl --store "${HS_DB[s]}" >"$HS_TMP/export.jsonl" 2>"$HS_TMP/export.err" ||
    fail "hestia logs export: $(tail -n 2 "$HS_TMP/export.err")"

python3 - "$HS_TMP/summary.json" "$HS_TMP/ids" "${HS_DB[s]}" "$HS_TMP/rss" "$slack_mb" "$seconds" "$t_end" "$HS_TMP/export.jsonl" <<'EOF' || fail "the load test's checks failed (above)"
import json, sqlite3, sys
summary_f, ids_f, db_f, rss_f, slack_mb, seconds, t_end, export_f = sys.argv[1:]
s = json.load(open(summary_f))
bad = []
print("requests: %d in %.1f s (%.1f/s), by status %s, %d completion tokens (%.1f tokens/s)" % (
    s["requests"], s["wall_s"], s["requests_per_second"], s["by_status"], s["completion_tokens"], s["tokens_per_second"]))
print("latency p50 %.0f ms p95 %.0f ms; TTFT (streams) p50 %.0f ms p95 %.0f ms" % (
    s["latency_ms"]["p50"] or 0, s["latency_ms"]["p95"] or 0, s["ttft_ms"]["p50"] or 0, s["ttft_ms"]["p95"] or 0))
if s["requests"] < 2 * int(float(seconds)):
    bad.append("only %d requests in %s s" % (s["requests"], seconds))
non200 = {k: v for k, v in s["by_status"].items() if k != "200"}
if non200:
    bad.append("responses other than 200: %s; first errors: %s" % (non200, s["first_errors"]))
elif s["errors"]:
    bad.append("%d requests with errors: %s" % (s["errors"], s["first_errors"]))

# every request in the store exactly once
client = []
for line in open(ids_f):
    rid, status, body_id, kind, stream = line.rstrip("\n").split("\t")
    client.append((rid, int(status), body_id))
missing_id = [c for c in client if not c[0]]
if missing_id:
    bad.append("%d responses without x-request-id" % len(missing_id))
mismatch = [c for c in client if c[1] == 200 and c[2] and c[0] != c[2]]
if mismatch:
    bad.append("%d responses whose body id != x-request-id, e.g. %s" % (len(mismatch), mismatch[:2]))
dups = len(client) - len({c[0] for c in client})
if dups:
    bad.append("%d x-request-ids were given to more than one response" % dups)
db = sqlite3.connect("file:%s?mode=ro" % db_f, uri=True)
rows = db.execute("SELECT id, count(*), max(status) FROM requests GROUP BY id").fetchall()
store = {r[0]: (r[1], r[2]) for r in rows}
twice = [i for i, (n, _) in store.items() if n > 1]
if twice:
    bad.append("%d ids recorded more than once, e.g. %s" % (len(twice), twice[:3]))
absent = [c[0] for c in client if c[0] and c[0] not in store]
if absent:
    bad.append("%d requests are not in the store, e.g. %s" % (len(absent), absent[:3]))
wrong = [c[0] for c in client if c[0] in store and store[c[0]][1] != c[1]]
if wrong:
    bad.append("%d records whose status differs from the client's" % len(wrong))
extra = set(store) - {c[0] for c in client}
# the test itself sent nothing else to /v1 (health and metrics are not requests)
if extra:
    bad.append("%d records the clients never saw, e.g. %s" % (len(extra), sorted(extra)[:3]))
print("store: %d records for %d client-side responses" % (sum(n for n, _ in store.values()), len(client)))
exported = [json.loads(l)["id"] for l in open(export_f, encoding="utf-8") if l.strip()]
if sorted(exported) != sorted(store):
    bad.append("hestia logs export wrote %d records (%d distinct) for %d in the store" % (
        len(exported), len(set(exported)), len(store)))

# memory
samples = []
for line in open(rss_f):
    parts = line.split()
    if len(parts) == 3 and float(parts[0]) <= float(t_end):
        samples.append((float(parts[0]), int(parts[1]), int(parts[2])))
if len(samples) < 8:
    bad.append("only %d RSS samples" % len(samples))
else:
    t0 = samples[0][0]
    warm = max(5.0, float(seconds) / 4)
    after = [kb for t, kb, _ in samples if t - t0 >= warm]
    print("server threads: at most %d" % max(th for _, _, th in samples))
    if len(after) < 4:
        bad.append("too few RSS samples after the warm-up")
    else:
        half = len(after) // 2
        first, second = max(after[:half]), max(after[half:])
        growth_kb = second - first
        bound_kb = max(int(slack_mb) * 1024, first // 20)
        print("RSS: start %d MiB, after warm-up %d MiB, first half max %d MiB, second half max %d MiB "
              "(growth %+d KiB, bound %d KiB)" % (samples[0][1] // 1024, after[0] // 1024, first // 1024,
                                                 second // 1024, growth_kb, bound_kb))
        if growth_kb > bound_kb:
            bad.append("RSS grew by %d KiB in the second half of the run (bound %d KiB)" % (growth_kb, bound_kb))
for b in bad:
    print("FAIL: " + b)
sys.exit(1 if bad else 0)
EOF
hs_finish serve_load
