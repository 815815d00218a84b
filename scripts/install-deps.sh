#!/usr/bin/env bash
# Installs every Debian package that hestia's build and tests need.
# Idempotent and quiet when everything is there. Run as root (or with sudo).
set -euo pipefail
pkgs=(
    build-essential pkg-config clang libclang-rt-14-dev   # compilers; clang for libFuzzer
    libjansson-dev libpcre2-dev libutf8proc-dev           # JSON, regex, Unicode
    libmicrohttpd-dev libcurl4-openssl-dev                # HTTP server, HTTP client (upstreams)
    libsqlite3-dev libfyaml-dev libsodium-dev libxxhash-dev # store, config, key hashing, prefix keys
    libgsl-dev                                            # statistics
    libcmocka-dev valgrind python3 curl sqlite3           # tests (python3 writes hostile GGUF files)
    chromium                                              # the dashboard's browser test (headless)
)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Node.js runs the real API clients in the tests; take Debian's only if none is there.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
