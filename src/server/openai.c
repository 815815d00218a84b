/* Response bodies in OpenAI's shapes. Field names and nesting follow the
 * OpenAPI spec's CreateChatCompletionResponse, CreateChatCompletionStreamResponse,
 * CreateCompletionResponse, CreateEmbeddingResponse, Model and ErrorResponse.
 *
 * Two things jansson will not do for us: a string must be valid UTF-8
 * (json_stringn returns NULL otherwise, and a token can end in the middle of
 * a character), and a real must be finite (a log-probability of a token with
 * zero probability is -inf). Text goes through hs_oai_text, which replaces
 * bad bytes with U+FFFD, and log-probabilities through finite_lp. */
#include "server/openai.h"

#include "base/mem.h"

#include <math.h>
#include <string.h>

/* OpenAI reports -9999.0 for tokens whose probability underflows. */
#define LOGPROB_FLOOR -9999.0

/* --- UTF-8 --- */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when it is not one.
 * The bounds are those of the Unicode Standard's table 3-7 (well-formed
 * byte sequences): no overlongs, no surrogates, nothing above U+10FFFF.
 * *bad receives how many bytes make up the maximal invalid subpart, so that
 * each one is replaced by a single U+FFFD, as the WHATWG decoder does. */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *bad)
{
    unsigned char b = s[0];
    if (b < 0x80)
        return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
        need = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        if (b == 0xE0)
            lo = 0xA0;
        if (b == 0xED)
            hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        if (b == 0xF0)
            lo = 0x90;
        if (b == 0xF4)
            hi = 0x8F;
    } else {
        *bad = 1;
        return 0;
    }
    size_t i = 1;
    for (; i <= need; i++) {
        if (i >= n || s[i] < lo || s[i] > hi) {
            *bad = i;
            return 0;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    return i;
}

/* nul_too: NUL bytes become U+FFFD as well (for object keys, see top_map). */
static char *clean(const char *s, size_t len, bool nul_too, size_t *out_len)
{
    /* each bad byte becomes at most 3 bytes (EF BF BD) */
    if (len > (SIZE_MAX - 1) / 3)
        return NULL;
    char *out = hs_malloc(len * 3 + 1);
    if (!out)
        return NULL;
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t bad = 0;
        size_t k = utf8_seq(u + i, len - i, &bad);
        if (nul_too && u[i] == 0) {
            k = 0;
            bad = 1;
        }
        if (k > 0) {
            memcpy(out + o, u + i, k);
            o += k;
            i += k;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += bad;
        }
    }
    out[o] = 0;
    if (out_len)
        *out_len = o;
    return out;
}

char *hs_oai_utf8_clean(const char *s, size_t len, size_t *out_len)
{
    return clean(s, len, false, out_len);
}

json_t *hs_oai_text(const char *s, size_t len)
{
    if (!s)
        return json_stringn("", 0);
    /* the common case, already valid, needs no copy */
    json_t *j = json_stringn(s, len);
    if (j)
        return j;
    size_t n;
    char *clean = hs_oai_utf8_clean(s, len, &n);
    if (!clean)
        return NULL;
    j = json_stringn(clean, n);
    hs_free(clean);
    return j;
}

static double finite_lp(float lp)
{
    if (isnan(lp) || lp < LOGPROB_FLOOR)
        return LOGPROB_FLOOR;
    if (lp >= 0.0f) /* rounding can push log(1) a hair above 0; and no -0.0 */
        return 0.0;
    return (double)lp;
}

/* --- small builders ---
 * jansson's json_object_set_new and json_array_append_new always take the
 * value, also when they fail (they release it) and when it is NULL (they
 * return -1). So a builder can nest calls freely: an allocation failure
 * anywhere surfaces as -1 from the set that receives it, and nothing leaks
 * once the parent is released. */

static int set(json_t *obj, const char *key, json_t *v)
{
    return json_object_set_new(obj, key, v);
}

static json_t *text0(const char *s)
{
    return hs_oai_text(s, s ? strlen(s) : 0);
}

static json_t *str_or_null(const char *s)
{
    return (s && s[0]) ? text0(s) : json_null();
}

static json_t *fail(json_t *o)
{
    json_decref(o);
    return NULL;
}

