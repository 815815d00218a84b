/* ops/safety: each rule with true positives and true negatives, ppm <->
 * mg/m3 conversions checked against NIOSH's own published pairs and
 * against the formula worked here, Greek text, CAS numbers, the shipped
 * NIOSH table against the NIOSH values, and malformed YAML and CSV with
 * their FILE:LINE messages. The shipped config/safety.yaml is the one
 * tested: the server loads it, so its rules are what must work. */
#include "test_util.h"

#include "ops/safety.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static hs_safety *g_rules;

static int load_rules(void **state)
{
    (void)state;
    hs_err err;
    hs_err_clear(&err);
    if (hs_safety_load("config/safety.yaml", &g_rules, &err) != HS_OK) {
        print_error("config/safety.yaml: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int free_rules(void **state)
{
    (void)state;
    hs_safety_free(g_rules);
    return 0;
}

/* Checks text with the shipped rules; returns the flags, details in *d
 * (a parsed JSON object or NULL; json_decref it). */
static unsigned check(const char *text, double confidence, json_t **d)
{
    struct hs_safety_result r;
    hs_err err;
    assert_int_equal(hs_safety_check(g_rules, text, strlen(text), confidence, &r, &err), HS_OK);
    if (d)
        *d = r.details ? json_loads(r.details, 0, NULL) : NULL;
    if (r.flags)
        assert_non_null(r.details);
    else
        assert_null(r.details);
    unsigned f = r.flags;
    hs_safety_result_free(&r);
    return f;
}

static unsigned flags_of(const char *text)
{
    return check(text, -1, NULL);
}

/* --- the table --- */

/* The values the issue names and that NIOSH lists (IDLH documentation,
 * May 1994 revision, and the 2016/2017 IDLH value profiles). */
static void the_table_holds_the_niosh_values(void **state)
{
    (void)state;
    struct {
        const char *name;
        double idlh;
        enum hs_hazmat_unit unit;
    } want[] = {
        {"chlorine", 10, HS_UNIT_PPM},          {"ammonia", 300, HS_UNIT_PPM},
        {"hydrogen sulfide", 100, HS_UNIT_PPM}, {"carbon monoxide", 1200, HS_UNIT_PPM},
        {"sulfur dioxide", 100, HS_UNIT_PPM},   {"hydrogen cyanide", 50, HS_UNIT_PPM},
        {"hydrogen chloride", 50, HS_UNIT_PPM}, {"hydrogen fluoride", 30, HS_UNIT_PPM},
        {"phosgene", 2, HS_UNIT_PPM},           {"nitrogen dioxide", 13, HS_UNIT_PPM},
        {"benzene", 500, HS_UNIT_PPM},          {"acetone", 2500, HS_UNIT_PPM},
        {"acetaldehyde", 2000, HS_UNIT_PPM},    {"chlorine dioxide", 5, HS_UNIT_PPM},
        {"sulfuric acid", 15, HS_UNIT_MG_M3},   {"sodium hydroxide", 10, HS_UNIT_MG_M3},
        {"n-butane", 1600, HS_UNIT_PPM},        {"acetonitrile", 137, HS_UNIT_PPM},
    };
    assert_true(hs_safety_n_chemicals(g_rules) >= 40);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const struct hs_hazmat_chem *c = hs_safety_chemical(g_rules, want[i].name);
        assert_non_null(c);
        assert_string_equal(c->name, want[i].name);
        assert_true(c->idlh == want[i].idlh);
        assert_int_equal(c->unit, want[i].unit);
        assert_true(c->mw > 0);
        assert_non_null(strstr(c->source, "NIOSH"));
    }
    /* by CAS number, Greek name in any case and accents, formula, alias */
    assert_string_equal(hs_safety_chemical(g_rules, "7664-41-7")->name, "ammonia");
    assert_string_equal(hs_safety_chemical(g_rules, "ΧΛΩΡΙΟ")->name, "chlorine");
    assert_string_equal(hs_safety_chemical(g_rules, "υδροθειο")->name, "hydrogen sulfide");
    assert_string_equal(hs_safety_chemical(g_rules, "H₂S")->name, "hydrogen sulfide");
    assert_string_equal(hs_safety_chemical(g_rules, "Hydrogen Sulphide")->name, "hydrogen sulfide");
    /* formulas keep their case: "co" is not carbon monoxide */
    assert_null(hs_safety_chemical(g_rules, "co"));
    assert_string_equal(hs_safety_chemical(g_rules, "CO")->name, "carbon monoxide");
    assert_null(hs_safety_chemical(g_rules, "vinyl chloride")); /* Ca, no IDLH number: not in the table */
}

/* --- conversions --- */

static void ppm_and_mg_m3_convert_with_the_molecular_weight(void **state)
{
    (void)state;
    /* The formula, worked here: mg/m3 = ppm * MW / 24.45 (25 C, 1 atm). */
    assert_true(fabs(hs_hazmat_ppm_to_mgm3(10, 70.90) - 10 * 70.90 / 24.45) < 1e-12);
    assert_true(fabs(hs_hazmat_mgm3_to_ppm(15, 98.08) - 15 * 24.45 / 98.08) < 1e-12);
    for (double ppm = 0.1; ppm < 1e5; ppm *= 3.7)
        assert_true(fabs(hs_hazmat_mgm3_to_ppm(hs_hazmat_ppm_to_mgm3(ppm, 34.08), 34.08) - ppm) < 1e-9 * ppm);
    /* NIOSH's own pairs (the RELs in its IDLH documentation), from the
     * molecular weights in the shipped table: within 1% of NIOSH's
     * rounding. CO 200 ppm = 229 mg/m3, acetone 250 ppm = 590 mg/m3,
     * chlorine 0.5 ppm = 1.45 mg/m3, SO2 5 ppm = 13 mg/m3. */
    struct {
        const char *name;
        double ppm, mg;
    } pairs[] = {{"carbon monoxide", 200, 229},
                 {"acetone", 250, 590},
                 {"chlorine", 0.5, 1.45},
                 {"sulfur dioxide", 5, 13}};
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        const struct hs_hazmat_chem *c = hs_safety_chemical(g_rules, pairs[i].name);
        assert_non_null(c);
        double mg = hs_hazmat_ppm_to_mgm3(pairs[i].ppm, c->mw);
        assert_true(fabs(mg - pairs[i].mg) / pairs[i].mg < 0.015);
    }
}

/* --- hazmat_mismatch: true positives --- */

static json_t *first_hazmat(json_t *d)
{
    json_t *a = json_object_get(d, "hazmat_mismatch");
    assert_true(json_is_array(a));
    return json_array_get(a, 0);
}

static void a_wrong_idlh_is_flagged_with_details(void **state)
{
    (void)state;
    json_t *d;
    assert_int_equal(check("The IDLH for chlorine is 50 ppm.", -1, &d), HS_SAFETY_HAZMAT_MISMATCH);
    json_t *h = first_hazmat(d);
    assert_string_equal(json_string_value(json_object_get(h, "chemical")), "chlorine");
    assert_string_equal(json_string_value(json_object_get(h, "cas")), "7782-50-5");
    assert_string_equal(json_string_value(json_object_get(h, "kind")), "idlh");
    assert_true(json_number_value(json_object_get(h, "stated")) == 50);
    assert_true(json_number_value(json_object_get(h, "table")) == 10);
    assert_string_equal(json_string_value(json_object_get(h, "table_unit")), "ppm");
    assert_string_equal(json_string_value(json_object_get(h, "text")), "The IDLH for chlorine is 50 ppm.");
    json_decref(d);
}

/* A figure in the other unit is converted before comparing. */
static void a_wrong_figure_in_the_other_unit_is_flagged(void **state)
{
    (void)state;
    json_t *d;
    /* 100 mg/m3 of chlorine is 100 * 24.45 / 70.90 = 34.5 ppm, not 10 */
    assert_int_equal(check("Chlorine: IDLH 100 mg/m3.", -1, &d), HS_SAFETY_HAZMAT_MISMATCH);
    json_t *h = first_hazmat(d);
    assert_string_equal(json_string_value(json_object_get(h, "unit")), "mg/m3");
    double conv = json_number_value(json_object_get(h, "stated_in_table_unit"));
    assert_true(fabs(conv - 100 * 24.45 / 70.90) < 0.01);
    json_decref(d);
    /* sulfuric acid's table value is 15 mg/m3: 50 ppm is 50 * 98.08 / 24.45 = 200.6 mg/m3 */
    assert_int_equal(check("The IDLH of sulfuric acid is 50 ppm.", -1, &d), HS_SAFETY_HAZMAT_MISMATCH);
    h = first_hazmat(d);
    assert_string_equal(json_string_value(json_object_get(h, "table_unit")), "mg/m3");
    assert_true(fabs(json_number_value(json_object_get(h, "stated_in_table_unit")) - 50 * 98.08 / 24.45) <
                0.01);
    json_decref(d);
    /* ppb and µg/m³ are scaled: 30 000 ppb is 30 ppm */
    assert_int_equal(flags_of("Chlorine IDLH: 30,000 ppb."), HS_SAFETY_HAZMAT_MISMATCH);
    assert_int_equal(flags_of("Chlorine IDLH: 10,000 µg/m³."), HS_SAFETY_HAZMAT_MISMATCH); /* 3.4 ppm */
    assert_int_equal(flags_of("Chlorine IDLH: 10 ppb."), HS_SAFETY_HAZMAT_MISMATCH);
}

static void greek_cas_and_formula_mentions_are_found(void **state)
{
    (void)state;
    json_t *d;
    assert_int_equal(check("Η τιμή IDLH του χλωρίου είναι 30 ppm.", -1, &d), HS_SAFETY_HAZMAT_MISMATCH);
    /* the excerpt quotes the answer as written, accents and all */
    assert_string_equal(json_string_value(json_object_get(first_hazmat(d), "text")),
                        "Η τιμή IDLH του χλωρίου είναι 30 ppm.");
    json_decref(d);
    assert_int_equal(flags_of("ΑΜΜΩΝΙΑ: άμεσα επικίνδυνη συγκέντρωση (IDLH) 50 ppm"),
                     HS_SAFETY_HAZMAT_MISMATCH);
    assert_int_equal(flags_of("Το υδρόθειο είναι άμεσα επικίνδυνο για τη ζωή στα 500 ppm."),
                     HS_SAFETY_HAZMAT_MISMATCH);
    assert_int_equal(flags_of("CAS 7782-50-5 has an IDLH of 25 ppm."), HS_SAFETY_HAZMAT_MISMATCH);
    assert_int_equal(flags_of("CAS 7782\u201350\u20135: IDLH 25 ppm"),
                     HS_SAFETY_HAZMAT_MISMATCH); /* en dashes */
    /* H2S's old 1970s (SCP) IDLH was 300 ppm; the current value is 100 */
    assert_int_equal(flags_of("H2S IDLH = 300 ppm"), HS_SAFETY_HAZMAT_MISMATCH);
    assert_int_equal(flags_of("H\u2082S IDLH = 300 ppm"), HS_SAFETY_HAZMAT_MISMATCH); /* H₂S */
    /* the figure before the chemical */
    assert_int_equal(flags_of("An IDLH of 5 ppm applies to ammonia."), HS_SAFETY_HAZMAT_MISMATCH);
}

static void safe_levels_and_limits_above_the_idlh_are_flagged(void **state)
{
    (void)state;
    json_t *d;
    assert_int_equal(check("Hydrogen sulfide is safe up to 500 ppm.", -1, &d), HS_SAFETY_HAZMAT_MISMATCH);
    assert_string_equal(json_string_value(json_object_get(first_hazmat(d), "kind")), "safe");
    json_decref(d);
    assert_int_equal(flags_of("The exposure limit for ammonia is 500 ppm."), HS_SAFETY_HAZMAT_MISMATCH);
    assert_int_equal(flags_of("Το χλώριο είναι ακίνδυνο στα 50 ppm."), HS_SAFETY_HAZMAT_MISMATCH);
    assert_int_equal(flags_of("Carbon monoxide is only dangerous above 5000 ppm."),
                     HS_SAFETY_HAZMAT_MISMATCH);
}

/* Several chemicals in a sentence: each figure goes to its own. */
static void each_figure_goes_to_its_chemical(void **state)
{
    (void)state;
    assert_int_equal(flags_of("Chlorine's IDLH is 10 ppm and ammonia's is 300 ppm."), 0);
    assert_int_equal(flags_of("The IDLH is 10 ppm for chlorine and 300 ppm for ammonia."), 0);
    assert_int_equal(flags_of("IDLH values: chlorine 10 ppm, ammonia 300 ppm, hydrogen sulfide 100 ppm."), 0);
    json_t *d;
    assert_int_equal(check("The IDLH is 300 ppm for chlorine and 10 ppm for ammonia.", -1, &d),
                     HS_SAFETY_HAZMAT_MISMATCH);
    json_t *a = json_object_get(d, "hazmat_mismatch");
    assert_int_equal(json_array_size(a), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 0), "chemical")), "chlorine");
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 1), "chemical")), "ammonia");
    json_decref(d);
}

