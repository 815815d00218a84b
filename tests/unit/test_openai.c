/* server/openai: response bodies. Each builder's output is serialised,
 * parsed back with jansson and checked field by field; the required fields
 * of OpenAI's own schemas (read from ../shared/testdata/openai/openapi.yaml)
 * are checked on every shape; invalid UTF-8 is replaced per the Unicode
 * "maximal subpart" practice; base64 embeddings are decoded with libsodium
 * (an independent decoder). */
#include "test_util.h"

#include "base/buf.h"
#include "base/mem.h"
#include "server/openai.h"

#include <libfyaml.h>
#include <math.h>
#include <sodium.h>
#include <string.h>

/* Serialise and parse back, so every check sees what a client would. */
static json_t *roundtrip(json_t *obj)
{
    assert_non_null(obj);
    hs_buf b = {0};
    assert_int_equal(hs_oai_dump(&b, obj), HS_OK);
    json_decref(obj);
    json_error_t je;
    json_t *back = json_loads(b.data, 0, &je);
    if (!back)
        print_error("not JSON: %s: %s\n", je.text, b.data);
    assert_non_null(back);
    hs_buf_free(&b);
    return back;
}

static const char *sget(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static json_int_t iget(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static double nget(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    assert_true(json_is_number(v));
    return json_number_value(v);
}

/* --- UTF-8 --- */

/* Cases from the Unicode Standard's discussion of U+FFFD substitution
 * (chapter 3, "U+FFFD Substitution of Maximal Subparts"), which the WHATWG
 * encoding standard follows: how many U+FFFD each input must give. */
static void invalid_utf8_becomes_replacement_characters(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *out;
    } cases[] = {
        {"plain", "plain"},
        {"\xc3\xa9", "\xc3\xa9"},                 /* é */
        {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"}, /* U+1F600 */
        {"\xe2\x82", "\xef\xbf\xbd"},             /* truncated 3-byte: one */
        {"a\xe2\x82z", "a\xef\xbf\xbdz"},
        {"\xf0\x9f\x98", "\xef\xbf\xbd"},         /* truncated 4-byte: one */
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"}, /* overlong: C0 never valid, then a lone AF */
        {"\xe0\x80\xaf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},                 /* overlong 3-byte */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},                 /* a surrogate */
        {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* above U+10FFFF */
        {"\x80", "\xef\xbf\xbd"},
        {"\xff", "\xef\xbf\xbd"},
        {"\xc3", "\xef\xbf\xbd"},
        {"\xc3(", "\xef\xbf\xbd("},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n;
        char *out = hs_oai_utf8_clean(cases[i].in, strlen(cases[i].in), &n);
        assert_non_null(out);
        assert_int_equal(n, strlen(cases[i].out));
        assert_memory_equal(out, cases[i].out, n);
        hs_free(out);
        json_t *j = hs_oai_text(cases[i].in, strlen(cases[i].in));
        assert_non_null(j);
        assert_string_equal(json_string_value(j), cases[i].out);
        json_decref(j);
    }
    /* NUL bytes stay (JSON escapes them as \u0000) */
    json_t *j = hs_oai_text("a\0b", 3);
    assert_int_equal(json_string_length(j), 3);
    json_decref(j);
}

/* Every byte string of length 1..2 and a sample of length 3..4 comes out as
 * valid UTF-8 (jansson, a strict validator, accepts it). */
static void any_bytes_give_valid_utf8(void **state)
{
    (void)state;
    unsigned char buf[4];
    for (int a = 0; a < 256; a++)
        for (int b = 0; b < 256; b++) {
            buf[0] = (unsigned char)a;
            buf[1] = (unsigned char)b;
            for (size_t len = 1; len <= 2; len++) {
                json_t *j = hs_oai_text((const char *)buf, len);
                assert_non_null(j);
                json_decref(j);
            }
        }
    uint32_t x = 12345;
    for (int i = 0; i < 20000; i++) {
        x = x * 1664525u + 1013904223u;
        memcpy(buf, &x, 4);
        json_t *j = hs_oai_text((const char *)buf, 3 + (x >> 31));
        assert_non_null(j);
        json_decref(j);
    }
}

/* --- errors --- */

static void error_object_has_exactly_four_fields(void **state)
{
    (void)state;
    struct hs_api_error e;
    hs_api_error_set(&e, 400, "invalid_request_error", "invalid_type", "messages[0].role", "bad %s", "role");
    json_t *o = roundtrip(hs_oai_error(&e));
    assert_int_equal(json_object_size(o), 1);
    json_t *err = json_object_get(o, "error");
    assert_int_equal(json_object_size(err), 4);
    assert_string_equal(sget(err, "message"), "bad role");
    assert_string_equal(sget(err, "type"), "invalid_request_error");
    assert_string_equal(sget(err, "param"), "messages[0].role");
    assert_string_equal(sget(err, "code"), "invalid_type");
    json_decref(o);

    hs_api_error_set(&e, 500, "server_error", NULL, "", "broken \xe2\x82");
    o = roundtrip(hs_oai_error(&e));
    err = json_object_get(o, "error");
    assert_true(json_is_null(json_object_get(err, "param")));
    assert_true(json_is_null(json_object_get(err, "code")));
    assert_string_equal(sget(err, "message"), "broken \xef\xbf\xbd");
    json_decref(o);
}

/* --- completions --- */

static const struct hs_oai_alt tops0[2] = {{"Hel", 3, -0.1f}, {"He", 2, -2.5f}};
static const struct hs_oai_alt tops1[3] = {{"lo", 2, -0.2f}, {"\xe2\x82", 2, -3.0f}, {"\xe2\x82", 2, -4.0f}};

static const struct hs_oai_logprob lps[2] = {
    {{"Hel", 3, -0.1f}, 2, tops0},
    {{"lo\xf0\x9f", 4, -INFINITY}, 3, tops1},
};

static void chat_completion_shape(void **state)
{
    (void)state;
    struct hs_oai_choice ch[2] = {
        {.index = 0, .text = "Hello", .len = 5, .finish_reason = "stop", .logprobs = lps, .n_logprobs = 2},
        {.index = 1, .text = "bye\xff", .len = 4, .finish_reason = "length"},
    };
    struct hs_oai_usage u = {.prompt_tokens = 12, .completion_tokens = 7, .cached_tokens = 4};
    json_t *o = roundtrip(hs_oai_completion(HS_REQ_CHAT, "chatcmpl-abc", 1700000000, "llama", ch, 2, &u));
    assert_string_equal(sget(o, "id"), "chatcmpl-abc");
    assert_string_equal(sget(o, "object"), "chat.completion");
    assert_int_equal(iget(o, "created"), 1700000000);
    assert_string_equal(sget(o, "model"), "llama");
    json_t *choices = json_object_get(o, "choices");
    assert_int_equal(json_array_size(choices), 2);

    json_t *c0 = json_array_get(choices, 0);
    assert_int_equal(iget(c0, "index"), 0);
    assert_string_equal(sget(c0, "finish_reason"), "stop");
    json_t *msg = json_object_get(c0, "message");
    assert_string_equal(sget(msg, "role"), "assistant");
    assert_string_equal(sget(msg, "content"), "Hello");
    assert_true(json_is_null(json_object_get(msg, "refusal")));
    json_t *lp = json_object_get(c0, "logprobs");
    assert_true(json_is_null(json_object_get(lp, "refusal")));
    json_t *content = json_object_get(lp, "content");
    assert_int_equal(json_array_size(content), 2);
    json_t *t0 = json_array_get(content, 0);
    assert_string_equal(sget(t0, "token"), "Hel");
    assert_true(fabs(nget(t0, "logprob") - (-0.1)) < 1e-6);
    json_t *bytes = json_object_get(t0, "bytes");
    assert_int_equal(json_array_size(bytes), 3);
    assert_int_equal(json_integer_value(json_array_get(bytes, 0)), 'H');
    json_t *top = json_object_get(t0, "top_logprobs");
    assert_int_equal(json_array_size(top), 2);
    assert_string_equal(sget(json_array_get(top, 1), "token"), "He");
    assert_true(fabs(nget(json_array_get(top, 1), "logprob") - (-2.5)) < 1e-6);
    assert_int_equal(json_array_size(json_object_get(json_array_get(top, 1), "bytes")), 2);
    /* a token ending inside a character: text replaced, raw bytes kept; -inf floored */
    json_t *t1 = json_array_get(content, 1);
    assert_string_equal(sget(t1, "token"), "lo\xef\xbf\xbd");
    assert_true(nget(t1, "logprob") == -9999.0);
    bytes = json_object_get(t1, "bytes");
    assert_int_equal(json_array_size(bytes), 4);
    assert_int_equal(json_integer_value(json_array_get(bytes, 2)), 0xf0);
    assert_int_equal(json_integer_value(json_array_get(bytes, 3)), 0x9f);

    json_t *c1 = json_array_get(choices, 1);
    assert_int_equal(iget(c1, "index"), 1);
    assert_string_equal(sget(c1, "finish_reason"), "length");
    assert_string_equal(sget(json_object_get(c1, "message"), "content"), "bye\xef\xbf\xbd");
    assert_true(json_is_null(json_object_get(c1, "logprobs")));

    json_t *usage = json_object_get(o, "usage");
    assert_int_equal(iget(usage, "prompt_tokens"), 12);
    assert_int_equal(iget(usage, "completion_tokens"), 7);
    assert_int_equal(iget(usage, "total_tokens"), 19);
    assert_int_equal(iget(json_object_get(usage, "prompt_tokens_details"), "cached_tokens"), 4);
    json_decref(o);
}

static void text_completion_shape(void **state)
{
    (void)state;
    struct hs_oai_choice ch = {.index = 0,
                               .text = "Hello\xf0\x9f",
                               .len = 7,
                               .finish_reason = NULL,
                               .logprobs = lps,
                               .n_logprobs = 2};
    json_t *o = roundtrip(hs_oai_completion(HS_REQ_COMPLETION, "cmpl-1", 5, "m", &ch, 1, NULL));
    assert_string_equal(sget(o, "object"), "text_completion");
    assert_null(json_object_get(o, "usage")); /* not given, not sent */
    json_t *c0 = json_array_get(json_object_get(o, "choices"), 0);
    assert_string_equal(sget(c0, "text"), "Hello\xef\xbf\xbd");
    assert_true(json_is_null(json_object_get(c0, "finish_reason")));
    json_t *lp = json_object_get(c0, "logprobs");
    json_t *tokens = json_object_get(lp, "tokens");
    json_t *tlp = json_object_get(lp, "token_logprobs");
    json_t *top = json_object_get(lp, "top_logprobs");
    json_t *off = json_object_get(lp, "text_offset");
    assert_int_equal(json_array_size(tokens), 2);
    assert_int_equal(json_array_size(tlp), 2);
    assert_int_equal(json_array_size(top), 2);
    assert_int_equal(json_array_size(off), 2);
    assert_string_equal(json_string_value(json_array_get(tokens, 0)), "Hel");
    assert_string_equal(json_string_value(json_array_get(tokens, 1)), "lo\xef\xbf\xbd");
    assert_true(fabs(json_number_value(json_array_get(tlp, 0)) + 0.1) < 1e-6);
    assert_true(json_number_value(json_array_get(tlp, 1)) == -9999.0);
    assert_int_equal(json_integer_value(json_array_get(off, 0)), 0);
    assert_int_equal(json_integer_value(json_array_get(off, 1)), 3);
    json_t *m0 = json_array_get(top, 0);
    assert_int_equal(json_object_size(m0), 2);
    assert_true(fabs(nget(m0, "He") + 2.5) < 1e-6);
    /* two alternatives that both print as U+FFFD: the better one keeps the key */
    json_t *m1 = json_array_get(top, 1);
    assert_int_equal(json_object_size(m1), 2);
    assert_true(fabs(nget(m1, "\xef\xbf\xbd") + 3.0) < 1e-6);
    json_decref(o);
}

/* A NUL token (a byte-fallback token can be one) stays \u0000 in "tokens"
 * but not as an object key, which jansson and other parsers refuse. */
static void nul_token_is_not_an_object_key(void **state)
{
    (void)state;
    const struct hs_oai_alt top[2] = {{"\0", 1, -0.5f}, {"a", 1, -1.0f}};
    const struct hs_oai_logprob lp = {{"\0", 1, 0.0f}, 2, top};
    struct hs_oai_choice ch = {
        .index = 0, .text = "\0", .len = 1, .finish_reason = "stop", .logprobs = &lp, .n_logprobs = 1};
    json_t *o = hs_oai_completion(HS_REQ_COMPLETION, "id", 1, "m", &ch, 1, NULL);
    hs_buf b = {0};
    assert_int_equal(hs_oai_dump(&b, o), HS_OK);
    json_decref(o);
    json_error_t je;
    o = json_loads(b.data, JSON_ALLOW_NUL, &je); /* NUL in values allowed, never in keys */
    assert_non_null(o);
    json_t *c0 = json_array_get(json_object_get(o, "choices"), 0);
    assert_int_equal(json_string_length(json_object_get(c0, "text")), 1);
    json_t *lpo = json_object_get(c0, "logprobs");
    assert_int_equal(json_string_length(json_array_get(json_object_get(lpo, "tokens"), 0)), 1);
    json_t *m = json_array_get(json_object_get(lpo, "top_logprobs"), 0);
    assert_true(fabs(nget(m, "\xef\xbf\xbd") + 0.5) < 1e-6);
    assert_true(fabs(nget(m, "a") + 1.0) < 1e-6);
    /* a log-probability of 0 is written 0.0, not -0.0 */
    assert_non_null(strstr(b.data, "\"token_logprobs\":[0.0]"));
    json_decref(o);
    hs_buf_free(&b);
}

static void chunks_shape(void **state)
{
    (void)state;
    json_t *o = roundtrip(hs_oai_chunk(HS_REQ_CHAT, "chatcmpl-9", 77, "m", 0, true, NULL, 0, NULL, 0, NULL));
    assert_string_equal(sget(o, "object"), "chat.completion.chunk");
    assert_string_equal(sget(o, "id"), "chatcmpl-9");
    assert_int_equal(iget(o, "created"), 77);
    json_t *c = json_array_get(json_object_get(o, "choices"), 0);
    json_t *delta = json_object_get(c, "delta");
    assert_string_equal(sget(delta, "role"), "assistant");
    assert_null(json_object_get(delta, "content"));
    assert_true(json_is_null(json_object_get(c, "finish_reason")));
    assert_true(json_is_null(json_object_get(c, "logprobs")));
    json_decref(o);

    o = roundtrip(hs_oai_chunk(HS_REQ_CHAT, "chatcmpl-9", 77, "m", 3, false, "a\nb", 3, lps, 1, NULL));
    c = json_array_get(json_object_get(o, "choices"), 0);
    assert_int_equal(iget(c, "index"), 3);
    delta = json_object_get(c, "delta");
    assert_null(json_object_get(delta, "role"));
    assert_string_equal(sget(delta, "content"), "a\nb");
    assert_int_equal(json_array_size(json_object_get(json_object_get(c, "logprobs"), "content")), 1);
    json_decref(o);

    o = roundtrip(hs_oai_chunk(HS_REQ_CHAT, "chatcmpl-9", 77, "m", 0, false, NULL, 0, NULL, 0, "stop"));
    c = json_array_get(json_object_get(o, "choices"), 0);
    assert_int_equal(json_object_size(json_object_get(c, "delta")), 0);
    assert_string_equal(sget(c, "finish_reason"), "stop");
    json_decref(o);

    o = roundtrip(hs_oai_chunk(HS_REQ_COMPLETION, "cmpl-9", 77, "m", 1, true, "tok", 3, lps, 2, "length"));
    assert_string_equal(sget(o, "object"), "text_completion");
    c = json_array_get(json_object_get(o, "choices"), 0);
    assert_string_equal(sget(c, "text"), "tok");
    assert_string_equal(sget(c, "finish_reason"), "length");
    assert_int_equal(json_array_size(json_object_get(json_object_get(c, "logprobs"), "tokens")), 2);
    json_decref(o);

    o = roundtrip(hs_oai_chunk(HS_REQ_COMPLETION, "cmpl-9", 77, "m", 0, false, NULL, 0, NULL, 0, "stop"));
    c = json_array_get(json_object_get(o, "choices"), 0);
    assert_string_equal(sget(c, "text"), "");
    json_decref(o);

    struct hs_oai_usage u = {.prompt_tokens = 3, .completion_tokens = 5, .cached_tokens = 0};
    for (int k = 0; k < 2; k++) {
        enum hs_req_kind kind = k ? HS_REQ_COMPLETION : HS_REQ_CHAT;
        o = roundtrip(hs_oai_usage_chunk(kind, "id", 77, "m", &u));
        assert_string_equal(sget(o, "object"), k ? "text_completion" : "chat.completion.chunk");
        assert_int_equal(json_array_size(json_object_get(o, "choices")), 0);
        assert_true(json_is_array(json_object_get(o, "choices")));
        assert_int_equal(iget(json_object_get(o, "usage"), "total_tokens"), 8);
        json_decref(o);
    }
}

static void embeddings_float_and_base64(void **state)
{
    (void)state;
    const float v0[5] = {0.1f, -2.5f, 1e-8f, 3.4e38f, -0.0f};
    const float v1[5] = {1, 2, 3, 4, NAN};
    const float *vs[2] = {v0, v1};
    json_t *o = roundtrip(hs_oai_embeddings("emb", vs, 2, 5, 9, false));
    assert_string_equal(sget(o, "object"), "list");
    assert_string_equal(sget(o, "model"), "emb");
    json_t *usage = json_object_get(o, "usage");
    assert_int_equal(iget(usage, "prompt_tokens"), 9);
    assert_int_equal(iget(usage, "total_tokens"), 9);
    json_t *data = json_object_get(o, "data");
    assert_int_equal(json_array_size(data), 2);
    for (int i = 0; i < 2; i++) {
        json_t *e = json_array_get(data, i);
        assert_string_equal(sget(e, "object"), "embedding");
        assert_int_equal(iget(e, "index"), i);
        json_t *arr = json_object_get(e, "embedding");
        assert_int_equal(json_array_size(arr), 5);
        for (int k = 0; k < 5; k++) {
            float want = isfinite(vs[i][k]) ? vs[i][k] : 0.0f;
            /* 9 significant digits: the float comes back bit for bit */
            assert_true((float)json_number_value(json_array_get(arr, k)) == want);
        }
    }
    json_decref(o);

    o = roundtrip(hs_oai_embeddings("emb", vs, 1, 5, 9, true));
    const char *b64 = sget(json_array_get(json_object_get(o, "data"), 0), "embedding");
    unsigned char raw[64];
    size_t n = 0;
    assert_int_equal(
        sodium_base642bin(raw, sizeof(raw), b64, strlen(b64), NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL),
        0);
    assert_int_equal(n, 20);
    for (int k = 0; k < 5; k++) {
        uint32_t u = (uint32_t)raw[4 * k] | (uint32_t)raw[4 * k + 1] << 8 | (uint32_t)raw[4 * k + 2] << 16 |
                     (uint32_t)raw[4 * k + 3]
                         << 24; /* little-endian, as OpenAI's numpy frombuffer reads it */
        float f;
        memcpy(&f, &u, 4);
        assert_memory_equal(&f, &v0[k], 4);
    }
    json_decref(o);
    /* padding: 1 and 2 floats (4 and 8 bytes) */
    for (int dim = 1; dim <= 2; dim++) {
        o = roundtrip(hs_oai_embeddings("emb", vs, 1, dim, 1, true));
        b64 = sget(json_array_get(json_object_get(o, "data"), 0), "embedding");
        assert_int_equal(sodium_base642bin(raw, sizeof(raw), b64, strlen(b64), NULL, &n, NULL,
                                           sodium_base64_VARIANT_ORIGINAL),
                         0);
        assert_int_equal(n, (size_t)dim * 4);
        assert_memory_equal(raw, v0, n); /* this machine is little-endian (x86) */
        json_decref(o);
    }
}

static void model_entry_shape(void **state)
{
    (void)state;
    json_t *o = roundtrip(hs_oai_model("llama", 1600000000, "hestia"));
    assert_int_equal(json_object_size(o), 4);
    assert_string_equal(sget(o, "id"), "llama");
    assert_string_equal(sget(o, "object"), "model");
    assert_int_equal(iget(o, "created"), 1600000000);
    assert_string_equal(sget(o, "owned_by"), "hestia");
    json_decref(o);
}

/* SSE: "data: " + one line of JSON + a blank line; [DONE] at the end. */
static void sse_framing(void **state)
{
    (void)state;
    hs_buf b = {0};
    json_t *c = hs_oai_chunk(HS_REQ_CHAT, "x", 1, "m", 0, false, "line1\nline2\r\n\n", 14, NULL, 0, NULL);
    assert_int_equal(hs_sse_append(&b, c), HS_OK);
    assert_int_equal(hs_sse_append(&b, c), HS_OK);
    json_decref(c);
    assert_int_equal(hs_sse_done(&b), HS_OK);
    /* split on blank lines: three events */
    const char *p = b.data;
    int events = 0;
    while (*p) {
        const char *end = strstr(p, "\n\n");
        assert_non_null(end);
        assert_memory_equal(p, "data: ", 6);
        assert_null(memchr(p, '\n', (size_t)(end - p))); /* one line per event */
        assert_null(memchr(p, '\r', (size_t)(end - p)));
        if (events < 2) {
            json_t *back = json_loadb(p + 6, (size_t)(end - p - 6), 0, NULL);
            assert_non_null(back);
            json_t *d = json_object_get(json_array_get(json_object_get(back, "choices"), 0), "delta");
            assert_string_equal(sget(d, "content"), "line1\nline2\r\n\n");
            json_decref(back);
        } else {
            assert_int_equal(end - p, 12);
            assert_memory_equal(p, "data: [DONE]", 12);
        }
        events++;
        p = end + 2;
    }
    assert_int_equal(events, 3);
    hs_buf_free(&b);
}

/* --- OpenAI's schemas: every required field is there --- */

struct spec {
    struct fy_document *doc;
};

static struct fy_node *spec_node(struct spec *s, const char *path)
{
    return fy_node_by_path(fy_document_root(s->doc), path, FY_NT, FYNWF_DONT_FOLLOW);
}

/* Asserts that obj has every key listed in the schema at path (a YAML list). */
static void has_required(struct spec *s, const json_t *obj, const char *path)
{
    struct fy_node *req = spec_node(s, path);
    if (!req || !fy_node_is_sequence(req))
        print_error("spec: no required list at %s\n", path);
    assert_non_null(req);
    assert_true(fy_node_is_sequence(req));
    assert_true(json_is_object(obj));
    void *it = NULL;
    struct fy_node *item;
    int n = 0;
    while ((item = fy_node_sequence_iterate(req, &it))) {
        size_t len;
        const char *k = fy_node_get_scalar(item, &len);
        char key[64];
        snprintf(key, sizeof(key), "%.*s", (int)len, k);
        if (!json_object_get(obj, key))
            print_error("missing required '%s' (%s)\n", key, path);
        assert_non_null(json_object_get(obj, key));
        n++;
    }
    assert_true(n > 0);
}

static void builders_meet_openai_required_fields(void **state)
{
    (void)state;
    const char *path = HS_SHARED_OR_SKIP("testdata/openai/openapi.yaml");
    struct fy_parse_cfg cfg = {.flags = FYPCF_QUIET};
    struct spec s = {fy_document_build_from_file(&cfg, path)};
    assert_non_null(s.doc);
#define SCHEMA "/components/schemas/"

    struct hs_oai_choice ch = {
        .index = 0, .text = "hi", .len = 2, .finish_reason = "stop", .logprobs = lps, .n_logprobs = 2};
    struct hs_oai_usage u = {.prompt_tokens = 1, .completion_tokens = 2, .cached_tokens = 0};

    json_t *o = roundtrip(hs_oai_completion(HS_REQ_CHAT, "id", 1, "m", &ch, 1, &u));
    has_required(&s, o, SCHEMA "CreateChatCompletionResponse/required");
    json_t *c0 = json_array_get(json_object_get(o, "choices"), 0);
    has_required(&s, c0, SCHEMA "CreateChatCompletionResponse/properties/choices/items/required");
    has_required(&s, json_object_get(c0, "message"), SCHEMA "ChatCompletionResponseMessage/required");
    json_t *lp = json_object_get(c0, "logprobs");
    has_required(
        &s, lp,
        SCHEMA "CreateChatCompletionResponse/properties/choices/items/properties/logprobs/anyOf/0/required");
    json_t *tok = json_array_get(json_object_get(lp, "content"), 0);
    has_required(&s, tok, SCHEMA "ChatCompletionTokenLogprob/required");
    has_required(&s, json_array_get(json_object_get(tok, "top_logprobs"), 0),
                 SCHEMA "ChatCompletionTokenLogprob/properties/top_logprobs/items/required");
    has_required(&s, json_object_get(o, "usage"), SCHEMA "CompletionUsage/required");
    json_decref(o);

    o = roundtrip(hs_oai_chunk(HS_REQ_CHAT, "id", 1, "m", 0, true, "x", 1, lps, 1, NULL));
    has_required(&s, o, SCHEMA "CreateChatCompletionStreamResponse/required");
    c0 = json_array_get(json_object_get(o, "choices"), 0);
    has_required(&s, c0, SCHEMA "CreateChatCompletionStreamResponse/properties/choices/items/required");
    has_required(&s, json_object_get(c0, "logprobs"),
                 SCHEMA
                 "CreateChatCompletionStreamResponse/properties/choices/items/properties/logprobs/required");
    json_decref(o);
    o = roundtrip(hs_oai_usage_chunk(HS_REQ_CHAT, "id", 1, "m", &u));
    has_required(&s, o, SCHEMA "CreateChatCompletionStreamResponse/required");
    has_required(&s, json_object_get(o, "usage"), SCHEMA "CompletionUsage/required");
    json_decref(o);

    o = roundtrip(hs_oai_completion(HS_REQ_COMPLETION, "id", 1, "m", &ch, 1, &u));
    has_required(&s, o, SCHEMA "CreateCompletionResponse/required");
    has_required(&s, json_array_get(json_object_get(o, "choices"), 0),
                 SCHEMA "CreateCompletionResponse/properties/choices/items/required");
    json_decref(o);
    /* streamed completions share the response's shape (the spec says so) */
    o = roundtrip(hs_oai_chunk(HS_REQ_COMPLETION, "id", 1, "m", 0, true, "x", 1, NULL, 0, NULL));
    has_required(&s, o, SCHEMA "CreateCompletionResponse/required");
    has_required(&s, json_array_get(json_object_get(o, "choices"), 0),
                 SCHEMA "CreateCompletionResponse/properties/choices/items/required");
    json_decref(o);

    const float v[2] = {1, 2};
    const float *vs[1] = {v};
    o = roundtrip(hs_oai_embeddings("m", vs, 1, 2, 3, false));
    has_required(&s, o, SCHEMA "CreateEmbeddingResponse/required");
    has_required(&s, json_object_get(o, "usage"), SCHEMA "CreateEmbeddingResponse/properties/usage/required");
    has_required(&s, json_array_get(json_object_get(o, "data"), 0), SCHEMA "Embedding/required");
    json_decref(o);

    o = roundtrip(hs_oai_model("m", 1, "hestia"));
    has_required(&s, o, SCHEMA "Model/required");
    json_decref(o);

    struct hs_api_error e;
    hs_api_error_set(&e, 400, "invalid_request_error", NULL, NULL, "x");
    o = roundtrip(hs_oai_error(&e));
    has_required(&s, o, SCHEMA "ErrorResponse/required");
    has_required(&s, json_object_get(o, "error"), SCHEMA "Error/required");
    json_decref(o);

    /* the object names are the spec's enums */
    struct fy_node *en = spec_node(&s, SCHEMA "CreateChatCompletionStreamResponse/properties/object/enum/0");
    assert_non_null(en);
    assert_string_equal(fy_node_get_scalar0(en), "chat.completion.chunk");
    fy_document_destroy(s.doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(invalid_utf8_becomes_replacement_characters),
        cmocka_unit_test(any_bytes_give_valid_utf8),
        cmocka_unit_test(error_object_has_exactly_four_fields),
        cmocka_unit_test(chat_completion_shape),
        cmocka_unit_test(text_completion_shape),
        cmocka_unit_test(nul_token_is_not_an_object_key),
        cmocka_unit_test(chunks_shape),
        cmocka_unit_test(embeddings_float_and_base64),
        cmocka_unit_test(model_entry_shape),
        cmocka_unit_test(sse_framing),
        cmocka_unit_test(builders_meet_openai_required_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
