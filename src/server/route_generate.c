/* POST /v1/chat/completions and /v1/completions on a local model.
 *
 * The prompt is tokenized exactly as `hestia run` does it, so greedy answers
 * through the API equal the terminal's: a text prompt with add_special (BOS
 * as the vocabulary says) and without parsing special tokens; a chat
 * rendered with the model's template, then encoded with add_special and
 * parse_special, as `hestia run --chat`. Each choice (n per prompt) is one
 * scheduler job; this thread then waits on the jobs' event queues with a
 * short timeout, checking between waits whether the client hung up, and
 * either streams SSE chunks or collects one JSON body. */
#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "ops/confidence.h"
#include "server/openai.h"
#include "server/server_impl.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define WAIT_MS 50          /* one wait for an event; also the client-gone check's period */
#define GONE_CHECK_S 0.1    /* while tokens flow, the client is still checked this often */
#define EVENTS_PER_STEP 256 /* events taken from one job before looking at the others */

/* One generated token's log-probabilities; the texts are owned. */
struct lp_tok {
    struct hs_oai_alt chosen;
    int n_top;
    struct hs_oai_alt top[HS_MAX_TOP_LOGPROBS];
};

struct choice {
    hs_job *job;
    int index;
    int prompt;
    hs_buf text; /* the answer (collected answers only) */
    struct lp_tok *lps;
    int n_lps, cap_lps;
    const char *finish; /* a literal */
    bool done;
    int n_prompt, n_cached, n_gen;
    int n_seen; /* TOKEN events taken (what was generated when no DONE came) */
    /* Nothing but BOS precedes the answer: its first piece loses the
     * SentencePiece dummy-prefix space, as `hestia run` prints it (and as a
     * detokenizer drops it after BOS). */
    bool strip_space;
    double queue_ms;
    double t_last; /* arrival of the last token (inter-token latency) */
};

struct gen {
    struct srv_call *c;
    const struct srv_model *m;
    struct hs_gen_request gr;
    int64_t created;
    int32_t **toks;
    int *n_toks;
    int n_prompts;
    int prompt_tokens;
    struct choice *ch;
    int n_ch;
    int top_logprobs; /* -1: none in the answer */
    struct hs_conf_acc conf; /* (issue 6) every generated token's probability, for the record */
    bool checked;            /* (issue 6) the safety checks ran */
    const char *reply_model; /* "model" in the answer: the agent or adapter asked for, else the model's name */
    /* failure of a job */
    int err_code;
    char err_msg[256];
    bool failed;
    /* streaming */
    bool streaming;
    hs_buf out;
    size_t out_off;
    bool ended;
    struct hs_http_probe gone;
    double t_gone_check;
    bool client_gone;
};

/* ---- memory ---- */

static void lp_free(struct lp_tok *l)
{
    hs_free((char *)l->chosen.token);
    for (int i = 0; i < l->n_top; i++)
        hs_free((char *)l->top[i].token);
}

static void gen_free(struct gen *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_ch; i++) {
        struct choice *ch = &g->ch[i];
        if (ch->job)
            hs_job_free(ch->job); /* cancels a job still running */
        hs_buf_free(&ch->text);
        for (int k = 0; k < ch->n_lps; k++)
            lp_free(&ch->lps[k]);
        hs_free(ch->lps);
    }
    hs_free(g->ch);
    for (int p = 0; p < g->n_prompts; p++)
        hs_free(g->toks ? g->toks[p] : NULL);
    hs_free(g->toks);
    hs_free(g->n_toks);
    hs_req_free(&g->gr);
    hs_buf_free(&g->out);
    hs_free(g);
}

/* ---- prompts ---- */

