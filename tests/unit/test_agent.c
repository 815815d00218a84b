/* engine/agent: copies of agents, and the user message a scenario becomes. */
#include "test_util.h"

#include "base/buf.h"
#include "base/mem.h"
#include "engine/agent.h"

#include <math.h>
#include <string.h>

static char *scenario_text(const char *scenario, int want_rc)
{
    hs_buf b = {0};
    hs_err err = {0};
    int rc = hs_agent_scenario_text(&b, scenario, scenario ? strlen(scenario) : 0, &err);
    if (rc != want_rc)
        print_message("scenario_text: %d %s\n", rc, err.msg);
    assert_int_equal(rc, want_rc);
    if (rc) {
        assert_true(err.msg[0] != '\0');
        hs_buf_free(&b);
        return NULL;
    }
    return hs_buf_steal(&b);
}

static void plain_text_is_kept_as_written(void **state)
{
    (void)state;
    const char *s = "  A wildfire moves toward Elefsina.\nWind: NE 60 km/h.\n";
    char *t = scenario_text(s, HS_OK);
    assert_string_equal(t, s);
    hs_free(t);
    /* JSON that is not an object is text too */
    t = scenario_text("[1, 2]", HS_OK);
    assert_string_equal(t, "[1, 2]");
    hs_free(t);
}

static void a_json_scenario_is_laid_out_title_first(void **state)
{
    (void)state;
    /* The four leading fields come first whatever their order in the file;
     * the rest follow in the file's order, nested values as indented JSON,
     * null fields left out. */
    const char *s = "{\"wind\": {\"speed_kmh\": 60, \"from\": \"NE\"},"
                    " \"description\": \"Fire front 8 km wide.\","
                    " \"time\": \"2025-07-22T14:00+03:00\","
                    " \"title\": \"Wildfire near Athens\","
                    " \"affected_population\": 12000,"
                    " \"notes\": null,"
                    " \"resources\": [\"12 engines\", \"2 aircraft\"],"
                    " \"location\": \"Mandra, West Attica\","
                    " \"evacuation_ordered\": true}";
    const char *want = "Title: Wildfire near Athens\n"
                       "Location: Mandra, West Attica\n"
                       "Time: 2025-07-22T14:00+03:00\n"
                       "Description: Fire front 8 km wide.\n"
                       "Wind:\n"
                       "  {\n"
                       "    \"speed_kmh\": 60,\n"
                       "    \"from\": \"NE\"\n"
                       "  }\n"
                       "Affected population: 12000\n"
                       "Resources:\n"
                       "  [\n"
                       "    \"12 engines\",\n"
                       "    \"2 aircraft\"\n"
                       "  ]\n"
                       "Evacuation ordered: true";
    char *t = scenario_text(s, HS_OK);
    assert_string_equal(t, want);
    hs_free(t);
}

static void a_long_description_gets_its_own_paragraph(void **state)
{
    (void)state;
    const char *s = "{\"title\": \"T\", \"description\": \"line one\\nline two\", \"phase\": 2}";
    char *t = scenario_text(s, HS_OK);
    assert_string_equal(t, "Title: T\nDescription:\nline one\nline two\n\nPhase: 2");
    hs_free(t);
}

static void an_empty_scenario_is_refused(void **state)
{
    (void)state;
    scenario_text("", HS_EINVAL);
    scenario_text(" \n\t ", HS_EINVAL);
    scenario_text("{}", HS_EINVAL);
    scenario_text(NULL, HS_EINVAL);
}

static void copy_is_deep(void **state)
{
    (void)state;
    struct hs_agent a, b;
    hs_agent_init(&a);
    assert_true(isnan(a.temperature) && a.top_k == -1 && a.max_tokens == -1);
    a.id = hs_strdup("fire");
    a.system_prompt = hs_strdup("You command.");
    a.schema = hs_strdup("{\"type\":\"object\"}");
    a.n_loras = 1;
    a.loras = hs_calloc(1, sizeof *a.loras);
    a.loras[0].adapter = hs_strdup("fire-lora");
    a.loras[0].scale = 0.5f;
    a.temperature = 0.3f;
    assert_int_equal(hs_agent_copy(&b, &a), HS_OK);
    assert_ptr_not_equal(b.id, a.id);
    assert_string_equal(b.id, "fire");
    assert_string_equal(b.system_prompt, a.system_prompt);
    assert_string_equal(b.schema, a.schema);
    assert_null(b.name);
    assert_int_equal(b.n_loras, 1);
    assert_ptr_not_equal(b.loras[0].adapter, a.loras[0].adapter);
    assert_string_equal(b.loras[0].adapter, "fire-lora");
    assert_true(b.loras[0].scale == 0.5f && b.temperature == 0.3f);
    hs_agent_free(&a);
    assert_null(a.id);
    assert_string_equal(b.loras[0].adapter, "fire-lora"); /* b lives on */
    hs_agent_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_text_is_kept_as_written),
        cmocka_unit_test(a_json_scenario_is_laid_out_title_first),
        cmocka_unit_test(a_long_description_gets_its_own_paragraph),
        cmocka_unit_test(an_empty_scenario_is_refused),
        cmocka_unit_test(copy_is_deep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
