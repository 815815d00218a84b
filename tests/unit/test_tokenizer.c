/* model/tokenizer: llama.cpp's tokenizer test vectors (every line of every
 * .inp/.out pair in ../shared/testdata/tokenizer), small SentencePiece and
 * byte-level BPE vocabularies written here with the GGUF writer (expected ids
 * worked out by hand from the merge rules), special tokens, BOS/EOS, EOG,
 * round trips, malformed input and speed. */
#include "test_util.h"

#include "base/buf.h"
#include "base/clock.h"
#include "base/mem.h"
#include "base/rng.h"
#include "base/sys.h"
#include "gguf/gguf.h"
#include "model/tokenizer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

static hs_tok *load_gguf_tok(const char *path)
{
    hs_gguf *g;
    hs_err err;
    int rc = hs_gguf_open(path, &g, &err);
    if (rc)
        fail_msg("%s: %s", path, err.msg);
    hs_tok *t;
    rc = hs_tok_load(g, &t, &err);
    hs_gguf_close(g);
    if (rc)
        fail_msg("%s: %s", path, err.msg);
    return t;
}

static void print_escaped(const char *label, const char *s, size_t n)
{
    char buf[512];
    size_t k = 0;
    for (size_t i = 0; i < n && k + 8 < sizeof buf; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            k += (size_t)snprintf(buf + k, sizeof buf - k, "\\n");
        else if (c == '\t')
            k += (size_t)snprintf(buf + k, sizeof buf - k, "\\t");
        else if (c < 0x20 || c == 0x7f)
            k += (size_t)snprintf(buf + k, sizeof buf - k, "\\x%02x", c);
        else
            buf[k++] = (char)c;
    }
    buf[k] = 0;
    print_message("    %s: \"%s\"\n", label, buf);
}

static void print_ids(const char *label, const int32_t *ids, size_t n)
{
    char buf[1024];
    size_t k = 0;
    for (size_t i = 0; i < n && k + 16 < sizeof buf; i++)
        k += (size_t)snprintf(buf + k, sizeof buf - k, " %d", (int)ids[i]);
    buf[k] = 0;
    print_message("    %s:%s\n", label, buf);
}

static const char k_sep[] = "\n__ggml_vocab_test__\n";

/* Runs every vector of one .inp/.out pair; returns the number that failed. */
static int run_vectors(const hs_tok *t, const char *name, const char *inp_path, const char *out_path)
{
    char *inp, *outp;
    size_t inp_len, out_len;
    hs_err err;
    if (hs_read_file(inp_path, &inp, &inp_len, &err) || hs_read_file(out_path, &outp, &out_len, &err))
        fail_msg("%s", err.msg);
    size_t sep_len = strlen(k_sep);
    size_t ip = 0, op = 0;
    int total = 0, failed = 0;
    for (;;) {
        const char *m = memmem(inp + ip, inp_len - ip, k_sep, sep_len);
        if (!m)
            break;
        size_t tlen = (size_t)(m - (inp + ip));
        const char *text = inp + ip;
        ip += tlen + sep_len;

        /* the expected line */
        assert_true(op <= out_len);
        const char *line = outp + op;
        const char *nl = memchr(line, '\n', out_len - op);
        size_t llen = nl ? (size_t)(nl - line) : out_len - op;
        op += llen + (nl != NULL);
        int32_t want[1024];
        size_t n_want = 0;
        for (size_t i = 0; i < llen;) {
            while (i < llen && line[i] == ' ')
                i++;
            if (i >= llen)
                break;
            long v = 0;
            while (i < llen && line[i] >= '0' && line[i] <= '9')
                v = v * 10 + (line[i++] - '0');
            assert_true(n_want < 1024);
            want[n_want++] = (int32_t)v;
        }

        int32_t *ids;
        size_t n;
        assert_int_equal(hs_tok_encode(t, text, tlen, false, false, &ids, &n, &err), HS_OK);
        total++;
        if (n != n_want || memcmp(ids, want, n * sizeof *ids) != 0) {
            if (failed < 6) {
                print_message("[  MISMATCH] %s vector %d\n", name, total);
                print_escaped("text", text, tlen);
                print_ids("want", want, n_want);
                print_ids("got ", ids, n);
            }
            failed++;
        }
        hs_free(ids);
    }
    print_message("[  VECTORS ] %s: %d/%d match\n", name, total - failed, total);
    assert_true(total > 0);
    hs_free(inp);
    hs_free(outp);
    return failed;
}

static void vectors_for(const char *vocab)
{
    char rel[256], inp[256], out[256];
    snprintf(rel, sizeof rel, "testdata/tokenizer/ggml-vocab-%s.gguf", vocab);
    const char *path = HS_SHARED_OR_SKIP(rel);
    hs_tok *t = load_gguf_tok(path);
    snprintf(inp, sizeof inp, "%s.inp", path);
    snprintf(out, sizeof out, "%s.out", path);
    int failed = run_vectors(t, vocab, inp, out);
    hs_tok_free(t);
    assert_int_equal(failed, 0);
}

static void vectors_llama_spm(void **state)
{
    (void)state;
    vectors_for("llama-spm");
}
static void vectors_phi_3(void **state)
{
    (void)state;
    vectors_for("phi-3");
}
static void vectors_gpt_2(void **state)
{
    (void)state;
    vectors_for("gpt-2");
}
static void vectors_falcon(void **state)
{
    (void)state;
    vectors_for("falcon");
}
static void vectors_mpt(void **state)
{
    (void)state;
    vectors_for("mpt");
}
static void vectors_refact(void **state)
{
    (void)state;
    vectors_for("refact");
}
static void vectors_deepseek_coder(void **state)
{
    (void)state;
    vectors_for("deepseek-coder");
}