static json_t *envelope(const char *object, const char *id, int64_t created, const char *model)
{
    json_t *o = json_object();
    if (!o || set(o, "id", text0(id)) || set(o, "object", json_string(object)) ||
        set(o, "created", json_integer(created)) || set(o, "model", text0(model)))
        return fail(o);
    return o;
}

static json_t *usage_obj(const struct hs_oai_usage *u)
{
    json_t *details = json_object();
    if (!details || set(details, "cached_tokens", json_integer(u->cached_tokens)))
        return fail(details);
    json_t *o = json_object();
    if (!o || set(o, "prompt_tokens", json_integer(u->prompt_tokens)) ||
        set(o, "completion_tokens", json_integer(u->completion_tokens)) ||
        set(o, "total_tokens", json_integer((json_int_t)u->prompt_tokens + u->completion_tokens))) {
        json_decref(details);
        return fail(o);
    }
    if (set(o, "prompt_tokens_details", details))
        return fail(o);
    return o;
}

/* The raw bytes of a token as integers 0..255 (ChatCompletionTokenLogprob.bytes). */
static json_t *bytes_arr(const char *s, size_t len)
{
    json_t *a = json_array();
    if (!a)
        return NULL;
    for (size_t i = 0; i < len; i++)
        if (json_array_append_new(a, json_integer((unsigned char)s[i])))
            return fail(a);
    return a;
}

static json_t *alt_obj(const struct hs_oai_alt *a)
{
    json_t *o = json_object();
    if (!o || set(o, "token", hs_oai_text(a->token, a->len)) ||
        set(o, "logprob", json_real(finite_lp(a->logprob))) || set(o, "bytes", bytes_arr(a->token, a->len)))
        return fail(o);
    return o;
}

/* chat: {"content":[{token,logprob,bytes,top_logprobs:[{token,logprob,bytes}]}],"refusal":null} */
static json_t *chat_logprobs(const struct hs_oai_logprob *lps, int n)
{
    json_t *o = json_object();
    json_t *content = json_array();
    if (!o || set(o, "content", content) || set(o, "refusal", json_null())) {
        if (!o)
            json_decref(content);
        return fail(o);
    }
    for (int i = 0; i < n; i++) {
        json_t *tok = alt_obj(&lps[i].chosen);
        json_t *top = json_array();
        if (json_array_append_new(content, tok) || !tok || set(tok, "top_logprobs", top)) {
            if (!tok)
                json_decref(top);
            return fail(o);
        }
        for (int k = 0; k < lps[i].n_top; k++)
            if (json_array_append_new(top, alt_obj(&lps[i].top[k])))
                return fail(o);
    }
    return o;
}

/* {tok: logprob, ...} for one position. Two tokens can print the same (or
 * both as U+FFFD); the list is best first, so the first keeps the key. A NUL
 * byte is valid in a JSON key but many parsers (jansson among them, so our
 * own upstream client) refuse it: keys carry U+FFFD instead (found by
 * fuzz_request). */
static json_t *top_map(const struct hs_oai_logprob *lp)
{
    json_t *m = json_object();
    if (!m)
        return NULL;
    for (int k = 0; k < lp->n_top; k++) {
        const struct hs_oai_alt *a = &lp->top[k];
        size_t cl;
        char *key = clean(a->token, a->len, true, &cl);
        if (!key)
            return fail(m);
        int rc = 0;
        if (!json_object_getn(m, key, cl))
            rc = json_object_setn_new(m, key, cl, json_real(finite_lp(a->logprob)));
        hs_free(key);
        if (rc)
            return fail(m);
    }
    return m;
}

/* completions: {"tokens":[..],"token_logprobs":[..],"top_logprobs":[{tok:lp}],"text_offset":[..]}.
 * text_offset counts bytes from the start of this object's text (the
 * interface carries no prompt length or earlier chunks). */
static json_t *text_logprobs(const struct hs_oai_logprob *lps, int n)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_t *tokens = json_array(), *lp = json_array(), *top = json_array(), *off = json_array();
    /* set() takes each array, also on failure, so all four are attempted */
    int rc = set(o, "tokens", tokens);
    rc |= set(o, "token_logprobs", lp);
    rc |= set(o, "top_logprobs", top);
    rc |= set(o, "text_offset", off);
    if (rc)
        return fail(o);
    size_t pos = 0;
    for (int i = 0; i < n; i++) {
        const struct hs_oai_alt *c = &lps[i].chosen;
        if (json_array_append_new(tokens, hs_oai_text(c->token, c->len)) ||
            json_array_append_new(lp, json_real(finite_lp(c->logprob))) ||
            json_array_append_new(off, json_integer((json_int_t)pos)) ||
            json_array_append_new(top, top_map(&lps[i])))
            return fail(o);
        pos += c->len;
    }
    return o;
}

