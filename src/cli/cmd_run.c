/* 'hestia run': one prompt, or an interactive chat, in the terminal.
 *
 * A prompt run prints the prompt as given, then streams each generated piece
 * as soon as it is safe to print (stop strings and half UTF-8 characters are
 * held back by hs_stop), and ends with a newline; timings go to stderr. A
 * chat renders the whole conversation with the model's template every turn
 * and decodes only what the KV cache does not already hold. */
#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"
#include "base/pool.h"
#include "base/sys.h"
#include "cli/cli.h"
#include "model/chat.h"
#include "model/context.h"
#include "model/lora.h"
#include "model/model.h"
#include "model/sampler.h"
#include "model/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CMD "run"
#define N_BATCH 512
#define MAX_STOPS 16
#define MAX_LORAS 16

struct run_opts {
    const char *model;
    const char *prompt;      /* -p */
    const char *prompt_file; /* -f */
    bool chat;
    int n_predict; /* generated tokens; -1 = until end of generation or full context */
    int n_threads; /* 0 = number of CPUs */
    int n_ctx;     /* 0 = the context's default */
    const char *system;
    const char *tmpl_name;
    bool warmup;
    const char *stops[MAX_STOPS];
    int n_stops;
    char lora_paths[MAX_LORAS][1024]; /* --lora FILE[:SCALE] */
    float lora_scales[MAX_LORAS];
    int n_loras;
    struct hs_sampler_params sp;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hestia run -m MODEL [-p PROMPT | -f FILE | --chat] [options]\n"
            "\n"
            "  -m, --model FILE         GGUF model\n"
            "  -p, --prompt TEXT        prompt (printed back, then continued)\n"
            "  -f, --file FILE          read the prompt from FILE (one trailing newline dropped)\n"
            "      --chat               interactive chat on stdin/stdout with the chat template\n"
            "      --system TEXT        system message for --chat\n"
            "      --chat-template NAME one of: %s\n"
            "  -n, --n-predict N        tokens to generate (default 128; -1 = until end)\n"
            "  -c, --ctx-size N         context size (default: the model's, at most 4096)\n"
            "  -t, --threads N          threads (default: number of CPUs)\n"
            "      --temp T             temperature (default 0.8; 0 = greedy)\n"
            "      --top-k K            top-k (default 40; 0 = off)\n"
            "      --top-p P            top-p (default 0.95; 1 = off)\n"
            "      --min-p P            min-p (default 0.05; 0 = off)\n"
            "      --repeat-penalty X   (default 1.0 = off)\n"
            "      --repeat-last-n N    penalty window (default 64; -1 = everything)\n"
            "      --frequency-penalty X, --presence-penalty X   (default 0)\n"
            "      --seed S             sampling seed (default: from the clock)\n"
            "      --stop STR           stop when STR is generated (repeatable)\n"
            "      --lora FILE[:SCALE]  apply a LoRA adapter (GGUF) unmerged, times SCALE\n"
            "                           (default 1; repeatable: the adapters add up)\n"
            "      --no-warmup          skip the warm-up pass\n",
            hs_tmpl_names());
}

/* ---- flags ---- */

static int bad_value(const char *flag, const char *v, const char *what)
{
    return hs_cli_usage(CMD, "%s: '%s' is not %s", flag, v, what);
}