/* Tokenizes every prompt into g->toks; false with the error replied. */
static bool tokenize(struct gen *g, struct hs_http_resp *resp)
{
    struct srv_call *c = g->c;
    const struct srv_model *m = g->m;
    const struct hs_gen_request *gr = &g->gr;
    int n = gr->kind == HS_REQ_CHAT ? 1 : gr->n_prompts;
    if (n < 1) {
        hs_srv_fail(c, resp, 400, "invalid_request_error", "missing_required_parameter", "prompt",
                    "the request has no prompt");
        return false;
    }
    g->toks = hs_calloc((size_t)n, sizeof *g->toks);
    g->n_toks = hs_calloc((size_t)n, sizeof *g->n_toks);
    if (!g->toks || !g->n_toks)
        goto oom;
    g->n_prompts = n;
    const char *param = gr->kind == HS_REQ_CHAT ? "messages" : "prompt";
    for (int p = 0; p < n; p++) {
        hs_err err = {0};
        size_t nt = 0;
        if (gr->kind == HS_REQ_CHAT) {
            hs_buf text = {0};
            if (hs_tmpl_apply(m->tmpl, gr->msgs, (size_t)gr->n_msgs, true, m->bos_text, m->eos_text, &text,
                              &err)) {
                hs_buf_free(&text);
                if (err.code == HS_ENOMEM)
                    goto oom;
                hs_srv_fail(c, resp, 400, "invalid_request_error", "invalid_value", "messages", "%s",
                            err.msg);
                return false;
            }
            int rc = hs_tok_encode(m->tok, text.data ? text.data : "", text.len, true, true, &g->toks[p], &nt,
                                   &err);
            hs_buf_free(&text);
            if (rc)
                goto oom;
        } else if (gr->prompts && gr->prompts[p]) {
            const char *t = gr->prompts[p];
            if (hs_tok_encode(m->tok, t, strlen(t), true, false, &g->toks[p], &nt, &err))
                goto oom;
        } else {
            int k = gr->prompt_n_tokens ? gr->prompt_n_tokens[p] : 0;
            g->toks[p] = hs_calloc((size_t)(k > 0 ? k : 1), sizeof(int32_t));
            if (!g->toks[p])
                goto oom;
            for (int i = 0; i < k; i++) {
                int32_t id = gr->prompt_tokens[p][i];
                if (id < 0 || id >= m->n_vocab) {
                    hs_srv_fail(c, resp, 400, "invalid_request_error", "invalid_value", "prompt",
                                "token id %d is outside the vocabulary (0..%d)", (int)id, m->n_vocab - 1);
                    return false;
                }
                g->toks[p][i] = id;
            }
            nt = (size_t)k;
        }
        g->n_toks[p] = (int)nt;
        if (nt == 0) {
            hs_srv_fail(c, resp, 400, "invalid_request_error", "invalid_value", param,
                        "the prompt is empty and the vocabulary has no BOS token to start from");
            return false;
        }
        struct hs_api_error e;
        if (!hs_req_check_tokens(gr, (int)nt, &c->srv->limits, &e)) {
            hs_srv_reply_error(c, resp, &e);
            return false;
        }
        if ((long)nt >= m->n_ctx) {
            hs_srv_fail(c, resp, 400, "invalid_request_error", "context_length_exceeded", param,
                        "This model's maximum context length is %d tokens, but the prompt has %zu tokens; "
                        "shorten the %s.",
                        m->n_ctx, nt, param);
            return false;
        }
        g->prompt_tokens += (int)nt;
    }
    return true;
oom:
    hs_srv_fail(c, resp, 500, "server_error", NULL, NULL, "out of memory");
    return false;
}