static void markdown_tables_are_read_by_column(void **state)
{
    (void)state;
    const char *bad = "| Chemical | PEL (ppm) | IDLH (ppm) |\n"
                      "|---|---|---|\n"
                      "| Chlorine | 1 | 30 |\n"
                      "| Ammonia | 50 | 300 |\n";
    json_t *d;
    assert_int_equal(check(bad, -1, &d), HS_SAFETY_HAZMAT_MISMATCH);
    json_t *a = json_object_get(d, "hazmat_mismatch");
    assert_int_equal(json_array_size(a), 1);
    assert_true(json_number_value(json_object_get(json_array_get(a, 0), "stated")) == 30);
    json_decref(d);
    const char *good = "| Substance | IDLH |\n| --- | --- |\n| Chlorine | 10 ppm (29 mg/m³) |\n"
                       "| Sulfuric acid | 15 mg/m3 |\n| Carbon monoxide | 1,200 ppm |\n";
    assert_int_equal(flags_of(good), 0);
}

/* --- hazmat_mismatch: true negatives --- */

static void correct_figures_pass_in_either_unit(void **state)
{
    (void)state;
    const char *ok[] = {
        "The IDLH for chlorine is 10 ppm.",
        "The IDLH of chlorine is 10 ppm (29 mg/m3).", /* 10 * 70.90 / 24.45 = 29.0 */
        "Chlorine: IDLH 29 mg/m³.",
        "NIOSH lists an IDLH of 1,200 ppm for carbon monoxide.",
        "NIOSH lists an IDLH of 1.200 ppm for CO.", /* Greek thousands separator */
        "Sulfuric acid IDLH: 15 mg/m3 (3.7 ppm).",  /* 3.7 * 98.08 / 24.45 = 14.8 */
        "Η τιμή IDLH της αμμωνίας είναι 300 ppm.",
        "The IDLH of hydrogen sulfide is about 105 ppm.", /* within 10% */
        "The IDLH of carbon monoxide is 1000-1500 ppm.",  /* a range that holds 1200 */
        "CO2 IDLH: 4% by volume.",                        /* 40,000 ppm */
        "The IDLH of nitrogen dioxide is 13 ppm (24 mg/m3).",
        "Chlorine is safe below 0.5 ppm, the exposure limit; its IDLH is 10 ppm.",
        "The OSHA PEL for chlorine is 1 ppm and the IDLH is 10 ppm.",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        unsigned f = flags_of(ok[i]);
        if (f)
            print_error("flagged: %s\n", ok[i]);
        assert_int_equal(f, 0);
    }
}