static hs_tok *load_llama3_bpe(void)
{
    char vocab[1024];
    const char *p = HS_SHARED_OR_SKIP("testdata/tokenizer/llama3.2-bpe/encoder.json");
    snprintf(vocab, sizeof vocab, "%s", p);
    const char *merges = HS_SHARED_OR_SKIP("testdata/tokenizer/llama3.2-bpe/vocab.bpe");
    hs_tok *t;
    hs_err err;
    if (hs_tok_load_bpe_files(vocab, merges, "llama-bpe", &t, &err))
        fail_msg("%s", err.msg);
    return t;
}

/* The Llama 3 vocabulary built from encoder.json + vocab.bpe (the 256 special
 * tokens from 128000 up are not needed by these vectors). */
static void vectors_llama_bpe(void **state)
{
    (void)state;
    char inp[1024], out[1024];
    snprintf(inp, sizeof inp, "%s",
             HS_SHARED_OR_SKIP("testdata/tokenizer/vectors_only/ggml-vocab-llama-bpe.gguf.inp"));
    snprintf(out, sizeof out, "%s",
             HS_SHARED_OR_SKIP("testdata/tokenizer/vectors_only/ggml-vocab-llama-bpe.gguf.out"));
    hs_tok *t = load_llama3_bpe();
    assert_int_equal(hs_tok_n_vocab(t), 128000);
    assert_string_equal(hs_tok_pre_name(t), "llama-bpe");
    int failed = run_vectors(t, "llama-bpe", inp, out);
    hs_tok_free(t);
    assert_int_equal(failed, 0);
}

static void vectors_bert_bge(void **state)
{
    (void)state;
    vectors_for("bert-bge");
}

/* Vocabularies whose GGUF is not in ../shared (4 MiB or more): say so, and skip. */
static void vectors_unavailable(void **state)
{
    (void)state;
    static const char *const absent[] = {"qwen2", "qwen35", "command-r", "gemma-4"};
    for (size_t i = 0; i < 4; i++)
        print_message("[  SKIP    ] %s: vectors only, its vocabulary GGUF is not in ../shared\n", absent[i]);
    skip();
}

/* BERT's WordPiece: [CLS] ... [SEP] with add_special, lowercase, accents off. */
static void bert_specials(void **state)
{
    (void)state;
    hs_tok *t = load_gguf_tok(HS_SHARED_OR_SKIP("testdata/tokenizer/ggml-vocab-bert-bge.gguf"));
    assert_string_equal(hs_tok_model_name(t), "bert");
    int32_t *a, *b;
    size_t na, nb;
    hs_err err;
    assert_int_equal(hs_tok_encode(t, "Hello W\xc3\xb6rld!", 13, true, false, &a, &na, &err), HS_OK);
    assert_int_equal(hs_tok_encode(t, "hello world !", 13, false, false, &b, &nb, &err), HS_OK);
    assert_int_equal(na, nb + 2);
    assert_int_equal(a[0], 101);      /* [CLS] */
    assert_int_equal(a[na - 1], 102); /* [SEP] */
    assert_memory_equal(a + 1, b, nb * sizeof *b);
    hs_free(a);
    hs_free(b);
    hs_tok_free(t);
}

/* ---- synthetic vocabularies ---- */

struct vocab {
    const char *strs[600];
    size_t lens[600];
    float scores[600];
    int32_t types[600];
    size_t n;
};

static int32_t vadd(struct vocab *v, const char *s, size_t len, float score, int type)
{
    assert_true(v->n < 600);
    v->strs[v->n] = s;
    v->lens[v->n] = len;
    v->scores[v->n] = score;
    v->types[v->n] = type;
    return (int32_t)v->n++;
}

static int32_t vadds(struct vocab *v, const char *s, float score, int type)
{
    return vadd(v, s, strlen(s), score, type);
}

struct extra_kv {
    const char *key;
    int kind; /* 0 u32, 1 bool, 2 str */
    uint32_t u;
    const char *s;
};

static hs_tok *write_and_load(const char *file, const char *model, const char *pre, const struct vocab *v,
                              const char *const *merges, size_t n_merges, const struct extra_kv *kvs,
                              size_t n_kv, int expect_rc)
{
    char *path = hs_test_tmpfile(file);
    hs_gguf_writer *w;
    hs_err err;
    assert_int_equal(hs_gguf_writer_open(path, &w, &err), HS_OK);
    hs_gguf_w_str(w, "general.architecture", "llama", 5);
    hs_gguf_w_str(w, "tokenizer.ggml.model", model, strlen(model));
    if (pre)
        hs_gguf_w_str(w, "tokenizer.ggml.pre", pre, strlen(pre));
    hs_gguf_w_arr_str(w, "tokenizer.ggml.tokens", v->strs, v->lens, v->n);
    hs_gguf_w_arr(w, "tokenizer.ggml.scores", HS_GGUF_FLOAT32, v->scores, v->n);
    hs_gguf_w_arr(w, "tokenizer.ggml.token_type", HS_GGUF_INT32, v->types, v->n);
    if (merges)
        hs_gguf_w_arr_str(w, "tokenizer.ggml.merges", merges, NULL, n_merges);
    for (size_t i = 0; i < n_kv; i++) {
        if (kvs[i].kind == 0)
            hs_gguf_w_u32(w, kvs[i].key, kvs[i].u);
        else if (kvs[i].kind == 1)
            hs_gguf_w_bool(w, kvs[i].key, kvs[i].u != 0);
        else
            hs_gguf_w_str(w, kvs[i].key, kvs[i].s, strlen(kvs[i].s));
    }
    assert_int_equal(hs_gguf_w_begin_data(w, &err), HS_OK);
    assert_int_equal(hs_gguf_w_close(w, &err), HS_OK);
    hs_gguf *g;
    assert_int_equal(hs_gguf_open(path, &g, &err), HS_OK);
    free(path);
    hs_tok *t = NULL;
    int rc = hs_tok_load(g, &t, &err);
    hs_gguf_close(g);
    if (rc != expect_rc)
        fail_msg("load: expected %d, got %d (%s)", expect_rc, rc, err.msg);
    return t;
}

static char g_byte_names[256][8];