static bool submit(struct gen *g, struct hs_http_resp *resp)
{
    struct srv_call *c = g->c;
    const struct hs_gen_request *gr = &g->gr;
    int n = gr->n > 0 ? gr->n : 1;
    g->ch = hs_calloc((size_t)(g->n_prompts * n), sizeof *g->ch);
    if (!g->ch) {
        hs_srv_fail(c, resp, 500, "server_error", NULL, NULL, "out of memory");
        return false;
    }
    int cap = c->srv->opts.max_tokens_cap;
    for (int p = 0; p < g->n_prompts; p++) {
        /* The rest of the context unless asked for less; never more than fits. */
        int room = g->m->n_ctx - g->n_toks[p];
        int mt = gr->max_tokens > 0 && gr->max_tokens < room ? gr->max_tokens : room;
        if (cap > 0 && mt > cap)
            mt = cap;
        if (mt < 1)
            mt = 1;
        for (int i = 0; i < n; i++) {
            struct choice *ch = &g->ch[g->n_ch];
            ch->index = g->n_ch;
            ch->prompt = p;
            ch->strip_space = g->n_toks[p] == 1 && g->toks[p][0] == hs_tok_bos(g->m->tok) &&
                              hs_tok_add_space_prefix(g->m->tok);
            struct hs_job_params jp = {
                .prompt = g->toks[p],
                .n_prompt = g->n_toks[p],
                .max_tokens = mt,
                .sampling = gr->sampling,
                .stop = (const char *const *)gr->stop,
                .n_stop = gr->n_stop,
                /* the chosen token's log-probability always (the record's
                   confidence), alternatives only when the client asked */
                .top_logprobs = g->top_logprobs >= 0 ? g->top_logprobs : 0,
                .ignore_eos = gr->ignore_eos,
                .adapters = c->tgt.ad,
                .adapter_scales = c->tgt.scale,
                .n_adapters = c->tgt.n_ad,
                .schema = c->tgt.schema,
            };
            jp.sampling.seed += (uint64_t)i; /* choices of one prompt differ, reproducibly */
            hs_err err = {0};
            int rc = hs_sched_submit(g->m->sched, &jp, &ch->job, &err);
            if (rc) {
                ch->job = NULL;
                if (rc == HS_EBUSY) {
                    hs_http_resp_header(resp, "Retry-After", "1");
                    hs_srv_fail(c, resp, 503, "service_unavailable", "server_busy", NULL,
                                "The server is busy: every slot and the queue are full; retry shortly");
                } else if (rc == HS_ECANCELED) {
                    hs_http_resp_header(resp, "Retry-After", "30");
                    hs_srv_fail(c, resp, 503, "service_unavailable", NULL, NULL,
                                "the server is shutting down");
                } else if (rc == HS_ERANGE) {
                    hs_srv_fail(c, resp, 400, "invalid_request_error", "context_length_exceeded",
                                gr->kind == HS_REQ_CHAT ? "messages" : "prompt", "%s", err.msg);
                } else if (rc == HS_EINVAL) {
                    hs_srv_fail(c, resp, 400, "invalid_request_error", "invalid_value", NULL, "%s", err.msg);
                } else {
                    hs_srv_fail(c, resp, 500, "server_error", NULL, NULL, "%s",
                                err.msg[0] ? err.msg : hs_err_name(rc));
                }
                return false;
            }
            g->n_ch++;
        }
    }
    return true;
}

/* ---- events ---- */

static const char *finish_literal(const char *f)
{
    if (f && !strcmp(f, "length"))
        return "length";
    return "stop";
}

static char *tok_text(const hs_tok *t, int32_t id, size_t *len)
{
    hs_buf b = {0};
    hs_tok_decode_token(t, id, true, &b);
    *len = b.len;
    char *s = hs_buf_steal(&b);
    if (!s) {
        *len = 0;
        s = hs_strdup("");
    }
    return s;
}

static int lp_fill(struct gen *g, struct lp_tok *l, const struct hs_job_event *ev)
{
    memset(l, 0, sizeof *l);
    const hs_tok *t = g->m->tok;
    l->chosen.token = tok_text(t, ev->chosen.id, &l->chosen.len);
    l->chosen.logprob = ev->chosen.logprob;
    int k = ev->n_top < g->top_logprobs ? ev->n_top : g->top_logprobs;
    for (int i = 0; i < k && i < HS_MAX_TOP_LOGPROBS; i++) {
        l->top[i].token = tok_text(t, ev->top[i].id, &l->top[i].len);
        l->top[i].logprob = ev->top[i].logprob;
        l->n_top = i + 1;
    }
    if (!l->chosen.token) {
        lp_free(l);
        return HS_ENOMEM;
    }
    return HS_OK;
}

