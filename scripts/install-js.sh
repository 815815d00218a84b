#!/usr/bin/env bash
# Installs the JavaScript test clients (tests/js: the official openai SDK) from
# the npm registry, exactly as package-lock.json pins them. Quiet and quick
# when they are already there; says so and exits 0 when npm is missing (the
# tests that need them then skip with a message).
set -euo pipefail
cd "$(dirname "$0")/../tests/js"
if ! command -v npm >/dev/null 2>&1; then
    echo "install-js: npm not found; the openai-client tests will skip" >&2
    exit 0
fi
if [ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
    exit 0
fi
echo "install-js: npm ci in tests/js" >&2
npm ci --no-audit --no-fund --loglevel=error >/dev/null
