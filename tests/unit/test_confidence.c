/* ops/confidence: figures from chosen-token log-probabilities, checked
 * against values worked out by hand in each test, and the OpenAI logprobs
 * JSON of upstream answers (chat and completions, whole and streamed). */
#include "test_util.h"

#include "ops/confidence.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

#define EPS 1e-12

/* Four tokens with probabilities 0.9, 0.5, 0.1, 0.8:
 *   mean = 2.3 / 4 = 0.575; below 0.2: one of four = 0.25; min = 0.1;
 *   geometric mean = (0.9 * 0.5 * 0.1 * 0.8)^(1/4) = 0.036^0.25. */
static void figures_match_hand_computed_values(void **state)
{
    (void)state;
    const double lps[] = {log(0.9), log(0.5), log(0.1), log(0.8)};
    struct hs_confidence c;
    hs_confidence_compute(&c, lps, 4, 0);
    assert_int_equal(c.n_tokens, 4);
    assert_true(fabs(c.mean_prob - 0.575) < EPS);
    assert_true(fabs(c.low_share - 0.25) < EPS);
    assert_true(fabs(c.min_prob - 0.1) < EPS);
    assert_true(fabs(c.geo_mean_prob - pow(0.036, 0.25)) < 1e-12);
}

static void the_low_probability_line_is_configurable(void **state)
{
    (void)state;
    const double lps[] = {log(0.9), log(0.5), log(0.1), log(0.8)};
    struct hs_confidence c;
    hs_confidence_compute(&c, lps, 4, 0.6); /* 0.5 and 0.1 are below */
    assert_true(fabs(c.low_share - 0.5) < EPS);
    hs_confidence_compute(&c, lps, 4, 0.95); /* all four */
    assert_true(fabs(c.low_share - 1.0) < EPS);
    /* out of (0, 1]: the default line 0.2 (only 0.1 is below) */
    const double bad[] = {0, -1, 1.5, NAN};
    for (int i = 0; i < 4; i++) {
        hs_confidence_compute(&c, lps, 4, bad[i]);
        assert_true(fabs(c.low_share - 0.25) < EPS);
    }
    /* a token exactly on the line is not below it */
    const double on[] = {log(0.5)};
    hs_confidence_compute(&c, on, 1, 0.5);
    assert_true(c.low_share == 0);
}

static void an_empty_answer_has_unknown_confidence(void **state)
{
    (void)state;
    struct hs_confidence c;
    hs_confidence_compute(&c, NULL, 0, 0.2);
    assert_int_equal(c.n_tokens, 0);
    assert_true(c.mean_prob == -1 && c.low_share == -1 && c.min_prob == -1 && c.geo_mean_prob == -1);
    /* only unusable values: still unknown */
    struct hs_conf_acc a;
    hs_conf_init(&a, 0.2);
    hs_conf_add(&a, NAN);
    hs_conf_add(&a, INFINITY);
    hs_conf_add(&a, 0.7);
    hs_conf_result(&c, &a);
    assert_int_equal(a.n_bad, 3);
    assert_true(c.mean_prob == -1);
}

/* -inf (and OpenAI's -9999 floor) is a probability of 0; a hair above 0 is 1. */
static void impossible_and_certain_tokens(void **state)
{
    (void)state;
    const double lps[] = {-INFINITY, 1e-6, -9999.0, log(0.5)};
    struct hs_confidence c;
    hs_confidence_compute(&c, lps, 4, 0.2);
    assert_int_equal(c.n_tokens, 4);
    /* probabilities 0, 1, e^-9999 (0 in double), 0.5 */
    assert_true(fabs(c.mean_prob - 1.5 / 4) < EPS);
    assert_true(c.min_prob == 0);
    assert_true(c.geo_mean_prob == 0);
    assert_true(fabs(c.low_share - 0.5) < EPS);
    assert_false(isnan(c.mean_prob) || isnan(c.geo_mean_prob));
}

/* Token by token (as the engine samples) gives what one batch gives. */
static void streaming_matches_batch(void **state)
{
    (void)state;
    double lps[500];
    uint64_t x = 12345;
    for (int i = 0; i < 500; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        lps[i] = -(double)(x >> 40) / (double)(1ULL << 24) * 6.0; /* 0 .. -6 */
    }
    struct hs_confidence batch, inc;
    hs_confidence_compute(&batch, lps, 500, 0.2);
    struct hs_conf_acc a;
    hs_conf_init(&a, 0.2);
    for (int i = 0; i < 500; i++)
        hs_conf_add(&a, lps[i]);
    hs_conf_result(&inc, &a);
    assert_true(batch.mean_prob == inc.mean_prob);
    assert_true(batch.low_share == inc.low_share);
    assert_true(batch.geo_mean_prob == inc.geo_mean_prob);
    /* and the figures against a plain second computation */
    double sum = 0, lsum = 0, mn = 1;
    int low = 0;
    for (int i = 0; i < 500; i++) {
        double p = exp(lps[i]);
        sum += p;
        lsum += lps[i];
        low += p < 0.2;
        mn = p < mn ? p : mn;
    }
    assert_true(fabs(inc.mean_prob - sum / 500) < 1e-12);
    assert_true(fabs(inc.low_share - low / 500.0) < EPS);
    assert_true(fabs(inc.geo_mean_prob - exp(lsum / 500)) < 1e-12);
    assert_true(inc.min_prob == mn);
}

