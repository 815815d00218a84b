#!/usr/bin/env bash
# make bench: speed of hestia on synthetic models with real shapes.
#   1. synthesizes the models into build/bench/ (once; each 1B-class file is 0.8-1.3 GB),
#   2. runs `hestia bench` on them (table on stdout, JSON in build/bench/bench.json),
#   3. prints each result as a ratio to llama.cpp's figure for the same model, test and
#      thread count, read from ../shared/perf/llamacpp-cpu.md (skipped when absent),
#   4. checks the memory rule: peak RSS <= model bytes + KV bytes + 150 MiB.
# Usage: scripts/bench.sh [path/to/hestia]
# Environment: BENCH_SHAPE (1b | 360m | tiny; default 1b), BENCH_TYPES (default "q4_k_m q8_0"),
#   BENCH_THREADS (default 2), BENCH_REPS (3), BENCH_PP (512), BENCH_TG (128), BENCH_CTX (4096),
#   BENCH_DIR (build/bench), HESTIA_SHARED (../shared).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-build/hestia}
shape=${BENCH_SHAPE:-1b}
types=${BENCH_TYPES:-q4_k_m q8_0}
threads=${BENCH_THREADS:-2}
reps=${BENCH_REPS:-3}
pp=${BENCH_PP:-512}
tg=${BENCH_TG:-128}
ctx=${BENCH_CTX:-4096}
dir=${BENCH_DIR:-build/bench}
shared=${HESTIA_SHARED:-../shared}
ref="$shared/perf/llamacpp-cpu.md"
json="$dir/bench.json"

[ -x "$bin" ] || { echo "bench: $bin is not built (run make)" >&2; exit 1; }
mkdir -p "$dir"

# 1. models, written only when missing (a partial file never takes the final name)
models=()
for t in ${types//,/ }; do
    f="$dir/$shape-$t.gguf"
    if [ ! -s "$f" ]; then
        echo "bench: writing $f (once; later runs reuse it)" >&2
        "$bin" synth -o "$f.part" --shape "$shape" --type "$t" -t "$(nproc)"
        mv "$f.part" "$f"
    fi
    models+=(-m "$f")
done

# 2. the benchmark
"$bin" bench "${models[@]}" -p "$pp" -n "$tg" -t "$threads" -r "$reps" -c "$ctx" --json "$json"
echo
echo "bench: results in $json"

# The JSON has one result object per line; these pull one field out of a line.
field_num() { sed -n "s/.*\"$1\":\([-0-9.eE+]*\).*/\1/p"; }
field_str() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }

# 3. ratios to llama.cpp: its table rows look like
#    | **1B Q4_K_M** | 52.5 / **108.7** | 55.4 / **109.8** | 8.39 / **16.13** | ... |
#    with the test names in the header row and "1 thread / 2 threads" in each cell.
if [ -r "$ref" ]; then
    reftab=$(awk -F'|' '
        /^\| *model *\|/ { for (i = 3; i <= NF; i++) { h = $i; gsub(/[ *]/, "", h); col[i] = h }; next }
        /^\| *\*?\*?[0-9]+[MB] / {
            name = $2; gsub(/\*/, "", name); gsub(/^ +| +$/, "", name)
            for (i = 3; i <= NF; i++) {
                if (col[i] !~ /^(pp|tg)[0-9]+$/) continue
                v = $i; gsub(/\*/, "", v); n = split(v, a, "/")
                for (k = 1; k <= n; k++) { x = a[k]; gsub(/ /, "", x); if (x != "") print name "\t" col[i] "\t" k "\t" x }
            }
        }' "$ref")
    label=$(echo "$shape" | tr '[:lower:]' '[:upper:]')
    echo
    echo "ratio to llama.cpp ($ref; same model, test and threads; > 1 is faster):"
    printf '  %-12s %-7s %7s %10s %10s %7s\n' model test threads hestia llama.cpp ratio
    while IFS= read -r line; do
        case "$line" in *'"test"'*) ;; *) continue ;; esac
        test=$(echo "$line" | field_str test)
        thr=$(echo "$line" | field_num threads)
        ts=$(echo "$line" | field_num tokens_per_second)
        path=$(echo "$line" | field_str model)
        t=$(basename "$path" .gguf); t=${t#"$shape"-}
        name="$label $(echo "$t" | tr '[:lower:]' '[:upper:]')"
        r=$(printf '%s\n' "$reftab" | awk -F'\t' -v n="$name" -v te="$test" -v th="$thr" \
            '$1 == n && $2 == te && $3 == th { print $4 }')
        if [ -n "$r" ]; then
            printf '  %-12s %-7s %7s %10.2f %10s %7.2f\n' "$name" "$test" "$thr" "$ts" "$r" \
                "$(awk -v a="$ts" -v b="$r" 'BEGIN { print a / b }')"
        else
            printf '  %-12s %-7s %7s %10.2f %10s %7s\n' "$name" "$test" "$thr" "$ts" "-" "-"
        fi
    done <"$json"
else
    echo "bench: $ref not found; no llama.cpp ratios"
fi

# 4. the memory rule, for every result
echo
status=0
limit_extra=$((150 * 1024 * 1024))
while IFS= read -r line; do
    case "$line" in *'"test"'*) ;; *) continue ;; esac
    test=$(echo "$line" | field_str test)
    path=$(echo "$line" | field_str model)
    rss=$(echo "$line" | field_num peak_rss_bytes)
    mb=$(echo "$line" | field_num model_bytes)
    kv=$(echo "$line" | field_num kv_bytes)
    lim=$((mb + kv + limit_extra))
    if [ "$rss" -le "$lim" ]; then verdict=ok; else verdict=OVER; status=1; fi
    printf 'memory %-4s %s %-6s peak RSS %6.0f MiB <= model %6.0f + KV %5.0f + 150 MiB = %6.0f MiB\n' \
        "$verdict" "$(basename "$path")" "$test" "$(awk -v x="$rss" 'BEGIN{print x/1048576}')" \
        "$(awk -v x="$mb" 'BEGIN{print x/1048576}')" "$(awk -v x="$kv" 'BEGIN{print x/1048576}')" \
        "$(awk -v x="$lim" 'BEGIN{print x/1048576}')"
done <"$json"
[ "$status" -eq 0 ] && echo "bench: memory rule holds" || echo "bench: memory rule BROKEN" >&2
exit "$status"