/* Returns 0 to go on, 1 after --help (exit 0), or 2 (usage error, printed). */
static int parse_args(int argc, char **argv, struct run_opts *o)
{
    memset(o, 0, sizeof *o);
    o->n_predict = 128;
    o->warmup = true;
    hs_sampler_params_default(&o->sp);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(a, "--chat")) {
            o->chat = true;
            continue;
        }
        if (!strcmp(a, "--no-warmup")) {
            o->warmup = false;
            continue;
        }
        if (i + 1 >= argc)
            return hs_cli_usage(CMD, "%s needs a value, or is unknown", a);
        const char *v = argv[++i];
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            o->model = v;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            o->prompt = v;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            o->prompt_file = v;
        } else if (!strcmp(a, "--lora")) {
            hs_err lerr = {0};
            if (o->n_loras == MAX_LORAS)
                return hs_cli_usage(CMD, "at most %d --lora adapters", MAX_LORAS);
            if (hs_lora_parse_spec(v, o->lora_paths[o->n_loras], sizeof o->lora_paths[0],
                                   &o->lora_scales[o->n_loras], &lerr))
                return hs_cli_usage(CMD, "--lora %s", lerr.msg);
            o->n_loras++;
        } else if (!strcmp(a, "--system")) {
            o->system = v;
        } else if (!strcmp(a, "--chat-template")) {
            o->tmpl_name = v;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (hs_parse_int(v, -1, 1 << 30, &o->n_predict))
                return bad_value(a, v, "an integer >= -1");
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            if (hs_parse_int(v, 1, 1 << 24, &o->n_ctx))
                return bad_value(a, v, "a positive integer");
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (hs_parse_int(v, 1, 1024, &o->n_threads))
                return bad_value(a, v, "a thread count (1..1024)");
        } else if (!strcmp(a, "--temp")) {
            if (hs_parse_f32(v, &o->sp.temperature))
                return bad_value(a, v, "a number");
        } else if (!strcmp(a, "--top-k")) {
            if (hs_parse_int(v, 0, 1 << 30, &o->sp.top_k))
                return bad_value(a, v, "an integer >= 0");
        } else if (!strcmp(a, "--top-p")) {
            if (hs_parse_f32(v, &o->sp.top_p))
                return bad_value(a, v, "a number");
        } else if (!strcmp(a, "--min-p")) {
            if (hs_parse_f32(v, &o->sp.min_p))
                return bad_value(a, v, "a number");
        } else if (!strcmp(a, "--repeat-penalty")) {
            if (hs_parse_f32(v, &o->sp.repeat_penalty))
                return bad_value(a, v, "a number");
        } else if (!strcmp(a, "--repeat-last-n")) {
            if (hs_parse_int(v, -1, 1 << 30, &o->sp.repeat_last_n))
                return bad_value(a, v, "an integer >= -1");
        } else if (!strcmp(a, "--frequency-penalty")) {
            if (hs_parse_f32(v, &o->sp.frequency_penalty))
                return bad_value(a, v, "a number");
        } else if (!strcmp(a, "--presence-penalty")) {
            if (hs_parse_f32(v, &o->sp.presence_penalty))
                return bad_value(a, v, "a number");
        } else if (!strcmp(a, "--seed")) {
            if (hs_parse_u64(v, &o->sp.seed))
                return bad_value(a, v, "an unsigned integer");
        } else if (!strcmp(a, "--stop")) {
            if (!*v)
                return hs_cli_usage(CMD, "--stop: the stop string is empty");
            if (o->n_stops == MAX_STOPS)
                return hs_cli_usage(CMD, "--stop: at most %d stop strings", MAX_STOPS);
            o->stops[o->n_stops++] = v;
        } else {
            return hs_cli_usage(CMD, "unknown option '%s'", a);
        }
    }
    if (!o->model)
        return hs_cli_usage(CMD, "-m MODEL is required");
    if (!!o->prompt + !!o->prompt_file + o->chat > 1)
        return hs_cli_usage(CMD, "-p, -f and --chat exclude each other");
    if (o->system && !o->chat)
        return hs_cli_usage(CMD, "--system needs --chat");
    hs_err err = {0};
    if (hs_sampler_params_check(&o->sp, &err))
        return hs_cli_usage(CMD, "%s", err.msg);
    return 0;
}

/* ---- the session: model, context, sampler, and what the cache holds ---- */

struct session {
    hs_model *model;
    const hs_tok *tok;
    hs_ctx *ctx;
    hs_sampler *smp;
    hs_stop *stop;
    hs_lora *loras[MAX_LORAS];
    int n_loras;
    int n_ctx;
    int n_vocab;
    int32_t *cached; /* tokens in the KV cache, in order (n_ctx) */
    int n_cached;
    /* statistics */
    int n_prompt_tok, n_gen_tok;
    double t_prompt, t_gen;
};

