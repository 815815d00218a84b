#!/usr/bin/env bash
# make bench-agents: the 13 expert agents of config/agents.yaml, each with its
# own LoRA adapter, over the synthetic 1B-class Q4_K_M model:
#   1. makes (or reuses) build/bench/1b-q4_k_m.gguf and 13 random rank-16
#      F16 adapters for it (hestia synth --lora-for; F16 as hestia lora convert
#      writes them by default for PEFT's f16 weights), and an agents file: the
#      13 agents of config/agents.yaml, agent i with adapter i;
#   2. starts the release server (--threads 2, one slot per agent) and warms
#      every agent's prefix (each system prompt is cached per adapter set);
#   3. one scenario to all 13: the wall time of POST /v1/assess against the
#      same 13 chat requests one after another (greedy, so both produce the
#      same tokens: batching changes no answer);
#   4. generation tokens/s of 13 concurrent requests with 0, 1 and 13 distinct
#      adapters in the batch (same prompts, ignore_eos, fixed length), and the
#      cost of mixed adapters against none (the issue's bound: at most 20%);
#   5. prints a table and writes build/bench/agents.json.
# Compare the ratios measured in this one run; absolute numbers move with the
# shared machine's load (the load average is recorded).
# Usage: scripts/bench-agents.sh [path/to/hestia]
# Environment: BENCH_AGENTS_THREADS (2), BENCH_AGENTS_TOKENS (64), BENCH_AGENTS_RANK (16),
#   BENCH_AGENTS_ROUNDS (2), BENCH_AGENTS_LORA_TYPE (f16), BENCH_SHAPE (1b), BENCH_AGENTS_TYPE (q4_k_m), BENCH_DIR (build/bench).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-build/hestia}
threads=${BENCH_AGENTS_THREADS:-2}
n_gen=${BENCH_AGENTS_TOKENS:-64}
rank=${BENCH_AGENTS_RANK:-16}
rounds=${BENCH_AGENTS_ROUNDS:-2}
ltype=${BENCH_AGENTS_LORA_TYPE:-f16}
shape=${BENCH_SHAPE:-1b}
qtype=${BENCH_AGENTS_TYPE:-q4_k_m}
dir=${BENCH_DIR:-build/bench}
json=$dir/agents.json

[ -x "$bin" ] || { echo "bench-agents: $bin is not built (run make)" >&2; exit 1; }
[ -f config/agents.yaml ] || { echo "bench-agents: config/agents.yaml is missing" >&2; exit 1; }
mkdir -p "$dir/agents"
tmp=$(mktemp -d)
tag=bench-agents
. scripts/bench-server-lib.sh

# 1. the model, the adapters, the agents
model=$(bench_model "$shape" "$qtype" "$dir")
name=$(basename "$model" .gguf)
for i in $(seq -w 1 13); do
    a=$dir/agents/lora-$name-r$rank-$ltype-$i.gguf
    if [ ! -s "$a" ]; then
        echo "bench-agents: writing adapter $i of 13" >&2
        "$bin" synth --lora-for "$model" --rank "$rank" --lora-type "$ltype" --seed "$((1000 + 10#$i))" \
            -o "$a.part" -q
        mv "$a.part" "$a"
    fi
done
# agent i gets adapter i: an "adapters:" line after each agent's id line
python3 - config/agents.yaml "$tmp/agents.yaml" "$dir/agents" "$name" "$rank" "$ltype" <<'EOF'
import re, sys
src, out, adir, name, rank, ltype = sys.argv[1:]
lines = open(src, encoding="utf-8").read().split("\n")
res, n = [], 0
for l in lines:
    res.append(l)
    m = re.match(r"^(\s*)- id:\s*\S", l)
    if m and n < 13 and not l.lstrip().startswith("#"):
        n += 1
        res.append("%s  adapters: [bench-%02d]" % (m.group(1), n))
if n != 13:
    sys.exit("bench-agents: expected 13 agents in %s, found %d" % (src, n))
head = ["adapters:"] + ["  - { name: bench-%02d, path: %s/lora-%s-r%s-%s-%02d.gguf }" % (i, adir, name, rank, ltype, i)
                        for i in range(1, 14)]
if any(re.match(r"^adapters:", l) for l in lines):
    sys.exit("bench-agents: config/agents.yaml has its own adapters section; merge by hand")
open(out, "w", encoding="utf-8").write("\n".join(head + res))
EOF

# 2. the server
bench_serve -m "$model" --agents "$tmp/agents.yaml" --threads "$threads" --parallel 13 --ctx 1536

# 3 and 4
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$url" "$name" "$n_gen" "$rounds" "$json" "$threads" "$rank" "$load_start" <<'EOF'
import json, statistics, sys, threading, time, urllib.request
url, model, n_gen, rounds, out, threads, rank, load_start = sys.argv[1:]
n_gen, rounds = int(n_gen), int(rounds)

