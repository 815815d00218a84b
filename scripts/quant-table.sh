#!/usr/bin/env bash
# make quant-table: measures every `hestia quantize` type and writes docs/quantization.md.
#   quality: stories260K (f32 original) quantized to an f16 base and to each type, then
#            `hestia perplexity` and `hestia kld --base F16` on the model's own reference text;
#   size:    file bytes and bits per weight (tensor bytes * 8 / tensor elements, from `hestia info`);
#   speed:   the synthetic 1B-class model (from f16) quantized to each type, `hestia bench`
#            pp512 / tg128 at 2 threads (median of 3) and the generation bandwidth share.
# Usage: scripts/quant-table.sh [path/to/hestia]
# Environment: QT_TYPES (the types to measure; default all), QT_FAST=1 (skip the 1B speed part),
#   QT_DIR (work files; build/quant-table), QT_OUT (docs/quantization.md), HESTIA_SHARED (../shared).
# Progress goes to stderr; a failed step stops the script with its name and exit status 1.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-build/hestia}
all_types="f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k_s q3_k_m q3_k_l q4_k_s q4_k_m q5_k_s q5_k_m q6_k"
types=${QT_TYPES:-$all_types}
fast=${QT_FAST:-0}
dir=${QT_DIR:-build/quant-table}
out=${QT_OUT:-docs/quantization.md}
shared=${HESTIA_SHARED:-../shared}
model="$shared/models/stories260K.gguf"
runs="$shared/testdata/reference/stories260K_runs.json"
threads=2 ctx=128 pp=512 tg=128 reps=3

say() { echo "quant-table: $*" >&2; }
die() { say "$*"; exit 1; }

[ -x "$bin" ] || die "$bin is not built (run make)"
[ -s "$model" ] || die "missing $model"
[ -s "$runs" ] || die "missing $runs"
for t in $types; do
    case " $all_types " in *" $t "*) ;; *) die "unknown type '$t' in QT_TYPES (known: $all_types)";; esac
done
mkdir -p "$dir" "$(dirname "$out")"

cmds="$dir/commands.txt"   # every command run, in order, for the doc
: > "$cmds"
# step NAME CMD...: runs CMD with its output in $dir/logs/NAME.log; on failure names the step.
step() {
    local name=$1; shift
    mkdir -p "$dir/logs"
    printf '%s\n' "$*" >> "$cmds"
    if ! "$@" > "$dir/logs/$name.log" 2>&1; then
        tail -n 20 "$dir/logs/$name.log" >&2 || true
        die "step failed: $name ($*); log: $dir/logs/$name.log"
    fi
}

# 1. the scoring text: the "stdout" of every reference run, concatenated
text="$dir/stories260K-text.txt"
say "text: $text from $runs"
code='import json, sys; sys.stdout.write("".join(r["stdout"] for r in json.load(open(sys.argv[1]))["runs"]))'
printf '%s\n' "python3 -c '$code' $runs > $text" >> "$cmds"
python3 -c "$code" "$runs" > "$text" || die "step failed: text (reading $runs)"
[ -s "$text" ] || die "step failed: text (no \"stdout\" text in $runs)"

# 2. quality and size on stories260K (small: always rebuilt)
base="$dir/stories260K-f16-base.gguf"
say "quality: f16 base $base"
step quantize-base "$bin" quantize "$model" "$base" f16 -t "$threads" -q
n=$(wc -w <<< "$types") i=0
for t in $types; do
    i=$((i + 1))
    q="$dir/stories260K-$t.gguf"
    say "quality [$i/$n] $t: quantize, info, perplexity, kld"
    step "quantize-$t" "$bin" quantize "$model" "$q" "$t" -t "$threads" -q
    step "info-$t" "$bin" info "$q"
    cp "$dir/logs/info-$t.log" "$dir/info-$t.txt"
    step "perplexity-$t" "$bin" perplexity -m "$q" -f "$text" -c "$ctx" -t "$threads" --json "$dir/ppl-$t.json"
    step "kld-$t" "$bin" kld --base "$base" -m "$q" -f "$text" -c "$ctx" -t "$threads" --json "$dir/kld-$t.json"