static void session_free(struct session *s)
{
    hs_stop_free(s->stop);
    hs_sampler_free(s->smp);
    hs_ctx_free(s->ctx);
    for (int i = 0; i < s->n_loras; i++)
        hs_lora_free(s->loras[i]);
    hs_model_free(s->model);
    hs_free(s->cached);
}

/* Decodes toks after what the cache holds, in chunks of N_BATCH; the logits of
 * the last token are then hs_ctx_logits(ctx, *last). prompt says which kind
 * of tokens they are: the context is batch-invariant, as the server's, so each
 * kind takes the kernels it takes there and greedy answers equal the API's. */
static int decode_tokens(struct session *s, const int32_t *toks, int n, bool prompt, int *last, hs_err *err)
{
    int32_t pos[N_BATCH], seq[N_BATCH];
    for (int off = 0; off < n; off += N_BATCH) {
        int k = n - off < N_BATCH ? n - off : N_BATCH;
        for (int i = 0; i < k; i++) {
            pos[i] = s->n_cached + i;
            seq[i] = 0;
        }
        struct hs_batch b = {
            .n = k, .tokens = toks + off, .pos = pos, .seq = seq, .logits = NULL, .n_prompt = prompt ? k : 0};
        int rc = hs_decode(s->ctx, &b, err);
        if (rc)
            return rc;
        memcpy(s->cached + s->n_cached, toks + off, (size_t)k * sizeof *toks);
        s->n_cached += k;
        *last = k - 1;
    }
    return HS_OK;
}

/* llama.cpp's warm-up: one pass so that first-touch page faults of the
 * weights and the pool's thread start-up are not timed, then an empty cache. */
static int warmup(struct session *s, hs_err *err)
{
    int32_t t = hs_tok_bos(s->tok) >= 0 ? hs_tok_bos(s->tok) : 0;
    int last;
    int rc = decode_tokens(s, &t, 1, true, &last, err);
    hs_ctx_seq_clear(s->ctx, 0);
    s->n_cached = 0;
    return rc;
}

static int session_open(struct session *s, const struct run_opts *o, hs_err *err)
{
    memset(s, 0, sizeof *s);
    int rc = hs_model_load(o->model, NULL, &s->model, err);
    if (rc)
        return rc;
    s->tok = hs_model_tok(s->model);
    s->n_vocab = hs_tok_n_vocab(s->tok); /* sample only ids the tokenizer can decode (<= rows of logits) */
    struct hs_ctx_params cp = {.n_ctx = o->n_ctx,
                               .n_seq = 1,
                               .n_batch = N_BATCH,
                               .n_threads = o->n_threads ? o->n_threads : hs_cpu_count(),
                               .batch_invariant = true};
    rc = hs_ctx_create(s->model, &cp, &s->ctx, err);
    if (rc)
        return rc;
    for (int i = 0; i < o->n_loras; i++) {
        if ((rc = hs_lora_load(o->lora_paths[i], hs_model_gguf(s->model), &s->loras[i], err)))
            return rc;
        s->n_loras++;
    }
    if (o->n_loras &&
        (rc = hs_ctx_set_loras(s->ctx, (const hs_lora *const *)s->loras, o->lora_scales, o->n_loras, err)))
        return rc;
    s->n_ctx = hs_ctx_n_ctx(s->ctx);
    s->cached = hs_calloc((size_t)s->n_ctx, sizeof *s->cached);
    if (!s->cached)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    rc = hs_sampler_create(&o->sp, s->n_vocab, &s->smp, err);
    if (rc)
        return rc;
    if (hs_stop_create(o->stops, o->n_stops, &s->stop))
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    if (o->warmup)
        return warmup(s, err);
    return HS_OK;
}

