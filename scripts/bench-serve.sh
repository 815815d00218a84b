#!/usr/bin/env bash
# make bench-serve: serving throughput of `hestia serve` under 1, 4, 8, 16 concurrent
# clients, as ../shared/perf/llamacpp-cpu.md measured llama-server: the synthetic
# 1B-class Q4_K_M model, 2 threads, 53-token prompts, 64-token answers.
#   1. makes (or reuses) build/bench/1b-q4_k_m.gguf, as scripts/bench.sh does;
#   2. writes distinct prompts of exactly 53 tokens (BOS included, as llama-server
#      counts them), checked with `hestia tokenize`, so the prefix cache cannot help;
#   3. starts the release server (--threads 2 --parallel 16), checks whether
#      ignore_eos is accepted (then every answer is exactly 64 tokens; otherwise the
#      answers' lengths are reported), warms up;
#   4. runs bench/serve_load.mjs for each client count (ROUNDS requests per client,
#      streamed, so the time to first token is measured), REPEATS times over: the
#      levels one after the other, in the given order on odd repetitions and in
#      reverse on even ones, so that a machine getting busier or quieter weighs on
#      every level alike;
#   5. prints a table (per level the median over the repetitions of aggregate
#      generated tokens/s, with its range, and of p50/p95 TTFT and latency) and
#      writes build/bench/serve.json (the server's store, with each request's queue
#      time and TTFT as the server saw them, is kept as build/bench/serve.db), with
#      the ratios the issue asks for: 8 clients to 1 client (at least 3), and 8
#      clients to llama-server's 8-client figure. The 8-to-1 ratio is taken within
#      each repetition (the two runs are a minute apart at most) and its median over
#      the repetitions is the figure: on a shared 2-CPU machine one run's ratio
#      swings by 15% or more. ../shared/perf says to compare ratios measured in one
#      run, not absolute numbers from different runs, so the comparison with
#      llama-server is given both ways: absolute (hestia's N-client t/s over
#      llama-server's) and as scaling (hestia's N-client/1-client ratio beside
#      llama-server's, each measured within its own run).
# Usage: scripts/bench-serve.sh [path/to/hestia]
#   6. measures the operating layer's overhead (monitor, safety checks, alert sinks on
#      against off) at 8 clients, in alternating runs; the issue allows 3%.
# Environment: BENCH_SERVE_CLIENTS ("1 4 8 16"), BENCH_SERVE_ROUNDS (3), BENCH_SERVE_REPEATS (5),
#   BENCH_SERVE_THREADS (2),
#   BENCH_SERVE_OPS_PAIRS (3 on/off pairs; 0 skips step 6),
#   BENCH_SERVE_PARALLEL (16), BENCH_SERVE_PROMPT (53), BENCH_SERVE_TOKENS (64),
#   BENCH_SHAPE (1b), BENCH_SERVE_TYPE (q4_k_m), BENCH_DIR (build/bench), HESTIA_SHARED (../shared).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-build/hestia}
levels=${BENCH_SERVE_CLIENTS:-1 4 8 16}
rounds=${BENCH_SERVE_ROUNDS:-3}
repeats=${BENCH_SERVE_REPEATS:-5}
threads=${BENCH_SERVE_THREADS:-2}
parallel=${BENCH_SERVE_PARALLEL:-16}
n_prompt=${BENCH_SERVE_PROMPT:-53}
n_gen=${BENCH_SERVE_TOKENS:-64}
shape=${BENCH_SHAPE:-1b}
qtype=${BENCH_SERVE_TYPE:-q4_k_m}
dir=${BENCH_DIR:-build/bench}
ops_pairs=${BENCH_SERVE_OPS_PAIRS:-3}
shared=${HESTIA_SHARED:-../shared}
ref=$shared/perf/llamacpp-cpu.md
json=$dir/serve.json

[ -x "$bin" ] || { echo "bench-serve: $bin is not built (run make)" >&2; exit 1; }
command -v node >/dev/null || { echo "bench-serve: node is needed for the clients" >&2; exit 1; }
mkdir -p "$dir"
tmp=$(mktemp -d)
tag=bench-serve
. scripts/bench-server-lib.sh

# 1. the model
model=$(bench_model "$shape" "$qtype" "$dir")
name=$(basename "$model" .gguf)