/* A SentencePiece vocabulary: <unk>, <s>, </s>, the 256 byte tokens, then a
 * few pieces with scores chosen so that the merge order is known. */
enum {
    S_UNK = 0,
    S_BOS = 1,
    S_EOS = 2,
    S_BYTE0 = 3,
    S_SP = 259,
    S_H,
    S_E,
    S_L,
    S_O,
    S_W,
    S_R,
    S_D,
    S_HE,
    S_LL,
    S_LLO,
    S_HELLO,
    S_SP_HELLO,
    S_SP_W,
    S_OR,
    S_SP_WOR,
    S_SP_H,
    S_USER,
    S_IM_END,
};

static hs_tok *spm_vocab(const struct extra_kv *kvs, size_t n_kv)
{
    static struct vocab v;
    memset(&v, 0, sizeof v);
    vadds(&v, "<unk>", 0, HS_TOK_UNKNOWN);
    vadds(&v, "<s>", 0, HS_TOK_CONTROL);
    vadds(&v, "</s>", 0, HS_TOK_CONTROL);
    for (int b = 0; b < 256; b++) {
        snprintf(g_byte_names[b], sizeof g_byte_names[b], "<0x%02X>", b);
        vadds(&v, g_byte_names[b], 0, HS_TOK_BYTE);
    }
    assert_int_equal(vadds(&v, "\xe2\x96\x81", -1, HS_TOK_NORMAL), S_SP);
    vadds(&v, "h", -1, HS_TOK_NORMAL);
    vadds(&v, "e", -1, HS_TOK_NORMAL);
    vadds(&v, "l", -1, HS_TOK_NORMAL);
    vadds(&v, "o", -1, HS_TOK_NORMAL);
    vadds(&v, "w", -1, HS_TOK_NORMAL);
    vadds(&v, "r", -1, HS_TOK_NORMAL);
    vadds(&v, "d", -1, HS_TOK_NORMAL);
    vadds(&v, "he", -3, HS_TOK_NORMAL);
    vadds(&v, "ll", -2.5f, HS_TOK_NORMAL);
    vadds(&v, "llo", -4, HS_TOK_NORMAL);
    vadds(&v, "hello", -5, HS_TOK_NORMAL);
    vadds(&v, "\xe2\x96\x81hello", -6, HS_TOK_NORMAL);
    vadds(&v, "\xe2\x96\x81w", -7, HS_TOK_NORMAL);
    vadds(&v, "or", -8, HS_TOK_NORMAL);
    vadds(&v, "\xe2\x96\x81wor", -9, HS_TOK_NORMAL);
    vadds(&v, "\xe2\x96\x81h", -100, HS_TOK_NORMAL);
    vadds(&v, "<user>", 0, HS_TOK_USER_DEFINED);
    assert_int_equal(vadds(&v, "<|im_end|>", 0, HS_TOK_CONTROL), S_IM_END);
    return write_and_load("spm.gguf", "llama", NULL, &v, NULL, 0, kvs, n_kv, HS_OK);
}

static void expect_ids(const hs_tok *t, const char *text, bool add_special, bool parse_special,
                       const int32_t *want, size_t n_want)
{
    int32_t *ids;
    size_t n;
    hs_err err;
    assert_int_equal(hs_tok_encode(t, text, strlen(text), add_special, parse_special, &ids, &n, &err), HS_OK);
    if (n != n_want || memcmp(ids, want, n * sizeof *ids) != 0) {
        print_escaped("text", text, strlen(text));
        print_ids("want", want, n_want);
        print_ids("got ", ids, n);
        fail();
    }
    hs_free(ids);
}

#define EXPECT(t, text, add, parse, ...)                                                                     \
    do {                                                                                                     \
        const int32_t want_[] = {__VA_ARGS__};                                                               \
        expect_ids(t, text, add, parse, want_, sizeof want_ / sizeof want_[0]);                              \
    } while (0)

static void expect_empty(const hs_tok *t, const char *text)
{
    int32_t *ids;
    size_t n;
    hs_err err;
    assert_int_equal(hs_tok_encode(t, text, strlen(text), false, false, &ids, &n, &err), HS_OK);
    assert_non_null(ids);
    assert_int_equal(n, 0);
    hs_free(ids);
}

/* "hello world" -> "▁hello▁world": ll (-2.5) merges first, then he, llo,
 * hello, ▁hello, ▁w, or, ▁wor; "l" and "d" stay alone. */
static void spm_merges_by_score(void **state)
{
    (void)state;
    hs_tok *t = spm_vocab(NULL, 0);
    assert_string_equal(hs_tok_model_name(t), "llama");
    assert_int_equal(hs_tok_n_vocab(t), S_IM_END + 1);
    EXPECT(t, "hello world", false, false, S_SP_HELLO, S_SP_WOR, S_L, S_D);
    /* equal scores: the leftmost pair merges first */
    EXPECT(t, "lll", false, false, S_SP, S_LL, S_L);
    /* é is not a piece: its two bytes fall back to <0xC3> <0xA9> */
    EXPECT(t, "h\xc3\xa9", false, false, S_SP_H, S_BYTE0 + 0xc3, S_BYTE0 + 0xa9);
    /* a stray continuation byte and a truncated sequence also become bytes */
    EXPECT(t, "\x80h", false, false, S_SP, S_BYTE0 + 0x80, S_H);
    /* spaces are ▁; the dummy prefix adds one more in front */
    EXPECT(t, " hello", false, false, S_SP, S_SP_HELLO);
    expect_empty(t, "");
    /* add_special: SPM adds BOS by default, never EOS */
    assert_true(hs_tok_add_bos(t));
    assert_false(hs_tok_add_eos(t));
    EXPECT(t, "hello", true, false, S_BOS, S_SP_HELLO);
    EXPECT(t, "", true, false, S_BOS);
    hs_tok_free(t);
}