static void figures_that_are_not_exposure_figures_are_left_alone(void **state)
{
    (void)state;
    const char *ok[] = {
        "Evacuate 10 km downwind of the chlorine leak.",
        "Chlorine leak: keep 800 m away for 30 minutes; the IDLH is 10 ppm.",
        "Chlorine at 1000 ppm is lethal within minutes.", /* lethal, not an IDLH */
        "Chlorine's IDLH is 10 ppm, and 1000 ppm is lethal within minutes.",
        "The IDLH of CO is 1200 ppm; at 400 ppm headaches start.",
        "The IDLH of CO is 1,200 ppm while at 400 ppm headaches start.",
        "The odor threshold of hydrogen sulfide is 0.01 ppm.",
        "Vinyl chloride IDLH: 5 ppm.",               /* not in the table */
        "My co-workers said the IDLH is 5 ppm.",     /* "co" is not CO */
        "Chlorine is used to treat water at 2 ppm.", /* no cue */
        "The IDLH concept was defined in 1974; chlorine levels reached 50 ppm.",
        "Ammonia has a LEL of 15% by volume; its IDLH is 300 ppm.",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        unsigned f = flags_of(ok[i]);
        if (f)
            print_error("flagged: %s\n", ok[i]);
        assert_int_equal(f, 0);
    }
}

