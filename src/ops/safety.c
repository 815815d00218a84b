/* The safety check of one answer and the text helpers every rule shares
 * (see safety.h; the YAML is read by safety_config.c, the rules live in
 * safety_hazmat.c and safety_rules.c).
 *
 * Every rule but the user's regex patterns reads the answer in one
 * normalised form (hs_sfy_normalize): NFKC, accents stripped, dashes, quotes
 * and spaces lumped. So "Χλώριο", "ΧΛΩΡΙΟ" and "χλωριο" are one word, "m³"
 * is "m3", "H₂S" is "H2S", "don’t" is "don't" and a CAS number written with
 * an en dash still matches. The phrases, words and names of the config are
 * put in the same form before they are compiled. */
#include "ops/safety_impl.h"

#include "base/sys.h"
#include "base/mem.h"

#include <math.h>
#include <string.h>
#include <utf8proc.h>

/* --- text --- */

const char *hs_sfy_valid_utf8(const char *s, size_t len, char **copy, size_t *out_len)
{
    *copy = NULL;
    const utf8proc_uint8_t *u = (const utf8proc_uint8_t *)s;
    size_t i = 0;
    while (i < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(u + i, (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0)
            break;
        i += (size_t)k;
    }
    if (i == len) {
        *out_len = len;
        return s;
    }
    /* the first bad byte is at i: copy what is good, replace what is not */
    hs_buf b = {0};
    if (hs_buf_append(&b, s, i) != HS_OK)
        goto oom;
    while (i < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(u + i, (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0) {
            if (hs_buf_append(&b, "\xEF\xBF\xBD", 3) != HS_OK)
                goto oom;
            i++;
        } else {
            if (hs_buf_append(&b, s + i, (size_t)k) != HS_OK)
                goto oom;
            i += (size_t)k;
        }
    }
    *out_len = b.len;
    *copy = hs_buf_steal(&b);
    return *copy;
oom:
    hs_buf_free(&b);
    return NULL;
}

#define NORM_OPTS                                                                                            \
    (UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT | UTF8PROC_IGNORE | UTF8PROC_STRIPMARK | UTF8PROC_LUMP)

/* Appends code point c in UTF-8 and, with a map, its source offset per byte. */
static int put_cp(hs_buf *b, utf8proc_int32_t c, uint32_t **map, size_t *cap, uint32_t src)
{
    utf8proc_uint8_t u[4];
    utf8proc_ssize_t k = utf8proc_encode_char(c, u);
    if (k <= 0)
        return HS_OK;
    if (map) {
        if (b->len + (size_t)k + 1 > *cap) {
            size_t ncap = (*cap ? *cap * 2 : 256) + (size_t)k;
            uint32_t *grown = hs_realloc_array(*map, ncap, sizeof(uint32_t));
            if (!grown)
                return HS_ENOMEM;
            *map = grown;
            *cap = ncap;
        }
        for (utf8proc_ssize_t i = 0; i < k; i++)
            (*map)[b->len + (size_t)i] = src;
    }
    return hs_buf_append(b, u, (size_t)k);
}

/* Normalises valid UTF-8 v (see hs_sfy_text), one code point at a time so
 * that each output byte knows where it came from. NFKD is enough: the marks
 * that composition would fold back in are stripped anyway, and config terms
 * go through the same function. */
static int normalize(const char *v, size_t vlen, hs_buf *out, uint32_t **map)
{
    size_t cap = 0;
    const utf8proc_uint8_t *u = (const utf8proc_uint8_t *)v;
    utf8proc_int32_t buf[32];
    for (size_t i = 0; i < vlen;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(u + i, (utf8proc_ssize_t)(vlen - i), &cp);
        if (k <= 0) { /* cannot happen on valid input; step over it */
            i++;
            continue;
        }
        int boundclass = UTF8PROC_BOUNDCLASS_START;
        utf8proc_ssize_t n = utf8proc_decompose_char(cp, buf, 32, NORM_OPTS, &boundclass);
        if (n < 0 || n > 32) { /* unassigned or too long: keep it as it is */
            buf[0] = cp;
            n = 1;
        }
        for (utf8proc_ssize_t j = 0; j < n; j++)
            if (put_cp(out, buf[j], map, &cap, (uint32_t)i))
                return HS_ENOMEM;
        i += (size_t)k;
    }
    if (map) { /* the end maps to the end */
        if (out->len + 1 > cap) {
            uint32_t *grown = hs_realloc_array(*map, out->len + 1, sizeof(uint32_t));
            if (!grown)
                return HS_ENOMEM;
            *map = grown;
        }
        (*map)[out->len] = (uint32_t)vlen;
    }
    return hs_buf_reserve(out, 1); /* so that data is never NULL */
}

int hs_sfy_text_init(struct hs_sfy_text *x, const char *s, size_t len, char **copy)
{
    memset(x, 0, sizeof(*x));
    if (len > UINT32_MAX - 1)
        len = UINT32_MAX - 1;
    x->orig = hs_sfy_valid_utf8(s, len, copy, &x->olen);
    if (!x->orig)
        return HS_ENOMEM;
    hs_buf b = {0};
    if (normalize(x->orig, x->olen, &b, &x->map) != HS_OK) {
        hs_buf_free(&b);
        hs_free(x->map);
        x->map = NULL;
        return HS_ENOMEM;
    }
    x->nlen = b.len;
    x->norm = hs_buf_steal(&b);
    return HS_OK;
}

void hs_sfy_text_free(struct hs_sfy_text *x)
{
    hs_free(x->norm);
    hs_free(x->map);
    memset(x, 0, sizeof(*x));
}

char *hs_sfy_normalize(const char *s, size_t len, size_t *out_len)
{
    char *copy;
    size_t vlen;
    const char *v = hs_sfy_valid_utf8(s, len, &copy, &vlen);
    if (!v)
        return NULL;
    hs_buf b = {0};
    int rc = normalize(v, vlen, &b, NULL);
    hs_free(copy);
    if (rc != HS_OK) {
        hs_buf_free(&b);
        return NULL;
    }
    *out_len = b.len;
    return hs_buf_steal(&b);
}

int hs_sfy_put_literal(hs_buf *re, const char *s, size_t len)
{
    bool space = false;
    for (size_t i = 0; i <= len; i++) {
        char c = i < len ? s[i] : 0;
        if (i < len && (c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
            space = true;
            continue;
        }
        if (space && hs_buf_puts(re, "\\s+") != HS_OK)
            return HS_ENOMEM;
        space = false;
        if (i == len)
            break;
        if (c && strchr("\\^$.|?*+()[]{}#-/'\"", c) && hs_buf_putc(re, '\\') != HS_OK)
            return HS_ENOMEM;
        if (hs_buf_putc(re, c) != HS_OK)
            return HS_ENOMEM;
    }
    return HS_OK;
}

int hs_sfy_compile(pcre2_code **out, const char *pattern, size_t len, bool case_sensitive, const char *what,
                   hs_err *err)
{
    int ec;
    PCRE2_SIZE eo;
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | (case_sensitive ? 0 : PCRE2_CASELESS);
    *out = pcre2_compile((PCRE2_SPTR)pattern, len, opts, &ec, &eo, NULL);
    if (!*out) {
        PCRE2_UCHAR msg[160];
        if (pcre2_get_error_message(ec, msg, sizeof(msg)) < 0)
            snprintf((char *)msg, sizeof(msg), "error %d", ec);
        if (ec == PCRE2_ERROR_NOMEMORY)
            return hs_err_set(err, HS_ENOMEM, "out of memory");
        return hs_err_set(err, HS_EINVAL, "%s: PCRE2 error at offset %zu: %s", what, (size_t)eo, (char *)msg);
    }
    /* JIT where the platform has it; the interpreter gives the same answers */
    if (hs_jit_allowed())
        (void)pcre2_jit_compile(*out, PCRE2_JIT_COMPLETE);
    return HS_OK;
}

/* Lower case, one code point at a time (so "ΧΛΩΡΙΟ" and "χλωριο" share a
 * trie branch; the match itself is caseless), with runs of white space made
 * one space and the ends trimmed. A new string, or NULL. */
char *hs_sfy_lower(const char *s, size_t len)
{
    hs_buf b = {0};
    const utf8proc_uint8_t *u = (const utf8proc_uint8_t *)s;
    bool space = false;
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(u + i, (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0) {
            hs_buf_free(&b);
            return NULL;
        }
        i += (size_t)k;
        if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r') {
            space = b.len > 0;
            continue;
        }
        if (space && hs_buf_putc(&b, ' ') != HS_OK)
            goto oom;
        space = false;
        utf8proc_uint8_t e[4];
        utf8proc_ssize_t n = utf8proc_encode_char(utf8proc_tolower(cp), e);
        if (hs_buf_append(&b, e, (size_t)n) != HS_OK)
            goto oom;
    }
    if (hs_buf_reserve(&b, 1) != HS_OK)
        goto oom;
    return hs_buf_steal(&b);
oom:
    hs_buf_free(&b);
    return NULL;
}

static int trie_order(const void *a, const void *b)
{
    const struct hs_sfy_trie_key *x = a, *y = b;
    return strcmp(x->key, y->key);
}

/* Bytes of the character starting at s[0] (UTF-8). */
static size_t char_len(const char *s)
{
    unsigned char c = (unsigned char)s[0];
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

/* keys[lo, hi) share their first off bytes. Each branch is one next
 * character; a key that ends here is the last alternative, after the
 * branches, so that the longest key wins. */
static int trie_emit(hs_buf *re, const struct hs_sfy_trie_key *k, int lo, int hi, size_t off)
{
    bool first = true;
    int end = -1;
    for (int i = lo; i < hi;) {
        if (!k[i].key[off]) {
            end = i; /* sorted: a key that ends here comes first */
            i++;
            continue;
        }
        size_t cl = char_len(k[i].key + off);
        int j = i + 1;
        while (j < hi && strncmp(k[j].key + off, k[i].key + off, cl) == 0)
            j++;
        if ((!first && hs_buf_putc(re, '|')) || hs_sfy_put_literal(re, k[i].key + off, cl))
            return HS_ENOMEM;
        first = false;
        if (j - i == 1) { /* one key left on this branch: the rest is literal */
            const char *rest = k[i].key + off + cl;
            if (hs_sfy_put_literal(re, rest, strlen(rest)) ||
                hs_buf_printf(re, "%s(*MARK:%d)", k[i].prefix ? "" : "(?!\\w)", k[i].id))
                return HS_ENOMEM;
        } else if (hs_buf_puts(re, "(?:") || trie_emit(re, k, i, j, off + cl) || hs_buf_putc(re, ')')) {
            return HS_ENOMEM;
        }
        i = j;
    }
    if (end >= 0 && ((!first && hs_buf_putc(re, '|')) ||
                     hs_buf_printf(re, "%s(*MARK:%d)", k[end].prefix ? "" : "(?!\\w)", k[end].id)))
        return HS_ENOMEM;
    return HS_OK;
}

int hs_sfy_trie(hs_buf *re, struct hs_sfy_trie_key *keys, int n)
{
    if (n == 0)
        return HS_OK;
    for (int i = 0; i < n; i++) {
        char *k = hs_sfy_lower(keys[i].key, strlen(keys[i].key));
        if (!k) {
            while (i-- > 0)
                hs_free(keys[i].key);
            return HS_ENOMEM;
        }
        keys[i].key = k;
    }
    qsort(keys, (size_t)n, sizeof(*keys), trie_order);
    /* the same text twice keeps its first id only */
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m > 0 && strcmp(keys[m - 1].key, keys[i].key) == 0) {
            hs_free(keys[i].key);
            continue;
        }
        keys[m++] = keys[i];
    }
    int rc = m ? trie_emit(re, keys, 0, m, 0) : HS_OK;
    for (int i = 0; i < m; i++)
        hs_free(keys[i].key);
    return rc;
}

int hs_sfy_compile_terms(pcre2_code **out, const struct hs_sfy_list *l, const char *what, hs_err *err)
{
    return hs_sfy_compile_terms_ex(out, l, NULL, what, err);
}

int hs_sfy_compile_terms_ex(pcre2_code **out, const struct hs_sfy_list *l, const char *suffix,
                            const char *what, hs_err *err)
{
    *out = NULL;
    if (l->n == 0)
        return HS_OK;
    struct hs_sfy_trie_key *t = hs_calloc((size_t)l->n, sizeof(*t));
    char **norm = hs_calloc((size_t)l->n, sizeof(char *));
    hs_buf re = {0};
    int rc = t && norm ? HS_OK : HS_ENOMEM;
    for (int i = 0; i < l->n && rc == HS_OK; i++) {
        size_t n;
        norm[i] = hs_sfy_normalize(l->items[i], strlen(l->items[i]), &n);
        if (!norm[i]) {
            rc = HS_ENOMEM;
            break;
        }
        /* a trailing '*' makes the term a prefix: "επικινδυν*" */
        bool prefix = n > 1 && norm[i][n - 1] == '*';
        if (prefix)
            norm[i][n - 1] = 0;
        t[i] = (struct hs_sfy_trie_key){norm[i], i, prefix};
    }
    /* A term is a whole word or words: no word character may touch it
     * ("\\b" would not do for terms that end in a symbol, like "100%").
     * The guard in front is written once, before the trie: PCRE2 then knows
     * the characters a term can start with and skips the rest fast. */
    if (rc == HS_OK &&
        (hs_buf_puts(&re, suffix ? "(?:(?<!\\w)(?:" : "(?<!\\w)(?:") || hs_sfy_trie(&re, t, l->n) ||
         hs_buf_putc(&re, ')') || (suffix && (hs_buf_putc(&re, ')') || hs_buf_puts(&re, suffix)))))
        rc = HS_ENOMEM;
    if (rc == HS_ENOMEM)
        rc = hs_err_set(err, HS_ENOMEM, "out of memory");
    if (rc == HS_OK)
        rc = hs_sfy_compile(out, re.data, re.len, false, what, err);
    for (int i = 0; norm && i < l->n; i++)
        hs_free(norm[i]);
    hs_free(norm);
    hs_free(t);
    hs_buf_free(&re);
    return rc;
}

void hs_sfy_sentence(const char *t, size_t len, size_t pos, size_t *a, size_t *b)
{
    size_t i = pos < len ? pos : len;
    /* a sentence ends after its stop and the space that follows it */
    while (i > 0) {
        char c = t[i - 1];
        if (c == '\n')
            break;
        if ((c == ' ' || c == '\t') && i >= 2 && t[i - 2] && strchr(".!?;", t[i - 2]))
            break;
        if ((c == ' ' || c == '\t') && i >= 3 && (unsigned char)t[i - 3] == 0xC2 &&
            (unsigned char)t[i - 2] == 0xB7) /* U+00B7, the ano teleia after NFKC */
            break;
        i--;
    }
    *a = i;
    i = pos < len ? pos : len;
    while (i < len) {
        char c = t[i];
        if (c == '\n')
            break;
        bool last = i + 1 == len || t[i + 1] == ' ' || t[i + 1] == '\t' || t[i + 1] == '\n';
        if (c && strchr(".!?;", c) && last) {
            i++;
            break;
        }
        if ((unsigned char)c == 0xC2 && i + 1 < len && (unsigned char)t[i + 1] == 0xB7) {
            i += 2;
            break;
        }
        i++;
    }
    *b = i;
}

int hs_sfy_next(const hs_safety *s, const pcre2_code *re, const char *subject, size_t len, size_t *start,
                pcre2_match_data *md)
{
    if (*start > len)
        return 1;
    int rc = pcre2_match(re, (PCRE2_SPTR)subject, len, *start, PCRE2_NO_UTF_CHECK, md, s->mctx);
    if (rc == PCRE2_ERROR_NOMEMORY)
        return HS_ENOMEM;
    if (rc < 0) /* no match, or a limit: either way nothing more to find */
        return 1;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    size_t end = ov[1];
    if (end <= *start) { /* an empty match: step over one character */
        end = *start + 1;
        while (end < len && ((unsigned char)subject[end] & 0xC0) == 0x80)
            end++;
    }
    *start = end;
    return HS_OK;
}

int hs_sfy_mark(pcre2_match_data *md)
{
    PCRE2_SPTR m = pcre2_get_mark(md);
    if (!m)
        return -1;
    int v = 0;
    for (const char *p = (const char *)m; *p; p++) {
        if (*p < '0' || *p > '9' || v > 100000000)
            return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

#define EXCERPT_MAX 200

json_t *hs_sfy_quote(const char *text, size_t a, size_t b)
{
    while (a < b && (text[a] == ' ' || text[a] == '\n' || text[a] == '\t' || text[a] == '\r'))
        a++;
    while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\n' || text[b - 1] == '\t' || text[b - 1] == '\r'))
        b--;
    bool cut = false;
    if (b - a > EXCERPT_MAX) {
        b = a + EXCERPT_MAX;
        while (b > a && ((unsigned char)text[b] & 0xC0) == 0x80) /* not inside a character */
            b--;
        cut = true;
    }
    char buf[EXCERPT_MAX + 4];
    memcpy(buf, text + a, b - a);
    size_t n = b - a;
    if (cut) {
        memcpy(buf + n, "\xE2\x80\xA6", 3); /* … */
        n += 3;
    }
    /* the text is valid UTF-8, but it may hold NULs: jansson refuses those */
    for (size_t i = 0; i < n; i++)
        if (buf[i] == 0)
            buf[i] = ' ';
    return json_stringn(buf, n);
}

json_t *hs_sfy_excerpt(const struct hs_sfy_text *x, size_t a, size_t b)
{
    size_t oa = a < x->nlen ? x->map[a] : x->olen;
    size_t ob = b < x->nlen ? x->map[b] : x->olen;
    if (ob < oa)
        ob = oa;
    return hs_sfy_quote(x->orig, oa, ob);
}

/* --- the public side --- */

void hs_sfy_list_free(struct hs_sfy_list *l)
{
    for (int i = 0; i < l->n; i++)
        hs_free(l->items[i]);
    hs_free(l->items);
    hs_free(l->lines);
    memset(l, 0, sizeof(*l));
}

void hs_safety_free(hs_safety *s)
{
    if (!s)
        return;
    hs_free(s->name);
    hs_sfy_list_free(&s->words);
    pcre2_code_free(s->re_words);
    hs_free(s->table_path);
    hs_sfy_list_free(&s->idlh_terms);
    hs_sfy_list_free(&s->safe_terms);
    hs_sfy_list_free(&s->other_terms);
    hs_sfy_hazmat_free(s);
    pcre2_code_free(s->re_phrases);
    pcre2_code_free(s->re_negated);
    hs_sfy_list_free(&s->negations);
    for (int i = 0; s->re_patterns && i < s->patterns.n; i++)
        pcre2_code_free(s->re_patterns[i]);
    hs_free(s->re_patterns);
    hs_sfy_list_free(&s->phrases);
    hs_sfy_list_free(&s->patterns);
    pcre2_match_context_free(s->mctx);
    hs_free(s);
}

double hs_safety_low_prob(const hs_safety *s)
{
    return s->low_prob;
}

double hs_safety_confident_below(const hs_safety *s)
{
    return s->below;
}

int hs_safety_n_chemicals(const hs_safety *s)
{
    return s->n_chems;
}

const char *hs_safety_flag_name(unsigned flag)
{
    switch (flag) {
    case HS_SAFETY_HAZMAT_MISMATCH:
        return "hazmat_mismatch";
    case HS_SAFETY_UNSAFE_RECOMMENDATION:
        return "unsafe_recommendation";
    case HS_SAFETY_OVERCONFIDENT:
        return "overconfident";
    }
    return NULL;
}

double hs_hazmat_ppm_to_mgm3(double ppm, double mw)
{
    return ppm * mw / HS_MOLAR_VOLUME_25C;
}

double hs_hazmat_mgm3_to_ppm(double mgm3, double mw)
{
    return mgm3 * HS_MOLAR_VOLUME_25C / mw;
}

const struct hs_hazmat_chem *hs_safety_chemical(const hs_safety *s, const char *name_or_cas)
{
    if (!s || !name_or_cas)
        return NULL;
    size_t len;
    char *norm = hs_sfy_normalize(name_or_cas, strlen(name_or_cas), &len);
    char *folded = norm && len ? hs_sfy_lower(norm, len) : NULL;
    const struct hs_hazmat_chem *found = NULL;
    /* the matcher's rule: caseless, except for formulas ("CO" is not "co") */
    for (int i = 0; folded && i < s->n_keys && !found; i++) {
        const struct hs_sfy_key *k = &s->keys[i];
        bool same;
        if (k->formula) {
            same = strcmp(k->key, norm) == 0;
        } else {
            char *kf = hs_sfy_lower(k->key, strlen(k->key));
            same = kf && strcmp(kf, folded) == 0;
            hs_free(kf);
        }
        if (same)
            found = &s->chems[k->chem].pub;
    }
    hs_free(folded);
    hs_free(norm);
    return found;
}

void hs_safety_result_free(struct hs_safety_result *r)
{
    if (!r)
        return;
    hs_free(r->details);
    r->details = NULL;
}

static void add_name(struct hs_safety_result *out, unsigned flag)
{
    out->flags |= flag;
    size_t n = strlen(out->names);
    snprintf(out->names + n, sizeof(out->names) - n, "%s%s", n ? "," : "", hs_safety_flag_name(flag));
}

int hs_safety_check(const hs_safety *s, const char *answer, size_t len, double confidence,
                    struct hs_safety_result *out, hs_err *err)
{
    if (!out)
        return hs_err_set(err, HS_EINVAL, "safety check: no result to fill");
    memset(out, 0, sizeof(*out));
    if (!s || (!answer && len))
        return hs_err_set(err, HS_EINVAL, "safety check: no rules or no answer");
    if (!answer)
        answer = "";

    int rc = HS_OK;
    char *copy = NULL;
    struct hs_sfy_text x;
    bool have_text = hs_sfy_text_init(&x, answer, len, &copy) == HS_OK;
    pcre2_match_data *md = pcre2_match_data_create(32, NULL);
    json_t *details = json_object();
    json_t *hz = NULL, *unsafe = NULL, *over = NULL;
    if (!have_text || !md || !details) {
        rc = hs_err_set(err, HS_ENOMEM, "out of memory");
        goto done;
    }
    rc = hs_sfy_check_hazmat(s, &x, md, &hz);
    if (rc == HS_OK)
        rc = hs_sfy_check_unsafe(s, &x, md, &unsafe);
    /* certainty words matter only when the answer is known to be unsure */
    if (rc == HS_OK && confidence >= 0 && confidence < s->below)
        rc = hs_sfy_check_words(s, &x, md, &over);
    if (rc != HS_OK) {
        hs_err_set(err, rc, "out of memory");
        goto done;
    }
    if (hz) {
        add_name(out, HS_SAFETY_HAZMAT_MISMATCH);
        json_object_set_new(details, "hazmat_mismatch", hz); /* steals hz */
        hz = NULL;
    }
    if (unsafe) {
        add_name(out, HS_SAFETY_UNSAFE_RECOMMENDATION);
        json_object_set_new(details, "unsafe_recommendation", unsafe);
        unsafe = NULL;
    }
    if (over) {
        json_t *o = json_object();
        if (!o) {
            rc = hs_err_set(err, HS_ENOMEM, "out of memory");
            goto done;
        }
        json_object_set_new(o, "confidence", json_real(confidence));
        json_object_set_new(o, "below", json_real(s->below));
        json_object_set_new(o, "words", over);
        over = NULL;
        add_name(out, HS_SAFETY_OVERCONFIDENT);
        json_object_set_new(details, "overconfident", o);
    }
    if (out->flags) {
        char *d = json_dumps(details, JSON_COMPACT | JSON_REAL_PRECISION(6));
        out->details = d ? hs_strdup(d) : NULL;
        free(d);
        if (!out->details)
            rc = hs_err_set(err, HS_ENOMEM, "out of memory");
    }
done:
    json_decref(hz);
    json_decref(unsafe);
    json_decref(over);
    json_decref(details);
    pcre2_match_data_free(md);
    if (have_text)
        hs_sfy_text_free(&x);
    hs_free(copy);
    return rc;
}
