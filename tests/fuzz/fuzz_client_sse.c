/* libFuzzer target for hs_client's stream parser (engine/client_sse.c): a
 * server's text/event-stream body, cut into pieces at fuzz-chosen places,
 * goes through the sink a streamed chat answer uses, then the end of the
 * body. Whatever the bytes, the parser must not crash, leak or read out of
 * bounds, and what it gives the caller must be exactly what it keeps as the
 * answer.
 *
 * Input: byte 0 picks the piece size (1 + byte0 % 64) and, with bit 7, a
 * caller that stops after the third delta; the rest is the body. */
#include "base/buf.h"
#include "base/clock.h"
#include "engine/client_impl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct seen {
    hs_buf text;
    int calls;
    bool stop_early;
};

static bool on_delta(void *ud, const char *text, size_t len)
{
    struct seen *s = ud;
    s->calls++;
    if (hs_buf_append(&s->text, text, len))
        abort();
    return !(s->stop_early && s->calls >= 3);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t piece = 1 + data[0] % 64;
    struct seen seen = {.stop_early = (data[0] & 0x80) != 0};
    struct hs_chat_resp resp;
    memset(&resp, 0, sizeof resp);
    resp.prompt_tokens = resp.completion_tokens = -1;
    struct hs_client_sse s;
    hs_client_sse_init(&s, &resp, on_delta, &seen, hs_now_ns());
    /* No stream: its Content-Type reads as absent, i.e. SSE. */
    hs_client_sse_sink.begin(&s, NULL);
    hs_err err = {0};
    int rc = HS_OK;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    for (size_t off = 0; rc == HS_OK && off < len; off += piece)
        rc = hs_client_sse_sink.feed(&s, body + off, len - off < piece ? len - off : piece, &err);
    if (rc == HS_OK)
        rc = hs_client_sse_sink.end(&s, &err);
    if (rc != HS_OK && err.msg[0] == '\0')
        abort(); /* every failure explains itself */
    if (seen.text.len != s.content.len ||
        (seen.text.len && memcmp(seen.text.data, s.content.data, seen.text.len)))
        abort();
    if (seen.calls > 0 && !s.delivered)
        abort();
    hs_client_sse_free(&s);
    hs_chat_resp_free(&resp);
    hs_buf_free(&seen.text);
    return 0;
}
