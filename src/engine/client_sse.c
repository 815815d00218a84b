/* Streamed chat answers for hs_client: a text/event-stream parser
 * (WHATWG server-sent events, the subset OpenAI-style servers use) and the
 * chunk objects it carries.
 *
 * Bytes come in arbitrary pieces, so a line may be split anywhere; lines
 * end in LF or CRLF. "data:" lines accumulate into an event (joined by LF)
 * that a blank line dispatches; comments (":...") and other fields (event,
 * id, retry) are ignored. An event's data is "[DONE]" or a JSON chunk:
 * choices[0].delta.content goes to the caller, choices[0].finish_reason and
 * usage (the last chunk, with stream_options.include_usage) are kept, and an
 * "error" object ends the call with its message. A server that ignored
 * "stream" and answered with application/json gets the whole answer parsed
 * and given to the caller as one piece. */
#include "engine/client_impl.h"

#include "base/clock.h"
#include "base/mem.h"

#include <string.h>
#include <strings.h>

#define LINE_MAX_BYTES ((size_t)16 << 20) /* one event; a real chunk is far smaller */

void hs_client_sse_init(struct hs_client_sse *s, struct hs_chat_resp *out, hs_client_delta_fn fn, void *ud,
                        int64_t t0_ns)
{
    memset(s, 0, sizeof *s);
    s->out = out;
    s->on_delta = fn;
    s->ud = ud;
    s->t0_ns = t0_ns;
}

void hs_client_sse_free(struct hs_client_sse *s)
{
    hs_buf_free(&s->line);
    hs_buf_free(&s->data);
    hs_buf_free(&s->content);
    hs_buf_free(&s->whole);
}

/* Gives the caller a piece of the answer. */
static int deliver(struct hs_client_sse *s, const char *text, size_t len, hs_err *err)
{
    if (!len)
        return HS_OK;
    if (!s->delivered) {
        s->delivered = true;
        s->out->ttft_ms = (double)(hs_now_ns() - s->t0_ns) / 1e6;
    }
    if (hs_buf_append(&s->content, text, len) != HS_OK)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    if (s->on_delta && !s->on_delta(s->ud, text, len))
        return hs_err_set(err, HS_ECANCELED, "the stream was stopped by the caller");
    return HS_OK;
}

static int on_chunk(struct hs_client_sse *s, const json_t *root, hs_err *err)
{
    const json_t *e = json_object_get(root, "error");
    if (e && !json_is_null(e)) {
        const char *m =
            json_is_object(e) ? json_string_value(json_object_get(e, "message")) : json_string_value(e);
        return hs_err_set(err, HS_EIO, "the stream ended with an error: %s", m ? m : "(no message)");
    }
    if (!hs_client_take_str(&s->out->id, json_object_get(root, "id")))
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    hs_client_read_usage(s->out, root);
    /* The usage chunk has "choices": []; other chunks carry one choice. */
    const json_t *ch0 = json_array_get(json_object_get(root, "choices"), 0);
    if (!ch0)
        return HS_OK;
    if (!hs_client_take_str(&s->out->finish_reason, json_object_get(ch0, "finish_reason")))
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    const json_t *content = json_object_get(json_object_get(ch0, "delta"), "content");
    if (json_is_string(content))
        return deliver(s, json_string_value(content), json_string_length(content), err);
    return HS_OK;
}

static int dispatch(struct hs_client_sse *s, hs_err *err)
{
    if (!s->data.len)
        return HS_OK;
    int rc = HS_OK;
    if (s->done) {
        /* Nothing after [DONE] counts. */
    } else if (!strcmp(s->data.data, "[DONE]")) {
        s->done = true;
    } else {
        json_error_t je;
        json_t *root = json_loadb(s->data.data, s->data.len, 0, &je);
        if (!json_is_object(root))
            rc = hs_err_set(err, HS_EFORMAT, "a stream event is not a JSON object: %.80s", s->data.data);
        else
            rc = on_chunk(s, root, err);
        json_decref(root);
    }
    hs_buf_reset(&s->data);
    return rc;
}