static void lp_view(const struct lp_tok *l, struct hs_oai_logprob *v)
{
    v->chosen = l->chosen;
    v->n_top = l->n_top;
    v->top = l->top;
}

static void sse(struct gen *g, json_t *chunk)
{
    if (chunk) {
        size_t before = g->out.len;
        hs_sse_append(&g->out, chunk);
        hs_srv_call_capture(g->c, g->out.data + before, g->out.len - before);
        json_decref(chunk);
    }
}

static void sse_text(struct gen *g, struct choice *ch, const char *text, size_t len, const struct lp_tok *lp,
                     const char *finish)
{
    struct hs_oai_logprob v;
    if (lp)
        lp_view(lp, &v);
    sse(g, hs_oai_chunk(g->gr.kind, g->c->id, g->created, g->reply_model, ch->index, false, text, len,
                        lp ? &v : NULL, lp ? 1 : 0, finish));
}

/* The answer's text as the event carries it, less the dummy-prefix space of
 * a bare start (see strip_space). */
static const char *event_text(struct choice *ch, const struct hs_job_event *ev, size_t *len)
{
    const char *t = ev->text ? ev->text : "";
    *len = ev->text ? ev->len : 0;
    if (ch->strip_space && *len) {
        ch->strip_space = false;
        if (t[0] == ' ') {
            t++;
            (*len)--;
        }
    }
    return t;
}

static void on_token(struct gen *g, struct choice *ch, const struct hs_job_event *ev)
{
    struct srv_call *c = g->c;
    double now = hs_now_s();
    if (c->ttft_ms < 0)
        c->ttft_ms = (now - c->t0) * 1000.0;
    if (ch->t_last > 0)
        hs_metrics_observe_itl(c->srv->metrics, g->m->name, now - ch->t_last);
    ch->t_last = now;
    ch->n_seen++;
    hs_conf_add(&g->conf, ev->chosen.logprob);
    struct lp_tok lp;
    bool have_lp = g->top_logprobs >= 0 && lp_fill(g, &lp, ev) == HS_OK;
    size_t len;
    const char *text = event_text(ch, ev, &len);
    if (g->streaming) {
        if (len || have_lp)
            sse_text(g, ch, text, len, have_lp ? &lp : NULL, NULL);
        if (have_lp)
            lp_free(&lp);
        if (len) /* kept for the safety checks at the end */
            hs_buf_append(&ch->text, text, len);
        return;
    }
    if (len)
        hs_buf_append(&ch->text, text, len);
    if (!have_lp)
        return;
    if (ch->n_lps == ch->cap_lps) {
        int cap = ch->cap_lps ? ch->cap_lps * 2 : 64;
        struct lp_tok *a = hs_realloc_array(ch->lps, (size_t)cap, sizeof *a);
        if (!a) {
            lp_free(&lp);
            return;
        }
        ch->lps = a;
        ch->cap_lps = cap;
    }
    ch->lps[ch->n_lps++] = lp;
}

static void on_end(struct gen *g, struct choice *ch, const struct hs_job_event *ev)
{
    ch->done = true;
    ch->n_prompt = ev->n_prompt;
    ch->n_cached = ev->n_cached;
    ch->n_gen = ev->n_gen;
    ch->queue_ms = ev->queue_ms;
    if (ev->kind == HS_EV_ERROR) {
        if (!g->failed) {
            g->failed = true;
            g->err_code = ev->err_code;
            snprintf(g->err_msg, sizeof g->err_msg, "%s",
                     ev->message[0] ? ev->message : hs_err_name(ev->err_code));
        }
        return;
    }
    ch->finish = finish_literal(ev->finish_reason);
    size_t len;
    const char *text = event_text(ch, ev, &len);
    if (g->streaming) {
        if (len)
            sse_text(g, ch, text, len, NULL, NULL);
        sse_text(g, ch, NULL, 0, NULL, ch->finish);
        if (len)
            hs_buf_append(&ch->text, text, len);
    } else if (len) {
        hs_buf_append(&ch->text, text, len);
    }
}

