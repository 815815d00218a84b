/* libFuzzer target for the answer checks (ops/safety) and the logprobs
 * reader (ops/confidence): any bytes, read as a model's answer, give a
 * result whose flags, names and details agree (details a JSON object with
 * one member per flag), never a crash, a leak or a slow check; the same
 * bytes read as an OpenAI response or chunk give figures in [0, 1] or an
 * error that leaves the accumulator as it was.
 *
 * The rules are the shipped config/safety.yaml and data/hazmat/idlh.csv
 * (scripts/fuzz.sh runs from the repository root), loaded once. */
#include "ops/confidence.h"
#include "ops/safety.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static hs_safety *g_rules;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    hs_err err;
    if (hs_safety_load("config/safety.yaml", &g_rules, &err) != HS_OK) {
        fprintf(stderr, "fuzz_safety: run from the repository root: %s\n", err.msg);
        abort();
    }
    return 0;
}

static void check_answer(const char *text, size_t len, double confidence)
{
    struct hs_safety_result r;
    hs_err err;
    if (hs_safety_check(g_rules, text, len, confidence, &r, &err) != HS_OK)
        abort(); /* only out of memory may fail */
    const unsigned all =
        HS_SAFETY_HAZMAT_MISMATCH | HS_SAFETY_UNSAFE_RECOMMENDATION | HS_SAFETY_OVERCONFIDENT;
    if ((r.flags & ~all) || (!r.flags) != (!r.details) || (!r.flags) != (!r.names[0]))
        abort();
    if (confidence < 0 && (r.flags & HS_SAFETY_OVERCONFIDENT))
        abort(); /* unknown confidence never makes an answer overconfident */
    if (r.details) {
        json_t *d = json_loads(r.details, 0, NULL);
        if (!json_is_object(d) || json_object_size(d) != (size_t)__builtin_popcount(r.flags))
            abort();
        for (unsigned f = 1; f <= HS_SAFETY_OVERCONFIDENT; f <<= 1) {
            const char *name = hs_safety_flag_name(f);
            if (!(r.flags & f) != !json_object_get(d, name) || !(r.flags & f) != !strstr(r.names, name))
                abort();
        }
        json_decref(d);
    }
    hs_safety_result_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    check_answer((const char *)data, size, 0.3);
    check_answer((const char *)data, size, -1);

    struct hs_conf_acc a;
    hs_conf_init(&a, 0.2);
    int64_t added = -1;
    hs_err err;
    int rc = hs_conf_add_json_text(&a, (const char *)data, size, 0, &added, &err);
    if (rc != HS_OK && (rc != HS_EFORMAT || a.n != 0 || added != 0 || !err.msg[0]))
        abort();
    struct hs_confidence c;
    hs_conf_result(&c, &a);
    if (c.n_tokens != a.n || (rc == HS_OK && added != a.n))
        abort();
    if (a.n == 0 ? c.mean_prob != -1
                 : !(c.mean_prob >= 0 && c.mean_prob <= 1 && c.low_share >= 0 && c.low_share <= 1 &&
                     c.min_prob >= 0 && c.min_prob <= c.mean_prob + 1e-12 && c.geo_mean_prob >= 0 &&
                     c.geo_mean_prob <= c.mean_prob + 1e-12))
        abort();
    return 0;
}