done

# 3. speed on the synthetic 1B-class model (files reused when present)
if [ "$fast" = 1 ]; then
    say "speed: skipped (QT_FAST=1)"
else
    f16="$dir/1b-f16.gguf"
    if [ ! -s "$f16" ]; then
        say "speed: writing $f16 (once; later runs reuse it)"
        step synth-1b "$bin" synth -o "$f16.part" --shape 1b --type f16 -q
        mv "$f16.part" "$f16"; printf '%s\n' "mv $f16.part $f16" >> "$cmds"
    else
        printf '%s\n' "$bin synth -o $f16 --shape 1b --type f16   # reused from an earlier run" >> "$cmds"
    fi
    i=0
    for t in $types; do
        i=$((i + 1))
        m="$dir/1b-$t.gguf"
        if [ ! -s "$m" ]; then
            say "speed [$i/$n] $t: quantize $m"
            step "quantize-1b-$t" "$bin" quantize "$f16" "$m.part" "$t" -t "$threads" -q
            mv "$m.part" "$m"; printf '%s\n' "mv $m.part $m" >> "$cmds"
        elif [ "$t" != f16 ]; then
            printf '%s\n' "$bin quantize $f16 $m $t -t $threads -q   # reused from an earlier run" >> "$cmds"
        fi
        say "speed [$i/$n] $t: bench pp$pp tg$tg, $threads threads, $reps reps"
        step "bench-$t" "$bin" bench -m "$m" -p "$pp" -n "$tg" -t "$threads" -r "$reps" --json "$dir/bench-$t.json"
    done
fi

# 4. the document
say "writing $out"
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ "$commit" != unknown ] && ! git diff --quiet HEAD -- 2>/dev/null; then commit="$commit (with uncommitted changes)"; fi
cpu=$(grep -m1 '^model name' /proc/cpuinfo | sed 's/^model name[[:space:]]*:[[:space:]]*//' || true)
QT_DIR="$dir" QT_TYPES="$types" QT_FAST="$fast" QT_COMMIT="$commit" QT_CPU="${cpu:-unknown}" \
QT_DATE="$(date -u '+%Y-%m-%d %H:%M UTC')" QT_MODEL="$model" QT_RUNS="$runs" QT_CMDS="$cmds" \
QT_PP="$pp" QT_TG="$tg" QT_THREADS="$threads" QT_CTX="$ctx" \
python3 - "$out.part" <<'EOF' || die "step failed: writing the document"
import json, os, re, sys

env = os.environ
d = env["QT_DIR"]
types = env["QT_TYPES"].split()
fast = env["QT_FAST"] == "1"
pp, tg = "pp" + env["QT_PP"], "tg" + env["QT_TG"]

def info(t):
    """file type mix and bits per weight from `hestia info` (summary lines after 'total:')."""
    mix, total = [], None
    for line in open(os.path.join(d, "info-%s.txt" % t)):
        m = re.match(r"total: (\d+) tensors, (\d+) elements, (\d+) bytes", line)
        if m:
            total = (int(m.group(2)), int(m.group(3)))
            continue
        m = re.match(r"\s+(\w+)\s+(\d+) tensors\s+(\d+) bytes\s*$", line)
        if total and m:
            mix.append((m.group(1), int(m.group(2))))
    if not total:
        raise SystemExit("no 'total:' line in info-%s.txt" % t)
    return mix, total[1] * 8.0 / total[0]

def bench(t):
    p = os.path.join(d, "bench-%s.json" % t)
    if fast or not os.path.exists(p):
        return "-", "-", "-"
    rows = {r["test"]: r for r in json.load(open(p))}
    def ts(k):
        return "%.2f" % rows[k]["tokens_per_second"] if k in rows else "-"
    frac = rows.get(tg, {}).get("bandwidth_fraction")
    return ts(pp), ts(tg), ("%.0f%%" % (frac * 100) if frac is not None else "-")