static json_t *logprobs_obj(enum hs_req_kind kind, const struct hs_oai_logprob *lps, int n)
{
    if (!lps)
        return json_null();
    return kind == HS_REQ_CHAT ? chat_logprobs(lps, n) : text_logprobs(lps, n);
}

static json_t *finish(const char *finish_reason)
{
    return finish_reason ? json_string(finish_reason) : json_null();
}

/* --- public builders --- */

json_t *hs_oai_error(const struct hs_api_error *e)
{
    json_t *o = json_object();
    json_t *inner = json_object();
    if (!o || set(o, "error", inner) ||
        set(inner, "message", hs_oai_text(e->message, strnlen(e->message, sizeof(e->message)))) ||
        set(inner, "type", text0(e->type[0] ? e->type : "server_error")) ||
        set(inner, "param", str_or_null(e->param)) || set(inner, "code", str_or_null(e->code))) {
        if (!o)
            json_decref(inner);
        return fail(o);
    }
    return o;
}

json_t *hs_oai_completion(enum hs_req_kind kind, const char *id, int64_t created, const char *model,
                          const struct hs_oai_choice *choices, int n_choices,
                          const struct hs_oai_usage *usage)
{
    bool chat = kind == HS_REQ_CHAT;
    json_t *o = envelope(chat ? "chat.completion" : "text_completion", id, created, model);
    if (!o)
        return NULL;
    json_t *arr = json_array();
    if (set(o, "choices", arr))
        return fail(o);
    for (int i = 0; i < n_choices; i++) {
        const struct hs_oai_choice *c = &choices[i];
        json_t *ch = json_object();
        if (json_array_append_new(arr, ch) || set(ch, "index", json_integer(c->index)))
            return fail(o);
        if (chat) {
            json_t *msg = json_object();
            if (set(ch, "message", msg) || set(msg, "role", json_string("assistant")) ||
                set(msg, "content", hs_oai_text(c->text, c->len)) || set(msg, "refusal", json_null()))
                return fail(o);
        } else if (set(ch, "text", hs_oai_text(c->text, c->len))) {
            return fail(o);
        }
        if (set(ch, "logprobs", logprobs_obj(kind, c->logprobs, c->n_logprobs)) ||
            set(ch, "finish_reason", finish(c->finish_reason)))
            return fail(o);
    }
    if (usage && set(o, "usage", usage_obj(usage)))
        return fail(o);
    return o;
}

json_t *hs_oai_chunk(enum hs_req_kind kind, const char *id, int64_t created, const char *model, int index,
                     bool first, const char *text, size_t len, const struct hs_oai_logprob *logprobs,
                     int n_logprobs, const char *finish_reason)
{
    bool chat = kind == HS_REQ_CHAT;
    json_t *o = envelope(chat ? "chat.completion.chunk" : "text_completion", id, created, model);
    if (!o)
        return NULL;
    json_t *arr = json_array();
    json_t *ch = json_object();
    if (set(o, "choices", arr) || !arr) {
        json_decref(ch);
        return fail(o);
    }
    if (json_array_append_new(arr, ch) || set(ch, "index", json_integer(index)))
        return fail(o);
    if (chat) {
        json_t *delta = json_object();
        if (set(ch, "delta", delta) || (first && set(delta, "role", json_string("assistant"))) ||
            (text && set(delta, "content", hs_oai_text(text, len))))
            return fail(o);
    } else if (set(ch, "text", hs_oai_text(text ? text : "", text ? len : 0))) {
        return fail(o);
    }
    if (set(ch, "logprobs", logprobs_obj(kind, logprobs, n_logprobs)) ||
        set(ch, "finish_reason", finish(finish_reason)))
        return fail(o);
    return o;
}

