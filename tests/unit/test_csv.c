/* ops/csv: RFC 4180 writing and reading. Hostile text (commas, quotes,
 * CR, LF, CRLF, Greek, emoji, leading and trailing spaces) survives a
 * round trip field for field; the bytes the writer produces are checked
 * against the RFC's rules written out by hand; and every malformed input
 * is refused with its line. */
#include "test_util.h"

#include "base/buf.h"
#include "ops/csv.h"

#include <stdio.h>
#include <string.h>

static void writer_quotes_only_what_needs_it(void **state)
{
    (void)state;
    hs_buf b = {0};
    const char *row[] = {"plain", "a,b", "say \"hi\"", "two\nlines", "", NULL, " spaced "};
    assert_int_equal(hs_csv_row(&b, row, 7), HS_OK);
    assert_string_equal(b.data, "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",,, spaced \r\n");
    /* found by fuzz_csv: a field starting with a byte-order mark is quoted,
       or first in a file the reader would drop the mark */
    hs_buf_reset(&b);
    const char *bom[] = {"\xEF\xBB\xBFx"};
    assert_int_equal(hs_csv_row(&b, bom, 1), HS_OK);
    assert_string_equal(b.data, "\"\xEF\xBB\xBFx\"\r\n");
    struct hs_csv c;
    assert_int_equal(hs_csv_parse(b.data, b.len, "s", &c, NULL), HS_OK);
    assert_string_equal(c.rows[0].fields[0], bom[0]);
    hs_csv_free(&c);
    hs_buf_free(&b);
}

static const char *const k_hostile[][4] = {
    {"req-1", "A", "Τι είναι το IDLH του χλωρίου;", "Το IDLH είναι 10 ppm, \"όχι\" 30."},
    {"req-2", "B", "comma, inside", "line one\r\nline two\nline three\rend"},
    {"req-3", "A", "\"\"\"", ",,,"},
    {"req-4", "B", "", " lead and trail "},
    {"req-5", "A", "emoji 🔥 and tab\there", "=SUM(A1:A2)"},
};

static void hostile_text_round_trips(void **state)
{
    (void)state;
    size_t n = sizeof k_hostile / sizeof k_hostile[0];
    hs_buf b = {0};
    const char *header[] = {"request_id", "variant", "question", "answer"};
    assert_int_equal(hs_csv_row(&b, header, 4), HS_OK);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(hs_csv_row(&b, k_hostile[i], 4), HS_OK);
    struct hs_csv c;
    hs_err err = {0};
    int rc = hs_csv_parse(b.data, b.len, "sheet.csv", &c, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_int_equal(c.n, n + 1);
    assert_int_equal(c.rows[0].line, 1);
    assert_string_equal(c.rows[0].fields[2], "question");
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(c.rows[i + 1].n, 4);
        for (int j = 0; j < 4; j++)
            assert_string_equal(c.rows[i + 1].fields[j], k_hostile[i][j]);
    }
    /* req-2 starts on line 3 and holds three line breaks (CRLF, LF, CR): req-3 starts on line 7 */
    assert_int_equal(c.rows[2].line, 3);
    assert_int_equal(c.rows[3].line, 7);
    hs_csv_free(&c);
    hs_buf_free(&b);
}

static void reader_accepts_lf_bom_and_no_final_newline(void **state)
{
    (void)state;
    const char text[] = "\xEF\xBB\xBF"
                        "a,b\n\n1,\"x\"\n2,";
    struct hs_csv c;
    assert_int_equal(hs_csv_parse(text, sizeof text - 1, "s", &c, NULL), HS_OK);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.rows[0].fields[0], "a");
    assert_int_equal(c.rows[1].line, 3); /* the blank line is skipped but counted */
    assert_string_equal(c.rows[1].fields[1], "x");
    assert_int_equal(c.rows[2].n, 2);
    assert_string_equal(c.rows[2].fields[1], "");
    hs_csv_free(&c);
    assert_int_equal(hs_csv_parse("", 0, "s", &c, NULL), HS_OK);
    assert_int_equal(c.n, 0);
    /* found by fuzz_csv: empty quoted fields are empty strings */
    const char empties[] = "\"\"\n\"\"\"\"\n,\"\"\n";
    assert_int_equal(hs_csv_parse(empties, sizeof empties - 1, "s", &c, NULL), HS_OK);
    assert_int_equal(c.n, 2); /* a line holding only "" is a blank line */
    assert_int_equal(c.rows[0].n, 1);
    assert_string_equal(c.rows[0].fields[0], "\"");
    assert_int_equal(c.rows[1].n, 2);
    assert_string_equal(c.rows[1].fields[0], "");
    assert_string_equal(c.rows[1].fields[1], "");
    hs_csv_free(&c);
}

static void malformed_input_is_refused_with_its_line(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *want;
    } cases[] = {
        {"a,b\r\n\"open,c\r\nd\r\n", "s.csv:2: a quoted field is not closed"},
        {"a,b\nx,y\"z\n", "s.csv:2: a quote inside an unquoted field"},
        {"a,b\n\"x\"y,z\n", "s.csv:2: text after a closing quote"},
        {"a\n\"multi\nline\" x\n", "s.csv:3: text after a closing quote"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct hs_csv c;
        hs_err err = {0};
        assert_int_equal(hs_csv_parse(cases[i].text, strlen(cases[i].text), "s.csv", &c, &err), HS_EFORMAT);
        if (!strstr(err.msg, cases[i].want))
            fail_msg("case %zu: '%s', want '%s'", i, err.msg, cases[i].want);
        assert_int_equal(c.n, 0);
    }
    struct hs_csv c;
    hs_err err = {0};
    assert_int_equal(hs_csv_parse("a\0b\n", 4, "s.csv", &c, &err), HS_EFORMAT);
    assert_non_null(strstr(err.msg, "NUL"));
    /* too many fields */
    hs_buf b = {0};
    for (int i = 0; i <= HS_CSV_MAX_FIELDS; i++)
        hs_buf_puts(&b, i ? ",x" : "x");
    assert_int_equal(hs_csv_parse(b.data, b.len, "s.csv", &c, &err), HS_EFORMAT);
    assert_non_null(strstr(err.msg, "more than"));
    hs_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(writer_quotes_only_what_needs_it),
        cmocka_unit_test(hostile_text_round_trips),
        cmocka_unit_test(reader_accepts_lf_bom_and_no_final_newline),
        cmocka_unit_test(malformed_input_is_refused_with_its_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