static void spm_keys_override_defaults(void **state)
{
    (void)state;
    const struct extra_kv kvs[] = {
        {"tokenizer.ggml.add_space_prefix", 1, 0, NULL},
        {"tokenizer.ggml.add_bos_token", 1, 0, NULL},
        {"tokenizer.ggml.add_eos_token", 1, 1, NULL},
        {"tokenizer.ggml.eos_token_id", 0, S_IM_END, NULL},
        {"tokenizer.ggml.padding_token_id", 0, 4294967295u, NULL}, /* "none" */
        {"tokenizer.ggml.unknown_token_id", 0, 70000, NULL},       /* out of range: the default stays */
    };
    hs_tok *t = spm_vocab(kvs, 6);
    assert_int_equal(hs_tok_unk(t), S_UNK);
    assert_false(hs_tok_add_space_prefix(t));
    assert_false(hs_tok_add_bos(t));
    assert_true(hs_tok_add_eos(t));
    assert_int_equal(hs_tok_eos(t), S_IM_END);
    EXPECT(t, "hello", true, false, S_HELLO, S_IM_END);
    hs_buf b = {0};
    const int32_t ids[] = {S_HE, S_LLO};
    assert_int_equal(hs_tok_decode(t, ids, 2, false, &b), HS_OK);
    assert_string_equal(b.data, "hello");
    hs_buf_free(&b);
    hs_tok_free(t);
}

/* Special tokens: user-defined ones always split; control ones only with
 * parse_special; the text after a special gets a dummy prefix again. */
static void spm_special_tokens(void **state)
{
    (void)state;
    hs_tok *t = spm_vocab(NULL, 0);
    EXPECT(t, "hello<user>hello", false, false, S_SP_HELLO, S_USER, S_SP_HELLO);
    EXPECT(t, "<s>hello", false, true, S_BOS, S_SP_HELLO);
    /* without parse_special "<s>" is text: bytes < s > (no pieces for them) */
    EXPECT(t, "<s>", false, false, S_SP, S_BYTE0 + '<', S_BYTE0 + 's', S_BYTE0 + '>');
    EXPECT(t, "hello<|im_end|>", false, true, S_SP_HELLO, S_IM_END);
    /* EOG: eos and the auto-detected <|im_end|> (also the eot) */
    assert_true(hs_tok_is_eog(t, S_EOS));
    assert_true(hs_tok_is_eog(t, S_IM_END));
    assert_false(hs_tok_is_eog(t, S_BOS));
    assert_false(hs_tok_is_eog(t, S_HELLO));
    assert_false(hs_tok_is_eog(t, -1));
    assert_int_equal(hs_tok_eot(t), S_IM_END);
    assert_int_equal(hs_tok_find(t, "<user>", 6), S_USER);
    assert_int_equal(hs_tok_find(t, "<nope>", 6), -1);
    assert_int_equal(hs_tok_type(t, S_BYTE0), HS_TOK_BYTE);
    hs_tok_free(t);
}

static void spm_decode(void **state)
{
    (void)state;
    hs_tok *t = spm_vocab(NULL, 0);
    hs_buf b = {0};
    const int32_t ids[] = {S_BOS, S_SP_HELLO, S_SP_WOR, S_L, S_D, S_BYTE0 + 0xc3, S_BYTE0 + 0xa9, S_IM_END};
    assert_int_equal(hs_tok_decode(t, ids, 8, false, &b), HS_OK);
    assert_string_equal(b.data, "hello world\xc3\xa9");
    hs_buf_reset(&b);
    assert_int_equal(hs_tok_decode(t, ids, 8, true, &b), HS_OK);
    assert_string_equal(b.data, "<s>hello world\xc3\xa9<|im_end|>");
    hs_buf_reset(&b);
    /* one token at a time keeps the space */
    assert_int_equal(hs_tok_decode_token(t, S_SP_HELLO, false, &b), HS_OK);
    assert_int_equal(hs_tok_decode_token(t, S_UNK, false, &b), HS_OK);
    assert_string_equal(b.data, " hello");
    assert_int_equal(hs_tok_decode_token(t, 99999, false, &b), HS_EINVAL);
    const int32_t bad[] = {S_H, -5};
    assert_int_equal(hs_tok_decode(t, bad, 2, false, &b), HS_EINVAL);
    assert_string_equal(b.data, " hello");
    hs_buf_free(&b);
    hs_tok_free(t);
}

/* A byte-level BPE vocabulary: the 256 GPT-2 byte characters (id = byte),
 * then merge results, then specials. */
static uint32_t gpt2_cp(int b)
{
    bool keep = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    if (keep)
        return (uint32_t)b;
    uint32_t n = 256;
    for (int c = 0; c < b; c++) {
        bool k = (c >= '!' && c <= '~') || (c >= 0xa1 && c <= 0xac) || (c >= 0xae && c <= 0xff);
        n += !k;
    }
    return n;
}

static char g_byte_chars[256][4];

enum {
    B_HE = 256,
    B_LL,
    B_HELL,
    B_HELLO,
    B_GW,
    B_OR,
    B_GWOR,
    B_EOT_TEXT,
    B_ENDOFTEXT,
    B_USER,
    B_AB,
    B_BCD,
};

