/* Inside the safety checker: shared by safety.c (the check), safety_config.c
 * (the YAML), safety_hazmat.c (the IDLH table and its rule) and
 * safety_rules.c (phrases, patterns, certainty words). Not for other modules. */
#ifndef HS_OPS_SAFETY_IMPL_H
#define HS_OPS_SAFETY_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include "ops/safety.h"

#include "base/buf.h"

#include <jansson.h>
#include <pcre2.h>
#include <stdbool.h>
#include <stdint.h>

/* A list of strings from the YAML, each with the line it came from. */
struct hs_sfy_list {
    char **items;
    int *lines;
    int n;
};

/* One hazmat row; pub points into the owned strings. */
struct hs_sfy_chem {
    struct hs_hazmat_chem pub;
    char *name, *cas, *source;
    char **aliases;
    int n_aliases;
};

/* A name, alias or CAS number of a chemical, normalised (hs_sfy_normalize). */
struct hs_sfy_key {
    char *key;
    int chem;
    bool cas;     /* matched with digit boundaries instead of word boundaries */
    bool formula; /* "CO", "H2S", "NaOH": matched case-sensitively */
};

struct hs_safety {
    char *name; /* the YAML's name, for messages */

    /* confidence: and overconfident: */
    double low_prob;
    double below;
    struct hs_sfy_list words;
    pcre2_code *re_words;

    /* hazmat: */
    char *table_path; /* NULL: the check is off */
    int table_line;   /* of table: in the YAML (0 when defaulted) */
    double tolerance; /* relative */
    int window;       /* characters between a figure and its cue or chemical */
    /* idlh: the figure is the IDLH; safe: the figure is a level called safe
     * or a limit, which the IDLH caps; other: the figure is something else
     * (a lethal or odour level, the LEL) and is left alone */
    struct hs_sfy_list idlh_terms, safe_terms, other_terms;
    struct hs_sfy_chem *chems;
    int n_chems;
    struct hs_sfy_key *keys;
    int n_keys;
    pcre2_code *re_chem;   /* every key, longest first, each ending in (*MARK:k) */
    pcre2_code *re_figure; /* a number (or range) with a unit */
    pcre2_code *re_unit;   /* a unit alone (table headers) */
    pcre2_code *re_bare;   /* a number (or range) at the start of a table cell */
    pcre2_code *re_link;   /* what may stand between a figure and its chemical: " for ", " of " */
    pcre2_code *re_conv;   /* what may stand between a figure and its conversion: " (", " / " */
    pcre2_code *re_idlh, *re_safe, *re_other;

    /* unsafe_recommendation: */
    struct hs_sfy_list phrases, patterns, negations;
    pcre2_code *re_phrases;   /* all phrases, each ending in (*MARK:i) */
    pcre2_code *re_negated;   /* a negation and at most two words, at the end */
    pcre2_code **re_patterns; /* one per pattern, matched on the answer as written */

    /* Limits for every match, so that no pattern (a user's regex least of
     * all) can make a check slow: shared read-only by all threads. */
    pcre2_match_context *mctx;
};

/* At most this many entries per flag in the details. */
#define HS_SFY_MAX_FOUND 8

/* --- text --- */

/* An answer in two forms: as written (valid UTF-8) and normalised, the form
 * every rule but the user's regex patterns reads: NFKD with marks (accents)
 * and default-ignorable characters removed and dashes, quotes and spaces
 * lumped to ASCII (utf8proc). Case is kept: matching is caseless except for
 * chemical formulas. map[i] is the offset in orig of the character that
 * gave byte i of norm, so findings can quote the answer as written. */
struct hs_sfy_text {
    const char *orig;
    size_t olen;
    char *norm;
    size_t nlen;
    uint32_t *map; /* nlen + 1 entries; map[nlen] == olen */
};

/* Fills x from s (invalid UTF-8 read as U+FFFD; *copy is set when a fixed
 * copy had to be made: free it). HS_OK or HS_ENOMEM; free with
 * hs_sfy_text_free. Texts over 4 GiB are cut (offsets are 32-bit). */
int hs_sfy_text_init(struct hs_sfy_text *x, const char *s, size_t len, char **copy);
void hs_sfy_text_free(struct hs_sfy_text *x);

/* The normalised form alone (for config terms): a new string (hs_free), or
 * NULL when out of memory. */
