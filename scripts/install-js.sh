#!/usr/bin/env bash
# Installs the JavaScript packages the build and the tests use, from the npm
# registry, exactly as each package-lock.json pins them:
#   tests/js   the official openai SDK (the client tests)
#   tests/e2e  playwright-core (the dashboard's browser test drives the system chromium)
#   web        uplot (the dashboard's chart library, compiled into the binary)
# Quiet and quick when they are already there; says so and exits 0 when npm is
# missing (the tests that need them then skip with a message; the build says
# what it needs).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if ! command -v npm >/dev/null 2>&1; then
    echo "install-js: npm not found; the openai-client and browser tests will skip" >&2
    exit 0
fi
for dir in tests/js tests/e2e web; do
    [ -f "$root/$dir/package-lock.json" ] || continue
    cd "$root/$dir"
    if [ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
        continue
    fi
    echo "install-js: npm ci in $dir" >&2
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
done
