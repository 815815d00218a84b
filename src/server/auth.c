/* Who may call, and how often: API keys from the store (Authorization:
 * Bearer), admin scope for /admin, and the rate limits per key name and per
 * client address. With no active key in the store the server is open to
 * loopback clients only, unless told --insecure (hs_server_listen refuses a
 * non-loopback address then, and a server that had keys at start and lost
 * them all refuses clients from the network). */
#include "base/log.h"
#include "server/server_impl.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The token of "Bearer <token>" (scheme case-insensitive, spaces around
 * allowed), copied into out; false when the header is absent or not Bearer. */
static bool bearer(const char *h, char *out, size_t cap)
{
    if (!h)
        return false;
    while (*h == ' ' || *h == '\t')
        h++;
    if (strncasecmp(h, "Bearer", 6) || (h[6] != ' ' && h[6] != '\t'))
        return false;
    h += 6;
    while (*h == ' ' || *h == '\t')
        h++;
    size_t n = strlen(h);
    while (n && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    if (!n || n >= cap)
        return false;
    memcpy(out, h, n);
    out[n] = '\0';
    return true;
}

static void add_header(void *user, const char *name, const char *value)
{
    hs_http_resp_header(user, name, value);
}

static bool refuse_rate(struct srv_call *c, struct hs_http_resp *resp, const struct hs_rl_verdict *v,
                        const char *what, const char *who)
{
    char ra[24];
    snprintf(ra, sizeof ra, "%d", v->retry_after_s > 0 ? v->retry_after_s : 1);
    hs_http_resp_header(resp, "Retry-After", ra);
    hs_ratelimit_headers(v, add_header, resp);
    hs_srv_fail(c, resp, 429, "rate_limit_error", "rate_limit_exceeded", NULL,
                "Rate limit reached for %s '%.64s'; retry in %d s", what, who,
                v->retry_after_s > 0 ? v->retry_after_s : 1);
    return false;
}

bool hs_srv_auth(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp, bool admin,
                 bool limited)
{
    hs_server *s = c->srv;
    /* A store that cannot say how many keys it has fails closed: keys needed. */
    int n_keys = hs_store_key_count(s->store);
    if (n_keys == 0 && !req->loopback && !s->cfg->insecure) {
        /* The server listens beyond loopback because it had keys at start;
         * with every key revoked since, it must not turn open to the network. */
        hs_srv_fail(c, resp, 401, "authentication_error", "invalid_api_key", NULL,
                    "This server has no API key configured and serves only loopback clients "
                    "(create one with: hestia keys create --name NAME)");
        return false;
    }
    if (n_keys != 0) {
        char key[256];
        struct hs_key_info ki;
        if (!bearer(hs_http_req_header(req, "Authorization"), key, sizeof key)) {
            hs_http_resp_header(resp, "WWW-Authenticate", "Bearer");
            hs_srv_fail(c, resp, 401, "authentication_error", "invalid_api_key", NULL,
                        "You didn't provide an API key: send it as 'Authorization: Bearer KEY'");
            return false;
        }
        memset(&ki, 0, sizeof ki);
        if (!hs_store_key_verify(s->store, key, &ki)) {
            hs_http_resp_header(resp, "WWW-Authenticate", "Bearer");
            hs_srv_fail(c, resp, 401, "authentication_error", "invalid_api_key", NULL,
                        "Incorrect API key provided");
            return false;
        }
        c->keyed = true;
        snprintf(c->key_name, sizeof c->key_name, "%s", ki.name);
        c->admin = ki.scope == HS_SCOPE_ADMIN;
        if (admin && ki.scope != HS_SCOPE_ADMIN) {
            hs_srv_fail(c, resp, 403, "permission_error", "insufficient_permissions", NULL,
                        "The key '%s' has scope '%s'; this route needs an admin key", ki.name,
                        hs_key_scope_name(ki.scope));
            return false;
        }
    }
    if (!limited)
        return true;
    int64_t now = hs_srv_unix_ms();
    struct hs_rl_verdict va, vk;
    memset(&va, 0, sizeof va);
    memset(&vk, 0, sizeof vk);
    bool by_addr = hs_ratelimit_enabled(s->rl_addr);
    bool by_key = c->keyed && hs_ratelimit_enabled(s->rl_key);
    if (by_addr && !hs_ratelimit_admit(s->rl_addr, c->client, now, &va))
        return refuse_rate(c, resp, &va, "address", c->client);
    if (by_key && !hs_ratelimit_admit(s->rl_key, c->key_name, now, &vk))
        return refuse_rate(c, resp, &vk, "key", c->key_name);
    /* the headers of the subject a client is most likely to care about: its key */
    if (by_key)
        hs_ratelimit_headers(&vk, add_header, resp);
    else if (by_addr)
        hs_ratelimit_headers(&va, add_header, resp);
    return true;
}

void hs_srv_limits_add_tokens(struct srv_call *c, int tokens)
{
    hs_server *s = c->srv;
    int64_t now = hs_srv_unix_ms();
    if (hs_ratelimit_enabled(s->rl_addr))
        hs_ratelimit_add_tokens(s->rl_addr, c->client, now, tokens);
    if (c->keyed && hs_ratelimit_enabled(s->rl_key))
        hs_ratelimit_add_tokens(s->rl_key, c->key_name, now, tokens);
}
