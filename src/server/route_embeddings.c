/* POST /v1/embeddings on a local model: each input tokenized as a text
 * prompt is (BOS as the vocabulary says), embedded by the scheduler
 * (mean-pooled, L2-normalised) in a slot of its own. */
#include "base/mem.h"
#include "server/openai.h"
#include "server/server_impl.h"

#include <math.h>
#include <string.h>

void hs_route_embeddings(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp,
                         struct hs_gen_request *gr)
{
    (void)req;
    const struct srv_model *m = c->m;
    int n = gr->n_prompts;
    float **vecs = NULL;
    int32_t *toks = NULL;
    if (n < 1) {
        hs_srv_fail(c, resp, 400, "invalid_request_error", "missing_required_parameter", "input",
                    "'input' must hold at least one text");
        goto out;
    }
    if (gr->dimensions > m->n_embd) {
        hs_srv_fail(c, resp, 400, "invalid_request_error", "invalid_value", "dimensions",
                    "This model's embeddings have %d dimensions; %d were asked for", m->n_embd,
                    gr->dimensions);
        goto out;
    }
    vecs = hs_calloc((size_t)n, sizeof *vecs);
    if (!vecs)
        goto oom;
    int total = 0;
    for (int i = 0; i < n; i++) {
        hs_err err = {0};
        size_t nt = 0;
        hs_free(toks);
        toks = NULL;
        if (gr->prompts && gr->prompts[i]) {
            if (hs_tok_encode(m->tok, gr->prompts[i], strlen(gr->prompts[i]), true, false, &toks, &nt, &err))
                goto oom;
        } else {
            nt = (size_t)(gr->prompt_n_tokens ? gr->prompt_n_tokens[i] : 0);
            toks = hs_calloc(nt ? nt : 1, sizeof *toks);
            if (!toks)
                goto oom;
            for (size_t k = 0; k < nt; k++) {
                int32_t id = gr->prompt_tokens[i][k];
                if (id < 0 || id >= m->n_vocab) {
                    hs_srv_fail(c, resp, 400, "invalid_request_error", "invalid_value", "input",
                                "input[%d]: token id %d is outside the vocabulary (0..%d)", i, (int)id,
                                m->n_vocab - 1);
                    goto out;
                }
                toks[k] = id;
            }
        }
        if (nt == 0) {
            hs_srv_fail(c, resp, 400, "invalid_request_error", "invalid_value", "input",
                        "input[%d] is empty and the vocabulary has no BOS token to start from", i);
            goto out;
        }
        struct hs_api_error e;
        if (!hs_req_check_tokens(gr, (int)nt, &c->srv->limits, &e)) {
            hs_srv_reply_error(c, resp, &e);
            goto out;
        }
        if ((long)nt > m->n_ctx) {
            hs_srv_fail(c, resp, 400, "invalid_request_error", "context_length_exceeded", "input",
                        "input[%d] has %zu tokens; this model's context holds %d", i, nt, m->n_ctx);
            goto out;
        }
        vecs[i] = hs_malloc((size_t)m->n_embd * sizeof(float));
        if (!vecs[i])
            goto oom;
        int rc = hs_sched_embed(m->sched, toks, (int)nt, vecs[i], &err);
        if (rc) {
            if (rc == HS_EBUSY || rc == HS_ECANCELED) {
                hs_http_resp_header(resp, "Retry-After", rc == HS_EBUSY ? "1" : "30");
                hs_srv_fail(c, resp, 503, "service_unavailable", NULL, NULL, "%s",
                            err.msg[0] ? err.msg : hs_err_name(rc));
            } else {
                hs_srv_fail(c, resp, rc == HS_EINVAL || rc == HS_ERANGE ? 400 : 500,
                            rc == HS_EINVAL || rc == HS_ERANGE ? "invalid_request_error" : "server_error",
                            NULL, "input", "%s", err.msg[0] ? err.msg : hs_err_name(rc));
            }
            goto out;
        }
        total += (int)nt;
    }
    c->tokens_in = total;
    int dim = m->n_embd;
    if (gr->dimensions > 0 && gr->dimensions != m->n_embd) {
        /* shortened as OpenAI's text-embedding-3 models do: the first values, normalised again */
        dim = gr->dimensions;
        for (int i = 0; i < n; i++) {
            double ss = 0;
            for (int k = 0; k < dim; k++)
                ss += (double)vecs[i][k] * vecs[i][k];
            float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
            for (int k = 0; k < dim; k++)
                vecs[i][k] *= inv;
        }
    }
    bool b64 = gr->encoding_format && !strcmp(gr->encoding_format, "base64");
    hs_srv_reply_json(c, resp, 200,
                      hs_oai_embeddings(m->name, (const float *const *)vecs, n, dim, total, b64));
    goto out;
oom:
    hs_srv_fail(c, resp, 500, "server_error", NULL, NULL, "out of memory");
out:
    for (int i = 0; vecs && i < n; i++)
        hs_free(vecs[i]);
    hs_free(vecs);
    hs_free(toks);
    hs_req_free(gr);
}
