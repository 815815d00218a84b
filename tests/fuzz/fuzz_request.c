/* libFuzzer target for OpenAI request bodies: any bytes, parsed as a chat
 * completion, a completion and an embeddings request, give a request or a
 * 4xx/5xx error, never a crash or a leak. What parses is then answered with
 * every response builder (using the parsed texts and slices of the input as
 * token bytes, so invalid UTF-8 reaches the sanitiser), and every body built
 * must serialise to JSON that parses back. Errors become error objects the
 * same way.
 */
#include "server/openai.h"
#include "server/request.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The body must survive a trip through text: dump, parse back. */
static void check_json(json_t *obj)
{
    if (!obj)
        abort(); /* only out of memory may give NULL */
    hs_buf b = {0};
    if (hs_sse_append(&b, obj) != HS_OK)
        abort();
    json_error_t je;
    /* token bytes may hold NUL, which JSON carries as \u0000 */
    json_t *back = json_loadb(b.data + 6, b.len - 8, JSON_ALLOW_NUL, &je);
    if (!back)
        abort();
    json_decref(back);
    hs_buf_free(&b);
    json_decref(obj);
}

static void answer(const struct hs_gen_request *r, const uint8_t *data, size_t size)
{
    /* token texts: consecutive slices of the raw input, any bytes at all */
    enum { MAX_LP = 8 };
    struct hs_oai_alt alts[MAX_LP];
    struct hs_oai_logprob lps[MAX_LP];
    int n_lp = 0;
    size_t pos = 0;
    while (n_lp < MAX_LP && pos < size) {
        size_t len = 1 + data[pos] % 5;
        if (len > size - pos)
            len = size - pos;
        alts[n_lp] = (struct hs_oai_alt){(const char *)data + pos, len, -(float)(data[pos] % 40) / 3.0f};
        if (data[pos] == 0xff)
            alts[n_lp].logprob = -INFINITY;
        pos += len;
        n_lp++;
    }
    for (int i = 0; i < n_lp; i++)
        lps[i] = (struct hs_oai_logprob){alts[i], i + 1, alts};

    if (r->kind == HS_REQ_EMBEDDING) {
        float vec[16];
        const float *vs[4] = {vec, vec, vec, vec};
        for (int i = 0; i < 16; i++) {
            uint32_t u = 0;
            for (int k = 0; k < 4; k++)
                u = u << 8 | (size ? data[(size_t)(i * 4 + k) % size] : 0);
            memcpy(&vec[i], &u, 4); /* any bit pattern, NaN and inf included */
        }
        int n = r->n_prompts < 4 ? r->n_prompts : 4;
        check_json(hs_oai_embeddings(r->model, vs, n, 16, (int)size, false));
        check_json(hs_oai_embeddings(r->model, vs, n, 16, (int)size, true));
        return;
    }
    const char *text = r->kind == HS_REQ_CHAT ? r->msgs[r->n_msgs - 1].content : r->prompts[0];
    size_t tlen = text ? strlen(text) : 0;
    struct hs_oai_choice ch[2] = {
        {0, text, tlen, "stop", r->logprobs ? lps : NULL, n_lp},
        {1, (const char *)data, size, NULL, lps, n_lp},
    };
    struct hs_oai_usage u = {(int)size, n_lp, r->n};
    check_json(hs_oai_completion(r->kind, r->user ? r->user : "id", (int64_t)size, r->model, ch, 2, &u));
    check_json(hs_oai_chunk(r->kind, "id", 1, r->model, 0, true, (const char *)data, size, lps, n_lp, NULL));
    check_json(hs_oai_chunk(r->kind, "id", 1, r->model, 1, false, NULL, 0, NULL, 0, "length"));
    check_json(hs_oai_usage_chunk(r->kind, "id", 1, r->model, &u));
    check_json(hs_oai_model(r->model, 0, r->stop ? r->stop[0] : "hestia"));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum hs_req_kind kinds[3] = {HS_REQ_CHAT, HS_REQ_COMPLETION, HS_REQ_EMBEDDING};
    struct hs_req_limits lim = {.max_body_bytes = 1 << 20, .max_messages = 20, .max_input_tokens = 4000};
    for (int k = 0; k < 3; k++) {
        struct hs_gen_request r;
        struct hs_api_error e;
        if (hs_req_parse(kinds[k], (const char *)data, size, &lim, &r, &e)) {
            if (!r.root || !r.model || r.n < 1)
                abort();
            if (r.kind == HS_REQ_CHAT && (r.n_msgs < 1 || r.n_msgs > lim.max_messages))
                abort();
            if (r.kind != HS_REQ_CHAT && r.n_prompts < 1)
                abort();
            answer(&r, data, size);
            if (!hs_req_check_tokens(&r, (int)size, &lim, &e) && e.status != 400)
                abort();
            hs_req_free(&r);
        } else {
            if ((e.status != 400 && e.status != 500) || !e.message[0] || r.root || r.msgs || r.prompts)
                abort();
            check_json(hs_oai_error(&e));
        }
    }
    return 0;
}
