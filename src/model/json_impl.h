/* Internals of structured output (model/json_schema.h), shared by
 * json_schema.c (compile), json_validate.c (validator), json_automaton.c
 * (the byte-level pushdown automaton), json_vocab.c (the vocabulary trie)
 * and json_mask.c (hs_jmatch). Only these files include it.
 *
 * A compiled schema is an array of nodes addressed by index; the automaton's
 * stack frames name their node by index, so a state is a small plain struct
 * that the masking walk can copy as it descends the vocabulary trie. */
#ifndef HS_MODEL_JSON_IMPL_H
#define HS_MODEL_JSON_IMPL_H

#include "model/json_schema.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits of what is generated (the validator checks the schema's own limits).
 * They bound an answer when the schema does not, so that a model that never
 * chooses to stop still ends; each is generous for real answers. */
#define HS_J_MAX_PROPS 64    /* declared properties of one object (a 64-bit candidate set) */
#define HS_J_SCHEMA_DEPTH 32 /* nesting of the schema itself */
#define HS_J_FREE_DEPTH 8    /* nesting of free-form values ({} schemas, json_object) */
#define HS_J_STACK (HS_J_SCHEMA_DEPTH + HS_J_FREE_DEPTH + 4)
#define HS_J_STR_CAP 256   /* characters of a string without maxLength */
#define HS_J_KEY_CAP 64    /* characters of a free-form object key */
#define HS_J_ITEMS_CAP 16  /* items of an array without maxItems */
#define HS_J_KEYS_CAP 16   /* keys of a free-form object */
#define HS_J_INT_DIGITS 18 /* so every integer fits jansson's json_int_t (19 would not always) */
#define HS_J_FRAC_DIGITS 15
#define HS_J_EXP_DIGITS 2 /* |exponent| <= 99: no overflow to infinity */
/* Whitespace between tokens: one space, or a newline and up to this many
 * spaces or tabs of indentation (compact and pretty-printed JSON both fit;
 * a weak model cannot fill its answer with blank lines). */
#define HS_J_INDENT_MAX 20
#define HS_J_LEN_MAX 65535      /* lengths and counts kept in 16-bit frame fields */
#define HS_J_COST_INF (1 << 28) /* saturation of completion distances */

enum hs_jkind {
    HS_JK_ANY, /* any value (free-form) */
    HS_JK_OBJECT,
    HS_JK_ARRAY,
    HS_JK_STRING,
    HS_JK_NUMBER,
    HS_JK_INTEGER,
    HS_JK_LITERAL, /* enum, const, boolean, null: a set of JSON texts */
    HS_JK_ANYOF,   /* alternatives that differ in their first byte */
};

struct hs_jprop {
    char *name; /* NUL-terminated UTF-8 */
    char *lit;  /* the name as a JSON string, quotes included */
    int lit_len;
    bool required;
    int node;
};

struct hs_jnode {
    enum hs_jkind kind;
    int minlen; /* bytes of the shortest value */

    /* HS_JK_OBJECT */
    int n_props;
    struct hs_jprop *props; /* in schema order: the order of generation */
    int addl;               /* node for undeclared properties; -1: additionalProperties false */
    bool free_keys;         /* no declared properties: generation writes its own keys */
    int *tail_cost;         /* [n_props + 1] bytes of the required properties from i on */
    int *tail_count;        /* [n_props + 1] how many required properties from i on */
    int *next_req;          /* [n_props + 1] first required property >= i, or n_props */

    /* HS_JK_ARRAY (items) and HS_JK_STRING (characters): the schema's limits
     * (-1: none) and what generation keeps to */
    int items;
    int64_t min_n, max_n;
    int gen_min, gen_max;

    /* HS_JK_LITERAL: texts sorted bytewise (so those sharing a prefix are
     * contiguous) and the values for validation */
    int n_lits;
    char **lits;
    int *lit_lens;
    json_t **values;