static hs_tok *bpe_vocab(const char *pre, const struct extra_kv *kvs, size_t n_kv, int expect_rc)
{
    static struct vocab v;
    memset(&v, 0, sizeof v);
    for (int b = 0; b < 256; b++) {
        uint32_t cp = gpt2_cp(b);
        char *o = g_byte_chars[b];
        if (cp < 0x80) {
            o[0] = (char)cp;
            o[1] = 0;
        } else {
            o[0] = (char)(0xc0 | (cp >> 6));
            o[1] = (char)(0x80 | (cp & 0x3f));
            o[2] = 0;
        }
        vadds(&v, o, 0, HS_TOK_NORMAL);
    }
    vadds(&v, "he", 0, HS_TOK_NORMAL);
    vadds(&v, "ll", 0, HS_TOK_NORMAL);
    vadds(&v, "hell", 0, HS_TOK_NORMAL);
    vadds(&v, "hello", 0, HS_TOK_NORMAL);
    vadds(&v, "\xc4\xa0w", 0, HS_TOK_NORMAL);
    vadds(&v, "or", 0, HS_TOK_NORMAL);
    vadds(&v, "\xc4\xa0wor", 0, HS_TOK_NORMAL);
    vadds(&v, "<|eot_id|>", 0, HS_TOK_NORMAL); /* looks like an end of turn: becomes CONTROL */
    vadds(&v, "<|endoftext|>", 0, HS_TOK_CONTROL);
    vadds(&v, "<|user|>", 0, HS_TOK_USER_DEFINED);
    vadds(&v, "ab", 0, HS_TOK_USER_DEFINED);
    vadds(&v, "bcd", 0, HS_TOK_USER_DEFINED);
    static const char *const merges[] = {"h e",        "l l", "he ll",       "hell o",
                                         "\xc4\xa0 w", "o r", "\xc4\xa0w or"};
    return write_and_load("bpe.gguf", "gpt2", pre, &v, merges, 7, kvs, n_kv, expect_rc);
}

/* "hello world" -> "hello" " world"; h e, l l, he ll, hell o merge the first
 * word; Ġ w, o r, Ġw or the second; "l" and "d" stay bytes. */
static void bpe_merges_by_rank(void **state)
{
    (void)state;
    hs_tok *t = bpe_vocab("gpt-2", NULL, 0, HS_OK);
    assert_string_equal(hs_tok_model_name(t), "gpt2");
    assert_string_equal(hs_tok_pre_name(t), "gpt-2");
    EXPECT(t, "hello world", false, false, B_HELLO, B_GWOR, 'l', 'd');
    EXPECT(t, "hell", false, false, B_HELL);
    /* no merge crosses a pre-token boundary: "he" + "'s" */
    EXPECT(t, "he's", false, false, B_HE, '\'', 's');
    /* the space byte is Ġ (id 32 here, since id = byte) */
    EXPECT(t, "  x", false, false, ' ', ' ', 'x');
    expect_empty(t, "");
    /* BPE adds no BOS by default, and this vocabulary has none */
    assert_false(hs_tok_add_bos(t));
    EXPECT(t, "hell", true, false, B_HELL);
    /* token b is GPT-2's character for byte b: each decodes to its byte */
    for (int b = 0; b < 256; b++) {
        hs_buf one = {0};
        assert_int_equal(hs_tok_decode_token(t, b, false, &one), HS_OK);
        assert_int_equal(one.len, 1);
        assert_int_equal((unsigned char)one.data[0], b);
        hs_buf_free(&one);
    }
    hs_tok_free(t);
}

static void bpe_special_tokens(void **state)
{
    (void)state;
    const struct extra_kv kvs[] = {
        {"tokenizer.ggml.bos_token_id", 0, B_ENDOFTEXT, NULL},
        {"tokenizer.ggml.eos_token_id", 0, B_ENDOFTEXT, NULL},
        {"tokenizer.ggml.add_bos_token", 1, 1, NULL},
    };
    hs_tok *t = bpe_vocab("gpt-2", kvs, 3, HS_OK);
    /* control: only with parse_special */
    EXPECT(t, "hell<|endoftext|>", false, true, B_HELL, B_ENDOFTEXT);
    int32_t *ids;
    size_t n;
    hs_err err;
    assert_int_equal(hs_tok_encode(t, "hell<|endoftext|>", 17, false, false, &ids, &n, &err), HS_OK);
    assert_true(n > 2);
    for (size_t i = 0; i < n; i++)
        assert_true(ids[i] != B_ENDOFTEXT);
    hs_free(ids);
    /* user-defined: always */
    EXPECT(t, "hell<|user|>hell", false, false, B_HELL, B_USER, B_HELL);
    /* longer specials cut first, wherever they are: "bcd" before "ab" */
    EXPECT(t, "abcd", false, false, 'a', B_BCD);
    EXPECT(t, "abab", false, false, B_AB, B_AB);
    /* <|eot_id|> looked like an end of turn: now CONTROL, the eot and EOG */
    assert_int_equal(hs_tok_type(t, B_EOT_TEXT), HS_TOK_CONTROL);
    assert_int_equal(hs_tok_eot(t), B_EOT_TEXT);
    assert_true(hs_tok_is_eog(t, B_EOT_TEXT));
    assert_true(hs_tok_is_eog(t, B_ENDOFTEXT));
    assert_false(hs_tok_is_eog(t, B_USER));
    /* BOS from the key */
    assert_true(hs_tok_add_bos(t));
    assert_int_equal(hs_tok_bos(t), B_ENDOFTEXT);
    EXPECT(t, "hell", true, false, B_ENDOFTEXT, B_HELL);
    /* decode: control text only when asked; user-defined always */
    hs_buf b = {0};
    const int32_t seq[] = {B_ENDOFTEXT, B_HELLO, B_USER, B_GWOR, 'l', 'd'};
    assert_int_equal(hs_tok_decode(t, seq, 6, false, &b), HS_OK);
    assert_string_equal(b.data, "hello<|user|> world");
    hs_buf_reset(&b);
    assert_int_equal(hs_tok_decode(t, seq, 6, true, &b), HS_OK);
    assert_string_equal(b.data, "<|endoftext|>hello<|user|> world");
    hs_buf_free(&b);
    hs_tok_free(t);
}

static void bpe_unknown_names_are_unsupported(void **state)
{
    (void)state;
    hs_tok *t = bpe_vocab("no-such-pre", NULL, 0, HS_EUNSUPPORTED);
    assert_null(t);
    /* absent pre: "default" */
    t = bpe_vocab(NULL, NULL, 0, HS_OK);
    assert_string_equal(hs_tok_pre_name(t), "default");
    hs_tok_free(t);
    struct vocab v = {0};
    vadds(&v, "a", 0, HS_TOK_NORMAL);
    t = write_and_load("t5.gguf", "t5", NULL, &v, NULL, 0, NULL, 0, HS_EUNSUPPORTED);
    assert_null(t);
    /* gpt2 without merges is malformed */
    t = write_and_load("nomerge.gguf", "gpt2", "gpt-2", &v, NULL, 0, NULL, 0, HS_EFORMAT);
    assert_null(t);
}