json_t *hs_oai_usage_chunk(enum hs_req_kind kind, const char *id, int64_t created, const char *model,
                           const struct hs_oai_usage *usage)
{
    json_t *o =
        envelope(kind == HS_REQ_CHAT ? "chat.completion.chunk" : "text_completion", id, created, model);
    if (!o || set(o, "choices", json_array()) || set(o, "usage", usage_obj(usage)))
        return fail(o);
    return o;
}

/* Standard base64 (RFC 4648 section 4, with padding). */
static char *base64(const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (n > (SIZE_MAX / 4) * 3 - 3)
        return NULL;
    char *out = hs_malloc((n + 2) / 3 * 4 + 1);
    if (!out)
        return NULL;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = tab[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = 0;
    return out;
}

/* The vector as OpenAI's base64 encoding: float32 little-endian bytes. */
static json_t *embedding_b64(const float *v, int dim)
{
    unsigned char *raw = hs_malloc((size_t)dim * 4 + 1);
    if (!raw)
        return NULL;
    for (int i = 0; i < dim; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        raw[4 * i + 0] = (unsigned char)u;
        raw[4 * i + 1] = (unsigned char)(u >> 8);
        raw[4 * i + 2] = (unsigned char)(u >> 16);
        raw[4 * i + 3] = (unsigned char)(u >> 24);
    }
    char *s = base64(raw, (size_t)dim * 4);
    hs_free(raw);
    if (!s)
        return NULL;
    json_t *j = json_string(s);
    hs_free(s);
    return j;
}

static json_t *embedding_floats(const float *v, int dim)
{
    json_t *a = json_array();
    if (!a)
        return NULL;
    for (int i = 0; i < dim; i++) {
        /* JSON has no NaN or infinity; a non-finite component is a bug upstream,
           but the body must still parse */
        double d = isfinite(v[i]) ? (double)v[i] : 0.0;
        if (json_array_append_new(a, json_real(d)))
            return fail(a);
    }
    return a;
}

json_t *hs_oai_embeddings(const char *model, const float *const *vectors, int n, int dim, int prompt_tokens,
                          bool base64_enc)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_t *data = json_array();
    json_t *usage = json_object();
    int rc = set(o, "object", json_string("list"));
    rc |= set(o, "data", data);
    rc |= set(o, "model", text0(model));
    rc |= set(o, "usage", usage);
    if (rc || set(usage, "prompt_tokens", json_integer(prompt_tokens)) ||
        set(usage, "total_tokens", json_integer(prompt_tokens)))
        return fail(o);
    for (int i = 0; i < n; i++) {
        json_t *e = json_object();
        if (json_array_append_new(data, e) || set(e, "object", json_string("embedding")) ||
            set(e, "index", json_integer(i)) ||
            set(e, "embedding",
                base64_enc ? embedding_b64(vectors[i], dim) : embedding_floats(vectors[i], dim)))
            return fail(o);
    }
    return o;
}

json_t *hs_oai_model(const char *id, int64_t created, const char *owned_by)
{
    json_t *o = json_object();
    if (!o || set(o, "id", text0(id)) || set(o, "object", json_string("model")) ||
        set(o, "created", json_integer(created)) || set(o, "owned_by", text0(owned_by)))
        return fail(o);
    return o;
}

/* --- SSE --- */

static int buf_sink(const char *data, size_t size, void *user)
{
    return hs_buf_append(user, data, size) == 0 ? 0 : -1;
}

int hs_oai_dump(hs_buf *out, const json_t *obj)
{
    /* 9 significant digits round-trip every float32 exactly, where jansson's
       default 17 would print 0.1f as 0.10000000149011612. Compact output has
       no raw newlines (they are escaped inside strings), which SSE needs. */
    if (json_dump_callback(obj, buf_sink, out, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(9)) != 0)
        return HS_ENOMEM;
    return HS_OK;
}

int hs_sse_append(hs_buf *out, const json_t *obj)
{
    size_t mark = out->len;
    if (hs_buf_puts(out, "data: ") != 0 || hs_oai_dump(out, obj) != HS_OK || hs_buf_puts(out, "\n\n") != 0) {
        out->len = mark; /* leave no half event behind */
        if (out->data)
            out->data[mark] = 0;
        return HS_ENOMEM;
    }
    return HS_OK;
}

int hs_sse_done(hs_buf *out)
{
    return hs_buf_puts(out, "data: [DONE]\n\n") == 0 ? HS_OK : HS_ENOMEM;
}
