#!/usr/bin/env bash
# hestia serve driven by the official openai npm client (tests/js/sdk.test.mjs):
# chat, chat streaming with usage, completions, embeddings, models, and errors
# surfacing as the SDK's typed errors, every body checked against OpenAI's
# OpenAPI schemas (../shared/testdata/openai/openapi.yaml). Three servers on
# stories260K (a synthetic model when ../shared is absent): open, keyed (one key),
# and rate-limited (2 requests a minute per address). Afterwards the store must hold the SDK's requests (user field
# included) and every server must stop cleanly on SIGTERM.
# Needs $HS_BIN, node and tests/js/node_modules (scripts/install-js.sh); skips without them.
. "$(dirname "$0")/lib.sh"
hs_require_bin
hs_require_serve
command -v node >/dev/null || skip "node is not installed"
[ -f tests/js/node_modules/openai/package.json ] || skip "tests/js/node_modules/openai is missing (scripts/install-js.sh)"
if [ -f "$HS_SHARED/models/stories260K.gguf" ]; then
    model=$(hs_model_stories)
else
    echo "note: stories260K is absent; using a synthetic model"
    model=$(hs_model_tiny) || exit 1
fi
name=$(basename "$model" .gguf)

# components.schemas of the OpenAPI description, as JSON for the node test
spec=$HS_SHARED/testdata/openai/openapi.yaml
schemas=""
if [ -f "$spec" ] && python3 -c 'import yaml' 2>/dev/null; then
    schemas=$HS_TMP/schemas.json
    python3 - "$spec" "$schemas" <<'EOF' || { echo "FAIL: cannot read $spec"; exit 1; }
import json, sys, yaml
loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
d = yaml.load(open(sys.argv[1], encoding="utf-8"), Loader=loader)
json.dump(d["components"]["schemas"], open(sys.argv[2], "w"), default=str)  # YAML dates in examples
EOF
else
    echo "note: $spec or python3-yaml is absent; shapes are checked by the test's own asserts only"
fi

"$HS_BIN" keys create --name sdk --scope user --store "$HS_TMP/keyed.db" >"$HS_TMP/key.out" 2>"$HS_TMP/key.err" ||
    { echo "FAIL: keys create: $(cat "$HS_TMP/key.err")"; exit 1; }
key=$(tr -d '\n' <"$HS_TMP/key.out")
[[ "$key" == hs-* ]] || fail "keys create printed '$key', want a key starting hs-"

cat >"$HS_TMP/limited.yaml" <<EOF
rate_limits:
  per_address:
    requests_per_minute: 2
EOF

# one agent with a schema on the open server
cat >"$HS_TMP/agents.yaml" <<'EOF'
agents:
  - id: sdk-agent
    name: SDK test agent
    system_prompt: Assess briefly.
    schema:
      type: object
      properties:
        risk_level: {type: string, enum: [low, high]}
        actions: {type: array, items: {type: string, maxLength: 16}, maxItems: 2}
      required: [risk_level, actions]
EOF
hs_start open -m "$model" --parallel 2 --ctx 512 --agents "$HS_TMP/agents.yaml" || exit 1
hs_start keyed -m "$model" --parallel 1 --ctx 256 --store "$HS_TMP/keyed.db" || exit 1
hs_start limited -m "$model" --parallel 1 --ctx 256 --config "$HS_TMP/limited.yaml" || exit 1

open_url=${HS_URL[open]} keyed_url=${HS_URL[keyed]} limited_url=${HS_URL[limited]}
HS_OPEN_URL=$open_url HS_KEYED_URL=$keyed_url HS_KEY=$key HS_LIMITED_URL=$limited_url \
    HS_LIMIT_RPM=2 HS_MODEL=$name HS_AGENT=sdk-agent HS_SCHEMAS=$schemas \
    timeout -k 5 120 node tests/js/sdk.test.mjs
rc=$?
[ "$rc" -eq 0 ] || fail "tests/js/sdk.test.mjs exited $rc"

# The store saw the SDK: the chat with user "e2e-sdk", 200, with tokens and timings.
db=${HS_DB[open]}
hs_wait_sql "$db" "SELECT count(*) FROM requests WHERE user = 'e2e-sdk' AND status = 200 AND endpoint = '/v1/chat/completions'" 1 ||
    fail "store: want one 200 chat record with user e2e-sdk, got '${HS_SQL_LAST:-}'"
row=$(hs_sql "$db" "SELECT model, tokens_in > 0, tokens_out > 0, latency_ms > 0, finish_reason IS NOT NULL FROM requests WHERE user = 'e2e-sdk'")
[ "$row" = "$(printf '%s\t1\t1\t1\t1' "$name")" ] || fail "store: the e2e-sdk record is '$row'"
n404=$(hs_sql "$db" "SELECT count(*) FROM requests WHERE status = 404")
[ "$n404" -ge 1 ] || fail "store: no record of the 404"
nkey=$(hs_sql "${HS_DB[keyed]}" "SELECT count(*) FROM requests WHERE key_name = 'sdk' AND status = 200")
[ "${nkey:-0}" -ge 1 ] || fail "store (keyed): no 200 record with key_name sdk"
n401=$(hs_sql "${HS_DB[keyed]}" "SELECT count(*) FROM requests WHERE status = 401")
[ "${n401:-0}" -ge 1 ] || fail "store (keyed): no record of the 401"

hs_stop open
hs_stop keyed
hs_stop limited
hs_finish serve_sdk
