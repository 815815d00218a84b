/* 'hestia perplexity': the perplexity of a model over a text file, chunked
 * as llama.cpp's perplexity tool (model/perplexity.h). Running values per
 * chunk go to stderr; the result to stdout (and to --json FILE). */
#include "base/err.h"
#include "base/mem.h"
#include "base/parse.h"
#include "base/sys.h"
#include "cli/cli.h"
#include "model/model.h"
#include "model/perplexity.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define CMD "perplexity"

struct ppl_opts {
    const char *model;
    const char *text;
    const char *json;
    struct hs_ppl_params p;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: hestia perplexity -m MODEL -f TEXT [options]\n"
               "\n"
               "  -m, --model FILE     GGUF model\n"
               "  -f, --file FILE      text to score\n"
               "  -c, --ctx-size N     tokens per chunk (default 512); the second half of each is scored\n"
               "  -b, --batch-size N   tokens per forward pass (default min(N_CTX, 512))\n"
               "  -t, --threads N      threads (default: number of CPUs)\n"
               "      --chunks N       score at most N chunks (default: all)\n"
               "      --kv-f32         f32 KV cache (default f16, as llama.cpp)\n"
               "      --json FILE      also write the numbers as JSON\n");
}

/* The options perplexity and kld share (chunking, batch, threads): 0 when a
 * was one of them and v is valid; otherwise the usage error's exit code
 * (also for an unknown option). */
int hs_cli_ppl_option(const char *cmd, const char *a, const char *v, struct hs_ppl_params *p)
{
    int *dst, lo, hi;
    const char *what;
    if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
        dst = &p->n_ctx, lo = 4, hi = 1 << 20, what = "an integer >= 4";
    } else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
        dst = &p->n_batch, lo = 1, hi = 1 << 20, what = "a positive integer";
    } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
        dst = &p->n_threads, lo = 1, hi = 1024, what = "a thread count (1..1024)";
    } else if (!strcmp(a, "--chunks")) {
        dst = &p->n_chunks, lo = 1, hi = 1 << 30, what = "a positive integer";
    } else {
        return hs_cli_usage(cmd, "unknown option '%s'", a);
    }
    if (hs_parse_int(v, lo, hi, dst))
        return hs_cli_usage(cmd, "%s: '%s' is not %s", a, v, what);
    return 0;
}

/* 0 to go on, 1 after --help, 2 on a usage error (printed). */
static int parse_args(int argc, char **argv, struct ppl_opts *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(a, "--kv-f32")) {
            o->p.kv_type = HS_KV_F32;
            continue;
        }
        if (i + 1 >= argc)
            return hs_cli_usage(CMD, "%s needs a value, or is unknown", a);
        const char *v = argv[++i];
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            o->model = v;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            o->text = v;
        } else if (!strcmp(a, "--json")) {
            o->json = v;
        } else {
            int rc = hs_cli_ppl_option(CMD, a, v, &o->p);
            if (rc)
                return rc;
        }
    }
    if (!o->model)
        return hs_cli_usage(CMD, "-m MODEL is required");
    if (!o->text)
        return hs_cli_usage(CMD, "-f TEXT is required");
    return 0;
}

static void progress(void *user, int chunk, int n_chunks, const struct hs_ppl_result *r,
                     const struct hs_kld_result *kld)
{
    (void)user;
    (void)kld;
    fprintf(stderr, "[%d/%d] ppl = %.4f +/- %.4f\n", chunk, n_chunks, r->ppl, r->ppl_err);
}

static int write_json(const char *path, const struct ppl_opts *o, const struct hs_ppl_result *r, hs_err *err)
{
    json_t *j = json_object();
    json_object_set_new(j, "model", json_string(o->model));
    json_object_set_new(j, "text", json_string(o->text));
    json_object_set_new(j, "n_ctx", json_integer(o->p.n_ctx ? o->p.n_ctx : 512));
    json_object_set_new(j, "chunks", json_integer(r->n_chunks));
    json_object_set_new(j, "tokens_scored", json_integer(r->n_tokens));
    json_object_set_new(j, "ppl", json_real(r->ppl));
    json_object_set_new(j, "ppl_err", json_real(r->ppl_err));
    json_object_set_new(j, "nll", json_real(r->nll.mean));
    json_object_set_new(j, "nll_err", json_real(r->nll.err));
    int rc = json_dump_file(j, path, JSON_INDENT(2));
    json_decref(j);
    return rc ? hs_err_set(err, HS_EIO, "%s: cannot write the JSON file", path) : HS_OK;
}

int hs_cmd_perplexity(int argc, char **argv)
{
    struct ppl_opts o;
    int prc = parse_args(argc, argv, &o);
    if (prc)
        return prc == 1 ? 0 : prc;
    hs_err err = {0};
    char *text = NULL;
    size_t len = 0;
    if (hs_read_file(o.text, &text, &len, &err))
        return hs_cli_fail_err(CMD, &err);
    hs_model *m = NULL;
    if (hs_model_load(o.model, NULL, &m, &err)) {
        hs_free(text);
        return hs_cli_fail_err(CMD, &err);
    }
    struct hs_ppl_result r;
    int rc = hs_perplexity(m, text, len, &o.p, progress, NULL, &r, &err);
    hs_free(text);
    hs_model_free(m);
    if (rc)
        return hs_cli_fail_err(CMD, &err);
    printf("model       %s\n", o.model);
    printf("chunks      %d x %d tokens, %ld scored\n", r.n_chunks, o.p.n_ctx ? o.p.n_ctx : 512, r.n_tokens);
    printf("mean NLL    %.6f +/- %.6f\n", r.nll.mean, r.nll.err);
    printf("perplexity  %.4f +/- %.4f\n", r.ppl, r.ppl_err);
    if (o.json && write_json(o.json, &o, &r, &err))
        return hs_cli_fail_err(CMD, &err);
    return 0;
}
