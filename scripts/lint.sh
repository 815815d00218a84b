#!/usr/bin/env bash
# Checks what review should not have to: layers include only layers below
# them, banned functions stay out, no machine paths in the tree.
set -u
cd "$(dirname "$0")/.."
fail=0
layers=(base gguf tensor model engine ops server cli)
rank() { local i; for i in "${!layers[@]}"; do [ "${layers[$i]}" = "$1" ] && { echo "$i"; return; }; done; echo -1; }
for f in $(git ls-files 'src/*.c' 'src/*.h'); do
    own=$(echo "$f" | cut -d/ -f2)
    r_own=$(rank "$own")
    while IFS= read -r inc; do
        dep=$(echo "$inc" | sed -E 's/#include "([a-z_]+)\/.*/\1/')
        r_dep=$(rank "$dep")
        if [ "$r_dep" -gt "$r_own" ]; then
            echo "lint: $f includes upward: $inc"
            fail=1
        fi
    done < <(grep -E '^#include "[a-z_]+/' "$f")
done
# Banned: unchecked conversions and unbounded string functions (STYLE.md).
banned='\b(atoi|atol|atof|sprintf|vsprintf|strcpy|strcat|strtok|gets)\s*\('
if git grep -nE "$banned" -- 'src/*.c' 'src/*.h' 'tests/*.c' >/tmp/hs-lint.$$ 2>/dev/null; then
    echo "lint: banned functions:"
    cat /tmp/hs-lint.$$
    fail=1
fi
rm -f /tmp/hs-lint.$$
machine_paths='(/wo''rk/|/ro''ot/|/ho''me/[a-z])'
if git grep -nE "$machine_paths" -- ':!*.md' >/dev/null 2>&1; then
    echo "lint: absolute machine paths:"
    git grep -nE "$machine_paths" -- ':!*.md'
    fail=1
fi
[ $fail -eq 0 ] && echo "lint: ok"
exit $fail