def post(path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=3600) as r:
        return json.loads(r.read())

agents = [a["id"] for a in json.loads(urllib.request.urlopen(url + "/v1/agents").read())["data"]]
assert len(agents) == 13, agents
scenario = ("Wildfire on Mount Parnitha, 12 km north of Athens, wind 45 km/h from the north-east; "
            "a chemical warehouse storing chlorine cylinders lies 3 km ahead of the fire front in "
            "Acharnes; two schools and a care home are within 5 km. What do you assess and recommend?")
opts = {"max_tokens": n_gen, "temperature": 0}
log = lambda *a: print("bench-agents:", *a, file=sys.stderr, flush=True)

log("warming every agent's cached prefix")
post("/v1/assess", dict(opts, scenario=scenario, max_tokens=4))

assess_s, seq_s, tokens = [], [], None
for r in range(rounds):
    t = time.time()
    a = post("/v1/assess", dict(opts, scenario=scenario))
    assess_s.append(time.time() - t)
    bad = [x for x in a["agents"] if x["status"] != 200]
    assert not bad, bad
    got = {x["agent"]: (x["content"], x["usage"]["completion_tokens"]) for x in a["agents"]}
    t = time.time()
    seq = {}
    for ag in agents:
        j = post("/v1/chat/completions", dict(opts, model=ag, messages=[{"role": "user", "content": scenario}]))
        seq[ag] = (j["choices"][0]["message"]["content"], j["usage"]["completion_tokens"])
    seq_s.append(time.time() - t)
    same = sum(seq[ag] == got[ag] for ag in agents)
    tokens = sum(v[1] for v in got.values())
    log("round %d: assess %.2f s, one after another %.2f s, %d tokens, %d/13 answers identical"
        % (r + 1, assess_s[-1], seq_s[-1], tokens, same))

# generation throughput: 13 concurrent requests, 0 / 1 / 13 distinct adapters
prompts = ["Report %d from sector %d: smoke and rising wind near the depot; %s." %
           (i, 7 * i + 3, "residents ask about evacuation routes") for i in range(13)]
def wave(lora_of):
    res = [None] * 13
    def one(i):
        body = {"model": model, "prompt": prompts[i], "max_tokens": n_gen, "temperature": 0,
                "ignore_eos": True}
        if lora_of(i):
            body["lora"] = [{"name": lora_of(i)}]
        t = time.time()
        j = post("/v1/completions", body)
        res[i] = (j["usage"]["completion_tokens"], time.time() - t)
    ths = [threading.Thread(target=one, args=(i,)) for i in range(13)]
    t = time.time()
    for th in ths: th.start()
    for th in ths: th.join()
    wall = time.time() - t
    return sum(r[0] for r in res) / wall
modes = {"0": lambda i: None, "1": lambda i: "bench-01", "13": lambda i: "bench-%02d" % (i + 1)}
wave(modes["13"])  # warm-up: every adapter's transposed copy, the prompts' pages
tps = {k: [] for k in modes}
for r in range(rounds + 1):
    for k, f in modes.items():
        tps[k].append(wave(f))
        log("adapters %2s: %.1f generated tokens/s" % (k, tps[k][-1]))
med = {k: statistics.median(v) for k, v in tps.items()}
cost13 = 1 - med["13"] / med["0"]
cost1 = 1 - med["1"] / med["0"]
res = {
    "model": model, "threads": int(threads), "adapter_rank": int(rank), "max_tokens": n_gen,
    "load_start": load_start, "load_end": open("/proc/loadavg").read().split()[:3],
    "assess_wall_s": assess_s, "sequential_wall_s": seq_s,
    "assess_speedup": statistics.median(seq_s) / statistics.median(assess_s),
    "assess_completion_tokens": tokens,
    "gen_tps": tps, "gen_tps_median": med,
    "cost_1_adapter": cost1, "cost_13_adapters": cost13, "bound": 0.20, "within_bound": cost13 <= 0.20,
}
json.dump(res, open(out, "w"), indent=2)
print()
print("| 13 agents x 1 scenario (%s, %s threads, max_tokens %d) | median s |" % (model, threads, n_gen))
print("|---|---|")
print("| POST /v1/assess (all 13 together) | %.2f |" % statistics.median(assess_s))
print("| 13 chat requests one after another | %.2f |" % statistics.median(seq_s))
print("| speed-up | %.2fx |" % res["assess_speedup"])
print()
print("| adapters in a batch of 13 | generated tokens/s (median) | vs none |")
print("|---|---|---|")
for k in modes:
    print("| %s | %.1f | %+.1f%% |" % (k, med[k], 100 * (med[k] / med["0"] - 1)))
print()
print("mixed adapters cost %.1f%% of the throughput without adapters (bound 20%%): %s"
      % (100 * cost13, "ok" if cost13 <= 0.20 else "OVER"))
print("wrote", out)
EOF
bench_stop