# 2. prompts: one per request of every level, each exactly n_prompt tokens with BOS
total=0
for c in $levels; do total=$((total + c * rounds * repeats)); done
total=$((total + 4)) # warm-up
python3 - "$bin" "$model" "$n_prompt" "$total" "$tmp/prompts.json" <<'EOF'
import json, random, subprocess, sys
binp, model, want, count, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
words = ("the a little big old young happy sad red blue green dog cat bird fish tree house garden river "
         "mountain girl boy king queen friend mother father ran jumped played found lost saw wanted liked "
         "went came made took gave day night morning sun moon star rain snow ball book box door window "
         "toy cake apple road city village forest sea ship train car bell song story dream").split()
def ids(text):
    r = subprocess.run([binp, "tokenize", "-m", model, "-p", text, "--ids", "--add-special"],
                       capture_output=True, text=True, check=True)
    return r.stdout.split()
prompts, seed = [], 0
while len(prompts) < count:
    rnd = random.Random(seed)
    seed += 1
    ws = ["Story", str(seed) + ":"] + [rnd.choice(words) for _ in range(80)]
    # the shortest word prefix with at least `want` tokens; keep it when exactly `want`
    lo, hi = 1, len(ws)
    while lo < hi:
        mid = (lo + hi) // 2
        if len(ids(" ".join(ws[:mid]))) >= want:
            hi = mid
        else:
            lo = mid + 1
    text = " ".join(ws[:lo])
    if len(ids(text)) == want:
        prompts.append(text)
json.dump(prompts, open(out, "w"))
print("bench-serve: %d prompts of %d tokens (BOS included), e.g. %r" % (len(prompts), want, prompts[0]), file=sys.stderr)
EOF

# 3. the server
ctx=$(( (n_prompt + n_gen + 64 + 63) / 64 * 64 ))
bench_serve -m "$model" --threads "$threads" --parallel "$parallel" --ctx "$ctx"
ignore_eos=--ignore-eos
code=$(curl -s -o "$tmp/ie.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    -d '{"model":"'"$name"'","prompt":"hello","max_tokens":4,"ignore_eos":true}' "$url/v1/completions")
if [ "$code" != 200 ]; then
    echo "bench-serve: ignore_eos is refused (HTTP $code); answers may be shorter than $n_gen tokens" >&2
    ignore_eos=""
fi
python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); json.dump(p[-4:], open(sys.argv[2], "w"))' \
    "$tmp/prompts.json" "$tmp/warm.json"
node bench/serve_load.mjs --url "$url" --model "$name" --clients 4 --requests 1 --max-tokens 8 \
    --prompts "$tmp/warm.json" --quiet

# 4. the levels (the load average says how busy the shared machine was)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
off=0
results=()
reversed=$(echo "$levels" | tr ' ' '\n' | grep . | tac | tr '\n' ' ')
for rep in $(seq 1 "$repeats"); do
    order=$levels
    [ $((rep % 2)) -eq 0 ] && order=$reversed
    for c in $order; do
        python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); a=int(sys.argv[2]); json.dump(p[a:a+int(sys.argv[3])], open(sys.argv[4], "w"))' \
            "$tmp/prompts.json" "$off" "$((c * rounds))" "$tmp/p$c-$rep.json"
        off=$((off + c * rounds))
        echo "bench-serve: repetition $rep of $repeats: $c client(s) x $rounds requests" >&2
        node bench/serve_load.mjs --url "$url" --model "$name" --clients "$c" --requests "$rounds" --stream \
            --max-tokens "$n_gen" $ignore_eos --prompts "$tmp/p$c-$rep.json" --json-out "$tmp/level$c-$rep.json" \
            --timeout 600 >&2
        results+=("$tmp/level$c-$rep.json")
    done
done
bench_stop
cp "$tmp/bench.db" "$dir/serve.db"

# 5. the operating layer's overhead (issue 6): 8 clients against a server with the
# monitor, the safety checks and alert sinks on (a JSONL file and a webhook whose
# receiver is down, so it retries), and against one with all of them off; the two
# alternate (on off off on on off ...) so that a machine getting busier or quieter
# weighs on both alike. Each run gets a fresh store.
ops_runs=()
if [ "$ops_pairs" -gt 0 ]; then
    dead_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
    cat >"$tmp/ops-on.yaml" <<YAML
safety:
  rules: config/safety.yaml
monitor:
  enabled: true
  interval_s: 1
alerts:
  throttle_s: 60
  retry_initial_ms: 200
  sinks:
    - kind: jsonl
      path: $tmp/alerts.jsonl
    - kind: webhook
      url: http://127.0.0.1:$dead_port/down
YAML
    cat >"$tmp/ops-off.yaml" <<YAML
safety:
  rules: null
