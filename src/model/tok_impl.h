/* Internal layout of hs_tok, shared by the tokenizer's files only:
 *   tok_vocab.c  loading (GGUF, encoder.json + vocab.bpe), tables, specials, decode
 *   tok_encode.c special-token partition and the encode driver
 *   tok_spm.c    SentencePiece BPE with scores ("llama")
 *   tok_bpe.c    byte-level BPE with merge ranks ("gpt2")
 *   tok_wpm.c    WordPiece ("bert")
 *   tok_pre.c    the regex pre-tokenizers named by tokenizer.ggml.pre
 * The algorithms follow llama.cpp's llama-vocab.cpp so that token ids match
 * its test vectors exactly; where this code departs from it, a comment says so. */
#ifndef HS_MODEL_TOK_IMPL_H
#define HS_MODEL_TOK_IMPL_H

#include "model/tokenizer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tok_kind { TOK_SPM = 1, TOK_BPE = 2, TOK_WPM = 3 };

/* Per-token flags beyond the type (llama.cpp's token attributes). */
enum {
    TOK_F_LSTRIP = 1u << 0, /* special token eats whitespace on its left */
    TOK_F_RSTRIP = 1u << 1, /* ... and on its right */
    TOK_F_EOG = 1u << 2,    /* ends generation */
};

struct tok_entry {
    uint32_t off; /* text in t->pool */
    uint32_t len;
    uint32_t p_off; /* decoded piece (special form) in t->pieces */
    uint32_t p_len;
    float score;
    uint8_t type; /* enum hs_tok_type */
    uint8_t flags;
};

/* One merge "left right" -> rank; both halves stored back to back in
 * t->merge_pool at off (left llen bytes, then right rlen bytes). */
struct tok_merge {
    uint32_t off;
    uint32_t llen;
    uint32_t rlen;
    int32_t rank;
};

#define TOK_MAX_REGEX 8

struct tok_pre_def; /* tok_pre.c */

struct hs_tok {
    enum tok_kind kind;
    char *model_name;
    char *pre_name;

    int32_t n_vocab;
    struct tok_entry *tok;
    char *pool;    /* all token texts */
    char *pieces;  /* all decoded pieces */
    uint32_t *map; /* open addressing over token texts: id + 1, 0 empty */
    size_t map_mask;

    struct tok_merge *merges;
    size_t n_merges;
    char *merge_pool;
    uint32_t *merge_map; /* index + 1 into merges, 0 empty */
    size_t merge_mask;

    int32_t bos, eos, eot, eom, unk, sep, pad;
    bool add_bos, add_eos, add_sep, add_space_prefix, ignore_merges;
    size_t max_token_len; /* longest token text, in bytes */

    /* SPM: the byte-fallback token of each byte (<0xNN>), -1 if none.
     * BPE: the token of each byte's GPT-2 character, -1 if none. */
    int32_t byte_tok[256];

    /* Tokens st_partition looks for (control, user-defined, unknown), longest first. */
    int32_t *special;
    size_t n_special;

    /* BPE pre-tokenizer: compiled regexes applied in sequence (pcre2_code *). */
    const struct tok_pre_def *pre;
    void *re[TOK_MAX_REGEX];
    size_t n_re;
};

/* ---- growable id list ---- */
struct tok_ids {
    int32_t *v;
    size_t n, cap;
};
int tok_ids_push(struct tok_ids *o, int32_t id);

/* ---- tok_vocab.c ---- */
uint64_t tok_hash(const void *a, size_t alen, const void *b, size_t blen);
/* Exact vocabulary lookup; -1 when absent. */
int32_t tok_lookup(const hs_tok *t, const char *s, size_t len);
/* Merge rank of (left, right); -1 when there is no such merge. */
int32_t tok_merge_rank(const hs_tok *t, const char *l, size_t llen, const char *r, size_t rlen);
static inline const char *tok_str(const hs_tok *t, int32_t id)
{
    return t->pool + t->tok[id].off;
}

/* ---- UTF-8 as llama.cpp reads it ---- */
/* Length of the sequence a lead byte announces (1 for continuation bytes). */
static inline size_t tok_utf8_len(unsigned char c)
{
    static const unsigned char lens[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lens[c >> 4];
}
/* Decodes one code point at s[*i] (n bytes in all), advancing *i. Malformed
 * input (a stray continuation byte, a truncated sequence, 0xF8..0xFF, or a
 * value past U+10FFFF) gives U+FFFD and advances one byte, as llama.cpp's
 * unicode_cpts_from_utf8 does. Overlong forms and surrogates are accepted
 * like there (they only check the continuation bits). */
uint32_t tok_utf8_next(const char *s, size_t n, size_t *i);
/* Writes cp as UTF-8 into out (4 bytes room); returns the length. */
size_t tok_utf8_put(uint32_t cp, char *out);

/* ---- tok_spm.c / tok_bpe.c ---- */
/* Tokenizes one raw-text fragment (specials already split off), appending ids.
 * SPM: prefix adds the dummy-prefix space in front. */
int tok_spm_encode(const hs_tok *t, const char *text, size_t len, bool prefix, struct tok_ids *out);
int tok_bpe_encode(const hs_tok *t, const char *text, size_t len, struct tok_ids *out);
int tok_wpm_encode(const hs_tok *t, const char *text, size_t len, struct tok_ids *out);
/* GPT-2's byte <-> character map. */
uint32_t tok_bpe_byte_to_cp(unsigned char b);
int tok_bpe_cp_to_byte(uint32_t cp); /* -1 when cp is not one of the 256 */

/* ---- tok_pre.c ---- */
struct tok_pre_def {
    const char *names; /* '|'-separated names of tokenizer.ggml.pre */
    const char *regex[TOK_MAX_REGEX];
    bool ignore_merges; /* a whole word that is a token skips merging */
    bool add_bos;       /* default for add_bos (the key overrides) */
};
/* Finds the definition for a pre-tokenizer name (NULL or "" is "default"). */
const struct tok_pre_def *tok_pre_find(const char *name, size_t len);
/* Compiles t->pre's regexes into t->re. */
int tok_pre_compile(hs_tok *t, hs_err *err);
void tok_pre_free(hs_tok *t);
/* A word: bytes [off, off+len) of the split text. */
struct tok_span {
    size_t off, len;
};
struct tok_spans {
    struct tok_span *v;
    size_t n, cap;
};
/* Splits valid UTF-8 text with t's regexes in sequence; every byte lands in
 * exactly one span, in order (unmatched runs become spans of their own). */
int tok_pre_split(const hs_tok *t, const char *text, size_t len, struct tok_spans *out);

#endif
