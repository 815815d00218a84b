/* Chat templates: detection by marker strings and rendering of the known
 * formats, following llama.cpp's llm_chat_detect_template and
 * llm_chat_apply_template (src/llama-chat.cpp) so that a prompt rendered here
 * is the same text llama.cpp would feed the model.
 *
 * As in llama.cpp, the rendered text never starts with BOS: encoding it with
 * add_special adds BOS exactly once, as the vocabulary says. */
#include "model/chat.h"

#include <string.h>

struct tmpl_name {
    const char *name;
    enum hs_tmpl t;
};

/* The first name of each template is its canonical name. */
static const struct tmpl_name k_names[] = {
    {"llama3", HS_TMPL_LLAMA3},
    {"chatml", HS_TMPL_CHATML},
    {"llama2", HS_TMPL_LLAMA2},
    {"mistral", HS_TMPL_MISTRAL},
    {"phi3", HS_TMPL_PHI3},
    {"gemma", HS_TMPL_GEMMA},
    {"zephyr", HS_TMPL_ZEPHYR},
    /* aliases */
    {"qwen", HS_TMPL_CHATML},
    {"llama2-sys", HS_TMPL_LLAMA2},
};

const char *hs_tmpl_name(enum hs_tmpl t)
{
    for (size_t i = 0; i < sizeof k_names / sizeof k_names[0]; i++)
        if (k_names[i].t == t)
            return k_names[i].name;
    return "unknown";
}

enum hs_tmpl hs_tmpl_from_name(const char *name)
{
    if (!name)
        return HS_TMPL_UNKNOWN;
    for (size_t i = 0; i < sizeof k_names / sizeof k_names[0]; i++)
        if (!strcmp(k_names[i].name, name))
            return k_names[i].t;
    return HS_TMPL_UNKNOWN;
}

const char *hs_tmpl_names(void)
{
    return "llama3, chatml (qwen), llama2, mistral, phi3, gemma, zephyr";
}

static bool has(const char *src, const char *marker)
{
    return strstr(src, marker) != NULL;
}

/* Marker order matters where formats share markers; it follows llama.cpp's
 * (chatml before [INST], phi3's <|end|> before zephyr's <|user|>). */
enum hs_tmpl hs_tmpl_detect(const char *src)
{
    if (!src)
        return HS_TMPL_UNKNOWN;
    enum hs_tmpl named = hs_tmpl_from_name(src);
    if (named != HS_TMPL_UNKNOWN)
        return named;
    if (has(src, "<|im_start|>")) {
        /* phi-4 (<|im_sep|>) and SmolVLM reuse the marker in a different
         * format; better no template than a wrong one. */
        if (has(src, "<|im_sep|>") || has(src, "<end_of_utterance>"))
            return HS_TMPL_UNKNOWN;
        return HS_TMPL_CHATML;
    }
    if (!strncmp(src, "mistral", 7) || has(src, "[INST]"))
        return has(src, "<<SYS>>") ? HS_TMPL_LLAMA2 : HS_TMPL_MISTRAL;
    if (has(src, "<|assistant|>") && has(src, "<|end|>"))
        return HS_TMPL_PHI3;
    if (has(src, "<|user|>") && (has(src, "<|endoftext|>") || has(src, "</s>") || has(src, "eos_token")))
        return HS_TMPL_ZEPHYR;
    if (has(src, "<start_of_turn>"))
        return HS_TMPL_GEMMA;
    if (has(src, "<|start_header_id|>") && has(src, "<|end_header_id|>"))
        return HS_TMPL_LLAMA3;
    return HS_TMPL_UNKNOWN;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Appends s without leading and trailing ASCII whitespace. */
static int put_trimmed(hs_buf *out, const char *s)
{
    size_t a = 0, b = strlen(s);
    while (a < b && is_space(s[a]))
        a++;
    while (b > a && is_space(s[b - 1]))
        b--;
    return hs_buf_append(out, s + a, b - a);
}

/* Appends a sequence of strings; stops at the first NULL. */
static int put(hs_buf *out, const char *a, const char *b, const char *c, const char *d)
{
    const char *parts[4] = {a, b, c, d};
    for (int i = 0; i < 4 && parts[i]; i++)
        if (hs_buf_puts(out, parts[i]))
            return HS_ENOMEM;
    return HS_OK;
}

enum role { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT };

static int role_of(const char *r)
{
    if (!r)
        return -1;
    if (!strcmp(r, "system"))
        return ROLE_SYSTEM;
    if (!strcmp(r, "user"))
        return ROLE_USER;
    if (!strcmp(r, "assistant"))
        return ROLE_ASSISTANT;
    return -1;
}

/* Llama 2 chat and Mistral Instruct v0.1/v0.2 (llama.cpp's "llama2-sys" and
 * "llama2"): no BOS inside the history, "[INST] " opens each user turn, an
 * answer ends with EOS. Mistral has no system block: the system text goes
 * into the first instruction, followed by a newline. */
static int render_inst(bool sys_block, const struct hs_chat_msg *msgs, size_t n, const char *eos, hs_buf *out)
{
    int rc = hs_buf_puts(out, "[INST] ");
    bool inside = true;
    for (size_t i = 0; i < n && !rc; i++) {
        const char *c = msgs[i].content ? msgs[i].content : "";
        int role = role_of(msgs[i].role);
        if (!inside) {
            inside = true;
            rc = hs_buf_puts(out, "[INST] ");
        }
        if (rc)
            break;
        if (role == ROLE_SYSTEM && sys_block) {
            rc = put(out, "<<SYS>>\n", c, "\n<</SYS>>\n\n", NULL);
        } else if (role == ROLE_SYSTEM) {
            rc = put(out, c, "\n", NULL, NULL);
        } else if (role == ROLE_USER) {
            rc = put(out, c, " [/INST]", NULL, NULL);
        } else {
            rc = put(out, c, eos, NULL, NULL);
            inside = false;
        }
    }
    return rc;
}

/* Gemma has no system role: the (trimmed) system text is put at the top of
 * the next user turn; "assistant" is called "model"; contents are trimmed. */
static int render_gemma(const struct hs_chat_msg *msgs, size_t n, bool add_gen, hs_buf *out)
{
    hs_buf sys = {0};
    int rc = HS_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        const char *c = msgs[i].content ? msgs[i].content : "";
        int role = role_of(msgs[i].role);
        if (role == ROLE_SYSTEM) {
            rc = put_trimmed(&sys, c);
            continue;
        }
        rc = put(out, "<start_of_turn>", role == ROLE_ASSISTANT ? "model" : "user", "\n", NULL);
        if (!rc && sys.len && role == ROLE_USER) {
            rc = put(out, sys.data, "\n\n", NULL, NULL);
            hs_buf_reset(&sys);
        }
        if (!rc)
            rc = put_trimmed(out, c);
        if (!rc)
            rc = hs_buf_puts(out, "<end_of_turn>\n");
    }
    if (!rc && add_gen)
        rc = hs_buf_puts(out, "<start_of_turn>model\n");
    hs_buf_free(&sys);
    return rc;
}

