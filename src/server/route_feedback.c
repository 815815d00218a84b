/* POST /v1/feedback {"request_id", "feedback": 1 | -1, "comment"?}: a user's
 * thumbs up or down on an answer, by the id every response carries (the
 * x-request-id header and the body's id). A repeat replaces the earlier
 * feedback. With keys, a user key rates only its own requests; an admin key
 * any. Unknown ids are 404. */
#include "base/mem.h"
#include "ops/store_feedback.h"
#include "server/server_impl.h"

#include <string.h>

#define MAX_COMMENT 4096

void hs_route_feedback(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp)
{
    if (req->body_too_large) {
        hs_srv_fail(c, resp, 413, "invalid_request_error", "request_too_large", NULL, "the body is too large");
        return;
    }
    json_error_t je;
    json_t *body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(body)) {
        hs_srv_fail(c, resp, 400, "invalid_request_error", "invalid_json", NULL,
                    "the body must be a JSON object%s%.200s", body ? "" : ": ", body ? "" : je.text);
        json_decref(body);
        return;
    }
    const json_t *id = json_object_get(body, "request_id");
    const json_t *fb = json_object_get(body, "feedback");
    const json_t *cm = json_object_get(body, "comment");
    if (!id || json_is_null(id))
        hs_srv_fail(c, resp, 400, "invalid_request_error", "missing_required_parameter", "request_id",
                    "'request_id' is required: the id of the answer (its x-request-id)");
    else if (!json_is_string(id) || json_string_length(id) == 0 || json_string_length(id) > 175)
        hs_srv_fail(c, resp, 400, "invalid_request_error", "invalid_type", "request_id",
                    "'request_id' must be a non-empty string of at most 175 bytes");
    else if (!fb || json_is_null(fb))
        hs_srv_fail(c, resp, 400, "invalid_request_error", "missing_required_parameter", "feedback",
                    "'feedback' is required: 1 (good) or -1 (bad)");
    else if (!json_is_integer(fb) || (json_integer_value(fb) != 1 && json_integer_value(fb) != -1))
        hs_srv_fail(c, resp, 400, "invalid_request_error", "invalid_value", "feedback",
                    "'feedback' must be 1 (good) or -1 (bad)");
    else if (cm && !json_is_null(cm) && (!json_is_string(cm) || json_string_length(cm) > MAX_COMMENT ||
                                         strlen(json_string_value(cm)) != json_string_length(cm)))
        hs_srv_fail(c, resp, 400, "invalid_request_error", "invalid_value", "comment",
                    "'comment' must be a string of at most %d bytes", MAX_COMMENT);
    else {
        bool updated = false;
        hs_err err = {0};
        const char *rid = json_string_value(id);
        int value = (int)json_integer_value(fb);
        int rc = hs_store_feedback_set(c->srv->store, rid, c->keyed && !c->admin ? c->key_name : NULL, value,
                                       json_is_string(cm) ? json_string_value(cm) : NULL, hs_srv_unix_ms(),
                                       &updated, &err);
        if (rc == HS_ENOTFOUND)
            hs_srv_fail(c, resp, 404, "invalid_request_error", "request_not_found", "request_id",
                        "no request '%.200s'%s", rid, c->keyed && !c->admin ? " made with this key" : "");
        else if (rc)
            hs_srv_fail(c, resp, 500, "server_error", NULL, NULL, "cannot store the feedback: %s", err.msg);
        else {
            if (c->srv->monitor)
                hs_monitor_feedback(c->srv->monitor, value);
            hs_srv_reply_json(c, resp, 200,
                              json_pack("{s:s,s:s,s:i,s:b}", "object", "feedback", "request_id", rid, "feedback",
                                        value, "updated", updated));
        }
    }
    json_decref(body);
}