/* Every pre-tokenizer name compiles and splits text without losing a byte. */
static void bpe_every_pre_tokenizer(void **state)
{
    (void)state;
    static const char *const names[] = {
        "default",        "llama3",      "llama-bpe", "dbrx",         "smaug-bpe",  "deepseek-llm",
        "deepseek-coder", "deepseek-v3", "falcon",    "mpt",          "starcoder",  "refact",
        "command-r",      "smollm",      "olmo",      "gpt-2",        "qwen2",      "qwen35",
        "stablelm2",      "poro-chat",   "bloom",     "gpt3-finnish", "viking",     "chatglm-bpe",
        "glm4",           "tekken",      "chameleon", "gpt-4o",       "llama4",     "superbpe",
        "bailingmoe",     "seed-coder",  "minicpm5",  "laguna",       "exaone",     "exaone-moe",
        "jais",           "jais-2",      "spark2_5",  "codeshell",    "minerva-7b", "jina-v2-code",
        "grok-2",         "hunyuan",
    };
    const char *texts[] = {
        "Hello, y'all! How are you \xf0\x9f\x98\x81 ?\xe6\x88\x91\xe6\x83\xb3\xe5\x9c\xa8"
        "apple 1314151\xe5\xa4\xa9",
        "   \n\n\t  x  12345678 <sentinel:12> IMGIMGABZ \xce\x93\xce\xb5\xce\xb9\xce\xac",
        "HelloWORLDfooBar's 'LL ... ?!",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        hs_tok *t = bpe_vocab(names[i], NULL, 0, HS_OK);
        for (size_t k = 0; k < 3; k++) {
            int32_t *ids;
            size_t n;
            hs_err err;
            assert_int_equal(hs_tok_encode(t, texts[k], strlen(texts[k]), false, false, &ids, &n, &err),
                             HS_OK);
            hs_buf b = {0};
            assert_int_equal(hs_tok_decode(t, ids, n, false, &b), HS_OK);
            if (strcmp(b.data ? b.data : "", texts[k]) != 0) {
                print_message("pre %s\n", names[i]);
                print_escaped("want", texts[k], strlen(texts[k]));
                print_escaped("got ", b.data, b.len);
                fail();
            }
            hs_buf_free(&b);
            hs_free(ids);
        }
        hs_tok_free(t);
    }
}

static const char *const k_round_trip[] = {
    "Hello world",
    " Hello world",
    "  two leading spaces",
    "trailing spaces   ",
    "\t\ttabs\n\nnew lines\r\nand CRLF",
    "\xce\x93\xce\xb5\xce\xb9\xce\xac \xcf\x83\xce\xbf\xcf\x85 "
    "\xce\x9a\xcf\x8c\xcf\x83\xce\xbc\xce\xb5!",                             /* Γειά σου Κόσμε! */
    "\xe1\xbc\x88\xcf\x81\xcf\x87\xe1\xbd\xb4 \xcf\x84\xe1\xbf\x86\xcf\x82", /* Ἀρχὴ τῆς (polytonic)
                                                                              */
    "emoji \xf0\x9f\xa6\x99\xf0\x9f\x9a\x80 "
    "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7",
    "\xe4\xb8\xad\xe6\x96\x87 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e "
    "\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4",
    "numbers 1234567890 3.14159 1,000,000",
    "punctuation!!! ??? ... ;-) (x) [y] {z}",
    "\xc3\x84\xc3\x96\xc3\x9c \xc3\xa4\xc3\xb6\xc3\xbc \xc3\x9f",
    "    \n    \n        code();\n",
    "a",
    " ",
    "      ",
    "\n",
    "x\xc2\xa0y\xe3\x80\x80z", /* no-break and ideographic spaces */
    "it's I'M we'll THEY'RE you've",
    "<s> and </s> as text",
};

static void round_trip(const hs_tok *t, const char *name, bool add_special)
{
    for (size_t i = 0; i < sizeof k_round_trip / sizeof k_round_trip[0]; i++) {
        const char *s = k_round_trip[i];
        int32_t *ids;
        size_t n;
        hs_err err;
        assert_int_equal(hs_tok_encode(t, s, strlen(s), add_special, false, &ids, &n, &err), HS_OK);
        hs_buf b = {0};
        assert_int_equal(hs_tok_decode(t, ids, n, false, &b), HS_OK);
        if (b.len != strlen(s) || memcmp(b.data, s, b.len) != 0) {
            print_message("round trip %s\n", name);
            print_escaped("want", s, strlen(s));
            print_escaped("got ", b.data ? b.data : "", b.len);
            fail();
        }
        hs_buf_free(&b);
        hs_free(ids);
    }
}

static void round_trip_synthetic(void **state)
{
    (void)state;
    hs_tok *t = spm_vocab(NULL, 0);
    round_trip(t, "spm", false);
    round_trip(t, "spm+bos", true);
    hs_tok_free(t);
    t = bpe_vocab("llama3", NULL, 0, HS_OK);
    round_trip(t, "bpe", false);
    hs_tok_free(t);
}

static void round_trip_real(void **state)
{
    (void)state;
    static const char *const files[] = {"llama-spm", "gpt-2", "falcon", "deepseek-coder", "mpt", "baichuan"};
    int done = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "testdata/tokenizer/ggml-vocab-%s.gguf", files[i]);
        const char *path = hs_test_shared(rel);
        if (!path)
            continue;
        hs_tok *t = load_gguf_tok(path);
        round_trip(t, files[i], true);
        hs_tok_free(t);
        done++;
    }
    if (hs_test_shared("testdata/tokenizer/llama3.2-bpe/encoder.json")) {
        hs_tok *t = load_llama3_bpe();
        round_trip(t, "llama3.2-bpe", false);
        hs_tok_free(t);
        done++;
    }
    if (!done) {
        print_message("[  SKIP    ] ../shared/testdata/tokenizer is absent\n");
        skip();
    }
}

