/* Structured output: JSON documents enforced token by token while sampling.
 *
 * A schema (the common subset of JSON Schema: object with properties and
 * required, array with items (and minItems/maxItems), enum, const, string
 * (minLength/maxLength), number, integer, boolean, null, nested; type lists
 * and anyOf where simple) is compiled once into an hs_jschema. No schema
 * means "any JSON object" (response_format json_object).
 *
 * Each constrained sequence has an hs_jmatch: a pushdown automaton over the
 * bytes of the answer. Before each draw it removes every token whose bytes
 * cannot continue a valid document (a walk of the vocabulary's byte trie
 * under the automaton, pruning whole subtrees), so the answer always parses
 * and validates against the schema. It also bounds the answer: strings,
 * numbers and arrays without limits of their own get generous ones, free
 * whitespace is limited, and when the token budget left is no more than what
 * the shortest completion needs, only tokens that bring the document closer
 * to its end are allowed, so even a random-weight model finishes a valid
 * document within max_tokens (when max_tokens leaves room for the shortest
 * valid document at all). End-of-generation tokens are allowed only once the
 * document is complete.
 *
 * hs_jvocab and hs_jschema are immutable after creation and may be shared by
 * threads; an hs_jmatch belongs to one sequence. */
#ifndef HS_MODEL_JSON_SCHEMA_H
#define HS_MODEL_JSON_SCHEMA_H

#include "base/err.h"
#include "model/tokenizer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The vocabulary as bytes (hs_tok_decode_token of each id, special tokens
 * excluded), arranged for the masking walk. Built once per model. */
typedef struct hs_jvocab hs_jvocab;
int hs_jvocab_create(const hs_tok *tok, hs_jvocab **out, hs_err *err);
void hs_jvocab_free(hs_jvocab *v);

/* A compiled schema, reference counted (a job keeps one while it runs). */
typedef struct hs_jschema hs_jschema;
/* schema: a JSON Schema document as text; NULL (len 0) = any JSON object.
 * HS_EINVAL with a message naming the schema path for what is malformed,
 * HS_EUNSUPPORTED for keywords outside the subset ($ref, patternProperties,
 * ...) rather than silently ignoring them. */
int hs_jschema_compile(const char *schema, size_t len, hs_jschema **out, hs_err *err);
hs_jschema *hs_jschema_ref(hs_jschema *s); /* returns s */
void hs_jschema_unref(hs_jschema *s);      /* NULL is fine */
/* Validates a whole document against the schema (independently of the
 * automaton: a parse with jansson and a walk of the schema). HS_OK, or
 * HS_EINVAL with a message naming the first offending path. */
int hs_jschema_validate(const hs_jschema *s, const char *doc, size_t len, hs_err *err);

typedef struct hs_jmatch hs_jmatch;
/* Borrows v and takes a reference to s. */
int hs_jmatch_create(const hs_jschema *s, const hs_jvocab *v, hs_jmatch **out, hs_err *err);
void hs_jmatch_free(hs_jmatch *m);
/* Sets logits[t] = -INFINITY for every token t that may not come next
 * (logits has the vocabulary's n_vocab entries). budget: tokens left before
 * the answer is cut (<= 0: no limit). Returns how many tokens remain
 * allowed (0 only if the budget cannot fit any completion). */
int hs_jmatch_mask(hs_jmatch *m, float *logits, int budget);
/* Advances over token tok (HS_EINVAL, state unchanged, if not allowed). */
int hs_jmatch_accept(hs_jmatch *m, int32_t tok, hs_err *err);
/* The bytes so far form a whole valid document: the answer should end. */
bool hs_jmatch_complete(const hs_jmatch *m);

#endif
