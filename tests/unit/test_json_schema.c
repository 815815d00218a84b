/* model/json_schema: structured output.
 *
 * - compile: malformed schemas (HS_EINVAL) and keywords outside the subset
 *   (HS_EUNSUPPORTED) are refused with a message naming the schema path;
 *   annotations are ignored.
 * - validate: hand-written documents against hand-written verdicts.
 * - the automaton, fed byte by byte (the tiny vocabulary's <0xNN> tokens):
 *   hand-written valid documents are accepted whole, and invalid ones are
 *   refused at the byte where they go wrong; every document it accepts, the
 *   independent validator accepts too.
 * - the budget: the shortest completion the automaton computes equals the
 *   length of the shortest document written by hand, and with max_tokens set
 *   to exactly that every sampled answer is whole.
 * - generation: 100 answers of a random-weight model (forward pass, hs_sampler
 *   at temperature 1) under a nested schema all parse and validate; the same
 *   with stories260K, the 32000-token llama-2-tiny-random, and a random model
 *   carrying GPT-2's byte-level BPE vocabulary, when ../shared has them; and
 *   random logits over those vocabularies.
 * - the time of one mask call is printed for each vocabulary. */
#include "test_util.h"
#include "tiny_model.h"

#include "base/buf.h"
#include "base/clock.h"
#include "base/rng.h"
#include "gguf/gguf.h"
#include "model/context.h"
#include "model/json_impl.h"
#include "model/json_schema.h"
#include "model/model.h"
#include "model/sampler.h"
#include "model/synth.h"
#include "model/tokenizer.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The nested schema of the issue: enum, array of bounded strings, integer,
 * number, boolean, nested object with a type list, an optional property. */
static const char k_nested[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"risk_level\":{\"type\":\"string\",\"enum\":[\"low\",\"medium\",\"high\"],\"description\":\"overall\"},"
    "\"actions\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":40},\"maxItems\":3},"
    "\"count\":{\"type\":\"integer\"},"
    "\"confidence\":{\"type\":\"number\"},"
    "\"urgent\":{\"type\":\"boolean\"},"
    "\"contact\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"minLength\":1},"
    "\"phone\":{\"type\":[\"string\",\"null\"]}},\"required\":[\"name\"]},"
    "\"note\":{\"type\":\"string\",\"maxLength\":20}},"
    "\"required\":[\"risk_level\",\"actions\",\"count\",\"confidence\",\"urgent\",\"contact\"],"
    "\"additionalProperties\":false}";

/* The shortest document k_nested allows, written by hand: each required
 * property with its shortest value ("low", "true", a one-character name). */
static const char k_nested_min[] =
    "{\"risk_level\":\"low\",\"actions\":[],\"count\":0,\"confidence\":0,\"urgent\":true,"
    "\"contact\":{\"name\":\"a\"}}";

static char *g_tiny_path;
static hs_model *g_tiny;
static hs_jvocab *g_tiny_vocab;

static int setup(void **state)
{
    (void)state;
    struct tiny_params p;
    tiny_params_default(&p);
    p.seed = 11;
    g_tiny_path = hs_test_tmpfile("json_tiny.gguf");
    hs_err err = {0};
    if (tiny_model_write(g_tiny_path, &p, NULL) || hs_model_load(g_tiny_path, NULL, &g_tiny, &err) ||
        hs_jvocab_create(hs_model_tok(g_tiny), &g_tiny_vocab, &err)) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hs_jvocab_free(g_tiny_vocab);
    hs_model_free(g_tiny);
    free(g_tiny_path);
    return 0;
}

static hs_jschema *compile_ok(const char *text)
{
    hs_jschema *s = NULL;
    hs_err err = {0};
    const int rc = hs_jschema_compile(text, text ? strlen(text) : 0, &s, &err);
    if (rc)
        fail_msg("compile %s: %s", text, err.msg);
    return s;
}

/* ---- compile ---- */

