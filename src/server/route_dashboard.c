/* /dashboard (placeholder until the page lands). */
#include "server/server_impl.h"

void hs_route_dashboard(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp)
{
    (void)req;
    hs_srv_fail(c, resp, 404, "invalid_request_error", "not_found", NULL, "no dashboard yet");
}
