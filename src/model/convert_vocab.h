/* Tokenizer import for the HF converter (model/convert.c): a SentencePiece
 * tokenizer.model or a byte-level BPE tokenizer.json -> the tokenizer.* keys
 * llama.cpp's converter writes.
 * Internal to convert.c and its tests. */
#ifndef HS_MODEL_CONVERT_VOCAB_H
#define HS_MODEL_CONVERT_VOCAB_H

#include "base/err.h"
#include "gguf/gguf.h"

#include <stddef.h>
#include <stdint.h>

/* Reads dir/tokenizer.model (and dir/tokenizer_config.json when present:
 * add_bos_token, add_eos_token, chat_template) and adds the tokenizer keys to
 * w. The vocabulary is padded to n_vocab with "[PAD<id>]" tokens (type
 * unused) as llama.cpp does; more pieces than n_vocab is an error. */
int hs_convert_vocab_spm(hs_gguf_writer *w, const char *dir, int64_t n_vocab, hs_err *err);

/* Parses a tokenizer.model image in memory and checks it as
 * hs_convert_vocab_spm does; *n_pieces gets the piece count. For fuzzing. */
int hs_convert_spm_check(const void *data, size_t size, const char *name, int64_t *n_pieces, hs_err *err);

/* Reads dir/tokenizer.json (a byte-level BPE: model.type "BPE", model.vocab,
 * model.merges, added_tokens) and dir/tokenizer_config.json (bos/eos/unk/pad
 * tokens, add_bos_token, add_eos_token, chat_template) and adds llama.cpp's
 * "gpt2" tokenizer keys to w. pre is tokenizer.ggml.pre. Ids the file does
 * not use up to n_vocab become "[PAD<id>]" (type unused). */
int hs_convert_vocab_bpe(hs_gguf_writer *w, const char *dir, int64_t n_vocab, const char *pre, hs_err *err);

#endif
