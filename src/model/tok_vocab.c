/* Tokenizer vocabulary: loading from a GGUF (or from GPT-2 style encoder.json +
 * vocab.bpe files), the lookup tables, special tokens, end-of-generation
 * tokens, and detokenization.
 *
 * What llama.cpp's loader does that matters for exact ids is reproduced here:
 * later duplicates of a token text win the text -> id lookup; an empty token
 * text becomes "[EMPTY_<id>]"; the first merge of a pair keeps its rank;
 * tokens that look like end-of-turn markers are made CONTROL; special tokens
 * are searched longest first; Phi-3's specials strip whitespace to their right. */
#include "model/tok_impl.h"

#include "base/buf.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/sys.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ---- */

int tok_ids_push(struct tok_ids *o, int32_t id)
{
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        int32_t *v = hs_realloc_array(o->v, cap, sizeof *v);
        if (!v)
            return HS_ENOMEM;
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n++] = id;
    return HS_OK;
}

/* FNV-1a over a then b: the merge table hashes a pair without joining it. */
uint64_t tok_hash(const void *a, size_t alen, const void *b, size_t blen)
{
    uint64_t h = 0xcbf29ce484222325ull;
    const unsigned char *p = a;
    for (size_t i = 0; i < alen; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    h = (h ^ 0xff) * 0x100000001b3ull; /* separates ("ab","c") from ("a","bc") */
    p = b;
    for (size_t i = 0; i < blen; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

uint32_t tok_utf8_next(const char *s, size_t n, size_t *i)
{
    const unsigned char *p = (const unsigned char *)s + *i;
    size_t left = n - *i;
    unsigned char c = p[0];
    if (c < 0x80) {
        *i += 1;
        return c;
    }
    size_t len = (c & 0x40) == 0 ? 0 : (c & 0x20) == 0 ? 2 : (c & 0x10) == 0 ? 3 : (c & 0x08) == 0 ? 4 : 0;
    if (len == 0 || len > left)
        goto bad;
    uint32_t cp = c & (0x7f >> len);
    for (size_t k = 1; k < len; k++) {
        if ((p[k] & 0xc0) != 0x80)
            goto bad;
        cp = (cp << 6) | (p[k] & 0x3f);
    }
    if (cp > 0x10ffff)
        goto bad;
    *i += len;
    return cp;
bad:
    *i += 1;
    return 0xfffd;
}

size_t tok_utf8_put(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xc0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

static size_t table_cap(size_t n)
{
    size_t cap = 16;
    while (cap < n * 2)
        cap *= 2;
    return cap;
}

/* ---- lookups ---- */

int32_t tok_lookup(const hs_tok *t, const char *s, size_t len)
{
    size_t i = tok_hash(s, len, NULL, 0) & t->map_mask;
    for (;;) {
        uint32_t v = t->map[i];
        if (v == 0)
            return -1;
        const struct tok_entry *e = &t->tok[v - 1];
        if (e->len == len && memcmp(t->pool + e->off, s, len) == 0)
            return (int32_t)(v - 1);
        i = (i + 1) & t->map_mask;
    }
}

int32_t tok_merge_rank(const hs_tok *t, const char *l, size_t llen, const char *r, size_t rlen)
{
    if (!t->merge_map)
        return -1;
    size_t i = tok_hash(l, llen, r, rlen) & t->merge_mask;
    for (;;) {
        uint32_t v = t->merge_map[i];
        if (v == 0)
            return -1;
        const struct tok_merge *m = &t->merges[v - 1];
        const char *p = t->merge_pool + m->off;
        if (m->llen == llen && m->rlen == rlen && memcmp(p, l, llen) == 0 && memcmp(p + llen, r, rlen) == 0)
            return m->rank;
        i = (i + 1) & t->merge_mask;
    }
}

/* ---- building ---- */

/* What a loader found besides the token list. Absent ids are -2 ("not
 * given"); absent booleans -1. */
struct tok_opts {
    const char *model;
    size_t model_len;
    const char *pre; /* NULL: absent */
    size_t pre_len;
    const char *name; /* general.name, NULL if absent */
    size_t name_len;
    int64_t bos, eos, eot, eom, unk, sep, pad, cls;
    int add_bos, add_eos, add_sep, add_space_prefix;
};

static void opts_init(struct tok_opts *o)
{
    memset(o, 0, sizeof *o);
    o->bos = o->eos = o->eot = o->eom = o->unk = o->sep = o->pad = o->cls = -2;
    o->add_bos = o->add_eos = o->add_sep = o->add_space_prefix = -1;
}

/* The pool of token texts grows while loading; offsets are 32-bit. */
struct tok_build {
    hs_tok *t;
    hs_buf pool;
};

static int add_token(struct tok_build *b, int32_t id, const char *s, size_t len, float score, int type,
                     hs_err *err)
{
    char tmp[32];
    if (len == 0) {
        /* llama.cpp renames empty tokens so that nothing ever matches "". */
        int k = snprintf(tmp, sizeof tmp, "[EMPTY_%d]", (int)id);
        s = tmp;
        len = (size_t)k;
    }
    if (b->pool.len + len > UINT32_MAX - 1)
        return hs_err_set(err, HS_ERANGE, "tokenizer: vocabulary text exceeds 4 GiB");
    struct tok_entry *e = &b->t->tok[id];
    e->off = (uint32_t)b->pool.len;
    e->len = (uint32_t)len;
    e->score = score;
    e->type = (type >= HS_TOK_NORMAL && type <= HS_TOK_BYTE) ? (uint8_t)type : (uint8_t)HS_TOK_UNDEFINED;
    if (hs_buf_append(&b->pool, s, len))
        return hs_err_set(err, HS_ENOMEM, "tokenizer: out of memory");
    return HS_OK;
}

static int tok_alloc(hs_tok **out, int64_t n, hs_err *err)
{
    if (n <= 0 || n > INT32_MAX / 2)
        return hs_err_set(err, HS_EFORMAT, "tokenizer: vocabulary size %lld out of range", (long long)n);
    hs_tok *t = hs_calloc(1, sizeof *t);
    if (!t)
        return hs_err_set(err, HS_ENOMEM, "tokenizer: out of memory");
    t->n_vocab = (int32_t)n;
    t->tok = hs_calloc((size_t)n, sizeof *t->tok);
    if (!t->tok) {
        hs_free(t);
        return hs_err_set(err, HS_ENOMEM, "tokenizer: out of memory");
    }
    t->bos = t->eos = t->eot = t->eom = t->unk = t->sep = t->pad = -1;
    *out = t;
    return HS_OK;
}

static int build_map(hs_tok *t, hs_err *err)
{
    size_t cap = table_cap((size_t)t->n_vocab);
    t->map = hs_calloc(cap, sizeof *t->map);
    if (!t->map)
        return hs_err_set(err, HS_ENOMEM, "tokenizer: out of memory");
    t->map_mask = cap - 1;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const char *s = tok_str(t, id);
        size_t len = t->tok[id].len;
        size_t i = tok_hash(s, len, NULL, 0) & t->map_mask;
        for (;;) {
            uint32_t v = t->map[i];
            if (v == 0) {
                t->map[i] = (uint32_t)id + 1;
                break;
            }
            const struct tok_entry *e = &t->tok[v - 1];
            if (e->len == len && memcmp(t->pool + e->off, s, len) == 0) {
                t->map[i] = (uint32_t)id + 1; /* a later duplicate wins, as in llama.cpp */
                break;
            }
            i = (i + 1) & t->map_mask;
        }
    }
    return HS_OK;
}

/* Merges arrive one "left right" line at a time; the split is at the first
 * space after the first byte (llama.cpp: word.find(' ', 1)); a line with no
 * such space is the pair ("", ""), which never matches. */
struct merge_build {
    hs_buf pool;
    struct tok_merge *v;
    size_t n, cap;
};

static int add_merge(struct merge_build *mb, const char *s, size_t len, hs_err *err)
{
    size_t sp = len;
    for (size_t i = 1; i < len; i++)
        if (s[i] == ' ') {
            sp = i;
            break;
        }
    size_t llen = sp < len ? sp : 0;
    size_t rlen = sp < len ? len - sp - 1 : 0;
    if (mb->pool.len + llen + rlen > UINT32_MAX - 1 || mb->n >= INT32_MAX - 1)
        return hs_err_set(err, HS_ERANGE, "tokenizer: merges too large");
    if (mb->n == mb->cap) {
        size_t cap = mb->cap ? mb->cap * 2 : 1024;
        struct tok_merge *v = hs_realloc_array(mb->v, cap, sizeof *v);
        if (!v)
            return hs_err_set(err, HS_ENOMEM, "tokenizer: out of memory");
        mb->v = v;
        mb->cap = cap;
    }
    struct tok_merge *m = &mb->v[mb->n];
    m->off = (uint32_t)mb->pool.len;
    m->llen = (uint32_t)llen;
    m->rlen = (uint32_t)rlen;
    m->rank = (int32_t)mb->n;
    if (hs_buf_append(&mb->pool, s, llen) || hs_buf_append(&mb->pool, s + sp + (sp < len), rlen))
        return hs_err_set(err, HS_ENOMEM, "tokenizer: out of memory");
    mb->n++;
    return HS_OK;
}

static int finish_merges(hs_tok *t, struct merge_build *mb, hs_err *err)
{
    t->merges = mb->v;
    t->n_merges = mb->n;
    t->merge_pool = hs_buf_steal(&mb->pool);
    mb->v = NULL;
    if (!t->merge_pool && !(t->merge_pool = hs_calloc(1, 1)))
        return hs_err_set(err, HS_ENOMEM, "tokenizer: out of memory");
    size_t cap = table_cap(t->n_merges);
    t->merge_map = hs_calloc(cap, sizeof *t->merge_map);
    if (!t->merge_map)
        return hs_err_set(err, HS_ENOMEM, "tokenizer: out of memory");
    t->merge_mask = cap - 1;
    for (size_t k = 0; k < t->n_merges; k++) {
        const struct tok_merge *m = &t->merges[k];
        const char *p = t->merge_pool + m->off;
        size_t i = tok_hash(p, m->llen, p + m->llen, m->rlen) & t->merge_mask;
        for (;;) {
            uint32_t v = t->merge_map[i];
            if (v == 0) {
                t->merge_map[i] = (uint32_t)k + 1;
                break;
            }
            const struct tok_merge *o = &t->merges[v - 1];
            if (o->llen == m->llen && o->rlen == m->rlen &&
                memcmp(t->merge_pool + o->off, p, m->llen + m->rlen) == 0)
                break; /* the first occurrence keeps its rank */
            i = (i + 1) & t->merge_mask;
        }
    }
    return HS_OK;
}

static bool text_is(const hs_tok *t, int32_t id, const char *s)
{
    size_t n = strlen(s);
    return t->tok[id].len == n && memcmp(tok_str(t, id), s, n) == 0;
}

static bool text_in(const hs_tok *t, int32_t id, const char *const *list)
{
    for (; *list; list++)
        if (text_is(t, id, *list))
            return true;
    return false;
}

/* Texts llama.cpp treats as end-of-turn (the first found becomes eot) and as
 * end-of-generation. */
static const char *const k_eot_texts[] = {
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "<\xef\xbd\x9c"
    "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
    "<end_of_utterance>",
    NULL,
};
static const char *const k_eog_texts[] = {
    "<|eot_id|>",      "<|im_end|>",         "<|end|>",    "<|return|>", "<|call|>",
    "<end_of_turn>",   "<|endoftext|>",      "<|eom_id|>", "<EOT>",      "_<EOT>",
    "<|end_of_text|>", "<end_of_utterance>", NULL,
};

static void make_control(hs_tok *t, int32_t id)
{
    if (t->tok[id].type != HS_TOK_CONTROL) {
        hs_log_debug("tok.load", "control_looking_token id=%d made=CONTROL", (int)id);
        t->tok[id].type = HS_TOK_CONTROL;
    }
}

static void setup_eog(hs_tok *t)
{
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (t->eot < 0 && text_in(t, id, k_eot_texts)) {
            t->eot = id;
            make_control(t, id);
        }
        if (t->eom < 0 && text_is(t, id, "<|eom_id|>")) {
            t->eom = id;
            make_control(t, id);
        }
    }
    int32_t end_id = -1;
    bool has_return = false, has_call = false;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (!text_in(t, id, k_eog_texts))
            continue;
        t->tok[id].flags |= TOK_F_EOG;
        make_control(t, id);
        if (text_is(t, id, "<|return|>"))
            has_return = true;
        else if (text_is(t, id, "<|call|>"))
            has_call = true;
        else if (text_is(t, id, "<|end|>"))
            end_id = id;
    }
    if (t->eos >= 0)
        t->tok[t->eos].flags |= TOK_F_EOG;
    if (t->eot >= 0)
        t->tok[t->eot].flags |= TOK_F_EOG;
    if (t->eom >= 0)
        t->tok[t->eom].flags |= TOK_F_EOG;
    /* gpt-oss (o200k_harmony) ends a message with <|end|> but a turn with
     * <|return|> or <|call|>: there <|end|> must not stop generation. */
    if (has_return && has_call && end_id >= 0 && end_id != t->eos) {
        t->tok[end_id].flags &= (uint8_t)~TOK_F_EOG;
        t->tok[end_id].type = HS_TOK_USER_DEFINED;
    }
}

static int cmp_special(const void *a, const void *b, void *arg)
{
    const hs_tok *t = arg;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (t->tok[x].len != t->tok[y].len)
        return t->tok[x].len > t->tok[y].len ? -1 : 1;
    return x < y ? -1 : x > y;
}

static bool contains_ci(const char *s, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++) {
        size_t k = 0;
        while (k < m && (s[i + k] | 0x20) == (needle[k] | 0x20))
            k++;
        if (k == m)
            return true;
    }
    return false;
}

