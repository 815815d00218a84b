/* base/yaml: the guards in front of libfyaml, lines, and the typed readers
 * shared by the configuration readers. Expected lines are counted by hand
 * from the inputs. */
#include "test_util.h"

#include "base/mem.h"
#include "base/yaml.h"

#include <libfyaml.h>
#include <string.h>

static hs_yaml src(const char *text, hs_err *err, unsigned flags)
{
    hs_yaml y = {"t.yaml", text, text ? strlen(text) : 0, err, flags};
    return y;
}

/* The value under a top-level key of a loaded document. */
static struct fy_node *value_of(struct fy_document *doc, const char *key)
{
    struct fy_node *n = fy_node_mapping_lookup_by_string(fy_document_root(doc), key, strlen(key));
    assert_non_null(n);
    return n;
}

static void load_refuses_bad_text(void **state)
{
    (void)state;
    hs_err err = {0};
    struct fy_document *doc;
    hs_yaml y = src("a: 1\nb: \xff\n", &err, 0);
    assert_int_equal(hs_yaml_load(&doc, &y), HS_EFORMAT);
    assert_null(doc);
    assert_non_null(strstr(err.msg, "t.yaml:2: not UTF-8 text"));
    y = src("a: 1\nb: 2\n\x01", &err, 0);
    assert_int_equal(hs_yaml_load(&doc, &y), HS_EFORMAT);
    assert_non_null(strstr(err.msg, "t.yaml:3: control character U+0001"));
}

static void load_refuses_explicit_keys(void **state)
{
    (void)state;
    hs_err err = {0};
    struct fy_document *doc;
    hs_yaml y = src("a:\n  ? b\n  : 1\n", &err, 0);
    assert_int_equal(hs_yaml_load(&doc, &y), HS_EFORMAT);
    assert_string_equal(err.msg, "t.yaml:2: explicit mapping keys ('? key') are not supported");
    y.flags = HS_YAML_SAY_CONFIG;
    assert_int_equal(hs_yaml_load(&doc, &y), HS_EFORMAT);
    assert_non_null(strstr(err.msg, "are not supported in the configuration"));
    /* a '?' inside quotes, a comment or a word is not an indicator */
    y = src("a: \"? b\"\nb: 'x ? y' # ? c\nc: d?\n", &err, 0);
    assert_int_equal(hs_yaml_load(&doc, &y), HS_OK);
    assert_non_null(doc);
    fy_document_destroy(doc);
}

static void load_blank_and_syntax_errors(void **state)
{
    (void)state;
    hs_err err = {0};
    struct fy_document *doc;
    hs_yaml y = src("# only a comment\n\n  # and another\n", &err, 0);
    assert_int_equal(hs_yaml_load(&doc, &y), HS_OK);
    assert_null(doc);
    y.flags = HS_YAML_NEED_BLANK;
    assert_int_equal(hs_yaml_load(&doc, &y), HS_OK);
    assert_null(doc);
    y = src("", &err, HS_YAML_NEED_BLANK);
    assert_int_equal(hs_yaml_load(&doc, &y), HS_OK);
    assert_null(doc);
    y = src("a: 1\nb: [1, 2\n", &err, 0);
    assert_int_equal(hs_yaml_load(&doc, &y), HS_EFORMAT);
    assert_null(doc);
    assert_true(strncmp(err.msg, "t.yaml:", 7) == 0);
}

static void lines_are_one_based(void **state)
{
    (void)state;
    hs_err err = {0};
    struct fy_document *doc;
    hs_yaml y = src("x: 1\ny:\n  - a\n  - b: 2\n    c: 3\n", &err, 0);
    assert_int_equal(hs_yaml_load(&doc, &y), HS_OK);
    assert_int_equal(hs_yaml_line(value_of(doc, "x")), 1);
    struct fy_node *list = value_of(doc, "y");
    assert_int_equal(hs_yaml_line(list), 0); /* a collection has no line of its own */
    assert_int_equal(hs_yaml_line_or(list, 2), 2);
    assert_int_equal(hs_yaml_item_line(fy_node_sequence_get_by_index(list, 0), 9), 3);
    assert_int_equal(hs_yaml_item_line(fy_node_sequence_get_by_index(list, 1), 9), 4);
    assert_int_equal(hs_yaml_item_line(NULL, 9), 9);
    fy_document_destroy(doc);
}