static void on_event(struct gen *g, struct choice *ch, const struct hs_job_event *ev)
{
    if (ev->kind == HS_EV_TOKEN)
        on_token(g, ch, ev);
    else
        on_end(g, ch, ev);
}

static bool all_done(const struct gen *g)
{
    for (int i = 0; i < g->n_ch; i++)
        if (!g->ch[i].done)
            return false;
    return true;
}

static void cancel_all(struct gen *g)
{
    for (int i = 0; i < g->n_ch; i++)
        if (g->ch[i].job && !g->ch[i].done)
            hs_job_cancel(g->ch[i].job);
}

static bool check_gone(struct gen *g, bool force)
{
    double now = hs_now_s();
    if (!force && now - g->t_gone_check < GONE_CHECK_S)
        return false;
    g->t_gone_check = now;
    if (hs_http_probe_gone(&g->gone)) {
        g->client_gone = true;
        cancel_all(g);
        return true;
    }
    return false;
}

/* Takes what events are there (waiting up to WAIT_MS when none is); after
 * one job fails, the others are cancelled. Returns false when the client is
 * gone. */
static bool step(struct gen *g)
{
    bool got = false;
    struct hs_job_event ev;
    for (int i = 0; i < g->n_ch; i++) {
        struct choice *ch = &g->ch[i];
        for (int k = 0; k < EVENTS_PER_STEP && !ch->done; k++) {
            memset(&ev, 0, sizeof ev);
            if (hs_job_next(ch->job, &ev, 0) != 1)
                break;
            on_event(g, ch, &ev);
            hs_job_event_clear(&ev);
            got = true;
        }
    }
    if (g->failed) {
        /* one choice failed: the answer as a whole has; do not wait for the rest */
        cancel_all(g);
        for (int i = 0; i < g->n_ch; i++)
            g->ch[i].done = true;
        return true;
    }
    if (check_gone(g, !got))
        return false;
    if (got)
        return true;
    for (int i = 0; i < g->n_ch; i++) {
        struct choice *ch = &g->ch[i];
        if (ch->done)
            continue;
        memset(&ev, 0, sizeof ev);
        if (hs_job_next(ch->job, &ev, WAIT_MS) == 1) {
            on_event(g, ch, &ev);
            hs_job_event_clear(&ev);
        }
        break;
    }
    return true;
}

/* ---- the end: usage and the record ---- */

static void usage_of(const struct gen *g, struct hs_oai_usage *u)
{
    memset(u, 0, sizeof *u);
    u->prompt_tokens = g->prompt_tokens;
    for (int i = 0; i < g->n_ch; i++) {
        u->completion_tokens += g->ch[i].n_gen > g->ch[i].n_seen ? g->ch[i].n_gen : g->ch[i].n_seen;
        /* the prompt is counted once however many choices share it */
        if (i == 0 || g->ch[i].prompt != g->ch[i - 1].prompt)
            u->cached_tokens += g->ch[i].n_cached;
    }
}

static void account(struct gen *g)
{
    struct srv_call *c = g->c;
    struct hs_oai_usage u;
    usage_of(g, &u);
    c->tokens_in = u.prompt_tokens;
    c->tokens_out = u.completion_tokens;
    c->tokens_cached = u.cached_tokens;
    struct hs_confidence conf;
    hs_conf_result(&conf, &g->conf);
    c->confidence = conf.mean_prob;
    c->low_prob_share = conf.low_share;
    if (!g->checked) { /* once, over every complete answer (an echoed prompt included: it is in the answer) */
        g->checked = true;
        for (int i = 0; i < g->n_ch; i++)
            if (g->ch[i].done)
                hs_srv_safety_check(c, g->ch[i].text.data, g->ch[i].text.len);
    }
    if (g->n_ch > 0) {
        c->queue_ms = g->ch[0].queue_ms;
        c->finish_reason = g->ch[0].finish;
    }
}