/* An OpenAI chat completion with logprobs (the shape of the API reference). */
static const char chat_resp[] =
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,"
    "\"message\":{\"role\":\"assistant\",\"content\":\"Hi there\"},"
    "\"logprobs\":{\"content\":["
    "{\"token\":\"Hi\",\"logprob\":-0.105360515657826,\"bytes\":[72,105],\"top_logprobs\":[]},"
    "{\"token\":\" "
    "there\",\"logprob\":-2.302585092994046,\"bytes\":[32,116,104,101,114,101],\"top_logprobs\":[]},"
    "{\"token\":\"!\",\"logprob\":0,\"bytes\":[33],\"top_logprobs\":[]}],\"refusal\":null},"
    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3}}";

static void chat_logprobs_are_read(void **state)
{
    (void)state;
    struct hs_conf_acc a;
    hs_conf_init(&a, 0.2);
    int64_t added = -1;
    hs_err err;
    assert_int_equal(hs_conf_add_json_text(&a, chat_resp, strlen(chat_resp), 0, &added, &err), HS_OK);
    assert_int_equal(added, 3);
    struct hs_confidence c;
    hs_conf_result(&c, &a);
    /* e^-0.10536 = 0.9, e^-2.30259 = 0.1, e^0 = 1 */
    assert_true(fabs(c.mean_prob - (0.9 + 0.1 + 1.0) / 3) < 1e-9);
    assert_true(fabs(c.low_share - 1.0 / 3) < EPS);
    assert_true(fabs(c.min_prob - 0.1) < 1e-9);
}

/* Legacy completions: token_logprobs, whose first entry is null with echo. */
static void completions_logprobs_are_read(void **state)
{
    (void)state;
    const char *resp =
        "{\"object\":\"text_completion\",\"choices\":[{\"text\":\"ab\",\"index\":0,"
        "\"logprobs\":{\"tokens\":[\"x\",\"a\",\"b\"],\"token_logprobs\":[null,-0.6931471805599453,"
        "-1.6094379124341003],\"top_logprobs\":null,\"text_offset\":[0,1,2]},"
        "\"finish_reason\":\"length\"}]}";
    struct hs_conf_acc a;
    hs_conf_init(&a, 0.3);
    int64_t added;
    hs_err err;
    assert_int_equal(hs_conf_add_json_text(&a, resp, strlen(resp), 0, &added, &err), HS_OK);
    assert_int_equal(added, 2);
    struct hs_confidence c;
    hs_conf_result(&c, &a);
    /* 0.5 and 0.2; the line 0.3 */
    assert_true(fabs(c.mean_prob - 0.35) < 1e-12);
    assert_true(fabs(c.low_share - 0.5) < EPS);
    assert_true(fabs(c.geo_mean_prob - sqrt(0.1)) < 1e-12);
}

/* Streamed chat chunks add up to what the whole answer gives; chunks for
 * other choices, without logprobs or with no choices (usage) add nothing. */
static void streamed_chunks_accumulate(void **state)
{
    (void)state;
    const char *chunks[] = {
        "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"logprobs\":{\"content\":"
        "[{\"token\":\"Hi\",\"logprob\":-0.105360515657826,\"top_logprobs\":[]}]}}]}",
        "{\"choices\":[{\"index\":1,\"delta\":{\"content\":\"Yo\"},\"logprobs\":{\"content\":"
        "[{\"token\":\"Yo\",\"logprob\":-5,\"top_logprobs\":[]}]}}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\" there!\"},\"logprobs\":{\"content\":"
        "[{\"token\":\" there\",\"logprob\":-2.302585092994046},{\"token\":\"!\",\"logprob\":0}]}}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}",
        "{\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3}}",
    };
    struct hs_conf_acc a, whole;
    hs_conf_init(&a, 0.2);
    hs_conf_init(&whole, 0.2);
    hs_err err;
    int64_t total = 0;
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        int64_t added;
        assert_int_equal(hs_conf_add_json_text(&a, chunks[i], strlen(chunks[i]), 0, &added, &err), HS_OK);
        total += added;
    }
    assert_int_equal(total, 3);
    assert_int_equal(hs_conf_add_json_text(&whole, chat_resp, strlen(chat_resp), 0, NULL, &err), HS_OK);
    struct hs_confidence c1, c2;
    hs_conf_result(&c1, &a);
    hs_conf_result(&c2, &whole);
    assert_true(fabs(c1.mean_prob - c2.mean_prob) < 1e-15);
    assert_true(c1.low_share == c2.low_share);
    /* choice 1 alone */
    struct hs_conf_acc b;
    hs_conf_init(&b, 0.2);
    assert_int_equal(hs_conf_add_json_text(&b, chunks[2], strlen(chunks[2]), 1, NULL, &err), HS_OK);
    hs_conf_result(&c1, &b);
    assert_int_equal(c1.n_tokens, 1);
    assert_true(fabs(c1.mean_prob - exp(-5)) < 1e-15);
}

