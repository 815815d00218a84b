/* Safety checks on every answer (issue 6). Each check that fires is a named
 * flag on the request record:
 *   hazmat_mismatch        an IDLH figure stated for a chemical contradicts the
 *                          shipped NIOSH IDLH table (data/hazmat/idlh.csv),
 *                          after converting ppm <-> mg/m3 with the molecular
 *                          weight; or a level called safe / an exposure limit
 *                          is above the chemical's IDLH
 *   unsafe_recommendation  a configured phrase or PCRE2 pattern appears
 *                          ("do not evacuate", "ignore the warning", ...)
 *   overconfident          certainty words ("definitely", "σίγουρα", ...) in an
 *                          answer whose confidence is below a threshold
 * The rules live in a YAML file (config/safety.yaml); docs/ops.md describes
 * them. Flags are signals for review, not verdicts: they never change the
 * answer.
 *
 * A loaded hs_safety is read-only: any number of threads may call
 * hs_safety_check on it at once (each call has its own match data). A check
 * of a typical answer (1-2 KB) takes well under a millisecond, grows
 * linearly with the text, and never blocks. */
#ifndef HS_OPS_SAFETY_H
#define HS_OPS_SAFETY_H

#include "base/err.h"

#include <stddef.h>

typedef struct hs_safety hs_safety;

enum {
    HS_SAFETY_HAZMAT_MISMATCH = 1u << 0,
    HS_SAFETY_UNSAFE_RECOMMENDATION = 1u << 1,
    HS_SAFETY_OVERCONFIDENT = 1u << 2,
};

/* Reads the rules from a YAML file and the hazmat table it names (paths in
 * it are relative to the working directory, like the server's config). On
 * failure *out is NULL and err reads "FILE:LINE: key: what". */
int hs_safety_load(const char *path, hs_safety **out, hs_err *err);
/* The same from YAML text; name is used in messages ("safety.yaml"). */
int hs_safety_parse(const char *text, size_t len, const char *name, hs_safety **out, hs_err *err);
void hs_safety_free(hs_safety *s);

/* The settings the server needs besides the check. */
double hs_safety_low_prob(const hs_safety *s);        /* confidence.low_prob (default 0.2) */
double hs_safety_confident_below(const hs_safety *s); /* overconfident.below (default 0.5) */
int hs_safety_n_chemicals(const hs_safety *s);        /* rows of the hazmat table; 0 when off */

struct hs_safety_result {
    unsigned flags; /* HS_SAFETY_* bits */
    char names[64]; /* "hazmat_mismatch,unsafe_recommendation,overconfident"; "" when none */
    /* A JSON object with one member per flag that fired, e.g.
     *   {"hazmat_mismatch":[{"chemical":"chlorine","cas":"7782-50-5","kind":"idlh",
     *     "stated":50,"unit":"ppm","stated_in_table_unit":50,"table":10,"table_unit":"ppm",
     *     "text":"IDLH ... 50 ppm"}],
     *    "unsafe_recommendation":[{"rule":"do not evacuate","text":"Do not evacuate"}],
     *    "overconfident":{"confidence":0.31,"below":0.5,"words":["definitely"]}}
     * NULL when no flag fired. Free with hs_safety_result_free. */
    char *details;
};

/* Checks one answer (UTF-8; invalid bytes are read as U+FFFD). confidence
 * is the answer's mean token probability, or < 0 when unknown (then
 * overconfident never fires). out is always filled (and must be freed) even
 * on error; the only errors are HS_ENOMEM and HS_EINVAL (NULL arguments). */
int hs_safety_check(const hs_safety *s, const char *answer, size_t len, double confidence,
                    struct hs_safety_result *out, hs_err *err);
void hs_safety_result_free(struct hs_safety_result *r);

/* The name of one flag bit ("hazmat_mismatch"), NULL for anything else. */
const char *hs_safety_flag_name(unsigned flag);

/* --- the hazmat table --- */

enum hs_hazmat_unit { HS_UNIT_PPM = 0, HS_UNIT_MG_M3 = 1 };

struct hs_hazmat_chem {
    const char *name; /* "chlorine" */
    const char *cas;  /* "7782-50-5"; "" when the table has none */
    double idlh;      /* in unit */
    enum hs_hazmat_unit unit;
    double mw;          /* g/mol; 0 when unknown (no ppm <-> mg/m3 conversion) */
    const char *source; /* "NIOSH IDLH (1994)" */
};

/* A chemical by its name, an alias or its CAS number (case and accents
 * ignored), or NULL. Borrowed; valid until hs_safety_free. */
const struct hs_hazmat_chem *hs_safety_chemical(const hs_safety *s, const char *name_or_cas);

/* Gas concentrations at 25 C and 1 atm (molar volume 24.45 L/mol, as NIOSH
 * uses): mg/m3 = ppm * mw / 24.45. */
#define HS_MOLAR_VOLUME_25C 24.45
double hs_hazmat_ppm_to_mgm3(double ppm, double mw);
double hs_hazmat_mgm3_to_ppm(double mgm3, double mw);

#endif