static int setup_special(hs_tok *t, const struct tok_opts *o, hs_err *err)
{
    size_t n = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        int ty = t->tok[id].type;
        n += (ty == HS_TOK_CONTROL || ty == HS_TOK_USER_DEFINED || ty == HS_TOK_UNKNOWN);
    }
    t->special = hs_malloc((n ? n : 1) * sizeof *t->special);
    if (!t->special)
        return hs_err_set(err, HS_ENOMEM, "tokenizer: out of memory");
    for (int32_t id = 0; id < t->n_vocab; id++) {
        int ty = t->tok[id].type;
        if (ty == HS_TOK_CONTROL || ty == HS_TOK_USER_DEFINED || ty == HS_TOK_UNKNOWN)
            t->special[t->n_special++] = id;
    }
    /* llama.cpp sorts by length only (std::sort, unstable); ties go by id here. */
    qsort_r(t->special, t->n_special, sizeof *t->special, cmp_special, t);

    /* Per-model attributes llama.cpp sets by name. */
    if (o->pre &&
        (contains_ci(o->pre, o->pre_len, "jina-v2-de") || contains_ci(o->pre, o->pre_len, "jina-v2-es") ||
         contains_ci(o->pre, o->pre_len, "jina-v2-code"))) {
        int32_t id = tok_lookup(t, "<mask>", 6);
        if (id >= 0)
            t->tok[id].flags |= TOK_F_LSTRIP;
    } else if (o->name &&
               (contains_ci(o->name, o->name_len, "phi-3") || contains_ci(o->name, o->name_len, "phi3"))) {
        for (size_t i = 0; i < t->n_special; i++)
            t->tok[t->special[i]].flags |= TOK_F_RSTRIP;
        int32_t id = tok_lookup(t, "</s>", 4);
        if (id >= 0)
            t->tok[id].flags |= TOK_F_RSTRIP;
        static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
        for (size_t k = 0; k < 3; k++) {
            id = tok_lookup(t, keep[k], strlen(keep[k]));
            if (id >= 0)
                t->tok[id].flags &= (uint8_t)~TOK_F_RSTRIP;
        }
    }
    return HS_OK;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* "<0xNN>" -> NN, else -1. */