lines = []
w = lines.append
w("# Quantization types: size, quality and speed")
w("")
w("Measured by `make quant-table` (scripts/quant-table.sh) on %s." % env["QT_DATE"])
w("")
w("- CPU: %s" % env["QT_CPU"])
w("- hestia commit: %s" % env["QT_COMMIT"])
w("- Quality model: `%s` (stories260K, f32 original), each type quantized from f32; "
  "KLD and top-1 agreement are against an f16 quantization of the same file." % env["QT_MODEL"])
w("- Speed model: the synthetic 1B-class model (`hestia synth --shape 1b`, Llama-3.2-1B shapes, "
  "random weights), written as f16 and quantized to each type; %s threads." % env["QT_THREADS"])
if fast:
    w("- **Fast mode (QT_FAST=1): the speed part was skipped; speed columns are \"-\".**")
w("")
w("| type | size (bytes) | bits/weight | tensor types (count) | perplexity | ppl ratio vs f16 "
  "| mean KLD vs f16 | top-1 agreement vs f16 | %s t/s | %s t/s | %s bandwidth share |" % (pp, tg, tg))
w("|---|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|")
for t in types:
    mix, bpw = info(t)
    size = os.path.getsize(os.path.join(d, "stories260K-%s.gguf" % t))
    p = json.load(open(os.path.join(d, "ppl-%s.json" % t)))
    k = json.load(open(os.path.join(d, "kld-%s.json" % t)))
    bp, bt, bw = bench(t)
    w("| %s | %d | %.2f | %s | %.4f ± %.4f | %.4f ± %.4f | %.6f ± %.6f | %.2f%% ± %.2f%% | %s | %s | %s |" % (
        t, size, bpw, ", ".join("%s %d" % m for m in mix), p["ppl"], p["ppl_err"],
        k["ppl_ratio"]["mean"], k["ppl_ratio"]["err"], k["kld"]["mean"], k["kld"]["err"],
        k["top1"]["mean"] * 100, k["top1"]["err"] * 100, bp, bt, bw))
w("")
w("## Reading the table")
w("")
w("- **Text.** The scored text is stories260K's own output: the `stdout` of every run in `%s` "
  "(greedy and sampled generations by llama2.c's run.c), concatenated. The model wrote it, so the "
  "absolute perplexities are low and say little; the meaningful columns are the mean KL divergence "
  "and the top-1 agreement against the f16 model, and the perplexity ratio. Chunks of %s tokens, "
  "the second half of each scored, as llama.cpp's perplexity tool does." % (env["QT_RUNS"], env["QT_CTX"]))
w("- **Row widths.** stories260K's matrices have rows 64 wide, not a multiple of the K types' "
  "256-element super-block, so for the K types (q2_k ... q6_k) every such tensor falls back to a "
  "legacy type by llama.cpp's rules (see the tensor types column, counted from `hestia info`). That is "
  "why several K rows equal legacy rows here; on a real model (rows of 2048 or more) they differ. "
  "ffn_down's rows are 172 wide, not a multiple of 32, so no block type fits them and they stay "
  "16-bit; the norms stay f32 in every type.")
w("- **Size and bits per weight** are for stories260K: size is the whole file, bits per weight is "
  "all tensor data bytes x 8 / all tensor elements (norms included). On a model this small the "
  "f32 norms and the fallbacks weigh far more than on a real one.")
w("- **Speed** is `hestia bench` on the synthetic 1B-class model: %s is prompt processing of %s "
  "tokens, %s generation of %s tokens, tokens per second, median of 3 runs after a warm-up. "
  "The bandwidth share is generation speed x model bytes / the memory bandwidth bench measured: "
  "how close generation is to the memory-bound limit." % (pp, env["QT_PP"], tg, env["QT_TG"]))
w("")
w("## How this was made")
w("")
w("`make quant-table` (or `scripts/quant-table.sh build/hestia`; environment: QT_TYPES=\"%s\"%s) "
  "ran these commands, in this order:" % (" ".join(types), ", QT_FAST=1" if fast else ""))
w("")
w("```sh")
for c in open(env["QT_CMDS"]):
    w(c.rstrip("\n"))
w("```")
with open(sys.argv[1], "w") as f:
    f.write("\n".join(lines) + "\n")
EOF
mv "$out.part" "$out"
say "done: $out"