static void compile_refuses_with_path(void **state)
{
    (void)state;
    static const struct {
        const char *schema;
        int code;
        const char *msg; /* a part of the message */
    } cases[] = {
        {"{", HS_EINVAL, "not valid JSON"},
        {"{\"type\":\"object\",\"type\":\"string\"}", HS_EINVAL, "duplicate"},
        {"{\"type\":\"object\",\"properties\":{\"actions\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/"
         "a\"}}}}",
         HS_EUNSUPPORTED, "schema.properties.actions.items: $ref is not supported"},
        {"{\"patternProperties\":{\"^a\":{}}}", HS_EUNSUPPORTED,
         "schema: patternProperties is not supported"},
        {"{\"allOf\":[{\"type\":\"string\"}]}", HS_EUNSUPPORTED, "allOf"},
        {"{\"oneOf\":[{\"type\":\"string\"}]}", HS_EUNSUPPORTED, "oneOf"},
        {"{\"type\":\"string\",\"if\":{}}", HS_EUNSUPPORTED, "if"},
        {"{\"type\":\"string\",\"format\":\"date-time\"}", HS_EUNSUPPORTED, "format"},
        {"{\"type\":\"string\",\"pattern\":\"^a\"}", HS_EUNSUPPORTED, "pattern"},
        {"{\"type\":\"integer\",\"minimum\":0}", HS_EUNSUPPORTED, "minimum"},
        {"{\"type\":\"array\",\"uniqueItems\":true}", HS_EUNSUPPORTED, "uniqueItems"},
        {"{\"type\":\"array\",\"items\":[{\"type\":\"string\"}]}", HS_EUNSUPPORTED, "schema.items: tuple"},
        {"{\"anyOf\":[{\"type\":\"object\"},{\"type\":\"object\",\"properties\":{\"a\":{}}}]}",
         HS_EUNSUPPORTED, "schema.anyOf: alternatives that start alike"},
        {"{\"anyOf\":[{\"type\":\"string\"},{\"enum\":[\"a\",1]}]}", HS_EUNSUPPORTED, "start alike"},
        {"{\"type\":\"string\",\"anyOf\":[{\"maxLength\":1}]}", HS_EUNSUPPORTED, "type beside anyOf"},
        {"{\"type\":\"strin\"}", HS_EINVAL, "schema.type: unknown type \"strin\""},
        {"{\"type\":[]}", HS_EINVAL, "schema.type"},
        {"{\"properties\":{\"s\":{\"type\":\"string\",\"minLength\":5,\"maxLength\":2}}}", HS_EINVAL,
         "schema.properties.s: minLength is above maxLength"},
        {"{\"type\":\"array\",\"minItems\":-1}", HS_EINVAL,
         "schema.minItems: must be a non-negative integer"},
        {"{\"enum\":[]}", HS_EINVAL, "schema.enum"},
        {"{\"type\":\"integer\",\"enum\":[\"a\",1.5]}", HS_EINVAL, "no value of enum"},
        {"{\"type\":\"object\",\"required\":[\"x\"],\"additionalProperties\":false}", HS_EINVAL,
         "\"x\" is not in properties"},
        {"{\"type\":\"object\",\"required\":\"x\"}", HS_EINVAL, "schema.required"},
        {"{\"properties\":{\"a\":false}}", HS_EUNSUPPORTED, "schema.properties.a"},
        {"[1]", HS_EINVAL, "schema: a schema must be an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hs_jschema *s = NULL;
        hs_err err = {0};
        const int rc = hs_jschema_compile(cases[i].schema, strlen(cases[i].schema), &s, &err);
        if (rc != cases[i].code || !strstr(err.msg, cases[i].msg))
            fail_msg("%s: got %d \"%s\", expected %d with \"%s\"", cases[i].schema, rc, err.msg,
                     cases[i].code, cases[i].msg);
        assert_null(s);
    }
}

static void compile_limits(void **state)
{
    (void)state;
    /* 33 nested objects: deeper than the 32 levels kept */
    hs_buf b = {0};
    for (int i = 0; i < 33; i++)
        hs_buf_puts(&b, "{\"type\":\"object\",\"properties\":{\"a\":");
    hs_buf_puts(&b, "{}");
    for (int i = 0; i < 33; i++)
        hs_buf_puts(&b, "}}");
    hs_jschema *s = NULL;
    hs_err err = {0};
    assert_int_equal(hs_jschema_compile(b.data, b.len, &s, &err), HS_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "deeper"));
    /* 65 declared properties */
    hs_buf_reset(&b);
    hs_buf_puts(&b, "{\"type\":\"object\",\"properties\":{");
    for (int i = 0; i < 65; i++)
        hs_buf_printf(&b, "%s\"p%d\":{}", i ? "," : "", i);
    hs_buf_puts(&b, "}}");
    assert_int_equal(hs_jschema_compile(b.data, b.len, &s, &err), HS_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "properties"));
    hs_buf_free(&b);
}

static void compile_ignores_annotations(void **state)
{
    (void)state;
    hs_jschema *s = compile_ok(
        "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"title\":\"t\",\"description\":\"d\","
        "\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"description\":\"x\",\"default\":"
        "\"y\","
        "\"examples\":[\"z\"],\"deprecated\":false}},\"$comment\":\"c\"}");
    assert_int_equal(hs_jschema_validate(s, "{\"a\":\"q\"}", 9, NULL), HS_OK);
    hs_jschema_unref(s);
    s = compile_ok(k_nested);
    /* references: the last unref frees (ASan reports a leak or a double free otherwise) */
    assert_ptr_equal(hs_jschema_ref(s), s);
    hs_jschema_unref(s);
    hs_jschema_unref(s);
    hs_jschema_unref(NULL);
}

/* ---- validate ---- */

