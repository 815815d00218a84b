/* Chat templates: turning a list of messages into the prompt text a model was
 * trained on. Templates are recognised from the GGUF's tokenizer.chat_template
 * (a Jinja source) by their markers, and can be named explicitly. Only the
 * known formats are rendered (no general Jinja engine). */
#ifndef HS_MODEL_CHAT_H
#define HS_MODEL_CHAT_H

#include "base/buf.h"
#include "base/err.h"

#include <stdbool.h>
#include <stddef.h>

enum hs_tmpl {
    HS_TMPL_UNKNOWN = -1,
    HS_TMPL_LLAMA3 = 0,
    HS_TMPL_CHATML, /* qwen, chatml */
    HS_TMPL_LLAMA2,
    HS_TMPL_MISTRAL,
    HS_TMPL_PHI3,
    HS_TMPL_GEMMA,
    HS_TMPL_ZEPHYR,
    HS_TMPL_COUNT
};

struct hs_chat_msg {
    const char *role; /* "system", "user", "assistant" */
    const char *content;
};

/* Detects the template of a Jinja source; HS_TMPL_UNKNOWN when nothing matches. */
enum hs_tmpl hs_tmpl_detect(const char *src);
/* "llama3", "chatml", ... and back (also accepts "qwen" for chatml); UNKNOWN if none. */
const char *hs_tmpl_name(enum hs_tmpl t);
enum hs_tmpl hs_tmpl_from_name(const char *name);
/* Comma-separated list of names, for error messages. */
const char *hs_tmpl_names(void);

/* Renders messages; add_generation_prompt opens the assistant turn. bos/eos are
 * the vocabulary's texts (may be ""). Unknown roles -> HS_EINVAL.
 * As llama.cpp's llm_chat_apply_template: the text never starts with BOS
 * (encode it with add_special, which adds BOS once, and parse_special); llama2
 * and mistral close answers with eos (default "</s>"), zephyr closes every turn
 * with eos (default "<|endoftext|>"); llama3 and gemma trim message contents.
 * llama2 is llama.cpp's "llama2-sys" (<<SYS>> block), mistral its "llama2"
 * (system text in front of the first instruction). */
int hs_tmpl_apply(enum hs_tmpl t, const struct hs_chat_msg *msgs, size_t n, bool add_generation_prompt,
                  const char *bos, const char *eos, hs_buf *out, hs_err *err);

#endif
