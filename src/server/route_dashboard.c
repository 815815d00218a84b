/* GET /dashboard and /dashboard/<asset>: the monitoring page (issue 6).
 *
 * The page, its script and style and the uPlot chart library are compiled
 * into the binary (the Makefile runs scripts/embed_assets.c over web/ into
 * $(BUILD)/gen/web_assets.inc), so a server on a machine with no network
 * serves a working dashboard and nothing is read from disk per request.
 *
 * The assets hold no data: the page's script fetches /api/metrics,
 * /api/timeseries, /api/agents, /api/alerts and /api/drift, which answer
 * loopback clients freely and others only with an admin key. So these
 * routes need no authentication; they are locked down instead: a strict
 * Content-Security-Policy (scripts and styles from this origin only, no
 * inline script, no frames, fetches to this origin only), nosniff, and no
 * referrer. Every response carries a strong ETag and "no-cache", so a browser
 * revalidates on each load and a new binary's page is never stale. */
#include "server/server_impl.h"

#include <string.h>

struct web_asset {
    const char *name;
    const char *content_type;
    const char *etag; /* quoted, as sent */
    const unsigned char *data;
    size_t len;
};

#if defined(__has_include)
#if __has_include("web_assets.inc")
#include "web_assets.inc"
#define HAVE_WEB_ASSETS 1
#endif
#endif
#if !defined(HAVE_WEB_ASSETS)
#if defined(HS_WEB_ASSETS)
#error "the Makefile asked for the dashboard assets but $(BUILD)/gen/web_assets.inc is not on the include path"
#endif
/* A build of src/ outside make (scripts/fuzz.sh): the routes answer 404. */
static const struct web_asset k_web_assets[] = {{"", "", "", (const unsigned char *)"", 0}};
#define K_WEB_ASSETS_N 0
#endif

#define PAGE "dashboard.html"

static const char k_csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                            "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
                            "frame-ancestors 'none'";

static const struct web_asset *find_asset(const char *name)
{
    for (int i = 0; i < K_WEB_ASSETS_N; i++)
        if (!strcmp(k_web_assets[i].name, name))
            return &k_web_assets[i];
    return NULL;
}

/* Whether an If-None-Match value names etag: a comma-separated list of
 * entity tags, or "*". Weak tags (W/"...") match too: RFC 9110 13.1.2 has
 * If-None-Match use the weak comparison. */
static bool etag_matches(const char *inm, const char *etag)
{
    size_t elen = strlen(etag);
    const char *p = inm;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        if (*p == '*')
            return true;
        if (!strncmp(p, "W/", 2))
            p += 2;
        const char *end = p;
        if (*end == '"') {
            const char *close = strchr(end + 1, '"');
            end = close ? close + 1 : end + strlen(end);
        } else {
            while (*end && *end != ',')
                end++;
        }
        if ((size_t)(end - p) == elen && !strncmp(p, etag, elen))
            return true;
        p = end;
    }
    return false;
}

static void security_headers(struct hs_http_resp *resp)
{
    hs_http_resp_header(resp, "Content-Security-Policy", k_csp);
    hs_http_resp_header(resp, "X-Content-Type-Options", "nosniff");
    hs_http_resp_header(resp, "Referrer-Policy", "no-referrer");
    hs_http_resp_header(resp, "X-Frame-Options", "DENY");
}

void hs_route_dashboard(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp)
{
    const char *path = req->path ? req->path : "";
    /* the router sends "/dashboard" and "/dashboard/..." here */
    const char *rest = path + strlen("/dashboard");
    const char *name = NULL;
    if (!*rest || !strcmp(rest, "/"))
        name = PAGE;
    else if (*rest == '/')
        name = rest + 1;
    const struct web_asset *a = name ? find_asset(name) : NULL;
    if (!a) {
        security_headers(resp);
        hs_srv_fail(c, resp, 404, "not_found_error", "unknown_url", NULL, "no dashboard asset %.200s%s", path,
                    K_WEB_ASSETS_N ? "" : " (this build has no dashboard assets compiled in)");
        return;
    }
    security_headers(resp);
    hs_http_resp_header(resp, "ETag", a->etag);
    hs_http_resp_header(resp, "Cache-Control", "no-cache");
    const char *inm = hs_http_req_header(req, "If-None-Match");
    if (inm && etag_matches(inm, a->etag)) {
        resp->status = 304;
        c->status = 304;
        return;
    }
    hs_http_resp_header(resp, "Content-Type", a->content_type);
    if (hs_buf_append(&resp->body, a->data, a->len)) {
        hs_http_resp_free(resp);
        hs_srv_fail(c, resp, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }
    resp->status = 200;
    c->status = 200;
}
