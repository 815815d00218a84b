/* Stop strings over streamed text.
 *
 * Text arrives in pieces (one per token) and a stop string may straddle any
 * number of them, so nothing that could still turn out to be the start of a
 * stop string is released: after each piece, the longest tail of the pending
 * text that is a proper prefix of some stop string is held back, and so is a
 * UTF-8 sequence cut short at the end (a token may carry only part of a
 * character). Everything before that is safe to print. Because no prefix of a
 * stop is ever released, a stop string can only occur inside the pending text,
 * which is all the matcher searches. */
#include "model/sampler.h"

#include "base/buf.h"
#include "base/mem.h"

#include <string.h>

struct hs_stop {
    char **stops;
    size_t *lens;
    int n;
    hs_buf pend;    /* text not yet released, from pend.data[emitted] onwards */
    size_t emitted; /* bytes at the front of pend handed out by the last call */
    bool done;      /* a stop string completed; everything after it is dropped */
};

int hs_stop_create(const char *const *stops, int n_stops, hs_stop **out)
{
    *out = NULL;
    if (n_stops < 0 || (n_stops > 0 && !stops))
        return HS_EINVAL;
    for (int i = 0; i < n_stops; i++)
        if (!stops[i] || !stops[i][0])
            return HS_EINVAL; /* an empty stop string would end every answer at once */
    hs_stop *st = hs_calloc(1, sizeof *st);
    if (!st)
        return HS_ENOMEM;
    if (n_stops > 0) {
        st->stops = hs_calloc((size_t)n_stops, sizeof *st->stops);
        st->lens = hs_calloc((size_t)n_stops, sizeof *st->lens);
        if (!st->stops || !st->lens) {
            hs_stop_free(st);
            return HS_ENOMEM;
        }
        for (int i = 0; i < n_stops; i++) {
            st->stops[i] = hs_strdup(stops[i]);
            if (!st->stops[i]) {
                st->n = i;
                hs_stop_free(st);
                return HS_ENOMEM;
            }
            st->lens[i] = strlen(stops[i]);
        }
    }
    st->n = n_stops;
    *out = st;
    return HS_OK;
}

void hs_stop_free(hs_stop *st)
{
    if (!st)
        return;
    for (int i = 0; i < st->n; i++)
        hs_free(st->stops[i]);
    hs_free(st->stops);
    hs_free(st->lens);
    hs_buf_free(&st->pend);
    hs_free(st);
}

void hs_stop_reset(hs_stop *st)
{
    hs_buf_reset(&st->pend);
    st->emitted = 0;
    st->done = false;
}

/* Drops the bytes released by the previous call. */
static void consume_emitted(hs_stop *st)
{
    if (st->emitted == 0)
        return;
    memmove(st->pend.data, st->pend.data + st->emitted, st->pend.len - st->emitted);
    st->pend.len -= st->emitted;
    st->pend.data[st->pend.len] = '\0';
    st->emitted = 0;
}

/* Length of the longest tail of text[0..len) that is a proper prefix of a stop. */
static size_t held_prefix(const hs_stop *st, const char *text, size_t len)
{
    size_t best = 0;
    for (int i = 0; i < st->n; i++) {
        size_t max = st->lens[i] - 1;
        if (max > len)
            max = len;
        for (size_t l = max; l > best; l--) {
            if (!memcmp(text + len - l, st->stops[i], l)) {
                best = l;
                break;
            }
        }
    }
    return best;
}

/* Bytes of text[0..len) that end on a whole UTF-8 character: a lead byte in
 * the last three whose sequence runs past the end is held back. Malformed
 * bytes are released as they are (holding them would hold them forever). */
static size_t utf8_complete(const char *text, size_t len)
{
    for (size_t back = 1; back <= 4 && back <= len; back++) {
        unsigned char c = (unsigned char)text[len - back];
        if ((c & 0xC0) == 0x80)
            continue; /* continuation byte: keep looking for the lead */
        size_t need = c < 0x80             ? 1
                      : (c & 0xE0) == 0xC0 ? 2
                      : (c & 0xF0) == 0xE0 ? 3
                      : (c & 0xF8) == 0xF0 ? 4
                                           : 1;
        return need > back ? len - back : len;
    }
    return len;
}

bool hs_stop_feed(hs_stop *st, const char *piece, size_t len, const char **emit, size_t *emit_len)
{
    consume_emitted(st);
    *emit = "";
    *emit_len = 0;
    if (st->done)
        return true;
    if (len && hs_buf_append(&st->pend, piece, len) != 0) {
        /* Out of memory: release what we have rather than lose text. */
        *emit = st->pend.data ? st->pend.data : "";
        *emit_len = st->pend.len;
        st->emitted = st->pend.len;
        return false;
    }
    const char *text = st->pend.data ? st->pend.data : "";
    size_t n = st->pend.len;

    /* The earliest completed stop string wins. */
    size_t cut = n;
    for (int i = 0; i < st->n; i++) {
        const char *hit = memmem(text, n, st->stops[i], st->lens[i]);
        if (hit && (size_t)(hit - text) < cut)
            cut = (size_t)(hit - text);
    }
    if (cut < n) {
        st->done = true;
        *emit = text;
        *emit_len = cut;
        st->emitted = n; /* the stop and what follows it are never released */
        return true;
    }

    size_t safe = utf8_complete(text, n - held_prefix(st, text, n));
    *emit = text;
    *emit_len = safe;
    st->emitted = safe;
    return false;
}

void hs_stop_flush(hs_stop *st, const char **emit, size_t *emit_len)
{
    consume_emitted(st);
    *emit = "";
    *emit_len = 0;
    if (st->done)
        return;
    *emit = st->pend.data ? st->pend.data : "";
    *emit_len = st->pend.len;
    st->emitted = st->pend.len;
}
