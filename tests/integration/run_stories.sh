#!/usr/bin/env bash
# 'hestia run' end to end on stories260K:
#  - every greedy run recorded from llama2.c's run.c (../shared/testdata/reference/
#    stories260K_runs.json) gives byte-identical stdout. run.c's -n counts all
#    positions, so hestia gets -n = the number of ids run.c sampled;
#  - error cases: exit status 1 or 2 and a single "hestia run: ..." line on stderr;
#  - a seeded sampling run is the same twice;
#  - --chat with a template override answers lines from stdin.
# Needs $HS_BIN (the hestia binary); exits 77 (skipped) when ../shared is absent.
set -u
cd "$(dirname "$0")/../.."
shared=${HESTIA_SHARED:-../shared}
model=$shared/models/stories260K.gguf
runs=$shared/testdata/reference/stories260K_runs.json
if [ ! -f "$model" ] || [ ! -f "$runs" ]; then
    echo "SKIP: $shared/models/stories260K.gguf or its reference runs are absent"
    exit 77
fi
if [ -z "${HS_BIN:-}" ] || [ ! -x "$HS_BIN" ]; then
    echo "FAIL: HS_BIN must name the hestia binary"
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

# One file per greedy run: its prompt (run.c's -i), the expected stdout, and N.
python3 - "$runs" "$tmp" <<'EOF' || { echo "FAIL: cannot read $runs"; exit 1; }
import json, os, sys
runs, out = sys.argv[1], sys.argv[2]
k = 0
with open(os.path.join(out, "list"), "w") as lst:
    for r in json.load(open(runs, encoding="utf-8"))["runs"]:
        if not r["label"].startswith("greedy"):
            continue
        args = r["args"]
        prompt = args[args.index("-i") + 1] if "-i" in args else ""
        with open(os.path.join(out, f"{k}.prompt"), "wb") as f:
            f.write(prompt.encode("utf-8"))
        with open(os.path.join(out, f"{k}.want"), "wb") as f:
            f.write(r["stdout"].encode("utf-8"))
        lst.write(f"{k} {len(r['sampled_ids'])}\n")
        k += 1
EOF

n_runs=0
while read -r k n; do
    prompt=$(cat "$tmp/$k.prompt")
    "$HS_BIN" run -m "$model" -p "$prompt" -n "$n" --temp 0 >"$tmp/$k.got" 2>"$tmp/$k.err"
    rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "greedy run '$prompt' -n $n exited $rc"
        tail -n 5 "$tmp/$k.err"
    elif ! cmp -s "$tmp/$k.want" "$tmp/$k.got"; then
        fail "greedy run '$prompt' -n $n differs from run.c's output"
        diff "$tmp/$k.want" "$tmp/$k.got" | head -n 20
    fi
    n_runs=$((n_runs + 1))
done <"$tmp/list"
[ "$n_runs" -ge 1 ] || fail "no greedy runs found in $runs"
echo "greedy runs checked: $n_runs"

# expect_error STATUS WHAT -- args...: exit STATUS and exactly one line on
# stderr, starting "hestia run: ". Logging is off so that only the error speaks.
expect_error() {
    local want=$1 what=$2
    shift 3
    HESTIA_LOG=off "$HS_BIN" run "$@" </dev/null >"$tmp/e.out" 2>"$tmp/e.err"
    local rc=$? lines
    lines=$(wc -l <"$tmp/e.err")
    if [ "$rc" -ne "$want" ]; then
        fail "$what: exit status $rc, wanted $want"
        cat "$tmp/e.err"
    elif [ "$lines" -ne 1 ] || ! grep -q '^hestia run: ' "$tmp/e.err"; then
        fail "$what: wanted one 'hestia run: ...' line on stderr, got:"
        cat "$tmp/e.err"
    fi
}
expect_error 1 "missing model file" -- -m "$tmp/no-such-model.gguf" -p "hi"
long="Once upon a time there was a little girl who liked to play in the park with her dog and her cat every day"
expect_error 1 "prompt too long for the context" -- -m "$model" -p "$long" -c 16
grep -q "but the context holds 16" "$tmp/e.err" || fail "prompt too long: message names the context size: $(cat "$tmp/e.err")"
expect_error 2 "bad flag value" -- -m "$model" -p "hi" --temp abc
expect_error 2 "unknown flag" -- -m "$model" -p "hi" --no-such-flag 1
expect_error 1 "unknown chat template" -- -m "$model" --chat --chat-template no-such-template

# Sampling with a fixed seed is reproducible.
"$HS_BIN" run -m "$model" -p "Once upon a time" -n 60 --temp 1 --top-p 0.9 --seed 42 >"$tmp/s1" 2>/dev/null ||
    fail "seeded run exited $?"
"$HS_BIN" run -m "$model" -p "Once upon a time" -n 60 --temp 1 --top-p 0.9 --seed 42 >"$tmp/s2" 2>/dev/null ||
    fail "seeded run exited $?"
cmp -s "$tmp/s1" "$tmp/s2" || { fail "the same seed gave different text"; diff "$tmp/s1" "$tmp/s2" | head; }
[ -s "$tmp/s1" ] || fail "seeded run printed nothing"

# A chat of two turns with the phi3 template (stories260K has none of its own).
printf 'Hello there\nTell me a story.\n' |
    "$HS_BIN" run -m "$model" --chat --chat-template phi3 -n 24 --temp 0 >"$tmp/chat.out" 2>"$tmp/chat.err"
rc=$?
if [ "$rc" -ne 0 ]; then
    fail "--chat exited $rc"
    tail -n 5 "$tmp/chat.err"
elif [ "$(wc -l <"$tmp/chat.out")" -lt 2 ]; then
    fail "--chat answered fewer than two lines"
    cat "$tmp/chat.out"
fi

if [ "$failures" -ne 0 ]; then
    echo "run_stories: $failures failure(s)"
    exit 1
fi
echo "run_stories: all checks passed"
