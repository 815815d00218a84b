/* Tokenizers built from a GGUF's tokenizer.ggml.* keys:
 *  - "llama": SentencePiece BPE with scores, byte fallback (<0xNN>), the
 *    dummy-prefix space and "▁" for spaces.
 *  - "gpt2": byte-level BPE with merges, after the pre-tokenizer named in
 *    tokenizer.ggml.pre (llama-bpe/llama3, qwen2, gpt-2, falcon, mpt, starcoder,
 *    refact, deepseek-llm, deepseek-coder, ...; regexes via pcre2, Unicode via
 *    utf8proc).
 *  - "bert" (addition): WordPiece, lowercased and accent-stripped as BERT's
 *    uncased tokenizer (llama.cpp's WPM).
 * Token ids match llama.cpp's tokenizer for the same GGUF (its test vectors).
 * Thread-safe after load (encode/decode take no locks and change nothing). */
#ifndef HS_MODEL_TOKENIZER_H
#define HS_MODEL_TOKENIZER_H

#include "base/buf.h"
#include "base/err.h"
#include "gguf/gguf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hs_tok hs_tok;

/* Token attributes (tokenizer.ggml.token_type). */
enum hs_tok_type {
    HS_TOK_UNDEFINED = 0,
    HS_TOK_NORMAL = 1,
    HS_TOK_UNKNOWN = 2,
    HS_TOK_CONTROL = 3,
    HS_TOK_USER_DEFINED = 4,
    HS_TOK_UNUSED = 5,
    HS_TOK_BYTE = 6,
};

/* Builds the tokenizer; keeps no pointer into g (copies what it needs), so g
 * may be closed afterwards. Unknown tokenizer.ggml.model or .pre -> HS_EUNSUPPORTED. */
int hs_tok_load(const hs_gguf *g, hs_tok **out, hs_err *err);
/* (addition) Builds a byte-level BPE ("gpt2") tokenizer from GPT-2 style
 * files: vocab_json maps token text -> id (encoder.json / vocab.json),
 * merges_txt holds one "left right" merge per line (vocab.bpe / merges.txt,
 * an optional "#version" first line is skipped). pre names the
 * pre-tokenizer as tokenizer.ggml.pre would ("llama-bpe", "gpt-2", ...; NULL
 * for "default"). All tokens are NORMAL; there is no BOS/EOS. */
int hs_tok_load_bpe_files(const char *vocab_json, const char *merges_txt, const char *pre, hs_tok **out,
                          hs_err *err);
void hs_tok_free(hs_tok *t);

int hs_tok_n_vocab(const hs_tok *t);
const char *hs_tok_model_name(const hs_tok *t); /* "llama", "gpt2", "bert" */
const char *hs_tok_pre_name(const hs_tok *t);   /* "default", "llama-bpe", ... */

/* Encodes len bytes of text (any bytes; invalid UTF-8 is handled, never a
 * crash). add_special: BOS/EOS as the vocabulary's add_bos/add_eos say
 * ([CLS] ... [SEP] for BERT).
 * parse_special: text like "<|eot_id|>" becomes that control token.
 * *ids is a new array (free with hs_free), *n its length. */
int hs_tok_encode(const hs_tok *t, const char *text, size_t len, bool add_special, bool parse_special,
                  int32_t **ids, size_t *n, hs_err *err);

/* Appends the bytes token id stands for ("▁" -> " ", <0x0A> -> "\n", byte-level
 * BPE characters -> bytes). Control and unknown tokens append nothing unless
 * `special`. A piece may be part of a UTF-8 character (byte tokens): callers
 * that stream text must hold back incomplete sequences. HS_EINVAL for an id
 * outside the vocabulary. */
int hs_tok_decode_token(const hs_tok *t, int32_t id, bool special, hs_buf *out);
/* Decodes a sequence. When the vocabulary adds a dummy-prefix space
 * (SentencePiece), one leading space of the first token (after a leading BOS)
 * is dropped, as llama.cpp's detokenizer does, so that
 * decode(encode(x)) == x. HS_EINVAL (nothing appended) if any id is out of range. */
int hs_tok_decode(const hs_tok *t, const int32_t *ids, size_t n, bool special, hs_buf *out);

/* The vocabulary entry as stored (borrowed; not NUL-terminated). */
const char *hs_tok_text(const hs_tok *t, int32_t id, size_t *len);
enum hs_tok_type hs_tok_type(const hs_tok *t, int32_t id);
/* Looks up an exact vocabulary entry; -1 if none. */
int32_t hs_tok_find(const hs_tok *t, const char *text, size_t len);

int32_t hs_tok_bos(const hs_tok *t); /* -1 when none */
int32_t hs_tok_eos(const hs_tok *t);
int32_t hs_tok_eot(const hs_tok *t); /* (addition) end of turn, e.g. <|eot_id|>; -1 when none */
int32_t hs_tok_unk(const hs_tok *t); /* (addition) -1 when none */
/* Whether encode with add_special adds BOS / EOS (false when the id is missing). */
bool hs_tok_add_bos(const hs_tok *t);
bool hs_tok_add_eos(const hs_tok *t);
/* (addition) SentencePiece's dummy-prefix space (tokenizer.ggml.add_space_prefix). */
bool hs_tok_add_space_prefix(const hs_tok *t);
/* End of generation: eos, eot (<|eot_id|>, <|im_end|>, <end_of_turn>, ...). */
bool hs_tok_is_eog(const hs_tok *t, int32_t id);

#endif