/* One line without its end. */
static int on_line(struct hs_client_sse *s, const char *p, size_t n, hs_err *err)
{
    if (n == 0)
        return dispatch(s, err);
    if (p[0] == ':')
        return HS_OK;
    const char *colon = memchr(p, ':', n);
    size_t name_len = colon ? (size_t)(colon - p) : n;
    if (name_len != 4 || memcmp(p, "data", 4) != 0)
        return HS_OK;
    const char *v = colon ? colon + 1 : p + n;
    size_t vlen = (size_t)(p + n - v);
    if (vlen && *v == ' ') {
        v++;
        vlen--;
    }
    if ((s->data.len && hs_buf_putc(&s->data, '\n') != HS_OK) || hs_buf_append(&s->data, v, vlen) != HS_OK)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    return HS_OK;
}

static void sse_begin(void *ud, hs_upstream_stream *st)
{
    struct hs_client_sse *s = ud;
    hs_buf_reset(&s->line);
    hs_buf_reset(&s->data);
    hs_buf_reset(&s->whole);
    s->done = false;
    /* A retry comes only when nothing was delivered; forget what the broken
     * attempt said about itself. */
    hs_buf_reset(&s->content);
    hs_free(s->out->id);
    hs_free(s->out->finish_reason);
    s->out->id = s->out->finish_reason = NULL;
    s->out->prompt_tokens = s->out->completion_tokens = -1;
    const char *ct = hs_upstream_header(st, "Content-Type");
    s->json_body = ct && !strncasecmp(ct, "application/json", 16);
}

static int sse_feed(void *ud, const char *data, size_t n, hs_err *err)
{
    struct hs_client_sse *s = ud;
    if (s->json_body) {
        if (s->whole.len + n > LINE_MAX_BYTES)
            return hs_err_set(err, HS_ERANGE, "the answer is larger than %zu MiB", LINE_MAX_BYTES >> 20);
        return hs_buf_append(&s->whole, data, n) ? hs_err_set(err, HS_ENOMEM, "out of memory") : HS_OK;
    }
    size_t i = 0;
    while (i < n) {
        const char *nl = memchr(data + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - data) : n;
        if (s->line.len + (end - i) > LINE_MAX_BYTES)
            return hs_err_set(err, HS_ERANGE, "a stream line is longer than %zu MiB", LINE_MAX_BYTES >> 20);
        if (hs_buf_append(&s->line, data + i, end - i) != HS_OK)
            return hs_err_set(err, HS_ENOMEM, "out of memory");
        if (!nl)
            break;
        size_t len = s->line.len;
        if (len && s->line.data[len - 1] == '\r')
            len--;
        int rc = on_line(s, s->line.data ? s->line.data : "", len, err);
        hs_buf_reset(&s->line);
        if (rc)
            return rc;
        i = end + 1;
    }
    return HS_OK;
}

static int sse_end(void *ud, hs_err *err)
{
    struct hs_client_sse *s = ud;
    if (s->json_body) {
        struct hs_chat_resp *r = s->out;
        int rc = hs_client_parse_chat(r, s->whole.data ? s->whole.data : "", s->whole.len, err);
        if (rc)
            return rc;
        /* parse_chat set r->content; the caller still gets it as a delta. */
        char *text = r->content;
        r->content = NULL;
        rc = deliver(s, text, strlen(text), err);
        hs_free(text);
        return rc;
    }
    /* A last line or event without its blank line still counts. */
    int rc = HS_OK;
    if (s->line.len) {
        size_t len = s->line.len;
        if (s->line.data[len - 1] == '\r')
            len--;
        rc = on_line(s, s->line.data, len, err);
        hs_buf_reset(&s->line);
    }
    if (!rc)
        rc = dispatch(s, err);
    if (rc)
        return rc;
    /* Some servers close without [DONE] after the finishing chunk; without
     * either, the answer was cut short. */
    if (!s->done && !s->out->finish_reason)
        return hs_err_set(err, HS_EIO, "the stream ended before data: [DONE]");
    return HS_OK;
}

static bool sse_delivered(void *ud)
{
    return ((struct hs_client_sse *)ud)->delivered;
}

const struct hs_client_sink hs_client_sse_sink = {sse_begin, sse_feed, sse_end, sse_delivered};