/* Choices without an "index" are taken by position. */
static void choices_without_index_go_by_position(void **state)
{
    (void)state;
    const char *resp = "{\"choices\":[{\"logprobs\":{\"token_logprobs\":[-1]}},"
                       "{\"logprobs\":{\"token_logprobs\":[-2,-3]}}]}";
    struct hs_conf_acc a;
    hs_conf_init(&a, 0.2);
    int64_t added;
    hs_err err;
    assert_int_equal(hs_conf_add_json_text(&a, resp, strlen(resp), 1, &added, &err), HS_OK);
    assert_int_equal(added, 2);
    assert_int_equal(hs_conf_add_json_text(&a, resp, strlen(resp), 5, &added, &err), HS_OK);
    assert_int_equal(added, 0);
}

/* Malformed logprobs: an error naming the JSON path, and nothing added. */
static void malformed_logprobs_are_refused_whole(void **state)
{
    (void)state;
    struct {
        const char *json;
        const char *path;
    } cases[] = {
        {"{\"choices\":[{\"index\":0,\"logprobs\":{\"content\":[{\"logprob\":-1},{\"logprob\":\"x\"}]}}]}",
         "choices[0].logprobs.content[1].logprob"},
        {"{\"choices\":[{\"index\":0,\"logprobs\":{\"token_logprobs\":[-1,true]}}]}",
         "choices[0].logprobs.token_logprobs[1]"},
        {"{\"choices\":[{\"index\":0,\"logprobs\":{\"content\":{}}}]}", "choices[0].logprobs.content"},
        {"{\"choices\":[{\"index\":0,\"logprobs\":{\"tokens\":[]}}]}", "choices[0].logprobs"},
        {"{\"choices\":[{\"index\":0,\"logprobs\":[1]}]}", "choices[0].logprobs"},
        {"{\"choices\":{}}", "choices"},
        {"{\"object\":\"chat.completion\"}", "choices"},
        {"[1,2]", "logprobs"},
        {"{\"choices\":[", "logprobs JSON"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct hs_conf_acc a;
        hs_conf_init(&a, 0.2);
        hs_conf_add(&a, log(0.5));
        hs_err err;
        hs_err_clear(&err);
        int64_t added = -1;
        int rc = hs_conf_add_json_text(&a, cases[i].json, strlen(cases[i].json), 0, &added, &err);
        assert_int_equal(rc, HS_EFORMAT);
        assert_non_null(strstr(err.msg, cases[i].path));
        assert_int_equal(added, 0);
        assert_int_equal(a.n, 1); /* unchanged */
    }
    /* the json_t form too */
    json_t *j =
        json_loads("{\"choices\":[{\"index\":0,\"logprobs\":{\"content\":[{\"logprob\":-0.5}]}}]}", 0, NULL);
    assert_non_null(j);
    struct hs_conf_acc a;
    hs_conf_init(&a, 0.2);
    hs_err err;
    assert_int_equal(hs_conf_add_json(&a, j, 0, NULL, &err), HS_OK);
    assert_int_equal(a.n, 1);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(figures_match_hand_computed_values),
        cmocka_unit_test(the_low_probability_line_is_configurable),
        cmocka_unit_test(an_empty_answer_has_unknown_confidence),
        cmocka_unit_test(impossible_and_certain_tokens),
        cmocka_unit_test(streaming_matches_batch),
        cmocka_unit_test(chat_logprobs_are_read),
        cmocka_unit_test(completions_logprobs_are_read),
        cmocka_unit_test(streamed_chunks_accumulate),
        cmocka_unit_test(choices_without_index_go_by_position),
        cmocka_unit_test(malformed_logprobs_are_refused_whole),
    };
    return cmocka_run_group_tests_name("confidence", tests, NULL, NULL);
}
