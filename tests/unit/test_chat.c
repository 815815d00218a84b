/* model/chat.c: each template's rendering of one conversation, written out by
 * hand from the model family's published prompt format, and detection from
 * template sources (a real one from a vocabulary GGUF, short snippets in the
 * style of the others). */
#include "test_util.h"

#include "base/buf.h"
#include "base/err.h"
#include "gguf/gguf.h"
#include "model/chat.h"

#include <string.h>

static const struct hs_chat_msg k_conv[] = {
    {"system", "You are a helpful assistant."},
    {"user", "Hello"},
    {"assistant", "Hi there"},
    {"user", "How are you?"},
};
#define N_CONV (sizeof k_conv / sizeof k_conv[0])

static void expect_render(enum hs_tmpl t, const struct hs_chat_msg *msgs, size_t n, bool add_gen,
                          const char *eos, const char *want)
{
    hs_buf out = {0};
    hs_err err = {0};
    assert_int_equal(hs_tmpl_apply(t, msgs, n, add_gen, "<s>", eos, &out, &err), HS_OK);
    if (strcmp(out.data ? out.data : "", want))
        print_message("%s rendered:\n[%s]\nwanted:\n[%s]\n", hs_tmpl_name(t), out.data, want);
    assert_string_equal(out.data ? out.data : "", want);
    hs_buf_free(&out);
}

static void chatml_conversation(void **state)
{
    (void)state;
    expect_render(HS_TMPL_CHATML, k_conv, N_CONV, true, "<|im_end|>",
                  "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                  "<|im_start|>user\nHello<|im_end|>\n"
                  "<|im_start|>assistant\nHi there<|im_end|>\n"
                  "<|im_start|>user\nHow are you?<|im_end|>\n"
                  "<|im_start|>assistant\n");
    /* without the generation prompt the text ends after the last turn */
    expect_render(HS_TMPL_CHATML, k_conv + 1, 1, false, "", "<|im_start|>user\nHello<|im_end|>\n");
}