/* --- unsafe_recommendation --- */

static void unsafe_advice_is_flagged(void **state)
{
    (void)state;
    const char *bad[] = {
        "You can ignore the warning and keep working.",
        "IGNORE   THE\nALARM, it is a drill.",
        "Do not evacuate the building.",
        "Don’t evacuate; stay where you are.",
        "There is no need to evacuate.",
        "You may re-enter without a respirator after ten minutes.",
        "Spray water on the burning sodium.",
        "Αγνοήστε την προειδοποίηση.",
        "ΔΕΝ ΧΡΕΙΑΖΕΤΑΙ ΕΚΚΕΝΩΣΗ.",
        "Μην εκκενώσετε το κτίριο.",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        unsigned f = flags_of(bad[i]);
        if (f != HS_SAFETY_UNSAFE_RECOMMENDATION)
            print_error("not flagged: %s\n", bad[i]);
        assert_int_equal(f, HS_SAFETY_UNSAFE_RECOMMENDATION);
    }
    json_t *d;
    check("Stay calm. Ignore the warning from the plant.", -1, &d);
    json_t *h = json_array_get(json_object_get(d, "unsafe_recommendation"), 0);
    assert_string_equal(json_string_value(json_object_get(h, "rule")), "ignore the warning");
    assert_string_equal(json_string_value(json_object_get(h, "text")), "Ignore the warning from the plant.");
    json_decref(d);
}