static void scalars_refuse_doubled_single_quotes(void **state)
{
    (void)state;
    hs_err err = {0};
    struct fy_document *doc;
    hs_yaml y = src("a: 'it''s'\nb: 'plain'\nc: \"it's\"\n", &err, 0);
    assert_int_equal(hs_yaml_load(&doc, &y), HS_OK);
    const char *s;
    size_t len;
    assert_int_equal(hs_yaml_scalar(&y, value_of(doc, "a"), "a", 1, &s, &len), HS_EINVAL);
    assert_string_equal(
        err.msg, "t.yaml:1: a: a single-quoted string with '' inside is not supported; use double quotes");
    y.flags = HS_YAML_SAY_EXAMPLE;
    assert_int_equal(hs_yaml_scalar(&y, value_of(doc, "a"), "a", 1, &s, &len), HS_EINVAL);
    assert_non_null(strstr(err.msg, "use double quotes (\"it's\")"));
    /* without the source text the value itself gives the '' away */
    hs_yaml nodes_only = {"t.yaml", NULL, 0, &err, 0};
    assert_int_equal(hs_yaml_scalar(&nodes_only, value_of(doc, "a"), "a", 1, &s, &len), HS_EINVAL);
    assert_int_equal(hs_yaml_scalar(&y, value_of(doc, "b"), "b", 2, &s, &len), HS_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(s, "plain", 5);
    assert_int_equal(hs_yaml_scalar(&y, value_of(doc, "c"), "c", 3, &s, &len), HS_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(s, "it's", 4);
    fy_document_destroy(doc);
}

static void plain_nulls(void **state)
{
    (void)state;
    hs_err err = {0};
    struct fy_document *doc;
    hs_yaml y = src("a:\nb: ~\nc: null\nd: NULL\ne: 'null'\nf: nil\ng: []\n", &err, 0);
    assert_int_equal(hs_yaml_load(&doc, &y), HS_OK);
    assert_true(hs_yaml_plain_null(NULL));
    assert_true(hs_yaml_plain_null(value_of(doc, "a")));
    assert_true(hs_yaml_plain_null(value_of(doc, "b")));
    assert_true(hs_yaml_plain_null(value_of(doc, "c")));
    assert_true(hs_yaml_plain_null(value_of(doc, "d")));
    assert_false(hs_yaml_plain_null(value_of(doc, "e"))); /* quoted: the word null */
    assert_false(hs_yaml_plain_null(value_of(doc, "f")));
    assert_false(hs_yaml_plain_null(value_of(doc, "g")));
    fy_document_destroy(doc);
}

static void numbers_and_bools_in_range(void **state)
{
    (void)state;
    hs_err err = {0};
    struct fy_document *doc;
    hs_yaml y = src("n: 10\nbig: 11\nq: '5'\nf: 0\nh: 0.5\nt: True\nno: yes\n", &err, 0);
    assert_int_equal(hs_yaml_load(&doc, &y), HS_OK);
    int64_t i;
    assert_int_equal(hs_yaml_int(&y, value_of(doc, "n"), "k.n", 1, 0, 10, &i), HS_OK);
    assert_int_equal(i, 10);
    assert_int_equal(hs_yaml_int(&y, value_of(doc, "big"), "k.big", 2, 0, 10, &i), HS_EINVAL);
    assert_string_equal(err.msg, "t.yaml:2: k.big: expected a whole number in 0..10");
    /* numbers are plain scalars: a quoted one is a string */
    assert_false(hs_yaml_read_i64(value_of(doc, "q"), 0, 10, &i));
    double x = -1;
    assert_int_equal(hs_yaml_float(&y, value_of(doc, "f"), "k.f", 4, 0, 1, false, &x), HS_OK);
    assert_true(x == 0);
    assert_int_equal(hs_yaml_float(&y, value_of(doc, "f"), "k.f", 4, 0, 1, true, &x), HS_EINVAL);
    assert_string_equal(err.msg, "t.yaml:4: k.f: expected a number in (0..1");
    assert_int_equal(hs_yaml_float(&y, value_of(doc, "h"), "k.h", 5, 0, 1, true, &x), HS_OK);
    assert_true(x == 0.5);
    assert_false(hs_yaml_read_f64(value_of(doc, "h"), 0.6, 1, &x));
    bool b = false;
    assert_int_equal(hs_yaml_bool(&y, value_of(doc, "t"), "k.t", 6, &b), HS_OK);
    assert_true(b);
    assert_int_equal(hs_yaml_bool(&y, value_of(doc, "no"), "k.no", 7, &b), HS_EINVAL);
    assert_string_equal(err.msg, "t.yaml:7: k.no: expected true or false");
    fy_document_destroy(doc);
}

static void strings_replace_and_null(void **state)
{
    (void)state;
    hs_err err = {0};
    struct fy_document *doc;
    hs_yaml y = src("s: \"h\\u00e9\"\nz: \"a\\0b\"\nn: ~\nm: {a: 1}\n", &err, 0);
    assert_int_equal(hs_yaml_load(&doc, &y), HS_OK);
    char *out = hs_strdup("old");
    assert_non_null(out);
    assert_int_equal(hs_yaml_string(&y, value_of(doc, "s"), "s", 1, &out), HS_OK);
    assert_string_equal(out, "h\xc3\xa9");
    assert_int_equal(hs_yaml_string(&y, value_of(doc, "z"), "z", 2, &out), HS_EINVAL);
    assert_string_equal(err.msg, "t.yaml:2: z: expected a string without NUL bytes");
    assert_string_equal(out, "h\xc3\xa9"); /* a failure leaves the old value */
    assert_int_equal(hs_yaml_string(&y, value_of(doc, "m"), "m", 4, &out), HS_EINVAL);
    assert_string_equal(err.msg, "t.yaml:4: m: expected a string");
    assert_int_equal(hs_yaml_string(&y, value_of(doc, "n"), "n", 3, &out), HS_OK);
    assert_null(out);
    fy_document_destroy(doc);
}

static void fail_formats_place(void **state)
{
    (void)state;
    hs_err err = {0};
    hs_yaml y = src("", &err, 0);
    assert_int_equal(hs_yaml_fail(&y, 12, "a.b[3]", "bad %s", "thing"), HS_EINVAL);
    assert_string_equal(err.msg, "t.yaml:12: a.b[3]: bad thing");
    assert_int_equal(hs_yaml_fail(&y, 0, "a", "no line"), HS_EINVAL);
    assert_string_equal(err.msg, "t.yaml: a: no line");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(load_refuses_bad_text),
        cmocka_unit_test(load_refuses_explicit_keys),
        cmocka_unit_test(load_blank_and_syntax_errors),
        cmocka_unit_test(lines_are_one_based),
        cmocka_unit_test(scalars_refuse_doubled_single_quotes),
        cmocka_unit_test(plain_nulls),
        cmocka_unit_test(numbers_and_bools_in_range),
        cmocka_unit_test(strings_replace_and_null),
        cmocka_unit_test(fail_formats_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
