/* libFuzzer target for structured output: the input is a JSON Schema, a NUL
 * byte, and a document. Any schema compiles or gives an error with a
 * message, never a crash or a leak. For a schema that compiles:
 *  - the document is validated (any verdict, no crash);
 *  - the document is fed to the automaton byte by byte; if it takes all of
 *    it and says the document is whole, the validator must agree;
 *  - from the state after the longest prefix the automaton took (and from
 *    the start), the shortest completion must exist byte by byte, each byte
 *    lowering the distance by one (no dead ends, the distance is exact), and
 *    the completed document must validate. */
#include "base/buf.h"
#include "model/json_impl.h"
#include "model/json_schema.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DOC 4096
#define MAX_COMPLETION 4096

/* Appends to out the bytes that take st to a whole document, one distance
 * step each; aborts when no byte lowers the distance. */
static void complete_shortest(const hs_jschema *s, const struct hs_jstate *from, hs_buf *out)
{
    static struct hs_jstate st, next;
    hs_jauto_copy(&st, from);
    int d = hs_jauto_distance(s, &st);
    if (d > MAX_COMPLETION)
        return; /* too long to walk here (huge minItems and the like) */
    while (d > 0) {
        int b = 0;
        for (; b < 256; b++) {
            hs_jauto_copy(&next, &st);
            if (hs_jauto_step(s, &next, (uint8_t)b) && hs_jauto_distance(s, &next) == d - 1)
                break;
        }
        if (b == 256)
            abort(); /* a dead end, or a distance that cannot be met */
        hs_buf_putc(out, (char)b);
        hs_jauto_copy(&st, &next);
        d--;
    }
    if (!hs_jauto_complete(s, &st))
        abort();
}

static void check_completion(const hs_jschema *s, const struct hs_jstate *st, const uint8_t *prefix, size_t n)
{
    if (hs_jauto_distance(s, st) > MAX_COMPLETION)
        return;
    hs_buf doc = {0};
    hs_buf_append(&doc, prefix, n);
    complete_shortest(s, st, &doc);
    if (hs_jschema_validate(s, doc.data, doc.len, NULL) != HS_OK)
        abort(); /* the automaton made a document the validator refuses */
    hs_buf_free(&doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    const size_t slen = nul ? (size_t)(nul - data) : size;
    const uint8_t *doc = nul ? nul + 1 : data + size;
    size_t dlen = nul ? size - slen - 1 : 0;
    if (dlen > MAX_DOC)
        dlen = MAX_DOC;

    hs_jschema *s = NULL;
    hs_err err;
    hs_err_clear(&err);
    /* an empty schema means "any object" */
    const int rc = hs_jschema_compile((const char *)data, slen, &s, &err);
    if (rc != HS_OK) {
        if (s || !err.msg[0])
            abort();
        return 0;
    }
    hs_jschema_validate(s, (const char *)doc, dlen, NULL);

    static struct hs_jstate st, next;
    hs_jauto_init(s, &st);
    check_completion(s, &st, NULL, 0);
    size_t k = 0;
    for (; k < dlen; k++) {
        hs_jauto_copy(&next, &st);
        if (!hs_jauto_step(s, &next, doc[k]))
            break;
        hs_jauto_copy(&st, &next);
    }
    if (k == dlen && hs_jauto_complete(s, &st) &&
        hs_jschema_validate(s, (const char *)doc, dlen, NULL) != HS_OK)
        abort();
    check_completion(s, &st, doc, k);
    hs_jschema_unref(s);
    return 0;
}