static int byte_token_value(const char *s, size_t len)
{
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return -1;
    int hi = hexval(s[3]), lo = hexval(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

static void setup_bytes(hs_tok *t)
{
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        int32_t id = -1;
        if (t->kind != TOK_BPE) {
            /* llama.cpp's byte_to_token: <0xNN>, else the byte itself as a token. */
            char buf[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
            id = tok_lookup(t, buf, 6);
            if (id < 0) {
                char c = (char)b;
                id = tok_lookup(t, &c, 1);
            }
        } else {
            char buf[4];
            size_t n = tok_utf8_put(tok_bpe_byte_to_cp((unsigned char)b), buf);
            id = tok_lookup(t, buf, n);
        }
        t->byte_tok[b] = id;
    }
}

/* The bytes a token stands for when special tokens are shown; decode drops
 * CONTROL and UNKNOWN pieces unless asked. */
static int piece_of(const hs_tok *t, int32_t id, hs_buf *out)
{
    const struct tok_entry *e = &t->tok[id];
    const char *s = tok_str(t, id);
    size_t n = e->len;
    switch (e->type) {
    case HS_TOK_CONTROL:
    case HS_TOK_UNKNOWN:
    case HS_TOK_USER_DEFINED:
        return hs_buf_append(out, s, n);
    case HS_TOK_BYTE: {
        int v = byte_token_value(s, n);
        if (v >= 0) {
            char c = (char)v;
            return hs_buf_append(out, &c, 1);
        }
        if (t->kind != TOK_BPE)
            return hs_buf_append(out, s, n);
        break; /* a byte-level BPE character */
    }
    case HS_TOK_NORMAL:
        break;
    default: /* UNUSED, UNDEFINED: nothing, as in llama.cpp */
        return HS_OK;
    }
    if (t->kind != TOK_BPE) {
        /* SentencePiece and WordPiece: "▁" (E2 96 81) is a space. */
        size_t i = 0;
        while (i < n) {
            if (i + 3 <= n && (unsigned char)s[i] == 0xe2 && (unsigned char)s[i + 1] == 0x96 &&
                (unsigned char)s[i + 2] == 0x81) {
                if (hs_buf_putc(out, ' '))
                    return HS_ENOMEM;
                i += 3;
                continue;
            }
            size_t j = i + 1;
            while (j < n && (unsigned char)s[j] != 0xe2)
                j++;
            if (hs_buf_append(out, s + i, j - i))
                return HS_ENOMEM;
            i = j;
        }
        return HS_OK;
    }
    /* Byte-level BPE: each character is one byte. A character outside the
     * 256 (llama.cpp writes "[UNK_BYTE_0x..]") is kept as its UTF-8 here. */
    size_t i = 0;
    while (i < n) {
        size_t start = i;
        uint32_t cp = tok_utf8_next(s, n, &i);
        int b = tok_bpe_cp_to_byte(cp);
        if (b >= 0) {
            if (hs_buf_putc(out, (char)b))
                return HS_ENOMEM;
        } else if (hs_buf_append(out, s + start, i - start)) {
            return HS_ENOMEM;
        }
    }
    return HS_OK;
}

static int setup_pieces(hs_tok *t, hs_err *err)
{
    hs_buf b = {0};
    for (int32_t id = 0; id < t->n_vocab; id++) {
        size_t start = b.len;
        if (piece_of(t, id, &b)) {
            hs_buf_free(&b);
            return hs_err_set(err, HS_ENOMEM, "tokenizer: out of memory");
        }
        if (b.len > UINT32_MAX - 1) {
            hs_buf_free(&b);
            return hs_err_set(err, HS_ERANGE, "tokenizer: vocabulary text exceeds 4 GiB");
        }
        t->tok[id].p_off = (uint32_t)start;
        t->tok[id].p_len = (uint32_t)(b.len - start);
    }
    t->pieces = hs_buf_steal(&b);
    if (!t->pieces && !(t->pieces = hs_calloc(1, 1)))
        return hs_err_set(err, HS_ENOMEM, "tokenizer: out of memory");
    return HS_OK;
}

static int32_t pick_id(const hs_tok *t, int32_t def, int64_t given, const char *what)
{
    if (def >= t->n_vocab)
        def = -1;
    if (given == -2)
        return def;
    if (given < 0 || given >= t->n_vocab) {
        hs_log_warn("tok.load", "bad_special_token key=%s id=%lld using=%d", what, (long long)given,
                    (int)def);
        return def;
    }
    return (int32_t)given;
}

/* Everything after the tokens (and merges) are in: flags, ids, tables. */
static int tok_finish(hs_tok *t, const struct tok_opts *o, hs_err *err)
{
    int rc;
    if ((rc = build_map(t, err)))
        return rc;

    if (t->kind == TOK_SPM) {
        t->add_space_prefix = true;
        t->add_bos = true;
        t->bos = pick_id(t, 1, o->bos, "bos");
        t->eos = pick_id(t, 2, o->eos, "eos");
        t->unk = pick_id(t, 0, o->unk, "unk");
        if (!(t->pre_name = hs_strdup("default")))
            return hs_err_set(err, HS_ENOMEM, "tokenizer: out of memory");
    } else if (t->kind == TOK_WPM) {
        /* BERT: [CLS] text [SEP]; pieces carry "▁" where a word starts */
        t->add_bos = true;
        t->add_sep = true;
        t->bos = pick_id(t, 101, o->bos != -2 ? o->bos : o->cls, "bos");
        t->eos = pick_id(t, -1, o->eos, "eos");
        t->unk = pick_id(t, 100, o->unk, "unk");
        if (!(t->pre_name = hs_strdup("default")))
            return hs_err_set(err, HS_ENOMEM, "tokenizer: out of memory");
    } else {
        t->pre = tok_pre_find(o->pre, o->pre_len);
        if (!t->pre)
            return hs_err_set(err, HS_EUNSUPPORTED,
                              "tokenizer: unknown pre-tokenizer '%.*s' (tokenizer.ggml.pre)",
                              (int)(o->pre_len > 64 ? 64 : o->pre_len), o->pre);
        t->pre_name = o->pre && o->pre_len ? hs_strndup(o->pre, o->pre_len) : hs_strdup("default");
        if (!t->pre_name)
            return hs_err_set(err, HS_ENOMEM, "tokenizer: out of memory");
        if (!o->pre || !o->pre_len)
            hs_log_warn("tok.load", "missing_pre_tokenizer using=default");
        t->ignore_merges = t->pre->ignore_merges;
        t->add_bos = t->pre->add_bos;
        /* llama.cpp defaults bos/eos to 11 for "gpt2" (a Falcon leftover);
         * here a BPE vocabulary without the keys simply has none. */
        t->bos = pick_id(t, -1, o->bos, "bos");
        t->eos = pick_id(t, -1, o->eos, "eos");
        t->unk = pick_id(t, -1, o->unk, "unk");
        if ((rc = tok_pre_compile(t, err)))
            return rc;
    }
    t->eot = pick_id(t, -1, o->eot, "eot");
    t->eom = pick_id(t, -1, o->eom, "eom");
    t->sep = pick_id(t, t->kind == TOK_WPM ? 102 : -1, o->sep, "sep");
    t->pad = pick_id(t, t->kind == TOK_WPM ? 0 : -1, o->pad, "pad");
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (t->tok[id].len > t->max_token_len)
            t->max_token_len = t->tok[id].len;
    if (o->add_bos >= 0)
        t->add_bos = o->add_bos;
    if (o->add_eos >= 0)
        t->add_eos = o->add_eos;
    if (o->add_sep >= 0)
        t->add_sep = o->add_sep;
    if (o->add_space_prefix >= 0)
        t->add_space_prefix = o->add_space_prefix;

    setup_eog(t);
    if ((rc = setup_special(t, o, err)))
        return rc;
    setup_bytes(t);
    if ((rc = setup_pieces(t, err)))
        return rc;
    if (!(t->model_name = hs_strdup(t->kind == TOK_SPM ? "llama" : t->kind == TOK_BPE ? "gpt2" : "bert")))
        return hs_err_set(err, HS_ENOMEM, "tokenizer: out of memory");
    return HS_OK;
}

void hs_tok_free(hs_tok *t)
{
    if (!t)
        return;
    tok_pre_free(t);
    hs_free(t->model_name);
    hs_free(t->pre_name);
    hs_free(t->tok);
    hs_free(t->pool);
    hs_free(t->pieces);
    hs_free(t->map);
    hs_free(t->merges);
    hs_free(t->merge_pool);
    hs_free(t->merge_map);
    hs_free(t->special);
    hs_free(t);
}

/* ---- loading from a GGUF ---- */

static bool str_eq(const char *s, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

static void opt_id(const hs_gguf *g, const char *key, int64_t *out)
{
    const struct hs_gguf_kv *kv = hs_gguf_find_kv(g, key);
    int64_t v;
    if (!kv)
        return;
    if (hs_gguf_get_i64(g, key, &v, NULL) != HS_OK) {
        hs_log_warn("tok.load", "ignored_key key=%s reason=not_an_integer", key);
        return;
    }
    /* -1 and 0xFFFFFFFF are how converters write "none": the default stays */
    if (v == -1 || v == (int64_t)UINT32_MAX)
        return;
    *out = v < 0 ? INT64_MAX : v; /* other negative ids are as bad as too large ones */
}

static void opt_bool(const hs_gguf *g, const char *key, int *out)
{
    bool b;
    if (hs_gguf_find_kv(g, key) && hs_gguf_get_bool(g, key, &b, NULL) == HS_OK)
        *out = b;
}

static int load_gguf(const hs_gguf *g, hs_tok **out, hs_err *err)
{
    struct tok_opts o;
    opts_init(&o);
    int rc;
    if ((rc = hs_gguf_get_str(g, "tokenizer.ggml.model", &o.model, &o.model_len, err))) {
        if (rc == HS_ENOTFOUND)
            return hs_err_set(err, HS_ENOTFOUND, "tokenizer: no tokenizer.ggml.model key");
        return rc;
    }
    enum tok_kind kind;
    if (str_eq(o.model, o.model_len, "llama"))
        kind = TOK_SPM;
    else if (str_eq(o.model, o.model_len, "gpt2"))
        kind = TOK_BPE;
    else if (str_eq(o.model, o.model_len, "bert"))
        kind = TOK_WPM;
    else
        return hs_err_set(
            err, HS_EUNSUPPORTED,
            "tokenizer: tokenizer model '%.*s' is not supported (only 'llama', 'gpt2' and 'bert')",
            (int)(o.model_len > 64 ? 64 : o.model_len), o.model);
    if (hs_gguf_find_kv(g, "tokenizer.ggml.pre") &&
        (rc = hs_gguf_get_str(g, "tokenizer.ggml.pre", &o.pre, &o.pre_len, err)))
        return rc;
    if (hs_gguf_find_kv(g, "general.name"))
        hs_gguf_get_str(g, "general.name", &o.name, &o.name_len, NULL);

    const struct hs_gguf_kv *toks, *scores = NULL, *types = NULL;
    if ((rc = hs_gguf_get_arr(g, "tokenizer.ggml.tokens", HS_GGUF_STRING, &toks, err))) {
        if (rc == HS_ENOTFOUND)
            return hs_err_set(err, HS_EFORMAT, "tokenizer: no tokenizer.ggml.tokens array");
        return rc;
    }
    uint64_t n = toks->n;
    if (hs_gguf_find_kv(g, "tokenizer.ggml.scores")) {
        if ((rc = hs_gguf_get_arr(g, "tokenizer.ggml.scores", -1, &scores, err)))
            return rc;
        if (scores->arr_type == HS_GGUF_STRING || scores->arr_type == HS_GGUF_ARRAY || scores->n < n)
            return hs_err_set(err, HS_EFORMAT,
                              "tokenizer: tokenizer.ggml.scores has %llu numbers for %llu tokens",
                              (unsigned long long)scores->n, (unsigned long long)n);
    }
    if (hs_gguf_find_kv(g, "tokenizer.ggml.token_type")) {
        if ((rc = hs_gguf_get_arr(g, "tokenizer.ggml.token_type", -1, &types, err)))
            return rc;
        if (types->arr_type == HS_GGUF_STRING || types->arr_type == HS_GGUF_ARRAY || types->n < n)
            return hs_err_set(err, HS_EFORMAT,
                              "tokenizer: tokenizer.ggml.token_type has %llu numbers for %llu tokens",
                              (unsigned long long)types->n, (unsigned long long)n);
    }
    opt_id(g, "tokenizer.ggml.bos_token_id", &o.bos);
    opt_id(g, "tokenizer.ggml.eos_token_id", &o.eos);
    opt_id(g, "tokenizer.ggml.eot_token_id", &o.eot);
    opt_id(g, "tokenizer.ggml.eom_token_id", &o.eom);
    opt_id(g, "tokenizer.ggml.unknown_token_id", &o.unk);
    opt_id(g, "tokenizer.ggml.seperator_token_id", &o.sep);
    opt_id(g, "tokenizer.ggml.padding_token_id", &o.pad);
    opt_id(g, "tokenizer.ggml.cls_token_id", &o.cls);
    opt_bool(g, "tokenizer.ggml.add_bos_token", &o.add_bos);
    opt_bool(g, "tokenizer.ggml.add_eos_token", &o.add_eos);
    opt_bool(g, "tokenizer.ggml.add_sep_token", &o.add_sep);
    opt_bool(g, "tokenizer.ggml.add_space_prefix", &o.add_space_prefix);

    hs_tok *t;
    if ((rc = tok_alloc(&t, (int64_t)(n > INT32_MAX ? INT32_MAX : n), err)))
        return rc;
    t->kind = kind;
    struct tok_build b = {t, {0}};
    for (uint64_t i = 0; i < n && !rc; i++) {
        size_t len;
        const char *s = hs_gguf_arr_str(g, toks, i, &len);
        float score = scores ? (float)hs_gguf_arr_f64(scores, i) : 0.0f;
        int type = types ? (int)hs_gguf_arr_i64(types, i) : HS_TOK_NORMAL;
        rc = add_token(&b, (int32_t)i, s ? s : "", s ? len : 0, score, type, err);
    }
    t->pool = hs_buf_steal(&b.pool);
    if (!rc && kind == TOK_BPE) {
        const struct hs_gguf_kv *merges = NULL;
        rc = hs_gguf_get_arr(g, "tokenizer.ggml.merges", HS_GGUF_STRING, &merges, err);
        if (rc == HS_ENOTFOUND)
            rc = hs_err_set(err, HS_EFORMAT, "tokenizer: no tokenizer.ggml.merges array");
        struct merge_build mb = {0};
        for (uint64_t i = 0; !rc && i < merges->n; i++) {
            size_t len;
            const char *s = hs_gguf_arr_str(g, merges, i, &len);
            rc = add_merge(&mb, s ? s : "", s ? len : 0, err);
        }
        if (!rc)
            rc = finish_merges(t, &mb, err);
        hs_buf_free(&mb.pool);
        hs_free(mb.v);
    }
    if (!rc)
        rc = tok_finish(t, &o, err);
    if (rc) {
        hs_tok_free(t);
        return rc;
    }
    *out = t;
    return HS_OK;
}

int hs_tok_load(const hs_gguf *g, hs_tok **out, hs_err *err)
{
    *out = NULL;
    if (!g)
        return hs_err_set(err, HS_EINVAL, "tokenizer: no GGUF");
    int rc = load_gguf(g, out, err);
    if (rc == HS_OK) {
        const hs_tok *t = *out;
        hs_log_debug("tok.load", "model=%s pre=%s n_vocab=%d merges=%zu specials=%zu bos=%d eos=%d eot=%d",
                     t->model_name, t->pre_name, (int)t->n_vocab, t->n_merges, t->n_special, (int)t->bos,
                     (int)t->eos, (int)t->eot);
    }
    return rc;
}

/* ---- loading from encoder.json + vocab.bpe ---- */

int hs_tok_load_bpe_files(const char *vocab_json, const char *merges_txt, const char *pre, hs_tok **out,
                          hs_err *err)
{
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_load_file(vocab_json, 0, &jerr);
    if (!root)
        return hs_err_set(err, HS_EFORMAT, "%s:%d: %s", vocab_json, jerr.line, jerr.text);
    int rc = HS_OK;
    hs_tok *t = NULL;
    char *merges_data = NULL;
    if (!json_is_object(root)) {
        rc = hs_err_set(err, HS_EFORMAT, "%s: not a JSON object of token -> id", vocab_json);
        goto done;
    }
    /* ids must be 0..n-1; gaps become UNUSED placeholders */
    int64_t max_id = -1;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        if (!json_is_integer(val) || json_integer_value(val) < 0 ||
            json_integer_value(val) >= INT32_MAX / 2) {
            rc = hs_err_set(err, HS_EFORMAT, "%s: token \"%.40s\" has no valid id", vocab_json, key);
            goto done;
        }
        if (json_integer_value(val) > max_id)
            max_id = json_integer_value(val);
    }
    if ((rc = tok_alloc(&t, max_id + 1, err)))
        goto done;
    t->kind = TOK_BPE;
    for (int32_t i = 0; i < t->n_vocab; i++)
        t->tok[i].type = HS_TOK_UNDEFINED; /* marks "not seen yet" */
    struct tok_build b = {t, {0}};
    json_object_foreach(root, key, val)
    {
        int32_t id = (int32_t)json_integer_value(val);
        if (t->tok[id].type != HS_TOK_UNDEFINED) {
            rc = hs_err_set(err, HS_EFORMAT, "%s: id %d given twice", vocab_json, (int)id);
            break;
        }
        if ((rc = add_token(&b, id, key, strlen(key), 0.0f, HS_TOK_NORMAL, err)))
            break;
    }
    for (int32_t i = 0; !rc && i < t->n_vocab; i++) {
        if (t->tok[i].type != HS_TOK_UNDEFINED)
            continue;
        char tmp[32];
        int k = snprintf(tmp, sizeof tmp, "[UNUSED_%d]", (int)i);
        rc = add_token(&b, i, tmp, (size_t)k, 0.0f, HS_TOK_UNUSED, err);
    }
    t->pool = hs_buf_steal(&b.pool);
    if (rc)
        goto done;

    size_t mlen;
    if ((rc = hs_read_file(merges_txt, &merges_data, &mlen, err)))
        goto done;
    struct merge_build mb = {0};
    size_t pos = 0;
    bool first = true;
    while (!rc && pos < mlen) {
        size_t end = pos;
        while (end < mlen && merges_data[end] != '\n')
            end++;
        size_t e = end;
        if (e > pos && merges_data[e - 1] == '\r')
            e--;
        bool header = first && e - pos >= 8 && memcmp(merges_data + pos, "#version", 8) == 0;
        if (!header && e > pos)
            rc = add_merge(&mb, merges_data + pos, e - pos, err);
        first = false;
        pos = end + 1;
    }
    if (!rc)
        rc = finish_merges(t, &mb, err);
    hs_buf_free(&mb.pool);
    hs_free(mb.v);
    if (rc)
        goto done;

    struct tok_opts o;
    opts_init(&o);
    o.model = "gpt2";
    o.model_len = 4;
    o.pre = pre;
    o.pre_len = pre ? strlen(pre) : 0;
    rc = tok_finish(t, &o, err);
done:
    json_decref(root);
    hs_free(merges_data);
    if (rc) {
        hs_tok_free(t);
        return rc;
    }
    *out = t;
    return HS_OK;
}

/* ---- accessors ---- */

int hs_tok_n_vocab(const hs_tok *t)
{
    return t->n_vocab;
}
const char *hs_tok_model_name(const hs_tok *t)
{
    return t->model_name;
}
const char *hs_tok_pre_name(const hs_tok *t)
{
    return t->pre_name;
}

const char *hs_tok_text(const hs_tok *t, int32_t id, size_t *len)
{
    if (id < 0 || id >= t->n_vocab) {
        *len = 0;
        return "";
    }
    *len = t->tok[id].len;
    return tok_str(t, id);
}

enum hs_tok_type hs_tok_type(const hs_tok *t, int32_t id)
{
    if (id < 0 || id >= t->n_vocab)
        return HS_TOK_UNDEFINED;
    return (enum hs_tok_type)t->tok[id].type;
}

int32_t hs_tok_find(const hs_tok *t, const char *text, size_t len)
{
    return tok_lookup(t, text, len);
}

int32_t hs_tok_bos(const hs_tok *t)
{
    return t->bos;
}
int32_t hs_tok_eos(const hs_tok *t)
{
    return t->eos;
}
int32_t hs_tok_eot(const hs_tok *t)
{
    return t->eot;
}
int32_t hs_tok_unk(const hs_tok *t)
{
    return t->unk;
}
bool hs_tok_add_bos(const hs_tok *t)
{
    return t->add_bos && t->bos >= 0;
}
bool hs_tok_add_eos(const hs_tok *t)
{
    return t->add_eos && t->eos >= 0;
}
bool hs_tok_add_space_prefix(const hs_tok *t)
{
    return t->add_space_prefix;
}

bool hs_tok_is_eog(const hs_tok *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab && (t->tok[id].flags & TOK_F_EOG);
}

/* ---- detokenization ---- */

static int append_piece(const hs_tok *t, int32_t id, bool special, bool strip_space, hs_buf *out)
{
    const struct tok_entry *e = &t->tok[id];
    if (!special && (e->type == HS_TOK_CONTROL || e->type == HS_TOK_UNKNOWN))
        return HS_OK;
    const char *p = t->pieces + e->p_off;
    size_t n = e->p_len;
    if (strip_space && n && p[0] == ' ') {
        p++;
        n--;
    }
    return hs_buf_append(out, p, n) ? HS_ENOMEM : HS_OK;
}

int hs_tok_decode_token(const hs_tok *t, int32_t id, bool special, hs_buf *out)
{
    if (id < 0 || id >= t->n_vocab)
        return HS_EINVAL;
    return append_piece(t, id, special, false, out);
}

int hs_tok_decode(const hs_tok *t, const int32_t *ids, size_t n, bool special, hs_buf *out)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return HS_EINVAL;
    /* llama.cpp drops one leading space from the first piece when the
     * vocabulary adds a dummy prefix. A leading BOS is looked past here, so
     * that decode(encode(x, add_special)) gives x back. */
    size_t first = 0;
    if (n && t->bos >= 0 && ids[0] == t->bos)
        first = 1;
    for (size_t i = 0; i < n; i++) {
        int rc = append_piece(t, ids[i], special, t->add_space_prefix && i == first, out);
        if (rc)
            return rc;
    }
    return HS_OK;
}