/* Random bytes (invalid UTF-8, NULs, stray continuation bytes) never crash
 * and give ids in range; SentencePiece with byte fallback gives them back
 * when no lead byte swallows what follows it. */
static void malformed_input(const hs_tok *t, bool spm_exact)
{
    hs_rng rng;
    hs_rng_seed(&rng, 42);
    char buf[300];
    for (int iter = 0; iter < 150; iter++) {
        size_t len = hs_rng_u64(&rng) % sizeof buf;
        for (size_t i = 0; i < len; i++) {
            uint64_t r = hs_rng_u64(&rng);
            /* mostly ASCII and UTF-8 fragments, some anything */
            static const char pick[] = " a\n\xe2\xc3\xf0<>|";
            if (r % 4 == 0)
                buf[i] = (char)(r >> 8);
            else if (r % 4 == 1)
                buf[i] = (char)(0x80 | ((r >> 8) & 0x3f));
            else
                buf[i] = pick[(r >> 8) % sizeof pick];
            if (iter % 2 && (unsigned char)buf[i] >= 0xc0)
                buf[i] = (char)((unsigned char)buf[i] & 0xbf); /* half the inputs: no lead bytes */
        }
        for (int flags = 0; flags < 4; flags++) {
            int32_t *ids;
            size_t n;
            hs_err err;
            assert_int_equal(hs_tok_encode(t, buf, len, flags & 1, flags & 2, &ids, &n, &err), HS_OK);
            for (size_t i = 0; i < n; i++)
                assert_true(ids[i] >= 0 && ids[i] < hs_tok_n_vocab(t));
            hs_buf b = {0};
            assert_int_equal(hs_tok_decode(t, ids, n, flags & 2, &b), HS_OK);
            /* Exact only without lead bytes: like llama.cpp, a lead byte takes
             * the next bytes into its character even when they are the "▁"
             * a space became, and that cannot be undone. */
            bool lead = false;
            for (size_t i = 0; i < len; i++)
                lead |= (unsigned char)buf[i] >= 0xc0;
            if (spm_exact && flags == 0 && !lead) {
                assert_int_equal(b.len, len);
                assert_memory_equal(b.data ? b.data : "", buf, len);
            }
            hs_buf_free(&b);
            hs_free(ids);
        }
    }
}

static void malformed_input_never_crashes(void **state)
{
    (void)state;
    hs_tok *t = spm_vocab(NULL, 0);
    malformed_input(t, true);
    hs_tok_free(t);
    t = bpe_vocab("llama3", NULL, 0, HS_OK);
    malformed_input(t, false);
    hs_tok_free(t);
    t = bpe_vocab("tekken", NULL, 0, HS_OK);
    malformed_input(t, false);
    hs_tok_free(t);
    const char *path = hs_test_shared("testdata/tokenizer/ggml-vocab-llama-spm.gguf");
    if (path) {
        t = load_gguf_tok(path);
        malformed_input(t, true);
        hs_tok_free(t);
    }
    /* invalid UTF-8 in byte-level BPE: each bad byte reads as U+FFFD, as in llama.cpp */
    t = bpe_vocab("gpt-2", NULL, 0, HS_OK);
    int32_t *ids;
    size_t n;
    hs_err err;
    assert_int_equal(hs_tok_encode(t,
                                   "a\xff"
                                   "b",
                                   3, false, false, &ids, &n, &err),
                     HS_OK);
    hs_buf b = {0};
    assert_int_equal(hs_tok_decode(t, ids, n, false, &b), HS_OK);
    assert_string_equal(b.data, "a\xef\xbf\xbd"
                                "b");
    hs_buf_free(&b);
    hs_free(ids);
    /* NUL bytes are text like any other */
    assert_int_equal(hs_tok_encode(t, "a\0b", 3, false, false, &ids, &n, &err), HS_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ids[1], 0);
    hs_free(ids);
    hs_tok_free(t);
}

/* A long prompt must take milliseconds: merging is a heap, not a rescan. */
static double encode_ms(const hs_tok *t, const char *text, size_t len, size_t *n_out)
{
    int32_t *ids;
    hs_err err;
    int64_t t0 = hs_now_ns();
    assert_int_equal(hs_tok_encode(t, text, len, true, false, &ids, n_out, &err), HS_OK);
    double ms = (double)(hs_now_ns() - t0) / 1e6;
    hs_free(ids);
    return ms;
}

static void long_prompts_are_fast(void **state)
{
    (void)state;
    const char *inp = HS_SHARED_OR_SKIP("testdata/tokenizer/ggml-vocab-llama-spm.gguf.inp");
    char *text;
    size_t len;
    hs_err err;
    assert_int_equal(hs_read_file(inp, &text, &len, &err), HS_OK);
    hs_buf big = {0};
    while (big.len < 16000)
        hs_buf_append(&big, text, len);
    hs_free(text);
    const char *names[] = {"llama-spm", "gpt-2"};
    for (int i = 0; i < 2; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "testdata/tokenizer/ggml-vocab-%s.gguf", names[i]);
        const char *path = hs_test_shared(rel);
        if (!path)
            continue;
        hs_tok *t = load_gguf_tok(path);
        size_t n;
        double ms = encode_ms(t, big.data, big.len, &n);
        print_message("[  TIME    ] %s: %zu bytes -> %zu tokens in %.1f ms\n", names[i], big.len, n, ms);
        assert_true(n > 4000);
        /* one 30000-letter word (no spaces): the worst case for merging */
        hs_buf word = {0};
        for (int k = 0; k < 30000; k++)
            hs_buf_putc(&word, "abcdefghij"[(k * 7) % 10]);
        double ms2 = encode_ms(t, word.data, word.len, &n);
        print_message("[  TIME    ] %s: one %zu-letter word -> %zu tokens in %.1f ms\n", names[i], word.len,
                      n, ms2);
        hs_buf_free(&word);
        /* generous: the tests run under ASan on a shared 2-core machine */
        assert_true(ms < 3000);
        assert_true(ms2 < 3000);
        hs_tok_free(t);
    }
    hs_buf_free(&big);
}

