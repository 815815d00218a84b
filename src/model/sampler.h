/* Token sampling, one sampler per request: penalties over the history, then
 * temperature, top-k, top-p, min-p, and a seeded draw (same seed and same
 * logits, same tokens). temperature <= 0 is greedy (argmax, lowest id on ties). */
#ifndef HS_MODEL_SAMPLER_H
#define HS_MODEL_SAMPLER_H

#include "base/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hs_sampler hs_sampler;

struct hs_sampler_params {
    float temperature;       /* default 0.8; <= 0 greedy */
    int top_k;               /* default 40; <= 0 off */
    float top_p;             /* default 0.95; >= 1 off */
    float min_p;             /* default 0.05; <= 0 off */
    float repeat_penalty;    /* default 1.0 (off); llama.cpp style divide/multiply */
    int repeat_last_n;       /* default 64; window for all penalties; -1 = whole history */
    float frequency_penalty; /* default 0 (OpenAI style) */
    float presence_penalty;  /* default 0 */
    uint64_t seed;           /* default: from the clock, see hs_sampler_params_default */
};

void hs_sampler_params_default(struct hs_sampler_params *p);
/* HS_EINVAL with a message naming the field for out-of-range values. */
int hs_sampler_params_check(const struct hs_sampler_params *p, hs_err *err);

int hs_sampler_create(const struct hs_sampler_params *p, int n_vocab, hs_sampler **out, hs_err *err);
void hs_sampler_free(hs_sampler *s);

/* Adds a token to the penalty history (prompt tokens may be added too). */
void hs_sampler_accept(hs_sampler *s, int32_t tok);
/* Picks the next token from n_vocab logits (not modified). Does not accept it.
 * If prob is non-NULL it receives the chosen token's probability after
 * penalties and temperature (1 for greedy's softmax at temperature 1). */
int32_t hs_sampler_sample(hs_sampler *s, const float *logits, float *prob);
void hs_sampler_reset(hs_sampler *s); /* clears history; keeps the rng stream */

/* Stop strings over streamed text: feed each decoded piece; the matcher says
 * how many bytes are safe to emit now (a possible stop-string prefix at the end
 * is held back) and whether a stop string was hit (the text before it is the
 * answer). */
typedef struct hs_stop hs_stop;
int hs_stop_create(const char *const *stops, int n_stops, hs_stop **out);
void hs_stop_free(hs_stop *st);
/* Appends piece; returns true when a stop string completed. *emit, *emit_len is
 * the text now safe to print (borrowed until the next call). */
bool hs_stop_feed(hs_stop *st, const char *piece, size_t len, const char **emit, size_t *emit_len);
/* At the end of generation: the held-back tail that turned out not to be a stop. */
void hs_stop_flush(hs_stop *st, const char **emit, size_t *emit_len);
/* Forgets all pending text and a completed stop, for the next answer (chat turns). */
void hs_stop_reset(hs_stop *st);
/* Notes: hs_stop_create returns HS_EINVAL for an empty stop string, HS_ENOMEM
 * when out of memory. Besides stop-string prefixes, an incomplete UTF-8
 * sequence at the end is held back too, so what is emitted always ends on a
 * whole character (a matcher with no stops is a UTF-8 reassembler). */

#endif
