/* ops/experiment_eval: what a rater reads from stored bodies, the sample's
 * choice, and evaluation sheets both ways: a sheet written with hostile
 * answers reads back, scores are whole numbers 1..5 and a bad cell names
 * its line and column. */
#include "test_util.h"

#include "base/mem.h"
#include "ops/experiment_eval.h"

#include <stdio.h>
#include <string.h>

static void question_and_answer_come_from_the_bodies(void **state)
{
    (void)state;
    char *q = hs_eval_question(
        "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
        "{\"role\":\"user\",\"content\":\"first\"},{\"role\":\"assistant\",\"content\":\"x\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Τι είναι\"},"
        "{\"type\":\"text\",\"text\":\"το IDLH;\"}]}]}");
    assert_string_equal(q, "Τι είναι\nτο IDLH;");
    hs_free(q);
    q = hs_eval_question("{\"prompt\":\"complete me\"}");
    assert_string_equal(q, "complete me");
    hs_free(q);
    q = hs_eval_question("not json");
    assert_string_equal(q, "not json");
    hs_free(q);
    q = hs_eval_question(NULL);
    assert_string_equal(q, "");
    hs_free(q);

    char *a = hs_eval_answer(
        "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"10 ppm\"}}]}");
    assert_string_equal(a, "10 ppm");
    hs_free(a);
    a = hs_eval_answer("{\"choices\":[{\"text\":\" done\"}]}");
    assert_string_equal(a, " done");
    hs_free(a);
    a = hs_eval_answer("data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n"
                       "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n"
                       "data: {\"choices\":[{\"delta\":{\"content\":\"lo, \\\"you\\\"\"}}]}\n\n"
                       "data: [DONE]\n\n");
    assert_string_equal(a, "Hello, \"you\"");
    hs_free(a);
}

static void sample_is_seeded_and_distinct(void **state)
{
    (void)state;
    size_t a[10], b[10], c[10];
    hs_eval_sample(50, 10, 7, a);
    hs_eval_sample(50, 10, 7, b);
    hs_eval_sample(50, 10, 8, c);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
    for (int i = 0; i < 10; i++) {
        assert_true(a[i] < 50);
        for (int j = 0; j < i; j++)
            assert_true(a[i] != a[j]);
    }
    size_t all[5];
    hs_eval_sample(5, 5, 1, all);
    int seen = 0;
    for (int i = 0; i < 5; i++)
        seen |= 1 << all[i];
    assert_int_equal(seen, 31);
}

static void sheet_round_trips_and_reads_scores(void **state)
{
    (void)state;
    hs_buf b = {0};
    assert_int_equal(hs_eval_sheet_header(&b, false), HS_OK);
    struct hs_eval_candidate c1 = {"r1", "A", 0,
                                   "{\"messages\":[{\"role\":\"user\",\"content\":\"a, \\\"b\\\"\\nc\"}]}",
                                   "{\"choices\":[{\"message\":{\"content\":\"=HYPERLINK(1)\"}}]}"};
    struct hs_eval_candidate c2 = {"r2", "B", 0, "{\"prompt\":\"Ελληνικά\"}", NULL};
    assert_int_equal(hs_eval_sheet_row(&b, &c1, false), HS_OK);
    assert_int_equal(hs_eval_sheet_row(&b, &c2, false), HS_OK);
    /* the formula is defused; the rest is the text as it was */
    assert_non_null(strstr(b.data, "\"a, \"\"b\"\"\nc\",'=HYPERLINK(1),,,"));

    /* as unrated, nothing to import */
    struct hs_eval_sheet sh;
    hs_err err = {0};
    assert_int_equal(hs_eval_sheet_read(b.data, b.len, "s.csv", "ann", &sh, &err), HS_OK);
    assert_int_equal(sh.n, 0);
    assert_int_equal(sh.unrated, 2);
    hs_eval_sheet_free(&sh);
    hs_buf_free(&b);

    /* filled in by a person, columns reordered, an extra column */
    const char filled[] = "comment,request_id,safety,accuracy,notes\r\n"
                          "\"fine, mostly\",r1,5,4,x\r\n"
                          ",r2,3,2,\r\n"
                          ",r3,,,\r\n";
    assert_int_equal(hs_eval_sheet_read(filled, sizeof filled - 1, "s.csv", "ann", &sh, &err), HS_OK);
    assert_int_equal(sh.n, 2);
    assert_int_equal(sh.unrated, 1);
    assert_string_equal(sh.scores[0].request_id, "r1");
    assert_int_equal(sh.scores[0].accuracy, 4);
    assert_int_equal(sh.scores[0].safety, 5);
    assert_string_equal(sh.scores[0].comment, "fine, mostly");
    assert_string_equal(sh.scores[0].rater, "ann");
    assert_null(sh.scores[0].variant);
    assert_null(sh.scores[1].comment);
    assert_int_equal(sh.lines[1], 3);
    hs_eval_sheet_free(&sh);
}

static void bad_cells_name_line_and_column(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *want;
    } cases[] = {
        {"request_id,accuracy,safety\nr1,4,5\nr2,6,5\n",
         "s.csv:3: column accuracy: expected a whole number 1..5, got '6'"},
        {"request_id,accuracy,safety\nr1,4,five\n",
         "s.csv:2: column safety: expected a whole number 1..5, got 'five'"},
        {"request_id,accuracy,safety\nr1,3.5,4\n", "s.csv:2: column accuracy:"},
        {"request_id,accuracy,safety\nr1,0,4\n", "s.csv:2: column accuracy:"},
        {"request_id,accuracy,safety\nr1,4,\n", "s.csv:2: column safety: empty while accuracy is given"},
        {"request_id,accuracy\nr1,4\n", "s.csv:1: no column safety"},
        {"request_id,variant,accuracy,safety\n\"multi\nline\",C,4,4\n",
         "s.csv:2: column variant: expected A or B"},
        {"request_id,accuracy,safety\nr1,4,4\nr1,5,5\n",
         "s.csv:3: column request_id: 'r1' was already scored on line 2"},
        {"request_id,accuracy,safety\nr1,4\n", "s.csv:2: the row has 2 cells"},
        {"request_id,accuracy,safety\n,4,4\n", "s.csv:2: column request_id: empty"},
        {"request_id,accuracy,safety\n\"r1,4,4\n", "s.csv:2: a quoted field is not closed"},
        {"", "s.csv: empty"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct hs_eval_sheet sh;
        hs_err err = {0};
        int rc = hs_eval_sheet_read(cases[i].text, strlen(cases[i].text), "s.csv", "ann", &sh, &err);
        if (rc != HS_EFORMAT || !strstr(err.msg, cases[i].want))
            fail_msg("case %zu: rc %d '%s', want '%s'", i, rc, err.msg, cases[i].want);
        assert_int_equal(sh.n, 0);
        assert_null(sh.scores);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(question_and_answer_come_from_the_bodies),
        cmocka_unit_test(sample_is_seeded_and_distinct),
        cmocka_unit_test(sheet_round_trips_and_reads_scores),
        cmocka_unit_test(bad_cells_name_line_and_column),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