static int fail_status(int code)
{
    return code == HS_ECANCELED                     ? 503
           : code == HS_EBUSY                       ? 503
           : code == HS_ERANGE || code == HS_EINVAL ? 400
                                                    : 500;
}

/* ---- collected answer ---- */

static void collect(struct gen *g, struct hs_http_resp *resp)
{
    struct srv_call *c = g->c;
    while (!all_done(g))
        if (!step(g))
            break;
    account(g);
    if (g->client_gone) {
        resp->status = 499; /* nobody reads it; the record says what happened */
        c->status = 499;
        hs_srv_call_set_error(c, "the client closed the connection");
        return;
    }
    if (g->failed) {
        int st = fail_status(g->err_code);
        if (st == 503)
            hs_http_resp_header(resp, "Retry-After", "30");
        hs_srv_fail(c, resp, st,
                    st == 503   ? "service_unavailable"
                    : st == 400 ? "invalid_request_error"
                                : "server_error",
                    NULL, NULL, "%s", g->err_msg);
        return;
    }
    struct hs_oai_choice *choices = hs_calloc((size_t)g->n_ch, sizeof *choices);
    struct hs_oai_logprob **views = hs_calloc((size_t)g->n_ch, sizeof *views);
    bool ok = choices && views;
    for (int i = 0; ok && i < g->n_ch; i++) {
        struct choice *ch = &g->ch[i];
        choices[i] = (struct hs_oai_choice){.index = ch->index,
                                            .text = ch->text.data ? ch->text.data : "",
                                            .len = ch->text.len,
                                            .finish_reason = ch->finish};
        if (g->top_logprobs >= 0) {
            views[i] = hs_calloc((size_t)(ch->n_lps > 0 ? ch->n_lps : 1), sizeof **views);
            if (!views[i]) {
                ok = false;
                break;
            }
            for (int k = 0; k < ch->n_lps; k++)
                lp_view(&ch->lps[k], &views[i][k]);
            choices[i].logprobs = views[i];
            choices[i].n_logprobs = ch->n_lps;
        }
    }
    struct hs_oai_usage u;
    usage_of(g, &u);
    json_t *body =
        ok ? hs_oai_completion(g->gr.kind, c->id, g->created, g->reply_model, choices, g->n_ch, &u) : NULL;
    hs_srv_reply_json(c, resp, 200, body);
    for (int i = 0; views && i < g->n_ch; i++)
        hs_free(views[i]);
    hs_free(views);
    hs_free(choices);
}

/* ---- streamed answer ---- */

static void stream_finish(struct gen *g)
{
    if (g->failed) {
        struct hs_api_error e;
        int st = fail_status(g->err_code);
        hs_api_error_set(&e, st, st == 503 ? "service_unavailable" : "server_error", NULL, NULL, "%s",
                         g->err_msg);
        sse(g, hs_oai_error(&e));
        hs_srv_call_set_error(g->c, g->err_msg);
    } else if (g->gr.include_usage) {
        struct hs_oai_usage u;
        usage_of(g, &u);
        sse(g, hs_oai_usage_chunk(g->gr.kind, g->c->id, g->created, g->reply_model, &u));
    }
    size_t before = g->out.len;
    hs_sse_done(&g->out);
    hs_srv_call_capture(g->c, g->out.data + before, g->out.len - before);
    g->ended = true;
}

