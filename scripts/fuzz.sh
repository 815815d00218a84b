#!/usr/bin/env bash
# Builds every tests/fuzz/fuzz_*.c with clang libFuzzer + ASan + UBSan and runs
# each for SECONDS (default 60). Exits non-zero if any target fails to build
# or finds a crash, a leak, undefined behaviour, a timeout or an OOM.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     e.g. scripts/fuzz.sh 30 gguf
#
# Layout (FUZZ_BUILD, default build/fuzz):
#   obj/            library objects, instrumented (-fsanitize=fuzzer-no-link)
#   fuzz_<t>        one binary per target
#   corpus/<t>/     the working corpus, kept between runs (never in the repo)
#   artifacts/      crashing inputs: reproduce with  build/fuzz/fuzz_<t> FILE
#                   (leaks: with LSAN_OPTIONS=suppressions=tests/fuzz/lsan.supp, as here)
# Seeds for target <t>, when present:
#   tests/fuzz/seed_<t>.c   a program run as `seed_<t> DIR` that writes seed files
#   tests/fuzz/<t>.dict     a libFuzzer dictionary
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${1:-60}
shift || true
case "$SECS" in '' | *[!0-9]*) echo "fuzz.sh: SECONDS must be a number, got '$SECS'" >&2; exit 2 ;; esac

OUT=${FUZZ_BUILD:-build/fuzz}
CLANG=${CLANG:-clang}
JOBS=${FUZZ_JOBS:-2}
command -v "$CLANG" >/dev/null || { echo "fuzz.sh: $CLANG not found (scripts/install-deps.sh installs it)" >&2; exit 1; }

PKGS="$(sed -n "s/^PKGS *:= *//p" Makefile)"   # the same libraries as the build
# Same language, defines and includes as the Makefile; sanitizer flags instead of -O2.
# No -Werror: gcc's `make` enforces warnings, and a clang-only warning in
# someone's file should not stop the fuzzing.
CFLAGS="-std=c11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer -Wall -Wextra -Wshadow \
 -Wno-unused-parameter -Isrc -pthread $(pkg-config --cflags $PKGS 2>/dev/null)"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
LIBS="$(pkg-config --libs $PKGS 2>/dev/null) -lm -pthread"
AVX2_FLAGS="-mavx2 -mfma -mf16c"
AVX512_FLAGS="$AVX2_FLAGS -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16"

mkdir -p "$OUT/obj" "$OUT/corpus" "$OUT/artifacts" "$OUT/logs"

# --- the library, instrumented for coverage; rebuilt only where a source or
# one of the headers it includes (from clang's .d file) changed ---
compile_one() {
    local src=$1 obj=$2 extra=""
    case "$src" in
    *_avx512.c) extra=$AVX512_FLAGS ;;
    *_avx2.c) extra=$AVX2_FLAGS ;;
    esac
    mkdir -p "$(dirname "$obj")"
    # shellcheck disable=SC2086
    "$CLANG" $CFLAGS $extra $SAN -fsanitize=fuzzer-no-link -MMD -MP -c "$src" -o "$obj"
}
export -f compile_one
export CLANG CFLAGS SAN AVX2_FLAGS AVX512_FLAGS

stale() { # obj dep-file: true when obj is missing or older than anything it depends on
    local obj=$1 dep=$2 f
    [ -f "$obj" ] && [ -f "$dep" ] || return 0
    for f in $(sed -e 's/\\$//' -e 's/^[^:]*://' "$dep" | tr ' ' '\n' | grep -v '^$' | grep -v ':$' | sort -u); do
        [ -e "$f" ] || return 0
        [ "$f" -nt "$obj" ] && return 0
    done
    return 1
}

lib_src=$(ls src/base/*.c src/gguf/*.c src/tensor/*.c src/model/*.c src/engine/*.c src/ops/*.c src/server/*.c 2>/dev/null)
todo=()
objs=()
for src in $lib_src; do
    obj="$OUT/obj/${src#src/}"
    obj="${obj%.c}.o"
    objs+=("$obj")
    if stale "$obj" "${obj%.o}.d"; then todo+=("$src $obj"); fi
done
if [ ${#todo[@]} -gt 0 ]; then
    echo "fuzz.sh: compiling ${#todo[@]} library files"
    printf '%s\n' "${todo[@]}" | xargs -P "$JOBS" -L 1 bash -c 'compile_one "$0" "$1"'
fi
lib="$OUT/libhestia_fuzz.a"
rm -f "$lib"
ar rcs "$lib" "${objs[@]}"

# --- targets ---
targets=()
if [ $# -gt 0 ]; then
    for t in "$@"; do targets+=("tests/fuzz/fuzz_${t#fuzz_}.c"); done
else
    for f in tests/fuzz/fuzz_*.c; do [ -e "$f" ] && targets+=("$f"); done
fi
[ ${#targets[@]} -gt 0 ] || { echo "fuzz.sh: no tests/fuzz/fuzz_*.c targets" >&2; exit 1; }

failed=()
for src in "${targets[@]}"; do
    [ -f "$src" ] || { echo "fuzz.sh: $src does not exist" >&2; failed+=("$src"); continue; }
    name=$(basename "$src" .c)
    t=${name#fuzz_}
    bin="$OUT/$name"
    # shellcheck disable=SC2086
    if ! "$CLANG" $CFLAGS $SAN -fsanitize=fuzzer "$src" "$lib" $LIBS -o "$bin"; then
        echo "fuzz.sh: $name: build failed" >&2
        failed+=("$name (build)")
        continue
    fi
    corpus="$OUT/corpus/$t"
    mkdir -p "$corpus"
    if [ -f "tests/fuzz/seed_$t.c" ]; then
        seeder="$OUT/seed_$t"
        # shellcheck disable=SC2086
        if ! { "$CLANG" $CFLAGS $SAN "tests/fuzz/seed_$t.c" "$lib" $LIBS -o "$seeder" && "$seeder" "$corpus"; }; then
            echo "fuzz.sh: $name: seed generator failed" >&2
            failed+=("$name (seeds)")
            continue
        fi
    fi
    dict=()
    [ -f "tests/fuzz/$t.dict" ] && dict=("-dict=tests/fuzz/$t.dict")
    log="$OUT/logs/$name.log"
    echo "fuzz.sh: $name for ${SECS}s ($(ls "$corpus" | wc -l) corpus files)"
    set +e
    LSAN_OPTIONS="suppressions=$PWD/tests/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}" \
    "$bin" "$corpus" "${dict[@]}" -max_total_time="$SECS" -rss_limit_mb=2048 -max_len=65536 -timeout=25 \
        -print_final_stats=1 -artifact_prefix="$OUT/artifacts/$name-" >"$log" 2>&1
    rc=$?
    set -e
    if [ $rc -ne 0 ]; then
        echo "fuzz.sh: $name FAILED (exit $rc); log $log; last lines:" >&2
        tail -n 40 "$log" >&2
        failed+=("$name")
    else
        grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$log" | tr '\n' ' ' | sed "s/^/    $name: /"
        echo
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: ${#failed[@]} failing: ${failed[*]}"
    exit 1
fi
echo "fuzz: ${#targets[@]} target(s) ran ${SECS}s each, no crashes"
