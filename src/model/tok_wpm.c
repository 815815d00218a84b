/* WordPiece ("bert"), as llama.cpp's llm_tokenizer_wpm:
 *
 * The text is normalized like BERT's uncased tokenizer: each code point is
 * replaced by the first code point of its canonical decomposition (which
 * drops accents), then lowercased; NUL, U+FFFD, control/format characters
 * and combining marks are dropped; whitespace separates words; punctuation,
 * ASCII symbols and CJK ideographs are words of their own. Each word,
 * prefixed with "▁" (the converter marks word-initial pieces with it and
 * strips "##" from the others), is cut greedily into the longest vocabulary
 * entries from the left; a word with any part that matches nothing becomes
 * the unknown token as a whole. Unicode data comes from utf8proc. */
#include "model/tok_impl.h"

#include "base/buf.h"
#include "base/mem.h"

#include <string.h>
#include <utf8proc.h>

static bool is_white(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
           c == 0x3000;
}

static bool is_chinese(uint32_t c)
{
    return (c >= 0x4e00 && c <= 0x9fff) || (c >= 0x3400 && c <= 0x4dbf) || (c >= 0x20000 && c <= 0x2a6df) ||
           (c >= 0x2a700 && c <= 0x2b73f) || (c >= 0x2b740 && c <= 0x2b81f) ||
           (c >= 0x2b920 && c <= 0x2ceaf) || /* HF's bound (0x2B820 would be right) */
           (c >= 0xf900 && c <= 0xfaff) || (c >= 0x2f800 && c <= 0x2fa1f);
}

static uint32_t nfd_first(uint32_t c)
{
    utf8proc_int32_t out[8];
    utf8proc_ssize_t n = utf8proc_decompose_char((utf8proc_int32_t)c, out, 8, UTF8PROC_DECOMPOSE, NULL);
    return n >= 1 && n <= 8 ? (uint32_t)out[0] : c;
}

/* Cuts "▁" + word into the longest entries; all or nothing. */
static int encode_word(const hs_tok *t, const char *w, size_t n, struct tok_ids *out)
{
    size_t start = out->n;
    for (size_t i = 0; i < n;) {
        size_t j = n - i > t->max_token_len ? i + t->max_token_len : n;
        int32_t id = -1;
        for (; j > i; j--)
            if ((id = tok_lookup(t, w + i, j - i)) >= 0)
                break;
        if (id < 0) {
            out->n = start;
            break;
        }
        int rc = tok_ids_push(out, id);
        if (rc)
            return rc;
        i = j;
    }
    if (out->n == start && t->unk >= 0)
        return tok_ids_push(out, t->unk);
    return HS_OK;
}

int tok_wpm_encode(const hs_tok *t, const char *text, size_t len, struct tok_ids *out)
{
    hs_buf word = {0};
    int rc = hs_buf_append(&word, "\xe2\x96\x81", 3);
    for (size_t i = 0; i < len && !rc;) {
        uint32_t c = nfd_first(tok_utf8_next(text, len, &i));
        utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
        bool single = false;
        if (is_white(c) || c == 0 || c == 0xfffd || cat == UTF8PROC_CATEGORY_CC ||
            cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_CO || cat == UTF8PROC_CATEGORY_CS ||
            cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_MC || cat == UTF8PROC_CATEGORY_ME) {
            if (!is_white(c))
                continue; /* dropped, without ending the word */
        } else {
            bool punct = cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
            bool symbol = cat >= UTF8PROC_CATEGORY_SM && cat <= UTF8PROC_CATEGORY_SO;
            single = punct || (c < 0x7f && symbol) || is_chinese(c);
            if (!single) {
                char u[4];
                rc =
                    hs_buf_append(&word, u, tok_utf8_put((uint32_t)utf8proc_tolower((utf8proc_int32_t)c), u));
                continue;
            }
        }
        /* a word ends here */
        if (word.len > 3)
            rc = encode_word(t, word.data, word.len, out);
        word.len = 3;
        if (single && !rc) {
            char u[4];
            rc = hs_buf_append(&word, u, tok_utf8_put((uint32_t)utf8proc_tolower((utf8proc_int32_t)c), u));
            if (!rc)
                rc = encode_word(t, word.data, word.len, out);
            word.len = 3;
        }
    }
    if (!rc && word.len > 3)
        rc = encode_word(t, word.data, word.len, out);
    hs_buf_free(&word);
    return rc ? HS_ENOMEM : HS_OK;
}