static void safe_advice_is_not_flagged(void **state)
{
    (void)state;
    const char *ok[] = {
        "Never ignore the warning.",
        "Do not ignore the alarm; evacuate now.",
        "You should not ignore the warnings.",
        "Do not evacuate toward the plume; move upwind.",
        "Don't evacuate until the fire service tells you the route.",
        "Evacuate immediately and call 112.",
        "Re-enter only with a breathing apparatus.",
        "A warning light that people ignore is useless.",
        "Μην αγνοήσετε την προειδοποίηση.",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        unsigned f = flags_of(ok[i]);
        if (f)
            print_error("flagged: %s\n", ok[i]);
        assert_int_equal(f, 0);
    }
}

/* --- overconfident --- */

static void certainty_with_low_confidence_is_flagged(void **state)
{
    (void)state;
    json_t *d;
    assert_int_equal(check("The tank will definitely hold. It is 100% sealed.", 0.31, &d),
                     HS_SAFETY_OVERCONFIDENT);
    json_t *o = json_object_get(d, "overconfident");
    assert_true(fabs(json_number_value(json_object_get(o, "confidence")) - 0.31) < 1e-9);
    assert_true(json_number_value(json_object_get(o, "below")) == 0.5);
    json_t *w = json_object_get(o, "words");
    assert_int_equal(json_array_size(w), 2);
    assert_string_equal(json_string_value(json_array_get(w, 0)), "definitely");
    assert_string_equal(json_string_value(json_array_get(w, 1)), "100%");
    json_decref(d);
    assert_int_equal(check("Η περιοχή είναι ΣΙΓΟΥΡΑ ασφαλής.", 0.2, NULL), HS_SAFETY_OVERCONFIDENT);
    assert_int_equal(check("Είναι απολύτως ασφαλές.", 0.2, NULL), HS_SAFETY_OVERCONFIDENT);
}

static void certainty_is_fine_when_the_model_is_sure_or_unknown(void **state)
{
    (void)state;
    const char *t = "The valve is definitely closed.";
    assert_int_equal(check(t, 0.9, NULL), 0);                           /* confident */
    assert_int_equal(check(t, 0.5, NULL), 0);                           /* on the line: not below it */
    assert_int_equal(check(t, -1, NULL), 0);                            /* unknown */
    assert_int_equal(check("The valve may be closed.", 0.1, NULL), 0);  /* unsure, says so */
    assert_int_equal(check("Growth of 1100% was seen.", 0.1, NULL), 0); /* not "100%" */
    assert_true(hs_safety_confident_below(g_rules) == 0.5);
    assert_true(hs_safety_low_prob(g_rules) == 0.2);
}

/* --- all flags, odd input, threads --- */