static void validate_cases(void **state)
{
    (void)state;
    static const struct {
        const char *schema; /* NULL: any object */
        const char *doc;
        bool ok;
        const char *msg; /* for failures: a part of the message */
    } cases[] = {
        {k_nested, k_nested_min, true, NULL},
        {k_nested,
         "{\"risk_level\":\"high\",\"actions\":[\"a\",\"b\"],\"count\":-3,\"confidence\":0.5,\"urgent\":"
         "false,"
         "\"contact\":{\"name\":\"x\",\"phone\":null},\"note\":\"n\"}",
         true, NULL},
        /* the order of properties does not matter to the validator */
        {k_nested,
         "{\"contact\":{\"name\":\"x\",\"phone\":\"1\"},\"urgent\":false,\"confidence\":1e3,\"count\":2.0,"
         "\"actions\":[],\"risk_level\":\"low\"}",
         true, NULL},
        {k_nested, "{\"risk_level\":\"low\"}", false, "missing required property \"actions\""},
        {k_nested,
         "{\"risk_level\":\"none\",\"actions\":[],\"count\":0,\"confidence\":0,\"urgent\":true,"
         "\"contact\":{\"name\":\"a\"}}",
         false, "$.risk_level"},
        {k_nested,
         "{\"risk_level\":\"low\",\"actions\":[\"a\",\"b\",\"c\",\"d\"],\"count\":0,\"confidence\":0,"
         "\"urgent\":true,\"contact\":{\"name\":\"a\"}}",
         false, "$.actions: 4 items"},
        {k_nested,
         "{\"risk_level\":\"low\",\"actions\":[1],\"count\":0,\"confidence\":0,\"urgent\":true,"
         "\"contact\":{\"name\":\"a\"}}",
         false, "$.actions[0]: expected a string"},
        {k_nested,
         "{\"risk_level\":\"low\",\"actions\":[],\"count\":0.5,\"confidence\":0,\"urgent\":true,"
         "\"contact\":{\"name\":\"a\"}}",
         false, "$.count: expected an integer"},
        {k_nested,
         "{\"risk_level\":\"low\",\"actions\":[],\"count\":0,\"confidence\":\"0\",\"urgent\":true,"
         "\"contact\":{\"name\":\"a\"}}",
         false, "$.confidence: expected a number"},
        {k_nested,
         "{\"risk_level\":\"low\",\"actions\":[],\"count\":0,\"confidence\":0,\"urgent\":1,"
         "\"contact\":{\"name\":\"a\"}}",
         false, "$.urgent"},
        {k_nested,
         "{\"risk_level\":\"low\",\"actions\":[],\"count\":0,\"confidence\":0,\"urgent\":true,"
         "\"contact\":{\"name\":\"\"}}",
         false, "$.contact.name: 0 characters, fewer than minLength 1"},
        {k_nested,
         "{\"risk_level\":\"low\",\"actions\":[],\"count\":0,\"confidence\":0,\"urgent\":true,"
         "\"contact\":{\"name\":\"a\",\"phone\":5}}",
         false, "$.contact.phone"},
        {k_nested,
         "{\"risk_level\":\"low\",\"actions\":[],\"count\":0,\"confidence\":0,\"urgent\":true,"
         "\"contact\":{\"name\":\"a\"},\"x\":1}",
         false, "property \"x\" is not allowed"},
        /* 20 characters of which 19 take two bytes: within maxLength 20 */
        {k_nested,
         "{\"risk_level\":\"low\",\"actions\":[],\"count\":0,\"confidence\":0,\"urgent\":true,"
         "\"contact\":{\"name\":\"a\"},\"note\":"
         "\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
         "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9x\"}",
         true, NULL},
        {k_nested, "{\"risk_level\":", false, "not valid JSON"},
        {NULL, "{\"a\":[1,{\"b\":null}],\"c\":\"x\"}", true, NULL},
        {NULL, "[1]", false, "$: expected an object"},
        {"{}", "[1, \"x\", null]", true, NULL},
        {"{\"type\":[\"integer\",\"null\"]}", "null", true, NULL},
        {"{\"type\":[\"integer\",\"null\"]}", "7", true, NULL},
        {"{\"type\":[\"integer\",\"null\"]}", "\"7\"", false, "matches none"},
        {"{\"anyOf\":[{\"type\":\"string\",\"maxLength\":2},{\"type\":\"number\"}]}", "\"abc\"", false,
         "matches none"},
        {"{\"anyOf\":[{\"type\":\"string\",\"maxLength\":2},{\"type\":\"number\"}]}", "1.5", true, NULL},
        {"{\"const\":{\"a\":[1,2]}}", "{\"a\":[1,2]}", true, NULL},
        {"{\"const\":{\"a\":[1,2]}}", "{\"a\":[2,1]}", false, "not one of"},
        {"{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}}", "{\"a\":1,\"b\":2}", true,
         NULL},
        {"{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}}", "{\"a\":\"1\"}", false,
         "$.a"},
        {"{\"type\":\"array\",\"items\":false}", "[]", true, NULL},
        {"{\"type\":\"array\",\"items\":false}", "[1]", false, "maxItems 0"},
        {"{\"type\":\"array\",\"minItems\":2,\"items\":{\"enum\":[1,\"a\"]}}", "[1,\"a\"]", true, NULL},
        {"{\"type\":\"array\",\"minItems\":2,\"items\":{\"enum\":[1,\"a\"]}}", "[1]", false,
         "fewer than minItems"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hs_jschema *s = compile_ok(cases[i].schema);
        hs_err err = {0};
        const int rc = hs_jschema_validate(s, cases[i].doc, strlen(cases[i].doc), &err);
        if (cases[i].ok && rc != HS_OK)
            fail_msg("case %zu: %s should pass: %s", i, cases[i].doc, err.msg);
        if (!cases[i].ok && (rc != HS_EINVAL || !strstr(err.msg, cases[i].msg)))
            fail_msg("case %zu: %s: got %d \"%s\", expected \"%s\"", i, cases[i].doc, rc, err.msg,
                     cases[i].msg);
        hs_jschema_unref(s);
    }
}

/* ---- the automaton, one byte per token ---- */

/* The tiny vocabulary's byte tokens: <0xNN> has id 3 + NN. */
static int32_t byte_token(uint8_t b)
{
    return 3 + b;
}

/* Feeds doc byte by byte; returns how many bytes were taken. */
static size_t feed(const hs_jschema *s, const char *doc, size_t len, bool *complete)
{
    hs_jmatch *m = NULL;
    assert_int_equal(hs_jmatch_create(s, g_tiny_vocab, &m, NULL), HS_OK);
    size_t k = 0;
    while (k < len && hs_jmatch_accept(m, byte_token((uint8_t)doc[k]), NULL) == HS_OK)
        k++;
    *complete = hs_jmatch_complete(m);
    hs_jmatch_free(m);
    return k;
}

static void byte_tokens_are_bytes(void **state)
{
    (void)state;
    const hs_tok *tok = hs_model_tok(g_tiny);
    for (int b = 0; b < 256; b++) {
        hs_buf piece = {0};
        assert_int_equal(hs_tok_decode_token(tok, byte_token((uint8_t)b), false, &piece), HS_OK);
        assert_int_equal(piece.len, 1);
        assert_int_equal((uint8_t)piece.data[0], b);
        hs_buf_free(&piece);
    }
}

#define WHOLE ((size_t)-1)

static const struct {
    const char *schema; /* NULL: any object */
    const char *doc;
    size_t taken; /* WHOLE: every byte and a complete document; else bytes taken */
} k_docs[] = {
    {k_nested, k_nested_min, WHOLE},
    {k_nested,
     "{ \"risk_level\": \"high\", \"actions\": [\"call\", \"wait\"], \"count\": -12, \"confidence\": 1.5e+10,"
     " \"urgent\": false, \"contact\": {\"name\": \"a\\\"b\\\\c\\/\\n\\u00e9\\uD7FF\", \"phone\": null},"
     " \"note\": \"\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80\"}",
     WHOLE},
    {k_nested,
     "{\n  \"risk_level\": \"medium\",\n  \"actions\": [],\n  \"count\": 0,\n  \"confidence\": -0.25E-3,\n"
     "  \"urgent\": true,\n  \"contact\": {\n    \"name\": \"x\",\n    \"phone\": \"12\"\n  }\n}",
     WHOLE},
    /* required properties are due before '}' */
    {k_nested, "{\"risk_level\":\"low\"}", 19},
    /* properties come in schema order */
    {k_nested, "{\"actions\":[]", 2},
    {k_nested, "{\"risk_level\":\"lo w\"", 17},
    {k_nested, "{\"risk_level\":\"low\",\"actions\":[\"a\",\"b\",\"c\",", 42},
    {k_nested, "{\"risk_level\":\"low\",\"actions\":[],\"count\":1.5", 42},
    {k_nested, "{\"risk_level\":\"low\",\"actions\":[],\"count\":01", 42},
    {k_nested, "{\"risk_level\":\"low\",\"actions\":[\"a\",]", 35},
    {k_nested, "{\"risk_level\":\"low\",\"actions\":[\"\x01\"]", 32},
    {k_nested, "{\"risk_level\":\"low\",\"actions\":[\"\xc0\xaf\"]", 32},
    {k_nested, "{\"risk_level\":\"low\",\"actions\":[\"\xed\xa0\x80\"]", 33},
    {k_nested, "{\"risk_level\":\"low\",\"actions\":[\"\xf4\x90\x80\x80\"]", 33},
    {k_nested, "{\"risk_level\":\"low\",\"actions\":[\"\\ud800\"]", 35},
    {k_nested, "{\"risk_level\":\"low\",\"actions\":[\"\\u0000\"]", 37},
    {k_nested, "{\"risk_level\":\"low\",\"actions\":[\"\\x\"]", 33},
    {k_nested,
     "{\"risk_level\":\"low\",\"actions\":[],\"count\":0,\"confidence\":0,\"urgent\":true,"
     "\"contact\":{\"name\":\"a\"},\"x\":1}",
     96},
    /* nothing after the document, not even a space */
    {k_nested,
     "{\"risk_level\":\"low\",\"actions\":[],\"count\":0,\"confidence\":0,\"urgent\":true,"
     "\"contact\":{\"name\":\"a\"}} ",
     95},
    /* whitespace: one space, or a newline and up to 20 spaces or tabs */
    {k_nested, "{ \"risk_level\"", 14},
    {k_nested, "{  \"risk_level\"", 2},
    {k_nested, "{\n \t                  \"risk_level\"", 34},
    {k_nested, "{\n                     \"risk_level\"", 22},
    {k_nested, "{\n\n", 2},
    {k_nested, "{\t", 1},
    {k_nested, "{\r\n", 1},
    /* maxLength 20: the 21st character is refused (two-byte characters count once) */
    {k_nested,
     "{\"risk_level\":\"low\",\"actions\":[],\"count\":0,\"confidence\":0,\"urgent\":true,"
     "\"contact\":{\"name\":\"a\"},\"note\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
     "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9xy",
     142},
    /* 18 integer digits, not 19 */
    {"{\"type\":\"integer\"}", "123456789012345678", WHOLE},
    {"{\"type\":\"integer\"}", "1234567890123456789", 18},
    {"{\"type\":\"number\"}", "1e999", 4},
    {"{\"type\":\"number\"}", "-", 1},
    {"{\"type\":\"number\"}", "-0.5e-7", WHOLE},
    {NULL, "{\"a\":[1,{\"b\":null}],\"c\":\"x\",\"\":{}}", WHOLE},
    {NULL, "[1]", 0},
    {NULL, " {}", WHOLE},
    /* free-form values nest 8 deep, not 9 */
    {NULL, "{\"a\":[[[[[[[[]]]]]]]]}", WHOLE},
    {NULL, "{\"a\":[[[[[[[[[", 13},
    {"{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\"},{\"type\":\"null\"}]}", "\"x\"", WHOLE},
    {"{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\"},{\"type\":\"null\"}]}", "-7", WHOLE},
    {"{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\"},{\"type\":\"null\"}]}", "null", WHOLE},
    {"{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\"},{\"type\":\"null\"}]}", "true", 0},
    {"{\"enum\":[\"a\",\"ab\",1,12,{\"k\":[true]}]}", "\"ab\"", WHOLE},
    {"{\"enum\":[\"a\",\"ab\",1,12,{\"k\":[true]}]}", "12", WHOLE},
    {"{\"enum\":[\"a\",\"ab\",1,12,{\"k\":[true]}]}", "{\"k\":[true]}", WHOLE},
    {"{\"enum\":[\"a\",\"ab\",1,12,{\"k\":[true]}]}", "13", 1},
    {"{\"type\":\"array\",\"minItems\":2,\"maxItems\":2,\"items\":{\"type\":\"boolean\"}}", "[true,false]",
     WHOLE},
    {"{\"type\":\"array\",\"minItems\":2,\"maxItems\":2,\"items\":{\"type\":\"boolean\"}}", "[true]", 5},
    {"{\"type\":\"array\",\"minItems\":2,\"maxItems\":2,\"items\":{\"type\":\"boolean\"}}", "[true,false,",
     11},
    {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"integer\"}}}",
     "{\"b\":1}", WHOLE},
    {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"integer\"}}}",
     "{\"b\":1,\"a\":2}", 6},
    {"{\"type\":\"object\",\"properties\":{\"ab\":{\"const\":1},\"a\":{\"const\":2}}}", "{\"a\":2}", WHOLE},
    {"{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}}", "{\"k\":1,\"j\":2}", WHOLE},
    {"{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}}", "{\"k\":\"", 5},
};

static void automaton_accepts_and_refuses(void **state)
{
    (void)state;
    const size_t n_cases = sizeof k_docs / sizeof k_docs[0];
    for (size_t i = 0; i < n_cases; i++) {
        hs_jschema *s = compile_ok(k_docs[i].schema);
        const size_t len = strlen(k_docs[i].doc);
        bool complete = false;
        const size_t k = feed(s, k_docs[i].doc, len, &complete);
        if (k_docs[i].taken == WHOLE) {
            if (k != len || !complete)
                fail_msg("case %zu: %s: took %zu of %zu bytes, complete %d", i, k_docs[i].doc, k, len,
                         complete);
            /* the independent validator agrees */
            hs_err err = {0};
            if (hs_jschema_validate(s, k_docs[i].doc, len, &err))
                fail_msg("case %zu: the validator refuses %s: %s", i, k_docs[i].doc, err.msg);
        } else if (k != k_docs[i].taken) {
            fail_msg("case %zu: %s: took %zu bytes, expected %zu", i, k_docs[i].doc, k, k_docs[i].taken);
        }
        hs_jschema_unref(s);
    }
}

/* From any state the automaton reaches, a byte that lowers the distance by
 * one exists until the document is whole (no dead ends; the distance is met
 * exactly), and what this shortest completion makes, the validator accepts.
 * Checked from every prefix of the valid documents above. */
static bool complete_shortest(const hs_jschema *s, const struct hs_jstate *from, hs_buf *out)
{
    /* likely bytes first, so that most steps try few */
    static const char likely[] = "\"}]:,0-1tfn{[ a";
    struct hs_jstate st, next;
    hs_jauto_copy(&st, from);
    for (int d = hs_jauto_distance(s, &st); d > 0; d--) {
        int found = -1;
        for (int k = 0; k < 256 + (int)sizeof likely - 1 && found < 0; k++) {
            const uint8_t b =
                k < (int)sizeof likely - 1 ? (uint8_t)likely[k] : (uint8_t)(k - (int)sizeof likely + 1);
            hs_jauto_copy(&next, &st);
            if (hs_jauto_step(s, &next, b) && hs_jauto_distance(s, &next) == d - 1)
                found = b;
        }
        if (found < 0)
            return false;
        hs_buf_putc(out, (char)found);
        hs_jauto_copy(&st, &next);
    }
    return hs_jauto_complete(s, &st);
}

static void every_prefix_completes_by_its_distance(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof k_docs / sizeof k_docs[0]; i++) {
        if (k_docs[i].taken != WHOLE)
            continue;
        hs_jschema *s = compile_ok(k_docs[i].schema);
        const size_t len = strlen(k_docs[i].doc);
        struct hs_jstate st;
        hs_jauto_init(s, &st);
        hs_buf doc = {0};
        for (size_t p = 0; p <= len; p++) {
            hs_buf_reset(&doc);
            hs_buf_append(&doc, k_docs[i].doc, p);
            const int d = hs_jauto_distance(s, &st);
            if (!complete_shortest(s, &st, &doc))
                fail_msg("case %zu, prefix %zu: no shortest completion: %s", i, p, doc.data);
            assert_int_equal(doc.len, p + (size_t)d);
            hs_err err = {0};
            if (hs_jschema_validate(s, doc.data, doc.len, &err))
                fail_msg("case %zu, prefix %zu: completed %s does not validate: %s", i, p, doc.data, err.msg);
            if (p < len)
                assert_true(hs_jauto_step(s, &st, (uint8_t)k_docs[i].doc[p]));
        }
        hs_buf_free(&doc);
        hs_jschema_unref(s);
    }
}

