#!/usr/bin/env bash
# GET /dashboard and its assets, compiled into the binary (issue 6):
#  - /dashboard (and /dashboard/) is the page; /dashboard/<asset> the script,
#    the style and the uPlot library, each byte for byte the file in web/ (or
#    web/node_modules/uplot/dist) with its Content-Type;
#  - every answer carries a strong ETag, Cache-Control: no-cache, nosniff and
#    a Content-Security-Policy that allows nothing from another origin and no
#    inline script; If-None-Match with the ETag (or in a list, or weak) -> 304
#    with no body; a changed file would change the ETag (distinct assets have
#    distinct tags);
#  - HEAD answers the headers of GET with no body; POST is 405;
#  - an unknown asset is a 404 JSON error; a path outside the table (../) too;
#  - the page is served without a key even when the store has keys (then
#    /v1/models needs one): it holds no data; its data routes answer loopback
#    (/api/experiments too: an empty list here, where no experiment is set).
. "$(dirname "$0")/lib.sh"
hs_require_bin
hs_require_serve
model=$(hs_model_tiny)
hs_start dash -m "$model" --alias tiny || exit 1
url=${HS_URL[dash]}

# asset name -> file in the tree and its Content-Type
declare -A file=(
    [dashboard.js]=web/dashboard.js
    [dashboard.css]=web/dashboard.css
    [uPlot.iife.min.js]=web/node_modules/uplot/dist/uPlot.iife.min.js
    [uPlot.min.css]=web/node_modules/uplot/dist/uPlot.min.css
)
declare -A ctype=(
    [dashboard.js]="text/javascript; charset=utf-8"
    [dashboard.css]="text/css; charset=utf-8"
    [uPlot.iife.min.js]="text/javascript; charset=utf-8"
    [uPlot.min.css]="text/css; charset=utf-8"
)

check_common() { # what every asset answer carries
    local what=$1 csp
    csp=$(hs_header content-security-policy)
    check '[ "$(hs_header x-content-type-options)" = nosniff ]' "$what: X-Content-Type-Options '$(hs_header x-content-type-options)'"
    check '[[ "$csp" == *"default-src '"'"'none'"'"'"* ]] && [[ "$csp" == *"script-src '"'"'self'"'"';"* ]]' \
        "$what: CSP '$csp'"
    check '[[ "$csp" != *unsafe-inline* ]] && [[ "$csp" != *unsafe-eval* ]] && [[ "$csp" != *http* ]]' \
        "$what: the CSP allows inline script or another origin: '$csp'"
    check '[[ "$csp" == *"frame-ancestors '"'"'none'"'"'"* ]] && [[ "$csp" == *"connect-src '"'"'self'"'"'"* ]]' \
        "$what: CSP frames/connect: '$csp'"
}

# the page, at both spellings
for p in /dashboard /dashboard/; do
    hs_http GET "$url$p"
    check '[ "$HTTP_STATUS" = 200 ]' "GET $p: HTTP $HTTP_STATUS"
    check '[ "$(hs_header content-type)" = "text/html; charset=utf-8" ]' "GET $p: Content-Type '$(hs_header content-type)'"
    check 'cmp -s "$HS_TMP/resp.body" web/dashboard.html' "GET $p: the body is not web/dashboard.html"
    check '[ "$(hs_header cache-control)" = no-cache ]' "GET $p: Cache-Control '$(hs_header cache-control)'"
    check_common "GET $p"
done
page_etag=$(hs_header etag)
check '[[ "$page_etag" =~ ^\"[0-9a-f]+-[0-9a-f]+\"$ ]]' "page ETag '$page_etag' is not a strong tag"
# the page has no inline script (the CSP would block it) and loads only from /dashboard/
check '! grep -Eq "<script>|<script [^>]*>[^<]|on(load|click|submit)=|<style" web/dashboard.html' \
    "web/dashboard.html has inline script or style"
check '! grep -Eq "(src|href)=\"(https?:)?//" web/dashboard.html' "web/dashboard.html loads from another origin"

