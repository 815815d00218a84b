#!/usr/bin/env bash
# `make run`: finds the default model and serves it with `hestia serve` on
# 127.0.0.1:8000 (Ctrl-C stops it gracefully).
set -euo pipefail
bin=${1:-build/hestia}
cd "$(dirname "$0")/.."
model=""
for m in models/default.gguf ../shared/models/stories260K.gguf; do
    if [ -f "$m" ]; then model=$m; break; fi
done
if [ -z "$model" ]; then
    echo "make run: no model found. Put a GGUF model at models/default.gguf" >&2
    echo "          (or make one: $bin synth -o models/default.gguf --shape tiny)" >&2
    exit 1
fi
echo "make run: serving $model on http://127.0.0.1:8000 (OpenAI API under /v1)" >&2
exec "$bin" serve -m "$model"
