/* The safety checks on every answer (issue 6): the rules of config/safety.yaml
 * (ops/safety.h) run over each finished answer, local or upstream, streamed
 * or not, once the answer is complete: for a stream after its last byte is
 * sent, so no client waits for them. The flags go on the request's record
 * and into the monitor's safety rate; each flagged answer raises a
 * safety_flag alert (throttled like every alert type) with the details. */
#include "base/log.h"
#include "base/mem.h"
#include "server/server_impl.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int hs_srv_safety_load(hs_server *s, hs_err *err)
{
    const struct hs_serve_config *cfg = s->cfg;
    const char *path = cfg->safety_rules;
    if (!path || !path[0]) {
        hs_log_info("serve.safety", "rules=none msg=\"safety checks are off (safety.rules: null)\"");
        return HS_OK;
    }
    struct stat st;
    if (!cfg->safety_rules_set && stat(path, &st) != 0) {
        hs_log_warn("serve.safety", "rules=none msg=\"%s is missing: safety checks are off; set safety.rules\"",
                    path);
        return HS_OK;
    }
    int rc = hs_safety_load(path, &s->safety, err);
    if (rc)
        return hs_err_prefix(err, "safety rules: ");
    hs_log_info("serve.safety", "rules=%s chemicals=%d", path, hs_safety_n_chemicals(s->safety));
    return HS_OK;
}

double hs_srv_low_prob(const hs_server *s)
{
    return s->safety ? hs_safety_low_prob(s->safety) : 0;
}

void hs_srv_safety_check(struct srv_call *c, const char *text, size_t len)
{
    hs_server *s = c->srv;
    if (c->shadow_body && !c->answer.len && text) /* (issue 7) A's answer, for the shadow comparison */
        hs_buf_append(&c->answer, text, len);
    if (!s->safety || !text || !len)
        return;
    struct hs_safety_result r;
    hs_err err = {0};
    if (hs_safety_check(s->safety, text, len, c->confidence, &r, &err)) {
        hs_log_warn("serve.safety", "id=%s msg=\"%s\"", c->id, err.msg);
        return;
    }
    if (r.names[0]) {
        /* a second answer of the same request (n > 1) adds its own flags */
        if (!c->safety_flags) {
            c->safety_flags = hs_strdup(r.names);
        } else if (!strstr(c->safety_flags, r.names)) {
            size_t n = strlen(c->safety_flags) + 1 + strlen(r.names) + 1;
            char *both = hs_malloc(n);
            if (both) {
                snprintf(both, n, "%s,%s", c->safety_flags, r.names);
                hs_free(c->safety_flags);
                c->safety_flags = both;
            }
        }
        hs_log_warn("serve.safety", "id=%s flags=%s details=%s", c->id, r.names, r.details ? r.details : "{}");
        char msg[224];
        snprintf(msg, sizeof msg, "answer %.120s flagged: %s", c->id, r.names);
        hs_alert_raise(s->alerts, "safety_flag", HS_ALERT_WARNING, msg, r.details);
    }
    hs_safety_result_free(&r);
}