static void llama3_conversation(void **state)
{
    (void)state;
    expect_render(HS_TMPL_LLAMA3, k_conv, N_CONV, true, "<|eot_id|>",
                  "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nHow are you?<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n");
    /* Meta's template trims each message */
    const struct hs_chat_msg m[] = {{"user", "  Hi \n"}};
    expect_render(HS_TMPL_LLAMA3, m, 1, false, "",
                  "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
}

static void llama2_conversation(void **state)
{
    (void)state;
    /* Llama 2 chat: the system prompt inside the first [INST] in <<SYS>>
     * tags; each answer closed by </s>; BOS is left to the tokenizer. */
    expect_render(HS_TMPL_LLAMA2, k_conv, N_CONV, true, "</s>",
                  "[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\n"
                  "Hello [/INST]Hi there</s>"
                  "[INST] How are you? [/INST]");
}

static void mistral_conversation(void **state)
{
    (void)state;
    /* Mistral Instruct has no system role: it goes in front of the first
     * instruction, on its own line. */
    expect_render(HS_TMPL_MISTRAL, k_conv, N_CONV, true, "</s>",
                  "[INST] You are a helpful assistant.\n"
                  "Hello [/INST]Hi there</s>"
                  "[INST] How are you? [/INST]");
    /* an empty eos text falls back to </s> */
    expect_render(HS_TMPL_MISTRAL, k_conv + 1, 2, false, "", "[INST] Hello [/INST]Hi there</s>");
}

static void phi3_conversation(void **state)
{
    (void)state;
    expect_render(HS_TMPL_PHI3, k_conv, N_CONV, true, "<|endoftext|>",
                  "<|system|>\nYou are a helpful assistant.<|end|>\n"
                  "<|user|>\nHello<|end|>\n"
                  "<|assistant|>\nHi there<|end|>\n"
                  "<|user|>\nHow are you?<|end|>\n"
                  "<|assistant|>\n");
}

static void gemma_conversation(void **state)
{
    (void)state;
    /* Gemma has no system turn: the system text opens the first user turn;
     * the assistant is "model"; contents are trimmed. */
    expect_render(HS_TMPL_GEMMA, k_conv, N_CONV, true, "<eos>",
                  "<start_of_turn>user\nYou are a helpful assistant.\n\nHello<end_of_turn>\n"
                  "<start_of_turn>model\nHi there<end_of_turn>\n"
                  "<start_of_turn>user\nHow are you?<end_of_turn>\n"
                  "<start_of_turn>model\n");
    const struct hs_chat_msg m[] = {{"user", "\n Hi  "}};
    expect_render(HS_TMPL_GEMMA, m, 1, false, "", "<start_of_turn>user\nHi<end_of_turn>\n");
}

static void zephyr_conversation(void **state)
{
    (void)state;
    /* HuggingFaceH4/zephyr-7b-beta: each turn ends with EOS (</s>) */
    expect_render(HS_TMPL_ZEPHYR, k_conv, N_CONV, true, "</s>",
                  "<|system|>\nYou are a helpful assistant.</s>\n"
                  "<|user|>\nHello</s>\n"
                  "<|assistant|>\nHi there</s>\n"
                  "<|user|>\nHow are you?</s>\n"
                  "<|assistant|>\n");
    /* StableLM zephyr's EOS is <|endoftext|>, also the default */
    expect_render(HS_TMPL_ZEPHYR, k_conv + 1, 1, true, "", "<|user|>\nHello<|endoftext|>\n<|assistant|>\n");
}

static void unknown_role_and_template_are_errors(void **state)
{
    (void)state;
    const struct hs_chat_msg m[] = {{"user", "hi"}, {"tool", "42"}};
    hs_buf out = {0};
    hs_err err = {0};
    assert_int_equal(hs_tmpl_apply(HS_TMPL_CHATML, m, 2, true, "", "", &out, &err), HS_EINVAL);
    assert_non_null(strstr(err.msg, "tool"));
    assert_int_equal(hs_tmpl_apply(HS_TMPL_UNKNOWN, m, 1, true, "", "", &out, &err), HS_EINVAL);
    assert_non_null(strstr(err.msg, "chatml")); /* lists the known ones */
    hs_buf_free(&out);
}

static void names_round_trip(void **state)
{
    (void)state;
    const char *names = hs_tmpl_names();
    for (int t = 0; t < HS_TMPL_COUNT; t++) {
        const char *name = hs_tmpl_name((enum hs_tmpl)t);
        assert_int_equal(hs_tmpl_from_name(name), t);
        assert_non_null(strstr(names, name));
    }
    assert_int_equal(hs_tmpl_from_name("qwen"), HS_TMPL_CHATML);
    assert_int_equal(hs_tmpl_from_name("no-such"), HS_TMPL_UNKNOWN);
    assert_int_equal(hs_tmpl_from_name(NULL), HS_TMPL_UNKNOWN);
    assert_string_equal(hs_tmpl_name(HS_TMPL_PHI3), "phi3");
}

/* Snippets in the style of each family's tokenizer_config.json template. */
static void detects_template_sources(void **state)
{
    (void)state;
    struct {
        const char *src;
        enum hs_tmpl want;
    } cases[] = {
        {"{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
         "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
         "'<|eot_id|>' %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
         "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
         HS_TMPL_LLAMA3},
        {"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
         "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% "
         "endif %}",
         HS_TMPL_CHATML},
        {"{% if messages[0]['role'] == 'system' %}{% set system_message = '<<SYS>>\\n' + "
         "messages[0]['content'] + '\\n<</SYS>>\\n\\n' %}{% endif %}{% for message in messages %}{% if "
         "message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% endif "
         "%}{% endfor %}",
         HS_TMPL_LLAMA2},
        {"{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + "
         "message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ "
         "message['content'] + eos_token}}{% endif %}{% endfor %}",
         HS_TMPL_MISTRAL},
        {"{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + "
         "message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + "
         "message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ "
         "'<|assistant|>\n' }}{% endif %}",
         HS_TMPL_PHI3},
        {"{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'assistant') %}{% set role = "
         "'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' "
         "+ message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt "
         "%}{{'<start_of_turn>model\n'}}{% endif %}",
         HS_TMPL_GEMMA},
        {"{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + "
         "message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ "
         "'<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% endfor %}",
         HS_TMPL_ZEPHYR},
        {"{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + message['content'] + "
         "'<|endoftext|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|user|>\n' }}{% endif %}",
         HS_TMPL_ZEPHYR},
        {"gemma", HS_TMPL_GEMMA}, /* a bare name, as llama.cpp accepts */
        {"{{ messages }}", HS_TMPL_UNKNOWN},
        {"", HS_TMPL_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum hs_tmpl got = hs_tmpl_detect(cases[i].src);
        if (got != cases[i].want)
            print_message("case %zu: detected %s, wanted %s\n", i, hs_tmpl_name(got),
                          hs_tmpl_name(cases[i].want));
        assert_int_equal(got, cases[i].want);
    }
    assert_int_equal(hs_tmpl_detect(NULL), HS_TMPL_UNKNOWN);
}

/* The Phi-3 vocabulary carries its real tokenizer.chat_template. */
static void detects_phi3_from_its_gguf(void **state)
{
    (void)state;
    const char *path = HS_SHARED_OR_SKIP("testdata/tokenizer/ggml-vocab-phi-3.gguf");
    hs_gguf *g = NULL;
    hs_err err = {0};
    assert_int_equal(hs_gguf_open(path, &g, &err), HS_OK);
    const char *src;
    size_t len;
    if (hs_gguf_get_str(g, "tokenizer.chat_template", &src, &len, NULL) != HS_OK) {
        hs_gguf_close(g);
        print_message("[  SKIP    ] no tokenizer.chat_template in %s\n", path);
        skip();
    }
    char *copy = test_malloc(len + 1);
    memcpy(copy, src, len);
    copy[len] = '\0';
    assert_int_equal(hs_tmpl_detect(copy), HS_TMPL_PHI3);
    test_free(copy);
    hs_gguf_close(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chatml_conversation),        cmocka_unit_test(llama3_conversation),
        cmocka_unit_test(llama2_conversation),        cmocka_unit_test(mistral_conversation),
        cmocka_unit_test(phi3_conversation),          cmocka_unit_test(gemma_conversation),
        cmocka_unit_test(zephyr_conversation),        cmocka_unit_test(unknown_role_and_template_are_errors),
        cmocka_unit_test(names_round_trip),           cmocka_unit_test(detects_template_sources),
        cmocka_unit_test(detects_phi3_from_its_gguf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