static void end_of_generation_only_when_whole(void **state)
{
    (void)state;
    hs_jschema *s = compile_ok("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}}}");
    const int32_t eos = hs_tok_eos(hs_model_tok(g_tiny));
    const int V = hs_tok_n_vocab(hs_model_tok(g_tiny));
    hs_jmatch *m = NULL;
    assert_int_equal(hs_jmatch_create(s, g_tiny_vocab, &m, NULL), HS_OK);
    hs_jschema_unref(s); /* the matcher keeps its own reference */
    float *logits = calloc((size_t)V, sizeof *logits);
    hs_err err = {0};
    assert_int_equal(hs_jmatch_accept(m, eos, &err), HS_EINVAL);
    const char *doc = "{\"a\":1}";
    for (const char *p = doc; *p; p++) {
        assert_false(hs_jmatch_complete(m));
        assert_true(hs_jmatch_mask(m, logits, 0) > 0);
        assert_true(isinf(logits[eos]));
        assert_true(isinf(logits[0]) && isinf(logits[1])); /* <unk>, <s> never */
        assert_false(isinf(logits[byte_token((uint8_t)*p)]));
        assert_int_equal(hs_jmatch_accept(m, byte_token((uint8_t)*p), NULL), HS_OK);
        memset(logits, 0, (size_t)V * sizeof *logits);
    }
    assert_true(hs_jmatch_complete(m));
    /* whole: only the end of generation is left */
    assert_int_equal(hs_jmatch_mask(m, logits, 0), 1);
    assert_false(isinf(logits[eos]));
    assert_int_equal(hs_jmatch_accept(m, eos, NULL), HS_OK);
    /* a refused token leaves the state as it was */
    assert_int_equal(hs_jmatch_accept(m, byte_token('x'), &err), HS_EINVAL);
    assert_true(hs_jmatch_complete(m));
    free(logits);
    hs_jmatch_free(m);
}

