/* Pre-tokenizers for byte-level BPE, by tokenizer.ggml.pre name.
 *
 * Each name maps to a list of regexes applied in sequence, as in llama.cpp's
 * llm_tokenizer_bpe: the first regex cuts the text into matches and the runs
 * between them; the second cuts each of those pieces the same way, and so on.
 * The patterns are those of the models' tokenizer.json files, with
 * case-insensitive groups spelled out ('[sS]') as llama.cpp does.
 *
 * They run on PCRE2 (UTF + UCP, JIT when available). Two details keep the
 * result identical to llama.cpp's std::regex/custom code:
 *  - \s and \S are replaced by an explicit class of the Unicode White_Space
 *    characters (llama.cpp's whitespace table), since PCRE2's \s also takes
 *    U+180E;
 *  - '$' matches only at the very end of a piece (PCRE2_DOLLAR_ENDONLY).
 * Case-insensitive matching is never used, so \p{L}/\p{N}/\p{P} are plain
 * category tests and agree with llama.cpp's tables (up to Unicode-version
 * differences in newly assigned characters). */
#include "model/tok_impl.h"

#include "base/sys.h"
#include "base/buf.h"
#include "base/log.h"
#include "base/mem.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <string.h>

/* English contractions, case-insensitive by hand. */
#define CONTR "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"

#define R_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define R_LLAMA3                                                                                             \
    CONTR "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "                                                     \
          "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define R_QWEN2                                                                                              \
    CONTR "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "                                                          \
          "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define R_QWEN35                                                                                             \
    CONTR "|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| "                                                  \
          "?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* Upper-then-lower letter runs: a letter that is not a-z, then letters that are not A-Z. */
#define R_UPPER "(?:(?=\\p{L})[^a-z])"
#define R_LOWER "(?:(?=\\p{L})[^A-Z])"
#define R_TEKKEN                                                                                             \
    "[^\\r\\n\\p{L}\\p{N}]?" R_UPPER "*" R_LOWER "+|[^\\r\\n\\p{L}\\p{N}]?" R_UPPER "+" R_LOWER              \
    "*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define R_GPT4O                                                                                              \
    "[^\\r\\n\\p{L}\\p{N}]?" R_UPPER "*" R_LOWER "+" CONTR "?|[^\\r\\n\\p{L}\\p{N}]?" R_UPPER "+" R_LOWER    \
    "*" CONTR "?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define R_CJK_DS "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"
#define R_CJK_KANA "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+"
#define R_PUNCT_WORD "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+"
#define R_PORO " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+"
/* deepseek-llm's cased letters (Latin, Greek, Cyrillic, Armenian, ...). */
#define R_DS_LETTERS                                                                                         \
    "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}"     \
    "\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}"   \
    "\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}"          \
    "\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}"        \
    "\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}"        \
    "\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}"                   \
    "\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}"                  \
    "\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}"        \
    "\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}"          \
    "\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}"                   \
    "\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}"                   \
    "\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}"         \
    "\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}"        \
    "\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}"                       \
    "\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}"                   \
    "\\x{1E900}-\\x{1E943}]+"