static void flags_combine_in_a_fixed_order(void **state)
{
    (void)state;
    const char *t = "Ignore the warning: chlorine is definitely safe at 50 ppm.";
    struct hs_safety_result r;
    hs_err err;
    assert_int_equal(hs_safety_check(g_rules, t, strlen(t), 0.2, &r, &err), HS_OK);
    assert_int_equal(r.flags,
                     HS_SAFETY_HAZMAT_MISMATCH | HS_SAFETY_UNSAFE_RECOMMENDATION | HS_SAFETY_OVERCONFIDENT);
    assert_string_equal(r.names, "hazmat_mismatch,unsafe_recommendation,overconfident");
    hs_safety_result_free(&r);
    assert_string_equal(hs_safety_flag_name(HS_SAFETY_OVERCONFIDENT), "overconfident");
    assert_null(hs_safety_flag_name(3));
    /* nothing to say: empty names, no details */
    assert_int_equal(hs_safety_check(g_rules, "", 0, 0.1, &r, &err), HS_OK);
    assert_int_equal(r.flags, 0);
    assert_string_equal(r.names, "");
    assert_null(r.details);
    hs_safety_result_free(&r);
    assert_int_equal(hs_safety_check(NULL, "x", 1, 0.1, &r, &err), HS_EINVAL);
    hs_safety_result_free(&r);
}

static void invalid_utf8_and_nul_bytes_are_survived(void **state)
{
    (void)state;
    const char t[] = "The IDLH for chlorine is 50 ppm.\xff\xfe\0 Ignore the warning \xc3";
    struct hs_safety_result r;
    hs_err err;
    assert_int_equal(hs_safety_check(g_rules, t, sizeof(t) - 1, -1, &r, &err), HS_OK);
    assert_int_equal(r.flags, HS_SAFETY_HAZMAT_MISMATCH | HS_SAFETY_UNSAFE_RECOMMENDATION);
    json_t *d = json_loads(r.details, 0, NULL); /* valid JSON despite the bytes */
    assert_non_null(d);
    json_decref(d);
    hs_safety_result_free(&r);
}

struct worker {
    int n_flagged;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    const char *texts[] = {"The IDLH for chlorine is 50 ppm.", "Ignore the warning.", "All is well.",
                           "Η τιμή IDLH της αμμωνίας είναι 300 ppm."};
    for (int i = 0; i < 200; i++) {
        struct hs_safety_result r;
        const char *t = texts[i % 4];
        if (hs_safety_check(g_rules, t, strlen(t), 0.9, &r, NULL) == HS_OK && r.flags)
            w->n_flagged++;
        hs_safety_result_free(&r);
    }
    return NULL;
}

/* One loaded rule set, four threads checking at once. */
static void checks_run_in_parallel(void **state)
{
    (void)state;
    pthread_t th[4];
    struct worker w[4] = {{0}};
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].n_flagged, 100); /* texts 0 and 1 of every 4 */
    }
}

/* A long answer stays cheap (the check runs after every answer). */
static void a_long_answer_is_checked_quickly(void **state)
{
    (void)state;
    char *big = malloc(64 * 1024);
    assert_non_null(big);
    size_t n = 0;
    const char *para =
        "Chlorine and ammonia were released; keep people 500 m upwind. The IDLH of chlorine is "
        "10 ppm and exposure above it needs breathing apparatus. ";
    while (n + strlen(para) + 1 < 64 * 1024) {
        memcpy(big + n, para, strlen(para));
        n += strlen(para);
    }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    struct hs_safety_result r;
    assert_int_equal(hs_safety_check(g_rules, big, n, 0.3, &r, NULL), HS_OK);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
    print_message("[   INFO   ] 64 KiB answer checked in %.1f ms (sanitizers slow this down)\n", ms);
    assert_int_equal(r.flags, 0);
    assert_true(ms < 2000);
    hs_safety_result_free(&r);
    free(big);
}

/* --- the YAML and the CSV --- */

static void expect_parse_error(const char *yaml, const char *want)
{
    hs_safety *s = (hs_safety *)1;
    hs_err err;
    hs_err_clear(&err);
    int rc = hs_safety_parse(yaml, strlen(yaml), "safety.yaml", &s, &err);
    if (rc == HS_OK || !strstr(err.msg, want))
        print_error("yaml:\n%s\nwant: %s\ngot (%d): %s\n", yaml, want, rc, err.msg);
    assert_int_not_equal(rc, HS_OK);
    assert_null(s);
    assert_non_null(strstr(err.msg, want));
}