/* ---- generation ---- */

struct gen {
    const hs_tok *tok;
    const hs_jvocab *vocab;
    int V;
    /* the model, or random logits when ctx is NULL */
    hs_ctx *ctx;
    hs_rng rng;
    float *logits;
    double mask_s; /* time spent in hs_jmatch_mask */
    int masks;
};

static void gen_init(struct gen *g, const hs_tok *tok, const hs_jvocab *v, hs_ctx *ctx)
{
    memset(g, 0, sizeof *g);
    g->tok = tok;
    g->vocab = v;
    g->V = hs_tok_n_vocab(tok);
    g->ctx = ctx;
    g->logits = calloc((size_t)g->V, sizeof *g->logits);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The logits for the next token after `last` (-1: the start). */
static void next_logits(struct gen *g, int32_t last)
{
    if (!g->ctx) {
        for (int t = 0; t < g->V; t++)
            g->logits[t] = 3.0f * hs_rng_normal(&g->rng);
        return;
    }
    int32_t tok = last >= 0 ? last : hs_tok_bos(g->tok);
    struct hs_batch b = {.n = 1, .tokens = &tok};
    hs_err err = {0};
    if (hs_decode(g->ctx, &b, &err))
        fail_msg("decode: %s", err.msg);
    memcpy(g->logits, hs_ctx_logits(g->ctx, 0), (size_t)g->V * sizeof *g->logits);
}

/* One answer under schema s of at most max_tokens tokens, sampled at
 * temperature 1 with seed; the text into out. Returns the tokens used, or
 * -1 when the answer was cut before it was whole. */
static int generate(struct gen *g, const hs_jschema *s, int max_tokens, uint64_t seed, hs_buf *out)
{
    struct hs_sampler_params sp;
    hs_sampler_params_default(&sp);
    sp.temperature = 1.0f;
    sp.top_k = 0;
    sp.top_p = 1.0f;
    sp.min_p = 0.0f;
    sp.seed = seed;
    hs_sampler *smp = NULL;
    hs_jmatch *m = NULL;
    assert_int_equal(hs_sampler_create(&sp, g->V, &smp, NULL), HS_OK);
    assert_int_equal(hs_jmatch_create(s, g->vocab, &m, NULL), HS_OK);
    hs_rng_seed(&g->rng, seed);
    if (g->ctx)
        hs_ctx_seq_clear(g->ctx, 0);
    hs_buf_reset(out);
    int32_t last = -1;
    int n = 0;
    while (n < max_tokens && !hs_jmatch_complete(m)) {
        next_logits(g, last);
        const double t0 = now_s();
        const int allowed = hs_jmatch_mask(m, g->logits, max_tokens - n);
        g->mask_s += now_s() - t0;
        g->masks++;
        assert_true(allowed > 0);
        last = hs_sampler_sample(smp, g->logits, NULL);
        hs_err err = {0};
        if (hs_jmatch_accept(m, last, &err))
            fail_msg("accept: %s", err.msg);
        assert_false(hs_tok_is_eog(g->tok, last)); /* allowed only once whole, and then we stopped */
        assert_int_equal(hs_tok_decode_token(g->tok, last, false, out), HS_OK);
        hs_sampler_accept(smp, last);
        n++;
    }
    const bool whole = hs_jmatch_complete(m);
    hs_jmatch_free(m);
    hs_sampler_free(smp);
    return whole ? n : -1;
}

/* n answers with seeds 1..n: each parses with plain jansson, and the
 * validator accepts it. */
static void generate_many(struct gen *g, const char *schema, int n, int max_tokens, const char *what)
{
    hs_jschema *s = compile_ok(schema);
    hs_buf out = {0};
    int tokens = 0;
    size_t bytes = 0;
    for (int i = 0; i < n; i++) {
        const int used = generate(g, s, max_tokens, 1000 + (uint64_t)i, &out);
        if (used < 0)
            fail_msg("%s: answer %d cut at %d tokens: %s", what, i, max_tokens, out.data);
        json_error_t je;
        json_t *j = json_loadb(out.data, out.len, JSON_DECODE_ANY, &je);
        if (!j)
            fail_msg("%s: answer %d does not parse (%s): %s", what, i, je.text, out.data);
        if (schema == NULL && !json_is_object(j))
            fail_msg("%s: answer %d is not an object: %s", what, i, out.data);
        json_decref(j);
        hs_err err = {0};
        if (hs_jschema_validate(s, out.data, out.len, &err))
            fail_msg("%s: answer %d does not validate (%s): %s", what, i, err.msg, out.data);
        tokens += used;
        bytes += out.len;
        if (i == 0)
            print_message("    %s, first answer: %s\n", what, out.data);
    }
    print_message("    %s: %d answers, %.1f tokens and %.1f bytes each, mask %.3f ms per token "
                  "(%d calls)\n",
                  what, n, (double)tokens / n, (double)bytes / n, 1e3 * g->mask_s / g->masks, g->masks);
    hs_buf_free(&out);
    hs_jschema_unref(s);
}

static hs_ctx *new_ctx(const hs_model *m, int n_ctx)
{
    struct hs_ctx_params cp = {
        .n_ctx = n_ctx, .n_seq = 1, .n_batch = 8, .n_threads = 1, .kv_type = HS_KV_F32};
    hs_ctx *c = NULL;
    hs_err err = {0};
    if (hs_ctx_create(m, &cp, &c, &err))
        fail_msg("ctx: %s", err.msg);
    return c;
}

/* The check: 100 answers of a random-weight model under the nested
 * schema all parse and validate. */
static void model_100_answers_validate(void **state)
{
    (void)state;
    hs_ctx *c = new_ctx(g_tiny, 256);
    struct gen g;
    gen_init(&g, hs_model_tok(g_tiny), g_tiny_vocab, c);
    generate_many(&g, k_nested, 100, 120, "tiny model, nested schema");
    free(g.logits);
    hs_ctx_free(c);
}

static void model_free_form_objects(void **state)
{
    (void)state;
    hs_ctx *c = new_ctx(g_tiny, 256);
    struct gen g;
    gen_init(&g, hs_model_tok(g_tiny), g_tiny_vocab, c);
    generate_many(&g, NULL, 30, 160, "tiny model, any object");
    generate_many(&g,
                  "{\"type\":\"array\",\"items\":{\"anyOf\":[{\"type\":\"string\",\"maxLength\":3},"
                  "{\"type\":\"integer\"},{\"enum\":[true,null]},{\"type\":\"object\","
                  "\"additionalProperties\":{\"type\":\"number\"}}]},\"minItems\":2}",
                  30, 160, "tiny model, array of alternatives");
    free(g.logits);
    hs_ctx_free(c);
}

/* With max_tokens equal to the shortest document's length, every answer is
 * whole: the budget leaves exactly the bytes that lead to the end. */
static void budget_exactly_the_shortest(void **state)
{
    (void)state;
    hs_jschema *s = compile_ok(k_nested);
    struct hs_jstate st;
    hs_jauto_init(s, &st);
    assert_int_equal(hs_jauto_distance(s, &st), (int)strlen(k_nested_min));
    struct gen g;
    gen_init(&g, hs_model_tok(g_tiny), g_tiny_vocab, NULL);
    hs_buf out = {0};
    for (int budget = (int)strlen(k_nested_min); budget < (int)strlen(k_nested_min) + 8; budget++) {
        for (uint64_t seed = 1; seed <= 10; seed++) {
            const int used = generate(&g, s, budget, seed, &out);
            if (used < 0)
                fail_msg("budget %d, seed %llu: cut: %s", budget, (unsigned long long)seed, out.data);
            assert_true(used <= budget);
            assert_int_equal(hs_jschema_validate(s, out.data, out.len, NULL), HS_OK);
        }
    }
    hs_buf_free(&out);
    free(g.logits);
    hs_jschema_unref(s);
}

static void stories_answers_validate(void **state)
{
    (void)state;
    hs_model *m = NULL;
    assert_int_equal(hs_model_load(HS_SHARED_OR_SKIP("models/stories260K.gguf"), NULL, &m, NULL), HS_OK);
    hs_jvocab *v = NULL;
    assert_int_equal(hs_jvocab_create(hs_model_tok(m), &v, NULL), HS_OK);
    hs_ctx *c = new_ctx(m, 256);
    struct gen g;
    gen_init(&g, hs_model_tok(m), v, c);
    generate_many(&g, k_nested, 20, 200, "stories260K, nested schema");
    free(g.logits);
    gen_init(&g, hs_model_tok(m), v, NULL);
    generate_many(&g, NULL, 20, 120, "stories260K vocabulary, random logits, any object");
    free(g.logits);
    hs_ctx_free(c);
    hs_jvocab_free(v);
    hs_model_free(m);
}

/* The 32000-token Llama 2 vocabulary: a real random-weight model. */
static void llama2_vocab_answers_validate(void **state)
{
    (void)state;
    hs_model *m = NULL;
    assert_int_equal(hs_model_load(HS_SHARED_OR_SKIP("models/llama-2-tiny-random.gguf"), NULL, &m, NULL),
                     HS_OK);
    hs_jvocab *v = NULL;
    const double t0 = now_s();
    assert_int_equal(hs_jvocab_create(hs_model_tok(m), &v, NULL), HS_OK);
    print_message("    llama2 vocabulary trie: %u nodes, built in %.1f ms\n", v->n_nodes,
                  1e3 * (now_s() - t0));
    hs_ctx *c = new_ctx(m, 128);
    struct gen g;
    gen_init(&g, hs_model_tok(m), v, c);
    generate_many(&g, k_nested, 6, 100, "llama-2-tiny-random (32000), nested schema");
    free(g.logits);
    hs_ctx_free(c);
    hs_jvocab_free(v);
    hs_model_free(m);
}

/* Byte-level BPE: GPT-2's vocabulary on a small random model written here
 * (tokens are whole byte strings with leading spaces, quotes fused to
 * letters and punctuation, no <0xNN> tokens). */
static void bpe_vocab_answers_validate(void **state)
{
    (void)state;
    const char *vocab = HS_SHARED_OR_SKIP("testdata/tokenizer/ggml-vocab-gpt-2.gguf");
    struct hs_synth_params p;
    hs_synth_params_default(&p);
    assert_int_equal(hs_synth_shape(&p, "tiny", NULL), HS_OK);
    p.vocab_from = vocab;
    p.n_embd = 32;
    p.n_head = 2;
    p.n_head_kv = 1;
    p.n_ff = 64;
    p.n_layer = 1;
    p.tied_output = true;
    p.init_scale = 0.5f;
    p.ftype = "f32";
    char *path = hs_test_tmpfile("json_gpt2.gguf");
    hs_err err = {0};
    if (hs_synth_write(path, &p, NULL, &err))
        fail_msg("synth: %s", err.msg);
    hs_model *m = NULL;
    assert_int_equal(hs_model_load(path, NULL, &m, NULL), HS_OK);
    hs_jvocab *v = NULL;
    assert_int_equal(hs_jvocab_create(hs_model_tok(m), &v, NULL), HS_OK);
    hs_ctx *c = new_ctx(m, 128);
    struct gen g;
    gen_init(&g, hs_model_tok(m), v, c);
    generate_many(&g, k_nested, 6, 100, "gpt-2 BPE (50257) random model, nested schema");
    free(g.logits);
    gen_init(&g, hs_model_tok(m), v, NULL);
    generate_many(&g, NULL, 6, 80, "gpt-2 BPE vocabulary, random logits, any object");
    free(g.logits);
    hs_ctx_free(c);
    hs_jvocab_free(v);
    hs_model_free(m);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(compile_refuses_with_path),
        cmocka_unit_test(compile_limits),
        cmocka_unit_test(compile_ignores_annotations),
        cmocka_unit_test(validate_cases),
        cmocka_unit_test(byte_tokens_are_bytes),
        cmocka_unit_test(automaton_accepts_and_refuses),
        cmocka_unit_test(every_prefix_completes_by_its_distance),
        cmocka_unit_test(end_of_generation_only_when_whole),
        cmocka_unit_test(budget_exactly_the_shortest),
        cmocka_unit_test(model_100_answers_validate),
        cmocka_unit_test(model_free_form_objects),
        cmocka_unit_test(stories_answers_validate),
        cmocka_unit_test(llama2_vocab_answers_validate),
        cmocka_unit_test(bpe_vocab_answers_validate),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