    /* HS_JK_ANYOF and HS_JK_ANY: the alternative each first byte selects (-1 none) */
    int n_alts;
    int *alts;
    int16_t *alt_of; /* [256] */
};

struct hs_jschema {
    atomic_int refs;
    int n_nodes, cap_nodes;
    struct hs_jnode *nodes;
    int root;
    /* Free-form building blocks, present in every schema. */
    int any, any_obj, any_arr, any_str, any_key, any_num, any_lit;
};

/* Checks value v against node (the validator's walk, json_validate.c);
 * also used at compile time to keep only the enum values that pass the
 * rest of their schema. */
int hs_jschema_check(const hs_jschema *s, int node, const json_t *v, hs_err *err);

/* ---- the automaton (json_automaton.c) ---- */

enum hs_jframe_kind { HS_JF_VAL, HS_JF_OBJ, HS_JF_ARR, HS_JF_STR, HS_JF_NUM, HS_JF_LIT };

/* One open value. Field use by kind:
 *  VAL: node expected (replaced by the concrete frame on its first byte)
 *  OBJ: i next property index (declared) / keys begun (free); j property
 *       being written; n position in its key; mask key candidates
 *  ARR: n items begun
 *  STR: n characters; i most characters; j fewest; aux UTF-8 continuation
 *       bytes still due; mask bits 0-15 the \u value, 16-23 / 24-31 the
 *       range of the next continuation byte
 *  NUM: n digits of the current part; aux 1 for integers
 *  LIT: n position; [i, j) the candidate texts */
struct hs_jframe {
    uint64_t mask;
    uint16_t node, n, i, j;
    uint8_t kind, phase, fdepth, aux;
};

struct hs_jstate {
    uint16_t depth;
    uint8_t ws;   /* the whitespace run: 0 none, 1 a space, 2 + k a newline and k indentation bytes */
    uint8_t done; /* the root value is closed */
    struct hs_jframe f[HS_J_STACK];
};

void hs_jauto_init(const hs_jschema *s, struct hs_jstate *st);
/* Copies only the live part of the state (the masking walk does this at
 * every trie node). */
void hs_jauto_copy(struct hs_jstate *dst, const struct hs_jstate *src);
/* Advances over one byte; false if the byte cannot continue a valid
 * document (st is then garbage: callers step a copy). */
bool hs_jauto_step(const hs_jschema *s, struct hs_jstate *st, uint8_t b);
/* The bytes so far are a whole document. */
bool hs_jauto_complete(const hs_jschema *s, const struct hs_jstate *st);
/* Fewest bytes that complete the document from st (0 when complete). */
int hs_jauto_distance(const hs_jschema *s, const struct hs_jstate *st);
/* Inside a string, between characters: how many more characters fit, else -1
 * (the masking walk accepts whole trie subtrees of plain text then). */
int hs_jauto_string_room(const struct hs_jstate *st);

/* ---- the vocabulary (json_vocab.c) ---- */

/* Tokens' bytes in a trie stored in preorder: node c's subtree is
 * [c, end[c]), its children start at c + 1, its next sibling at end[c].
 * The ids of the tokens ending at c are toks[tok_lo[c] .. tok_lo[c + 1]),
 * those of its subtree toks[tok_lo[c] .. tok_lo[end[c]]). Node 0 is the root. */
struct hs_jvocab {
    int n_vocab;
    uint32_t *tok_off; /* [n_vocab + 1] each token's bytes in blob (empty: never allowed) */
    uint8_t *blob;
    int32_t *eog;
    int n_eog;

    uint32_t n_nodes;
    uint8_t *byte;
    uint32_t *end;
    uint32_t *tok_lo;  /* [n_nodes + 1] */
    uint16_t *sub_max; /* longest token suffix from this node's byte */
    uint8_t *plain;    /* every suffix from here is whole characters of string text */
    int32_t *toks;
    int max_len;
};

#endif