char *hs_sfy_normalize(const char *s, size_t len, size_t *out_len);
/* Lower case per code point, white space runs made one space, ends
 * trimmed: how names and terms are compared (the regexes are caseless). A
 * new string, or NULL (out of memory, invalid UTF-8). */
char *hs_sfy_lower(const char *s, size_t len);
/* Valid UTF-8: s itself when it already is (*copy NULL), else a new copy
 * with U+FFFD for each bad byte (*copy set; free it). NULL: out of memory. */
const char *hs_sfy_valid_utf8(const char *s, size_t len, char **copy, size_t *out_len);

/* Appends s (normalised, len bytes) to a pattern, escaped so that it
 * matches itself, with every run of spaces matching any run of white space. */
int hs_sfy_put_literal(hs_buf *re, const char *s, size_t len);

/* Compiles with UTF, UCP and (unless case_sensitive) CASELESS, then JIT
 * where available. On failure sets err to "what: PCRE2 error at offset N: msg". */
int hs_sfy_compile(pcre2_code **out, const char *pattern, size_t len, bool case_sensitive, const char *what,
                   hs_err *err);

/* A trie of literals as regex text, for caseless matching: each key ends
 * in (?!\w) (unless prefix) and (*MARK:id); a longer key wins over its
 * prefix. keys[i].key are replaced (lower-cased copies, freed inside). */
struct hs_sfy_trie_key {
    char *key; /* normalised */
    int id;
    bool prefix;
};
int hs_sfy_trie(hs_buf *re, struct hs_sfy_trie_key *keys, int n);

/* An alternation of normalised literals, each one ending in (*MARK:index),
 * longest first so that "chlorine dioxide" wins over "chlorine". NULL when
 * the list is empty. The _ex form puts the alternation in a group and adds
 * suffix (regex text) after it. */
int hs_sfy_compile_terms(pcre2_code **out, const struct hs_sfy_list *l, const char *what, hs_err *err);
int hs_sfy_compile_terms_ex(pcre2_code **out, const struct hs_sfy_list *l, const char *suffix,
                            const char *what, hs_err *err);

/* The sentence of text[0, len) around pos: [*a, *b). Sentences end at a
 * line break and at . ! ? ; and the Greek ano teleia when a space or the
 * end follows (so "2.5 ppm" is one sentence). */
void hs_sfy_sentence(const char *text, size_t len, size_t pos, size_t *a, size_t *b);

/* Every match runs with PCRE2_NO_UTF_CHECK: the texts are made valid UTF-8
 * once (hs_sfy_text_init) and every start and end offset given to PCRE2 is
 * a character boundary; checking the whole subject on each call would make
 * a scan quadratic.
 *
 * The next match of re in subject from *start: HS_OK with the match in
 * md's ovector and *start moved past it (past one character for an empty
 * match), 1 when there is none (or a limit was hit), HS_ENOMEM. */
int hs_sfy_next(const hs_safety *s, const pcre2_code *re, const char *subject, size_t len, size_t *start,
                pcre2_match_data *md);
/* The (*MARK:n) of the last match, or -1. */
int hs_sfy_mark(pcre2_match_data *md);

/* A short, valid UTF-8 excerpt of t[a, b) as a JSON string (t valid UTF-8). */
json_t *hs_sfy_quote(const char *t, size_t a, size_t b);
/* The same of the answer as written, for norm[a, b). */
json_t *hs_sfy_excerpt(const struct hs_sfy_text *x, size_t a, size_t b);

/* --- parts of the build and of the check --- */

int hs_sfy_hazmat_load(hs_safety *s, hs_err *err); /* the CSV named by table_path */
int hs_sfy_hazmat_parse(hs_safety *s, const char *text, size_t len, const char *name, hs_err *err);
int hs_sfy_hazmat_compile(hs_safety *s, hs_err *err);
void hs_sfy_hazmat_free(hs_safety *s);
int hs_sfy_rules_compile(hs_safety *s, hs_err *err);

/* Each appends what it found to a JSON array/object it creates in *found
 * (NULL when nothing). md is match data large enough for every pattern. */
int hs_sfy_check_hazmat(const hs_safety *s, const struct hs_sfy_text *x, pcre2_match_data *md,
                        json_t **found);
int hs_sfy_check_unsafe(const hs_safety *s, const struct hs_sfy_text *x, pcre2_match_data *md,
                        json_t **found);
int hs_sfy_check_words(const hs_safety *s, const struct hs_sfy_text *x, pcre2_match_data *md, json_t **found);

void hs_sfy_list_free(struct hs_sfy_list *l);

#endif