static void malformed_yaml_is_refused_with_its_line(void **state)
{
    (void)state;
    expect_parse_error("hazmat:\n  table: null\n  tolerence: 0.1\n",
                       "safety.yaml:3: hazmat.tolerence: unknown key");
    expect_parse_error("hazmat:\n  table: null\n  tolerance: lots\n",
                       "safety.yaml:3: hazmat.tolerance: expected a number");
    expect_parse_error("hazmat:\n  table: null\n  window: 2.5\n", "safety.yaml:3: hazmat.window");
    expect_parse_error(
        "hazmat: {table: null}\nunsafe_recommendation:\n  patterns:\n    - 'ok'\n    - '(unclosed'\n",
        "safety.yaml:5: unsafe_recommendation.patterns[1]: PCRE2 error at offset");
    expect_parse_error("hazmat: {table: null}\noverconfident:\n  words: [sure, [nested]]\n",
                       "safety.yaml:3: overconfident.words[1]: expected a non-empty string");
    expect_parse_error("hazmat: {table: null}\noverconfident:\n  below: 1.5\n",
                       "safety.yaml:3: overconfident.below");
    expect_parse_error("hazmat: {table: null}\nconfidence: {low_prob: 0}\n",
                       "safety.yaml:2: confidence.low_prob");
    expect_parse_error("hazmat: {table: null}\nunsafe_recommendation:\n  phrases: &a [x]\n  patterns: *a\n",
                       "aliases are not supported");
    expect_parse_error("hazmat: {table: null}\nextra: 1\n", "safety.yaml:2: extra: unknown key");
    expect_parse_error("hazmat:\n  table: null\n idlh_terms: [x]\n", "safety.yaml:3:");
    expect_parse_error("- a\n- b\n", "safety.yaml:1: (top level): expected a mapping");
    expect_parse_error("hazmat:\n  table: no/such/table.csv\n",
                       "safety.yaml:2: hazmat.table: no/such/table.csv: cannot open");
    expect_parse_error("hazmat: {table: null}\noverconfident: {words: ['it''s']}\n", "single-quoted");
    expect_parse_error("hazmat: {table: null}\n\x01", "control character");
}

static void an_empty_file_and_a_disabled_table_work(void **state)
{
    (void)state;
    hs_safety *s;
    hs_err err;
    /* no rules but the defaults: the table at its default path, no terms */
    assert_int_equal(hs_safety_parse("# nothing\n", 10, "empty.yaml", &s, &err), HS_OK);
    assert_true(hs_safety_n_chemicals(s) >= 40);
    struct hs_safety_result r;
    assert_int_equal(
        hs_safety_check(s, "The IDLH for chlorine is 50 ppm. Ignore the warning.", 52, 0.1, &r, &err), HS_OK);
    assert_int_equal(r.flags, 0);
    hs_safety_result_free(&r);
    hs_safety_free(s);
    const char *y = "hazmat:\n  table: ~\n  idlh_terms: [IDLH]\n";
    assert_int_equal(hs_safety_parse(y, strlen(y), "off.yaml", &s, &err), HS_OK);
    assert_int_equal(hs_safety_n_chemicals(s), 0);
    assert_null(hs_safety_chemical(s, "chlorine"));
    hs_safety_free(s);
}

/* Writes csv to a temporary file and loads it through a YAML naming it. */
static int parse_csv(const char *csv, hs_safety **s, hs_err *err)
{
    char *path = hs_test_tmpfile("table.csv");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(csv, 1, strlen(csv), f);
    fclose(f);
    char yaml[1024];
    snprintf(yaml, sizeof(yaml), "hazmat:\n  table: %s\n  idlh_terms: [IDLH]\n", path);
    int rc = hs_safety_parse(yaml, strlen(yaml), "t.yaml", s, err);
    free(path);
    return rc;
}

static void expect_csv_error(const char *csv, const char *want)
{
    hs_safety *s;
    hs_err err;
    hs_err_clear(&err);
    int rc = parse_csv(csv, &s, &err);
    if (rc == HS_OK || !strstr(err.msg, want))
        print_error("csv:\n%s\nwant: %s\ngot (%d): %s\n", csv, want, rc, err.msg);
    assert_int_not_equal(rc, HS_OK);
    assert_non_null(strstr(err.msg, want));
}