monitor:
  enabled: false
YAML
    python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); json.dump(p[:int(sys.argv[2])], open(sys.argv[3], "w"))' \
        "$tmp/prompts.json" "$((8 * rounds))" "$tmp/ops-prompts.json"
    order=()
    for i in $(seq 1 "$ops_pairs"); do
        if [ $((i % 2)) -eq 1 ]; then order+=(on off); else order+=(off on); fi
    done
    k=0
    for mode in "${order[@]}"; do
        k=$((k + 1))
        rm -f "$tmp/bench.db" "$tmp/bench.db-wal" "$tmp/bench.db-shm"
        bench_serve --config "$tmp/ops-$mode.yaml" -m "$model" --threads "$threads" --parallel "$parallel" --ctx "$ctx"
        node bench/serve_load.mjs --url "$url" --model "$name" --clients 4 --requests 1 --max-tokens 8 \
            --prompts "$tmp/warm.json" --quiet
        echo "bench-serve: operating layer $mode, run $k of ${#order[@]}: 8 clients x $rounds requests" >&2
        node bench/serve_load.mjs --url "$url" --model "$name" --clients 8 --requests "$rounds" --stream \
            --max-tokens "$n_gen" $ignore_eos --prompts "$tmp/ops-prompts.json" --json-out "$tmp/ops$k-$mode.json" \
            --timeout 600 >&2
        bench_stop
        ops_runs+=("$tmp/ops$k-$mode.json")
    done
fi
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# 6. table, JSON, ratios
OPS_RUNS="${ops_runs[*]}" LOAD_START=$load_start LOAD_END=$load_end \
python3 - "$json" "$ref" "$name" "$threads" "$parallel" "$n_prompt" "$n_gen" "${ignore_eos:+1}" "$repeats" \
    "${results[@]}" <<'EOF'
import json, os, re, statistics, sys
out, ref, name, threads, parallel, n_prompt, n_gen, ie, repeats = sys.argv[1:10]
runs = [json.load(open(p)) for p in sys.argv[10:]]
repeats = int(repeats)
def s(ms): return "%.2f" % (ms / 1000) if ms is not None else "-"
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
# the runs of each level, in the order they ran (repetition k is the k-th)
per = {}
for L in runs:
    per.setdefault(L["clients"], []).append(L)
print()
print("hestia serve, %s, %s threads, %s slots, %s-token prompts, %s-token answers%s; median of %d repetitions" % (
    name, threads, parallel, n_prompt, n_gen, "" if ie else " (ignore_eos refused)", repeats))