static void put_out(const char *p, size_t n)
{
    if (n) {
        fwrite(p, 1, n, stdout);
        fflush(stdout);
    }
}

/* Samples and streams one answer from the logits of batch row `last`.
 * `bare_start`: nothing but BOS precedes the answer, so the first piece loses
 * its SentencePiece dummy-prefix space, as a detokenizer would drop it.
 * The answer's text (without a stop string) is appended to `answer` if given.
 * Returns HS_OK, or an error from hs_decode. */
static int generate(struct session *s, int n_predict, int last, bool bare_start, hs_buf *answer, hs_err *err)
{
    hs_buf piece = {0};
    const char *emit;
    size_t emit_len;
    double t0 = hs_now_s();
    int rc = HS_OK, n_gen = 0;
    for (;;) {
        if (n_predict >= 0 && n_gen >= n_predict)
            break;
        const float *logits = hs_ctx_logits(s->ctx, last);
        if (!logits) {
            rc = hs_err_set(err, HS_EINVAL, "no logits after decoding");
            break;
        }
        int32_t t = hs_sampler_sample(s->smp, logits, NULL);
        hs_sampler_accept(s->smp, t);
        n_gen++;
        if (hs_tok_is_eog(s->tok, t))
            break;
        hs_buf_reset(&piece);
        if (bare_start && n_gen == 1) {
            /* hs_tok_decode drops the dummy-prefix space of the first piece after BOS */
            int32_t two[2] = {hs_tok_bos(s->tok), t};
            rc = two[0] >= 0 ? hs_tok_decode(s->tok, two, 2, false, &piece)
                             : hs_tok_decode(s->tok, &t, 1, false, &piece);
        } else {
            rc = hs_tok_decode_token(s->tok, t, false, &piece);
        }
        if (rc) {
            hs_err_set(err, rc, "cannot decode token %d", (int)t);
            break;
        }
        bool stopped = hs_stop_feed(s->stop, piece.data ? piece.data : "", piece.len, &emit, &emit_len);
        put_out(emit, emit_len);
        if (answer && hs_buf_append(answer, emit, emit_len)) {
            rc = hs_err_set(err, HS_ENOMEM, "out of memory");
            break;
        }
        if (stopped)
            break;
        if (n_predict >= 0 && n_gen >= n_predict)
            break; /* the last token needs no forward pass */
        if (s->n_cached >= s->n_ctx) {
            fprintf(stderr, "hestia %s: the context is full (%d tokens); stopping\n", CMD, s->n_ctx);
            break;
        }
        rc = decode_tokens(s, &t, 1, false, &last, err);
        if (rc)
            break;
    }
    hs_stop_flush(s->stop, &emit, &emit_len);
    put_out(emit, emit_len);
    if (!rc && answer && hs_buf_append(answer, emit, emit_len))
        rc = hs_err_set(err, HS_ENOMEM, "out of memory");
    hs_stop_reset(s->stop);
    hs_buf_free(&piece);
    s->n_gen_tok += n_gen;
    s->t_gen += hs_now_s() - t0;
    return rc;
}

static void print_stats(const struct session *s)
{
    fprintf(stderr, "prompt: %d tokens, %.3f s, %.1f tokens/s\n", s->n_prompt_tok, s->t_prompt,
            s->t_prompt > 0 ? s->n_prompt_tok / s->t_prompt : 0.0);
    fprintf(stderr, "generation: %d tokens, %.3f s, %.1f tokens/s\n", s->n_gen_tok, s->t_gen,
            s->t_gen > 0 ? s->n_gen_tok / s->t_gen : 0.0);
}

/* ---- one prompt ---- */