declare -A tags=()
for a in "${!file[@]}"; do
    hs_http GET "$url/dashboard/$a"
    check '[ "$HTTP_STATUS" = 200 ]' "GET /dashboard/$a: HTTP $HTTP_STATUS"
    check '[ "$(hs_header content-type)" = "${ctype[$a]}" ]' "GET /dashboard/$a: Content-Type '$(hs_header content-type)'"
    check 'cmp -s "$HS_TMP/resp.body" "${file[$a]}"' "GET /dashboard/$a: the body is not ${file[$a]}"
    check_common "GET /dashboard/$a"
    et=$(hs_header etag)
    tags[$a]=$et
    # If-None-Match: the tag, the tag in a list, the weak form, "*" -> 304 with no body
    for inm in "$et" "\"nope\", $et" "W/$et" "*"; do
        rm -f "$HS_TMP/resp.body" # curl writes no file for an empty body
        hs_http GET "$url/dashboard/$a" -H "If-None-Match: $inm"
        check '[ "$HTTP_STATUS" = 304 ] && [ ! -s "$HS_TMP/resp.body" ]' \
            "GET /dashboard/$a If-None-Match: $inm: HTTP $HTTP_STATUS, $(cat "$HS_TMP/resp.body" 2>/dev/null | wc -c) body bytes"
        check '[ "$(hs_header etag)" = "$et" ]' "304 of $a: ETag '$(hs_header etag)'"
    done
    hs_http GET "$url/dashboard/$a" -H 'If-None-Match: "0000000000000000-0"'
    check '[ "$HTTP_STATUS" = 200 ]' "GET /dashboard/$a with another tag: HTTP $HTTP_STATUS"
    # HEAD: GET's headers, no body
    # (curl -I prints the headers where -o points: keep them apart from the body)
    HTTP_STATUS=$(curl -sS -I -o /dev/null -D "$HS_TMP/resp.headers" -w '%{http_code}' --max-time 30 "$url/dashboard/$a")
    check '[ "$HTTP_STATUS" = 200 ]' "HEAD /dashboard/$a: HTTP $HTTP_STATUS"
    check '[ "$(hs_header etag)" = "$et" ] && [ "$(hs_header content-type)" = "${ctype[$a]}" ]' \
        "HEAD /dashboard/$a: ETag '$(hs_header etag)' Content-Type '$(hs_header content-type)'"
    check '[ "$(hs_header content-length)" = "$(wc -c <"${file[$a]}" | tr -d " ")" ]' \
        "HEAD /dashboard/$a: Content-Length '$(hs_header content-length)'"
done
check '[ "$(printf "%s\n" "${tags[@]}" "$page_etag" | sort -u | wc -l)" = 5 ]' "the five assets do not have five distinct ETags: ${tags[*]} $page_etag"

# unknown assets, paths that try to leave the table, methods
for p in /dashboard/nope.js /dashboard/../etc/passwd /dashboard/web/dashboard.js /dashboard/dashboard.js/x /dashboardx; do
    hs_http GET "$url$p" --path-as-is
    check '[ "$HTTP_STATUS" = 404 ]' "GET $p: HTTP $HTTP_STATUS (want 404)"
    check '[ "$(hs_json "$HS_TMP/resp.body" "j[\"error\"][\"type\"]")" = not_found_error ]' \
        "GET $p: not a JSON 404: $(head -c 300 "$HS_TMP/resp.body")"
done
hs_http POST "$url/dashboard" -d '{}'
check '[ "$HTTP_STATUS" = 405 ] && [[ "$(hs_header allow)" == *GET* ]]' "POST /dashboard: HTTP $HTTP_STATUS Allow '$(hs_header allow)'"

# the page's data route answers loopback (the page itself is never keyed)
hs_http GET "$url/api/metrics"
check '[ "$HTTP_STATUS" = 200 ]' "GET /api/metrics from loopback: HTTP $HTTP_STATUS"
# (issue 7) the experiments view's route: a list, empty on a server without experiments
hs_http GET "$url/api/experiments"
check '[ "$HTTP_STATUS" = 200 ] && [ "$(hs_json "$HS_TMP/resp.body" "len(j[\"data\"])")" = 0 ]' \
    "GET /api/experiments from loopback: HTTP $HTTP_STATUS $(head -c 200 "$HS_TMP/resp.body")"
hs_stop dash

# with keys configured, the page is still served without one (it holds no data)
db=$HS_TMP/keyed.db
"$HS_BIN" keys create --name ops --scope admin --store "$db" >"$HS_TMP/key.out" 2>&1 ||
    fail "keys create: $(cat "$HS_TMP/key.out")"
hs_start keyed -m "$model" --alias tiny --store "$db" || exit 1
hs_http GET "${HS_URL[keyed]}/v1/models"
check '[ "$HTTP_STATUS" = 401 ]' "GET /v1/models with keys configured, no key: HTTP $HTTP_STATUS (want 401)"
hs_http GET "${HS_URL[keyed]}/dashboard"
check '[ "$HTTP_STATUS" = 200 ]' "GET /dashboard with keys configured, no key: HTTP $HTTP_STATUS"
hs_http GET "${HS_URL[keyed]}/dashboard/dashboard.js"
check '[ "$HTTP_STATUS" = 200 ]' "GET /dashboard/dashboard.js with keys configured, no key: HTTP $HTTP_STATUS"
hs_stop keyed
hs_finish "dashboard assets: content, types, ETag/304, HEAD, CSP and nosniff, 404s, no key needed"