print("| clients | requests | aggregate tokens/s | range | TTFT p50 | TTFT p95 | latency p50 | latency p95 | answer tokens |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
rows = []
for c in sorted(per):
    Ls = per[c]
    reqs, ok = sum(L["requests"] for L in Ls), sum(L["ok"] for L in Ls)
    tps = [L["tokens_per_second"] for L in Ls]
    row = {"clients": c, "requests": reqs, "ok": ok, "tokens_per_second": med(tps),
           "tokens_per_second_runs": tps,
           "ttft_ms": {k: med(L["ttft_ms"][k] for L in Ls) for k in ("p50", "p95")},
           "latency_ms": {k: med(L["latency_ms"][k] for L in Ls) for k in ("p50", "p95")},
           "completion_tokens": sum(L["completion_tokens"] for L in Ls),
           "completion_tokens_min": min(L["completion_tokens_min"] for L in Ls),
           "completion_tokens_max": max(L["completion_tokens_max"] for L in Ls),
           "prompt_tokens_min": min((L["prompt_tokens_min"] for L in Ls if L["prompt_tokens_min"] is not None), default=None),
           "prompt_tokens_max": max((L["prompt_tokens_max"] for L in Ls if L["prompt_tokens_max"] is not None), default=None),
           "runs": [{k: L[k] for k in ("requests", "ok", "by_status", "wall_s", "completion_tokens", "tokens_per_second",
                                       "ttft_ms", "latency_ms")} for L in Ls]}
    errs = reqs - ok
    print("| %d | %d%s | %.2f | %.2f-%.2f | %s s | %s s | %s s | %s s | %s-%s |" % (
        c, reqs, (" (%d failed)" % errs) if errs else "", row["tokens_per_second"], min(tps), max(tps),
        s(row["ttft_ms"]["p50"]), s(row["ttft_ms"]["p95"]), s(row["latency_ms"]["p50"]), s(row["latency_ms"]["p95"]),
        row["completion_tokens_min"], row["completion_tokens_max"]))
    rows.append(row)
by = {r["clients"]: r for r in rows}
pmin = min((r["prompt_tokens_min"] for r in rows if r["prompt_tokens_min"] is not None), default=None)
pmax = max((r["prompt_tokens_max"] for r in rows if r["prompt_tokens_max"] is not None), default=None)
print("prompt tokens as the server counted them: %s-%s" % (pmin, pmax))
res = {"model": name, "threads": int(threads), "parallel": int(parallel), "prompt_tokens": int(n_prompt),
       "max_tokens": int(n_gen), "ignore_eos": bool(ie), "levels": rows,
       "loadavg_start": os.environ.get("LOAD_START"), "loadavg_end": os.environ.get("LOAD_END"),
       "cpus": os.cpu_count()}
print("load average (1/5/15 min) before: %s, after: %s, on %d CPUs" % (res["loadavg_start"], res["loadavg_end"], os.cpu_count()))
print()
if 1 in by and 8 in by and by[1]["tokens_per_second"] > 0:
    pairs = [a["tokens_per_second"] / b["tokens_per_second"] for a, b in zip(per[8], per[1]) if b["tokens_per_second"] > 0]
    r81 = statistics.median(pairs)
    res["ratio_8_to_1"] = r81
    res["ratio_8_to_1_runs"] = pairs
    print("8 clients / 1 client: %.2fx, the median of %s within each repetition (the issue asks for at least 3x)%s" % (
        r81, ", ".join("%.2f" % x for x in pairs), "" if r81 >= 3 else "  <-- BELOW 3x"))
llama = {}
if os.path.exists(ref):
    txt = open(ref, encoding="utf-8").read()
    sec = txt.split("## llama-server", 1)[1] if "## llama-server" in txt else ""
    for m in re.finditer(r"^\|\s*(\d+)[^|]*\|\s*([\d.]+)\s*\|", sec, re.M):
        llama[int(m.group(1))] = float(m.group(2))
    res["llama_server"] = {str(k): v for k, v in llama.items()}
    print("against llama-server (%s; 4 slots, 2 threads):" % ref)
    for c in sorted(llama):
        if c in by:
            raw = by[c]["tokens_per_second"] / llama[c]
            line = "  %2d clients: hestia %.2f vs llama-server %.2f tokens/s = %.2fx" % (c, by[c]["tokens_per_second"], llama[c], raw)
            res.setdefault("ratio_to_llama_server", {})[str(c)] = raw
            if c != 1 and 1 in by and 1 in llama and by[1]["tokens_per_second"] > 0:
                mine = by[c]["tokens_per_second"] / by[1]["tokens_per_second"]
                theirs = llama[c] / llama[1]
                line += "; scaling over 1 client: hestia %.2fx, llama-server %.2fx" % (mine, theirs)
                res.setdefault("scaling_over_1_client", {})[str(c)] = {"hestia": mine, "llama_server": theirs}
            print(line)
else:
    print("no %s; no llama-server comparison" % ref)
ops = {"on": [], "off": []}
for p in os.environ.get("OPS_RUNS", "").split():
    L = json.load(open(p))
    mode = "on" if p.endswith("-on.json") else "off"
    ops[mode].append({"tokens_per_second": L["tokens_per_second"], "ok": L["ok"], "requests": L["requests"],
                      "latency_p50_ms": L["latency_ms"]["p50"]})
if ops["on"] and ops["off"]:
    on = statistics.median(r["tokens_per_second"] for r in ops["on"])
    off = statistics.median(r["tokens_per_second"] for r in ops["off"])
    ops["median_on"], ops["median_off"] = on, off
    ops["on_over_off"] = on / off if off > 0 else None
    res["ops_overhead"] = ops
    print()
    print("operating layer at 8 clients (monitor, safety checks, alert sinks), %d runs each, alternating:" % len(ops["on"]))
    print("  on:  " + ", ".join("%.2f" % r["tokens_per_second"] for r in ops["on"]) + " tokens/s (median %.2f)" % on)
    print("  off: " + ", ".join("%.2f" % r["tokens_per_second"] for r in ops["off"]) + " tokens/s (median %.2f)" % off)
    if off > 0:
        d = (1 - on / off) * 100
        print("  on / off = %.3f: %s%.1f%% (the issue allows 3%%)%s" % (on / off, "-" if d >= 0 else "+", abs(d),
              "" if d <= 3 else "  <-- OVER 3%"))
json.dump(res, open(out, "w"), indent=1)
print("\nbench-serve: results in %s" % out)
EOF