static const struct tok_pre_def k_pre[] = {
    {"default", {"[\\p{P}\\$\\+<=>\\^~\\|]+", R_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}, false, false},
    {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2|jina-v5-nano",
     {R_LLAMA3},
     true,
     true},
    {"dbrx|smaug-bpe", {R_LLAMA3}, false, false},
    {"deepseek-llm",
     {"[\\r\\n]", R_DS_LETTERS,
      "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+", "\\s+$",
      R_CJK_DS, "\\p{N}+"},
     false,
     false},
    {"deepseek-coder", {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", R_CJK_DS, "\\p{N}"}, false, false},
    {"deepseek-v3|hunyuan-dense|joyai-llm",
     {"\\p{N}{1,3}", R_CJK_KANA,
      R_PUNCT_WORD "|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
                   "?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     false,
     false},
    {"spark2_5",
     {"\\p{N}{1,3}", R_CJK_KANA,
      R_PUNCT_WORD "|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+|[\\r\\n]|\\s+(?!\\S)|\\s+",
      "\\p{N}"},
     false,
     false},
    {"falcon", {"[\\p{P}\\$\\+<=>\\^~\\|`]+", R_GPT2, "[0-9][0-9][0-9]"}, false, false},
    {"starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b|mellum2",
     {"\\p{N}", R_GPT2},
     false,
     false},
    {"gpt-2|phi-2|jina-es|jina-de|gigachat|jina-v2-es|jina-v2-de|a.x-4.0|mellum|modern-bert|exaone4|jina-v1-"
     "en|"
     "jina-v2-code|roberta-bpe|mpt|olmo|jais|trillion|granite-docling",
     {R_GPT2},
     false,
     false},
    {"qwen2|deepseek-r1-qwen|kormo|f2llmv2|stablelm2|megrez|hunyuan|solar-open|grok-2",
     {R_QWEN2},
     false,
     false},
    {"qwen35", {R_QWEN35}, false, false},
    {"poro-chat|bloom|gpt3-finnish", {R_PORO}, false, false},
    {"viking", {R_PORO, "\\p{N}"}, false, false},
    {"glm4|chatglm-bpe", {R_LLAMA3}, false, false},
    {"tekken", {R_TEKKEN}, true, true},
    {"chameleon",
     {"<sentinel:[0-9]+>", "(?:IMGIMG)(?:(?:A|B|C|D|E|F|G|H|I){1,4})Z", "(?:[\\t\\n]|    |  )", "\\p{N}",
      "[\\p{P}!-/:-@\\[-`{-~]", R_GPT2},
     false,
     true},
    {"gpt-4o|llama4|kanana2|talkie|minimax-m2", {R_GPT4O}, false, false},
    {"superbpe", {"\\p{N}+", "(?=(?:[0-9]{3})+(?![0-9]))"}, false, false},
    {"bailingmoe|bailingmoe2|llada-moe",
     {"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
      "\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"},
     false,
     false},
    {"seed-coder",
     {CONTR
      "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     false,
     false},
    {"minicpm5",
     {"\\p{N}{1,3}", CONTR
      "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}+| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     true,
     false},
    {"laguna", {"[^\\n]+|[\\n]+", R_QWEN2}, false, false},
    {"exaone-moe",
     {CONTR
      "|[^\\r\\n\\p{L}\\p{N}]?(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]?|"
      "\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"},
     false,
     false},
    {"jais-2",
     {CONTR "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
            "\\s{512}(?!\\S)|\\s{256}(?!\\S)|\\s{128}(?!\\S)|\\s{64}(?!\\S)|\\s{32}(?!\\S)|\\s{16}(?!\\S)|"
            "\\s{8}(?!\\S)|\\s{4}(?!\\S)|\\s{1,2}(?!\\S)|\\s{1}"},
     false,
     false},
};

const struct tok_pre_def *tok_pre_find(const char *name, size_t len)
{
    if (!name || len == 0) {
        name = "default";
        len = 7;
    }
    for (size_t i = 0; i < sizeof k_pre / sizeof k_pre[0]; i++) {
        const char *p = k_pre[i].names;
        while (*p) {
            const char *e = strchr(p, '|');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            if (n == len && memcmp(p, name, len) == 0)
                return &k_pre[i];
            p += n + (e != NULL);
        }
    }
    return NULL;
}

/* The White_Space characters, without brackets (for use inside a class). */
#define WS_CHARS                                                                                             \
    "\\t\\n\\x0B\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}"          \
    "\\x{205F}\\x{3000}"

/* Rewrites \s and \S (see the file comment). Escapes are copied whole, so
 * "\\s" (an escaped backslash, then 's') is left alone. */
static int rewrite(const char *re, hs_buf *out)
{
    bool in_class = false;
    int rc = HS_OK;
    for (size_t i = 0; re[i] && !rc; i++) {
        char c = re[i];
        if (c == '\\' && re[i + 1]) {
            char d = re[++i];
            if (d == 's')
                rc = hs_buf_puts(out, in_class ? WS_CHARS : "[" WS_CHARS "]");
            else if (d == 'S' && !in_class)
                rc = hs_buf_puts(out, "[^" WS_CHARS "]");
            else
                rc = hs_buf_append(out, re + i - 1, 2);
            continue;
        }
        if (c == '[' && !in_class)
            in_class = true;
        else if (c == ']' && in_class)
            in_class = false;
        rc = hs_buf_putc(out, c);
    }
    return rc ? HS_ENOMEM : HS_OK;
}

int tok_pre_compile(hs_tok *t, hs_err *err)
{
    uint32_t jit = 0;
    pcre2_config(PCRE2_CONFIG_JIT, &jit);
    for (size_t i = 0; i < TOK_MAX_REGEX && t->pre->regex[i]; i++) {
        hs_buf pat = {0};
        if (rewrite(t->pre->regex[i], &pat)) {
            hs_buf_free(&pat);
            return hs_err_set(err, HS_ENOMEM, "tokenizer: out of memory");
        }
        int ecode;
        PCRE2_SIZE eoff;
        pcre2_code *code = pcre2_compile((PCRE2_SPTR)pat.data, pat.len,
                                         PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &ecode, &eoff, NULL);
        if (!code) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(ecode, msg, sizeof msg);
            int rc = hs_err_set(err, HS_EUNSUPPORTED, "tokenizer: pre-tokenizer '%s' regex %zu: %s at %zu",
                                t->pre_name, i, (const char *)msg, (size_t)eoff);
            hs_buf_free(&pat);
            return rc;
        }
        hs_buf_free(&pat);
        if (jit && hs_jit_allowed())
            pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); /* falls back to the interpreter on failure */
        t->re[t->n_re++] = code;
    }
    return HS_OK;
}

void tok_pre_free(hs_tok *t)
{
    for (size_t i = 0; i < t->n_re; i++)
        pcre2_code_free(t->re[i]);
    t->n_re = 0;
}

static int push_span(struct tok_spans *s, size_t off, size_t len)
{
    if (len == 0)
        return HS_OK;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        struct tok_span *v = hs_realloc_array(s->v, cap, sizeof *v);
        if (!v)
            return HS_ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (struct tok_span){off, len};
    return HS_OK;
}

/* One match attempt; the JIT's small stack can run out on long words with
 * repeated groups, in which case the interpreter (heap frames) retries. */
static int match(const pcre2_code *code, const char *s, size_t len, size_t pos, uint32_t opts,
                 pcre2_match_data *md)
{
    int rc = pcre2_match(code, (PCRE2_SPTR)s, len, pos, opts | PCRE2_NO_UTF_CHECK, md, NULL);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
        rc = pcre2_match(code, (PCRE2_SPTR)s, len, pos, opts | PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
    return rc;
}

/* Splits one piece s[0..len) (absolute offset base) with one regex: matches
 * and the runs between them become spans, in order. Empty matches only cut
 * (a lookahead-only pattern splits digit groups this way); after one, the
 * search moves on like std::regex_iterator: a non-empty match at the same
 * place, else from the next character. */
static int split_one(const pcre2_code *code, pcre2_match_data *md, const char *s, size_t len, size_t base,
                     struct tok_spans *out)
{
    size_t pos = 0, last = 0;
    int rc = HS_OK;
    while (pos <= len && !rc) {
        int m = match(code, s, len, pos, 0, md);
        if (m == PCRE2_ERROR_NOMATCH)
            break;
        if (m < 0) {
            if (m == PCRE2_ERROR_NOMEMORY)
                return HS_ENOMEM;
            hs_log_debug("tok.pre", "regex_error code=%d at=%zu", m, base + pos);
            break; /* the rest stays one piece */
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) {
            rc = push_span(out, base + last, ms - last);
            last = ms;
            m = ms < len ? match(code, s, len, ms, PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED, md)
                         : PCRE2_ERROR_NOMATCH;
            if (m < 0) {
                pos = ms + 1;
                while (pos < len && ((unsigned char)s[pos] & 0xc0) == 0x80)
                    pos++;
                continue;
            }
            ov = pcre2_get_ovector_pointer(md);
            ms = ov[0];
            me = ov[1];
        }
        if (!rc && ms > last)
            rc = push_span(out, base + last, ms - last);
        if (!rc)
            rc = push_span(out, base + ms, me - ms);
        last = pos = me;
    }
    if (!rc && last < len)
        rc = push_span(out, base + last, len - last);
    return rc;
}

int tok_pre_split(const hs_tok *t, const char *text, size_t len, struct tok_spans *out)
{
    out->n = 0;
    if (len == 0)
        return HS_OK;
    struct tok_spans a = {0}, b = {0};
    pcre2_match_data *md = pcre2_match_data_create(16, NULL);
    int rc = md ? push_span(&a, 0, len) : HS_ENOMEM;
    for (size_t r = 0; r < t->n_re && !rc; r++) {
        b.n = 0;
        for (size_t i = 0; i < a.n && !rc; i++)
            rc = split_one(t->re[r], md, text + a.v[i].off, a.v[i].len, a.v[i].off, &b);
        struct tok_spans tmp = a;
        a = b;
        b = tmp;
    }
    pcre2_match_data_free(md);
    hs_free(b.v);
    hs_free(out->v);
    if (rc) {
        hs_free(a.v);
        *out = (struct tok_spans){0};
        return rc;
    }
    *out = a;
    return HS_OK;
}
