# Sourced by the serving benchmarks (bench-serve.sh, bench-agents.sh): the
# synthetic model they share, and one release server on a free loopback
# port, stopped by PID when the script exits. Callers set `bin`, `tmp` and a
# `tag` for messages before sourcing.

server_pid=""
bench_cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid"
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap bench_cleanup EXIT

# bench_model SHAPE TYPE DIR: prints the model's path, writing it once.
bench_model() {
    local m=$3/$1-$2.gguf
    if [ ! -s "$m" ]; then
        echo "$tag: writing $m (once; later runs reuse it)" >&2
        "$bin" synth -o "$m.part" --shape "$1" --type "$2" -t "$(nproc)" >&2
        mv "$m.part" "$m"
    fi
    echo "$m"
}

# bench_serve ARGS...: starts `hestia serve ARGS` on 127.0.0.1 and a free
# port, waits for /health, sets url.
bench_serve() {
    "$bin" serve "$@" --host 127.0.0.1 --port 0 --port-file "$tmp/port" --store "$tmp/bench.db" \
        >"$tmp/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 1200); do
        [ -s "$tmp/port" ] && curl -sf -o /dev/null "http://127.0.0.1:$(cat "$tmp/port")/health" && break
        kill -0 "$server_pid" 2>/dev/null || { echo "$tag: the server died:" >&2; tail -n 20 "$tmp/server.log" >&2; exit 1; }
        sleep 0.2
    done
    url=http://127.0.0.1:$(cat "$tmp/port")
    curl -sf -o /dev/null "$url/health" || { echo "$tag: the server never became ready" >&2; exit 1; }
}

# bench_stop: SIGTERM, and a word when it does not exit 0.
bench_stop() {
    kill -TERM "$server_pid"
    wait "$server_pid" || echo "$tag: the server exited $? on SIGTERM" >&2
    server_pid=""
}
