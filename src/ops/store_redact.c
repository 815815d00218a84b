/* Redaction of logged bodies: the hook, and the default that masks what must
 * never sit in a log file: bearer tokens, API keys (OpenAI's sk-..., hestia's
 * own hs-...) and e-mail addresses, each replaced by "[REDACTED]".
 *
 * The pattern is matched byte-wise (no UTF mode): bodies may hold any bytes,
 * and every part of the pattern is ASCII, so there is nothing to gain from
 * UTF checking and a malformed body cannot make matching fail. */
#include "ops/store_impl.h"

#include "base/sys.h"
#include "base/buf.h"
#include "base/log.h"
#include "base/mem.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <string.h>

static const char k_mask[] = "[REDACTED]";

/* Alternatives, tried leftmost first:
 *   bearer <token>   the scheme word stays, \K starts the match at the token;
 *                    tokens shorter than 8 are words ("the bearer of ..."),
 *                    not credentials
 *   sk-... / hs-...  a key: the prefix at a word start and 16 or more key
 *                    characters, so "sk-learn" or "hs-code" stay
 *   user@host.tld    an e-mail address */
static const char k_pattern[] = "(?i:\\bbearer)[ \\t]+\\K[A-Za-z0-9._~+/=-]{8,}"
                                "|\\b(?:sk|hs)-[A-Za-z0-9_-]{16,}"
                                "|[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,}";

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pcre2_code *g_re;

static void compile(void)
{
    int ec;
    PCRE2_SIZE eo;
    g_re = pcre2_compile((PCRE2_SPTR)k_pattern, PCRE2_ZERO_TERMINATED, 0, &ec, &eo, NULL);
    if (!g_re) {
        hs_log_error("store.redact", "pattern error at %zu (code %d)", (size_t)eo, ec);
        return;
    }
    if (hs_jit_allowed()) /* a speed-up only; the interpreter is the fallback */
        pcre2_jit_compile(g_re, PCRE2_JIT_COMPLETE);
}

/* When redaction itself fails, the whole text is masked: a body that could
 * not be checked is not stored. */
static char *mask_all(void)
{
    return hs_strdup(k_mask);
}

char *hs_store_redact_default(void *user, const char *text)
{
    (void)user;
    pthread_once(&g_once, compile);
    if (!g_re)
        return mask_all();
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(g_re, NULL);
    if (!md)
        return mask_all();
    size_t len = strlen(text), off = 0, copied = 0;
    hs_buf out = {0};
    int bad = 0;
    size_t matches = 0;
    for (;;) {
        int rc = pcre2_match(g_re, (PCRE2_SPTR)text, len, off, 0, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0) {
            bad = 1;
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t start = ov[0], end = ov[1];
        if (start < copied || end < start) { /* cannot happen without \K in a lookaround */
            bad = 1;
            break;
        }
        bad |= hs_buf_append(&out, text + copied, start - copied);
        bad |= hs_buf_append(&out, k_mask, sizeof k_mask - 1);
        copied = end;
        matches++;
        off = end > start ? end : end + 1;
        if (bad || off > len)
            break;
    }
    pcre2_match_data_free(md);
    if (bad) {
        hs_buf_free(&out);
        return mask_all();
    }
    if (matches == 0)
        return NULL; /* nothing matched: keep the text */
    if (hs_buf_append(&out, text + copied, len - copied)) {
        hs_buf_free(&out);
        return mask_all();
    }
    return hs_buf_steal(&out);
}

void hs_store_set_redactor(hs_store *s, hs_redact_fn fn, void *user)
{
    pthread_mutex_lock(&s->redlock);
    s->redact = fn;
    s->redact_user = user;
    pthread_mutex_unlock(&s->redlock);
}

char *hs_store_redact(hs_store *s, const char *text)
{
    if (!text)
        return NULL;
    pthread_mutex_lock(&s->redlock);
    hs_redact_fn fn = s->redact;
    void *user = s->redact_user;
    pthread_mutex_unlock(&s->redlock);
    char *r = fn ? fn(user, text) : NULL;
    return r ? r : hs_strdup(text);
}