static int run_prompt(struct session *s, const struct run_opts *o, const char *text, size_t len)
{
    hs_err err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    if (hs_tok_encode(s->tok, text, len, true, false, &ids, &n, &err))
        return hs_cli_fail_err(CMD, &err);
    int status = 0;
    if (n == 0) {
        status = hs_cli_fail(CMD, "the prompt is empty and the vocabulary has no BOS token to start from");
        goto out;
    }
    if ((long)n > s->n_ctx) {
        status = hs_cli_fail(CMD, "prompt is %zu tokens but the context holds %d", n, s->n_ctx);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        hs_sampler_accept(s->smp, ids[i]);
    put_out(text, len);

    double t0 = hs_now_s();
    int last = 0;
    if (decode_tokens(s, ids, (int)n, true, &last, &err)) {
        status = hs_cli_fail_err(CMD, &err);
        goto out;
    }
    s->t_prompt = hs_now_s() - t0;
    s->n_prompt_tok = (int)n;

    bool bare = n == 1 && ids[0] == hs_tok_bos(s->tok);
    if (generate(s, o->n_predict, last, bare, NULL, &err)) {
        fputc('\n', stdout);
        status = hs_cli_fail_err(CMD, &err);
        goto out;
    }
    fputc('\n', stdout);
    fflush(stdout);
    print_stats(s);
out:
    hs_free(ids);
    return status;
}

/* ---- chat ---- */

struct chat {
    struct hs_chat_msg *msgs;
    size_t n, cap;
};

/* Takes ownership of content (freed by chat_free). */
static int chat_push(struct chat *c, const char *role, char *content)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        struct hs_chat_msg *m = hs_realloc_array(c->msgs, cap, sizeof *m);
        if (!m)
            return HS_ENOMEM;
        c->msgs = m;
        c->cap = cap;
    }
    c->msgs[c->n++] = (struct hs_chat_msg){role, content};
    return HS_OK;
}

static void chat_free(struct chat *c)
{
    for (size_t i = 0; i < c->n; i++)
        hs_free((char *)c->msgs[i].content);
    hs_free(c->msgs);
}

static const char *token_text(const hs_tok *t, int32_t id, hs_buf *tmp)
{
    hs_buf_reset(tmp);
    if (id >= 0)
        hs_tok_decode_token(t, id, true, tmp);
    return tmp->data ? tmp->data : "";
}

/* Brings the cache up to the rendered conversation: the tokens it shares with
 * what the cache holds stay, the rest of the cache is dropped and the new
 * tail decoded. Earlier turns thus cost nothing; only where the model's own
 * tokens differ from the tokenizer's reading of the same text is a little
 * re-decoded. */
static int sync_cache(struct session *s, const char *text, size_t len, int *last, hs_err *err)
{
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = hs_tok_encode(s->tok, text, len, true, true, &ids, &n, err);
    if (rc)
        return rc;
    if ((long)n >= s->n_ctx) {
        hs_free(ids);
        return hs_err_set(err, HS_ERANGE, "the conversation is %zu tokens but the context holds %d", n,
                          s->n_ctx);
    }
    int keep = 0;
    while (keep < s->n_cached && (size_t)keep < n && s->cached[keep] == ids[keep])
        keep++;
    if ((size_t)keep == n)
        keep--; /* decode at least one token: its logits start the answer */
    hs_log_debug("run.chat.turn", "tokens=%zu cached=%d kept=%d decoding=%d", n, s->n_cached, keep,
                 (int)n - keep);
    hs_ctx_seq_truncate(s->ctx, 0, keep);
    s->n_cached = keep;
    double t0 = hs_now_s();
    rc = decode_tokens(s, ids + keep, (int)n - keep, true, last, err);
    s->t_prompt += hs_now_s() - t0;
    for (size_t i = (size_t)keep; i < n; i++)
        hs_sampler_accept(s->smp, ids[i]); /* the penalties see the user's words too, as for a prompt */
    s->n_prompt_tok += (int)n - keep;
    hs_free(ids);
    return rc;
}

