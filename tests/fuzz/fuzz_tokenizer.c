/* libFuzzer target for the tokenizers: any bytes, encoded with or without
 * BOS/EOS and special-token parsing, must give ids inside the vocabulary and
 * decode without error; any ids must decode. The first input byte picks the
 * tokenizer and the flags, the rest is the text.
 *
 * Vocabularies: the llama.cpp test vocabularies in ../shared (or
 * $HESTIA_SHARED) when present, plus small SentencePiece and byte-level BPE
 * vocabularies written here with the GGUF writer (the BPE one once per
 * pre-tokenizer, so that every regex list is exercised). */
#include "base/buf.h"
#include "base/mem.h"
#include "gguf/gguf.h"
#include "model/tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_TOK 32

static hs_tok *g_tok[MAX_TOK];
static int g_n;

static void add_tok(hs_tok *t)
{
    if (t && g_n < MAX_TOK)
        g_tok[g_n++] = t;
    else
        hs_tok_free(t);
}

static hs_tok *load_path(const char *path)
{
    hs_gguf *g;
    hs_tok *t = NULL;
    if (hs_gguf_open(path, &g, NULL) != HS_OK)
        return NULL;
    if (hs_tok_load(g, &t, NULL) != HS_OK)
        t = NULL;
    hs_gguf_close(g);
    return t;
}

static void load_shared(void)
{
    static const char *const names[] = {"llama-spm", "gpt-2",  "falcon", "deepseek-coder",
                                        "mpt",       "refact", "phi-3"};
    const char *root = getenv("HESTIA_SHARED");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/testdata/tokenizer/ggml-vocab-%s.gguf", root ? root : "../shared",
                 names[i]);
        if (access(path, R_OK) == 0)
            add_tok(load_path(path));
    }
}

/* Writes a small vocabulary to a temporary file and loads it. */
static hs_tok *synth(const char *model, const char *pre)
{
    static char names[256][8];
    const char *strs[300];
    size_t n = 0;
    int32_t types[300];
    float scores[300];
    bool spm = !strcmp(model, "llama");
    if (spm) {
        strs[n] = "<unk>", types[n++] = 2;
        strs[n] = "<s>", types[n++] = 3;
        strs[n] = "</s>", types[n++] = 3;
        for (int b = 0; b < 256; b++) {
            snprintf(names[b], sizeof names[b], "<0x%02X>", b);
            strs[n] = names[b], types[n++] = 6;
        }
        static const char *const pieces[] = {"\xe2\x96\x81",
                                             "a",
                                             "b",
                                             "ab",
                                             ("\xe2\x96\x81"
                                              "a"),
                                             ("\xe2\x96\x81"
                                              "\xe2\x96\x81"),
                                             "\xc3\xa9"};
        for (size_t i = 0; i < 7; i++)
            strs[n] = pieces[i], types[n++] = 1;
    } else {
        for (int b = 0; b < 256; b++) {
            /* GPT-2's character for byte b */
            unsigned cp = (unsigned)b;
            if (b <= 0x20)
                cp = 256 + (unsigned)b;
            else if (b >= 0x7f && b <= 0xa0)
                cp = 289 + (unsigned)b - 0x7f;
            else if (b == 0xad)
                cp = 323;
            if (cp < 0x80) {
                names[b][0] = (char)cp;
                names[b][1] = 0;
            } else {
                names[b][0] = (char)(0xc0 | (cp >> 6));
                names[b][1] = (char)(0x80 | (cp & 0x3f));
                names[b][2] = 0;
            }
            strs[n] = names[b], types[n++] = 1;
        }
        static const char *const pieces[] = {"ab",
                                             ("\xc4\xa0"
                                              "a"),
                                             ("\xc4\xa0"
                                              "ab")};
        for (size_t i = 0; i < 3; i++)
            strs[n] = pieces[i], types[n++] = 1;
    }
    strs[n] = "<|eot_id|>", types[n++] = 3;
    strs[n] = "<|user|>", types[n++] = 4;
    strs[n] = "aa", types[n++] = 4;
    for (size_t i = 0; i < n; i++)
        scores[i] = -(float)(i % 7);

    char path[] = "/tmp/hestia-fuzz-tok-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    close(fd);
    hs_gguf_writer *w;
    if (hs_gguf_writer_open(path, &w, NULL) != HS_OK) {
        unlink(path);
        return NULL;
    }
    hs_gguf_w_str(w, "tokenizer.ggml.model", model, strlen(model));
    if (pre)
        hs_gguf_w_str(w, "tokenizer.ggml.pre", pre, strlen(pre));
    hs_gguf_w_arr_str(w, "tokenizer.ggml.tokens", strs, NULL, n);
    hs_gguf_w_arr(w, "tokenizer.ggml.scores", HS_GGUF_FLOAT32, scores, n);
    hs_gguf_w_arr(w, "tokenizer.ggml.token_type", HS_GGUF_INT32, types, n);
    if (!spm) {
        static const char *const merges[] = {"a b", "\xc4\xa0 a",
                                             ("\xc4\xa0"
                                              "a b"),
                                             "b b"};
        hs_gguf_w_arr_str(w, "tokenizer.ggml.merges", merges, NULL, 4);
        hs_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)n - 3);
        hs_gguf_w_bool(w, "tokenizer.ggml.add_bos_token", true);
        hs_gguf_w_bool(w, "tokenizer.ggml.add_eos_token", true);
    }
    hs_tok *t = NULL;
    if (hs_gguf_w_begin_data(w, NULL) == HS_OK && hs_gguf_w_close(w, NULL) == HS_OK)
        t = load_path(path);
    else
        hs_gguf_w_abort(w);
    unlink(path);
    return t;
}

static void init(void)
{
    load_shared();
    add_tok(synth("llama", NULL));
    static const char *const pres[] = {
        "default",      "llama3",         "gpt-2",       "falcon",     "qwen2",      "qwen35",
        "deepseek-llm", "deepseek-coder", "deepseek-v3", "tekken",     "gpt-4o",     "chameleon",
        "superbpe",     "poro-chat",      "viking",      "bailingmoe", "exaone-moe", "jais-2"};
    for (size_t i = 0; i < sizeof pres / sizeof pres[0]; i++)
        add_tok(synth("gpt2", pres[i]));
    if (g_n == 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (g_n == 0)
        init();
    if (size == 0)
        return 0;
    const hs_tok *t = g_tok[data[0] % g_n];
    bool add_special = (data[0] / g_n) & 1, parse_special = (data[0] / g_n) & 2;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;

    int32_t *ids;
    size_t n;
    if (hs_tok_encode(t, text, len, add_special, parse_special, &ids, &n, NULL) != HS_OK)
        abort();
    int nv = hs_tok_n_vocab(t);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= nv)
            abort();
    hs_buf b = {0};
    if (hs_tok_decode(t, ids, n, parse_special, &b) != HS_OK)
        abort();
    hs_buf_free(&b);
    hs_free(ids);

    /* the same bytes read as ids */
    for (size_t i = 0; i + 4 <= len && i < 256; i += 4) {
        uint32_t v;
        memcpy(&v, text + i, 4);
        int32_t id = (int32_t)(v % (uint32_t)nv);
        if (hs_tok_decode_token(t, id, v & 1, &b) != HS_OK)
            abort();
        (void)hs_tok_is_eog(t, id);
    }
    hs_buf_free(&b);
    return 0;
}