/* One tokenizer, several threads at once: each gets what one thread gets. */
struct thread_job {
    const hs_tok *t;
    int mismatches;
};

static void *encode_all(void *arg)
{
    struct thread_job *job = arg;
    for (int rep = 0; rep < 20; rep++) {
        for (size_t i = 0; i < sizeof k_round_trip / sizeof k_round_trip[0]; i++) {
            const char *s = k_round_trip[i];
            int32_t *ids;
            size_t n;
            if (hs_tok_encode(job->t, s, strlen(s), true, false, &ids, &n, NULL) != HS_OK) {
                job->mismatches++;
                continue;
            }
            hs_buf b = {0};
            if (hs_tok_decode(job->t, ids, n, false, &b) != HS_OK || b.len != strlen(s) ||
                memcmp(b.data, s, b.len) != 0)
                job->mismatches++;
            hs_buf_free(&b);
            hs_free(ids);
        }
    }
    return NULL;
}

static void threads_share_a_tokenizer(void **state)
{
    (void)state;
    hs_tok *toks[2] = {spm_vocab(NULL, 0), bpe_vocab("llama3", NULL, 0, HS_OK)};
    for (int k = 0; k < 2; k++) {
        pthread_t th[4];
        struct thread_job jobs[4];
        for (int i = 0; i < 4; i++) {
            jobs[i] = (struct thread_job){toks[k], 0};
            assert_int_equal(pthread_create(&th[i], NULL, encode_all, &jobs[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            assert_int_equal(jobs[i].mismatches, 0);
        }
        hs_tok_free(toks[k]);
    }
}

/* The real Llama 2 vocabulary: BOS/EOS/UNK ids and a known sentence. */
static void llama_spm_specials(void **state)
{
    (void)state;
    hs_tok *t = load_gguf_tok(HS_SHARED_OR_SKIP("testdata/tokenizer/ggml-vocab-llama-spm.gguf"));
    assert_int_equal(hs_tok_n_vocab(t), 32000);
    assert_int_equal(hs_tok_bos(t), 1);
    assert_int_equal(hs_tok_eos(t), 2);
    assert_int_equal(hs_tok_unk(t), 0);
    assert_true(hs_tok_add_bos(t));
    assert_true(hs_tok_is_eog(t, 2));
    /* "<s>" is parsed only when asked */
    int32_t *ids;
    size_t n;
    hs_err err;
    assert_int_equal(hs_tok_encode(t, "<s>Hi</s>", 9, false, true, &ids, &n, &err), HS_OK);
    assert_true(n >= 3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[n - 1], 2);
    hs_free(ids);
    assert_int_equal(hs_tok_encode(t, "<s>Hi</s>", 9, false, false, &ids, &n, &err), HS_OK);
    for (size_t i = 0; i < n; i++)
        assert_true(ids[i] > 2);
    hs_free(ids);
    hs_buf b = {0};
    assert_int_equal(hs_tok_decode_token(t, 13, false, &b), HS_OK); /* <0x0A> */
    assert_string_equal(b.data, "\n");
    hs_buf_free(&b);
    hs_tok_free(t);
}

/* Phi-3's special tokens eat the whitespace to their right (llama.cpp sets
 * RSTRIP by model name); </s> too, but <s> and <|endoftext|> do not. */
static void phi3_rstrip(void **state)
{
    (void)state;
    hs_tok *t = load_gguf_tok(HS_SHARED_OR_SKIP("testdata/tokenizer/ggml-vocab-phi-3.gguf"));
    int32_t end = hs_tok_find(t, "<|end|>", 7);
    assert_true(end > 0);
    assert_true(hs_tok_is_eog(t, end));
    int32_t *a, *b;
    size_t na, nb;
    hs_err err;
    assert_int_equal(hs_tok_encode(t, "<|end|>\n  Hi", 12, false, true, &a, &na, &err), HS_OK);
    assert_int_equal(hs_tok_encode(t, "<|end|>Hi", 9, false, true, &b, &nb, &err), HS_OK);
    assert_int_equal(a[0], end);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * sizeof *a);
    hs_free(a);
    hs_free(b);
    hs_tok_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spm_merges_by_score),
        cmocka_unit_test(spm_keys_override_defaults),
        cmocka_unit_test(spm_special_tokens),
        cmocka_unit_test(spm_decode),
        cmocka_unit_test(bpe_merges_by_rank),
        cmocka_unit_test(bpe_special_tokens),
        cmocka_unit_test(bpe_unknown_names_are_unsupported),
        cmocka_unit_test(bpe_every_pre_tokenizer),
        cmocka_unit_test(round_trip_synthetic),
        cmocka_unit_test(malformed_input_never_crashes),
        cmocka_unit_test(threads_share_a_tokenizer),
        cmocka_unit_test(vectors_llama_spm),
        cmocka_unit_test(vectors_phi_3),
        cmocka_unit_test(vectors_gpt_2),
        cmocka_unit_test(vectors_falcon),
        cmocka_unit_test(vectors_mpt),
        cmocka_unit_test(vectors_refact),
        cmocka_unit_test(vectors_deepseek_coder),
        cmocka_unit_test(vectors_llama_bpe),
        cmocka_unit_test(vectors_bert_bge),
        cmocka_unit_test(bert_specials),
        cmocka_unit_test(vectors_unavailable),
        cmocka_unit_test(round_trip_real),
        cmocka_unit_test(llama_spm_specials),
        cmocka_unit_test(phi3_rstrip),
        cmocka_unit_test(long_prompts_are_fast),
    };
    return cmocka_run_group_tests_name("tokenizer", tests, NULL, NULL);
}