static int run_chat(struct session *s, const struct run_opts *o)
{
    enum hs_tmpl t;
    if (o->tmpl_name) {
        t = hs_tmpl_from_name(o->tmpl_name);
        if (t == HS_TMPL_UNKNOWN)
            return hs_cli_fail(CMD, "unknown chat template '%s' (known: %s)", o->tmpl_name, hs_tmpl_names());
    } else {
        const char *src = hs_model_chat_template(s->model);
        t = hs_tmpl_detect(src);
        if (t == HS_TMPL_UNKNOWN)
            return hs_cli_fail(CMD, "%s; pass --chat-template (known: %s)",
                               src ? "the model's chat template is not one hestia knows"
                                   : "the model has no chat template",
                               hs_tmpl_names());
    }
    hs_buf bos = {0}, eos = {0};
    token_text(s->tok, hs_tok_bos(s->tok), &bos);
    token_text(s->tok, hs_tok_eos(s->tok), &eos);

    struct chat c = {0};
    hs_buf text = {0}, answer = {0};
    hs_err err = {0};
    int status = 0;
    char *line = NULL;
    size_t line_cap = 0;
    bool tty = isatty(STDIN_FILENO);
    if (o->system) {
        char *sys = hs_strdup(o->system);
        if (!sys || chat_push(&c, "system", sys)) {
            hs_free(sys);
            status = hs_cli_fail(CMD, "out of memory");
            goto out;
        }
    }
    for (;;) {
        if (tty) {
            fputs("> ", stdout);
            fflush(stdout);
        }
        ssize_t got = getline(&line, &line_cap, stdin);
        if (got < 0)
            break; /* EOF ends the chat */
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = '\0';
        if (got == 0)
            continue;
        char *user = hs_strdup(line);
        if (!user || chat_push(&c, "user", user)) {
            hs_free(user);
            status = hs_cli_fail(CMD, "out of memory");
            goto out;
        }
        hs_buf_reset(&text);
        int last = 0;
        if (hs_tmpl_apply(t, c.msgs, c.n, true, bos.data, eos.data, &text, &err) ||
            sync_cache(s, text.data, text.len, &last, &err)) {
            status = hs_cli_fail_err(CMD, &err);
            goto out;
        }
        hs_buf_reset(&answer);
        if (generate(s, o->n_predict, last, false, &answer, &err)) {
            fputc('\n', stdout);
            status = hs_cli_fail_err(CMD, &err);
            goto out;
        }
        fputc('\n', stdout);
        fflush(stdout);
        char *reply = hs_buf_steal(&answer);
        if (!reply)
            reply = hs_strdup("");
        if (!reply || chat_push(&c, "assistant", reply)) {
            hs_free(reply);
            status = hs_cli_fail(CMD, "out of memory");
            goto out;
        }
    }
    print_stats(s);
out:
    free(line); /* getline's buffer comes from malloc */
    hs_buf_free(&text);
    hs_buf_free(&answer);
    hs_buf_free(&bos);
    hs_buf_free(&eos);
    chat_free(&c);
    return status;
}

int hs_cmd_run(int argc, char **argv)
{
    struct run_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : rc;

    char *file_text = NULL;
    size_t file_len = 0;
    hs_err err = {0};
    if (o.prompt_file) {
        if (hs_read_file(o.prompt_file, &file_text, &file_len, &err))
            return hs_cli_fail_err(CMD, &err);
        if (file_len && file_text[file_len - 1] == '\n')
            file_text[--file_len] = '\0';
    }
    if (o.tmpl_name && hs_tmpl_from_name(o.tmpl_name) == HS_TMPL_UNKNOWN) {
        hs_free(file_text);
        return hs_cli_fail(CMD, "unknown chat template '%s' (known: %s)", o.tmpl_name, hs_tmpl_names());
    }

    struct session s;
    int status;
    if (session_open(&s, &o, &err)) {
        status = hs_cli_fail_err(CMD, &err);
    } else if (o.chat) {
        status = run_chat(&s, &o);
    } else {
        const char *text = o.prompt_file ? file_text : o.prompt ? o.prompt : "";
        size_t len = o.prompt_file ? file_len : strlen(text);
        status = run_prompt(&s, &o, text, len);
    }
    session_free(&s);
    hs_free(file_text);
    return status;
}