static long stream_pull(void *user, char *buf, size_t cap)
{
    struct gen *g = user;
    while (g->out_off >= g->out.len) {
        if (g->ended)
            return 0;
        hs_buf_reset(&g->out);
        g->out_off = 0;
        if (all_done(g)) {
            stream_finish(g);
            continue;
        }
        if (!step(g))
            return -1;
    }
    size_t n = g->out.len - g->out_off;
    if (n > cap)
        n = cap;
    memcpy(buf, g->out.data + g->out_off, n);
    g->out_off += n;
    return (long)n;
}

static void stream_free(void *user)
{
    struct gen *g = user;
    struct srv_call *c = g->c;
    if (!g->ended) {
        cancel_all(g);
        c->status = 499;
        hs_srv_call_set_error(c, "the client closed the connection");
    }
    account(g);
    gen_free(g);
    hs_srv_call_finish(c);
}

/* The first bytes: each chat choice's role, or each completion's echo. */
static void stream_open(struct gen *g)
{
    for (int i = 0; i < g->n_ch; i++) {
        struct choice *ch = &g->ch[i];
        if (g->gr.kind == HS_REQ_CHAT) {
            sse(g, hs_oai_chunk(g->gr.kind, g->c->id, g->created, g->reply_model, ch->index, true, "", 0, NULL, 0,
                                NULL));
        } else if (g->gr.echo) {
            hs_buf echo = {0};
            if (g->gr.prompts && g->gr.prompts[ch->prompt])
                hs_buf_puts(&echo, g->gr.prompts[ch->prompt]);
            else
                hs_tok_decode(g->m->tok, g->toks[ch->prompt], (size_t)g->n_toks[ch->prompt], false, &echo);
            if (echo.len)
                sse_text(g, ch, echo.data, echo.len, NULL, NULL);
            hs_buf_free(&echo);
        }
    }
}

static void echo_collected(struct gen *g)
{
    for (int i = 0; i < g->n_ch; i++) {
        struct choice *ch = &g->ch[i];
        if (g->gr.prompts && g->gr.prompts[ch->prompt])
            hs_buf_puts(&ch->text, g->gr.prompts[ch->prompt]);
        else
            hs_tok_decode(g->m->tok, g->toks[ch->prompt], (size_t)g->n_toks[ch->prompt], false, &ch->text);
    }
}

void hs_route_generate(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp,
                       struct hs_gen_request *gr)
{
    struct gen *g = hs_calloc(1, sizeof *g);
    if (!g) {
        hs_req_free(gr);
        hs_srv_fail(c, resp, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }
    g->gr = *gr;
    memset(gr, 0, sizeof *gr);
    g->c = c;
    g->m = c->m;
    g->created = (int64_t)time(NULL);
    g->top_logprobs = g->gr.logprobs ? g->gr.top_logprobs : -1;
    /* an agent or an adapter answers under its own name (as vLLM names a LoRA module) */
    g->reply_model = c->model && !hs_srv_find_model(c->srv, c->model) ? c->model : g->m->name;
    hs_conf_init(&g->conf, hs_srv_low_prob(c->srv));
    g->gone = req->gone;
    g->t_gone_check = hs_now_s();
    if (!tokenize(g, resp) || !submit(g, resp)) {
        account(g);
        gen_free(g);
        return;
    }
    hs_srv_drift_note_request(c, &g->gr); /* (issue 6) the data-drift sample of recent prompts */
    if (!g->gr.stream) {
        if (g->gr.echo && g->gr.kind == HS_REQ_COMPLETION)
            echo_collected(g);
        collect(g, resp);
        gen_free(g);
        return;
    }
    g->streaming = true;
    resp->status = 200;
    c->status = 200;
    hs_http_resp_header(resp, "Content-Type", "text/event-stream");
    hs_http_resp_header(resp, "Cache-Control", "no-cache");
    hs_http_resp_header(resp, "X-Accel-Buffering", "no");
    stream_open(g);
    resp->pull = stream_pull;
    resp->pull_user = g;
    resp->pull_free = stream_free;
}
