/* Scheduled drift jobs (placeholder until the jobs land). */
#include "server/server_impl.h"

int hs_srv_drift_start(hs_server *s, hs_err *err)
{
    (void)err;
    s->drift = NULL;
    return HS_OK;
}

void hs_srv_drift_stop(hs_server *s)
{
    (void)s;
}

void hs_srv_drift_note_prompt(hs_server *s, const char *text, size_t len)
{
    (void)s, (void)text, (void)len;
}

void hs_route_api_drift(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp)
{
    (void)req;
    hs_srv_fail(c, resp, 404, "invalid_request_error", "not_found", NULL, "no drift jobs yet");
}