int hs_tmpl_apply(enum hs_tmpl t, const struct hs_chat_msg *msgs, size_t n, bool add_generation_prompt,
                  const char *bos, const char *eos, hs_buf *out, hs_err *err)
{
    (void)bos;
    if (t <= HS_TMPL_UNKNOWN || t >= HS_TMPL_COUNT)
        return hs_err_set(err, HS_EINVAL, "unknown chat template (known: %s)", hs_tmpl_names());
    for (size_t i = 0; i < n; i++)
        if (role_of(msgs[i].role) < 0)
            return hs_err_set(err, HS_EINVAL, "message %zu: unknown role '%s' (system, user, assistant)", i,
                              msgs[i].role ? msgs[i].role : "(null)");
    const char *eos_s = eos && *eos ? eos : "</s>";
    int rc = HS_OK;
    switch (t) {
    case HS_TMPL_CHATML:
        for (size_t i = 0; i < n && !rc; i++)
            rc = put(out, "<|im_start|>", msgs[i].role, "\n", NULL) ||
                 put(out, msgs[i].content ? msgs[i].content : "", "<|im_end|>\n", NULL, NULL);
        if (!rc && add_generation_prompt)
            rc = hs_buf_puts(out, "<|im_start|>assistant\n");
        break;
    case HS_TMPL_LLAMA3:
        for (size_t i = 0; i < n && !rc; i++)
            rc = put(out, "<|start_header_id|>", msgs[i].role, "<|end_header_id|>\n\n", NULL) ||
                 put_trimmed(out, msgs[i].content ? msgs[i].content : "") || hs_buf_puts(out, "<|eot_id|>");
        if (!rc && add_generation_prompt)
            rc = hs_buf_puts(out, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case HS_TMPL_LLAMA2:
    case HS_TMPL_MISTRAL:
        /* The closing " [/INST]" already asks for the answer. */
        rc = render_inst(t == HS_TMPL_LLAMA2, msgs, n, eos_s, out);
        break;
    case HS_TMPL_PHI3:
        for (size_t i = 0; i < n && !rc; i++)
            rc = put(out, "<|", msgs[i].role, "|>\n", NULL) ||
                 put(out, msgs[i].content ? msgs[i].content : "", "<|end|>\n", NULL, NULL);
        if (!rc && add_generation_prompt)
            rc = hs_buf_puts(out, "<|assistant|>\n");
        break;
    case HS_TMPL_GEMMA:
        rc = render_gemma(msgs, n, add_generation_prompt, out);
        break;
    case HS_TMPL_ZEPHYR: {
        /* Each turn ends with the vocabulary's EOS: "</s>" for
         * HuggingFaceH4/zephyr-7b-beta, "<|endoftext|>" for StableLM zephyr
         * (what llama.cpp writes, its fixed choice). */
        const char *end = eos && *eos ? eos : "<|endoftext|>";
        for (size_t i = 0; i < n && !rc; i++)
            rc = put(out, "<|", msgs[i].role, "|>\n", NULL) ||
                 put(out, msgs[i].content ? msgs[i].content : "", end, "\n", NULL);
        if (!rc && add_generation_prompt)
            rc = hs_buf_puts(out, "<|assistant|>\n");
        break;
    }
    default:
        break;
    }
    if (rc)
        return hs_err_set(err, HS_ENOMEM, "chat template: out of memory");
    return HS_OK;
}