static void malformed_csv_is_refused_with_its_line(void **state)
{
    (void)state;
    const char *h = "name,cas,idlh,unit,mw,aliases,source\n";
    char buf[1024];
    struct {
        const char *rows;
        const char *want;
    } cases[] = {
        {"chlorine,7782-50-4,10,ppm,70.9,,x\n", "table.csv:2: cas: '7782-50-4' is not a CAS number"},
        {"chlorine,7782-50-5,ten,ppm,70.9,,x\n", "table.csv:2: idlh: 'ten' is not a positive number"},
        {"chlorine,7782-50-5,-1,ppm,70.9,,x\n", "table.csv:2: idlh"},
        {"chlorine,7782-50-5,10,ppb,70.9,,x\n", "table.csv:2: unit: 'ppb' is not ppm or mg/m3"},
        {"chlorine,7782-50-5,10,ppm,heavy,,x\n", "table.csv:2: mw"},
        {"chlorine,7782-50-5,10,ppm\n", "table.csv:2: 4 fields where the header has 7"},
        {"\nchlorine,7782-50-5,10,ppm,70.9,\"Cl2,x\n", "table.csv:3: a quoted field does not end"},
        {"chlorine,7782-50-5,10,ppm,70.9,gas,x\nammonia,7664-41-7,300,ppm,17,gas,x\n",
         "table.csv:3: 'gas' already names another chemical"},
        {",7782-50-5,10,ppm,70.9,,x\n", "table.csv:2: name: empty"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(buf, sizeof(buf), "%s%s", h, cases[i].rows);
        expect_csv_error(buf, cases[i].want);
    }
    expect_csv_error("name,idlh,units\n", "table.csv:1: unknown column 'units'");
    expect_csv_error("name,cas,unit\n", "table.csv:1: the header needs the columns name, idlh and unit");
    expect_csv_error("", "empty; expected a header line");
    /* quoted fields, CRLF, a BOM, columns in another order: fine */
    hs_safety *s;
    hs_err err;
    assert_int_equal(parse_csv("\xEF\xBB\xBF"
                               "unit,idlh,name,aliases\r\nppm,10,\"chlorine, gas\",\"Cl2|\"\"c\"\"\"\r\n",
                               &s, &err),
                     HS_OK);
    const struct hs_hazmat_chem *c = hs_safety_chemical(s, "\"c\"");
    assert_non_null(c);
    assert_string_equal(c->name, "chlorine, gas");
    assert_true(c->mw == 0); /* no mw column: no conversion... */
    struct hs_safety_result r;
    const char *t = "chlorine, gas: IDLH 50 mg/m3";
    assert_int_equal(hs_safety_check(s, t, strlen(t), -1, &r, &err), HS_OK);
    assert_int_equal(r.flags, 0); /* ...so a mg/m3 figure cannot be judged */
    hs_safety_result_free(&r);
    t = "chlorine, gas: IDLH 50 ppm";
    assert_int_equal(hs_safety_check(s, t, strlen(t), -1, &r, &err), HS_OK);
    assert_int_equal(r.flags, HS_SAFETY_HAZMAT_MISMATCH);
    hs_safety_result_free(&r);
    hs_safety_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_table_holds_the_niosh_values),
        cmocka_unit_test(ppm_and_mg_m3_convert_with_the_molecular_weight),
        cmocka_unit_test(a_wrong_idlh_is_flagged_with_details),
        cmocka_unit_test(a_wrong_figure_in_the_other_unit_is_flagged),
        cmocka_unit_test(greek_cas_and_formula_mentions_are_found),
        cmocka_unit_test(safe_levels_and_limits_above_the_idlh_are_flagged),
        cmocka_unit_test(each_figure_goes_to_its_chemical),
        cmocka_unit_test(markdown_tables_are_read_by_column),
        cmocka_unit_test(correct_figures_pass_in_either_unit),
        cmocka_unit_test(figures_that_are_not_exposure_figures_are_left_alone),
        cmocka_unit_test(unsafe_advice_is_flagged),
        cmocka_unit_test(safe_advice_is_not_flagged),
        cmocka_unit_test(certainty_with_low_confidence_is_flagged),
        cmocka_unit_test(certainty_is_fine_when_the_model_is_sure_or_unknown),
        cmocka_unit_test(flags_combine_in_a_fixed_order),
        cmocka_unit_test(invalid_utf8_and_nul_bytes_are_survived),
        cmocka_unit_test(checks_run_in_parallel),
        cmocka_unit_test(a_long_answer_is_checked_quickly),
        cmocka_unit_test(malformed_yaml_is_refused_with_its_line),
        cmocka_unit_test(an_empty_file_and_a_disabled_table_work),
        cmocka_unit_test(malformed_csv_is_refused_with_its_line),
    };
    return cmocka_run_group_tests_name("safety", tests, load_rules, free_rules);
}
