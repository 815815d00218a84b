/* 'hestia kld': how far a quantized model's next-token distributions are
 * from its base model's over a text: mean KL(base || quant), its spread,
 * top-1 agreement and both perplexities (model/perplexity.h). Both models
 * run over the same chunks side by side; nothing is stored between them. */
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

#define CMD "kld"

struct kld_opts {
    const char *base;
    const char *model;
    const char *text;
    const char *json;
    struct hs_ppl_params p;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: hestia kld --base BASE.gguf -m QUANT.gguf -f TEXT [options]\n"
               "\n"
               "      --base FILE      the reference model (f16/f32)\n"
               "  -m, --model FILE     the model to compare (quantized)\n"
               "  -f, --file FILE      text to score\n"
               "  -c, --ctx-size N     tokens per chunk (default 512); the second half of each is scored\n"
               "  -b, --batch-size N   tokens per forward pass (default min(N_CTX, 512))\n"
               "  -t, --threads N      threads (default: number of CPUs)\n"
               "      --chunks N       score at most N chunks (default: all)\n"
               "      --kv-f32         f32 KV caches (default f16, as llama.cpp)\n"
               "      --json FILE      also write the numbers as JSON\n");
}

/* 0 to go on, 1 after --help, 2 on a usage error (printed). */
static int parse_args(int argc, char **argv, struct kld_opts *o)
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
        if (!strcmp(a, "--base")) {
            o->base = v;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
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
    if (!o->base)
        return hs_cli_usage(CMD, "--base BASE.gguf is required");
    if (!o->model)
        return hs_cli_usage(CMD, "-m QUANT.gguf is required");
    if (!o->text)
        return hs_cli_usage(CMD, "-f TEXT is required");
    return 0;
}

static void progress(void *user, int chunk, int n_chunks, const struct hs_ppl_result *r,
                     const struct hs_kld_result *k)
{
    (void)user;
    (void)r;
    fprintf(stderr, "[%d/%d] kld = %.6f +/- %.6f  top1 = %.2f%%  ppl base %.4f quant %.4f\n", chunk, n_chunks,
            k->kld.mean, k->kld.err, 100 * k->top1.mean, k->base.ppl, k->quant.ppl);
}

static json_t *stat_json(double mean, double err)
{
    json_t *j = json_object();
    json_object_set_new(j, "mean", json_real(mean));
    json_object_set_new(j, "err", json_real(err));
    return j;
}

static int write_json(const char *path, const struct kld_opts *o, const struct hs_kld_result *r, hs_err *err)
{
    json_t *j = json_object();
    json_object_set_new(j, "base", json_string(o->base));
    json_object_set_new(j, "model", json_string(o->model));
    json_object_set_new(j, "text", json_string(o->text));
    json_object_set_new(j, "n_ctx", json_integer(o->p.n_ctx ? o->p.n_ctx : 512));
    json_object_set_new(j, "chunks", json_integer(r->n_chunks));
    json_object_set_new(j, "tokens_scored", json_integer(r->n_tokens));
    json_object_set_new(j, "ppl_base", stat_json(r->base.ppl, r->base.ppl_err));
    json_object_set_new(j, "ppl_quant", stat_json(r->quant.ppl, r->quant.ppl_err));
    json_object_set_new(j, "ppl_ratio", stat_json(r->ppl_ratio, r->ppl_ratio_err));
    json_object_set_new(j, "kld", stat_json(r->kld.mean, r->kld.err));
    json_object_set_new(j, "kld_min", json_real(r->kld_min));
    json_object_set_new(j, "kld_median", json_real(r->kld_median));
    json_object_set_new(j, "kld_p90", json_real(r->kld_p90));
    json_object_set_new(j, "kld_p99", json_real(r->kld_p99));
    json_object_set_new(j, "kld_max", json_real(r->kld_max));
    json_object_set_new(j, "top1", stat_json(r->top1.mean, r->top1.err));
    int rc = json_dump_file(j, path, JSON_INDENT(2));
    json_decref(j);
    return rc ? hs_err_set(err, HS_EIO, "%s: cannot write the JSON file", path) : HS_OK;
}

static void print_table(const struct kld_opts *o, const struct hs_kld_result *r)
{
    printf("base        %s\n", o->base);
    printf("model       %s\n", o->model);
    printf("chunks      %d x %d tokens, %ld scored\n", r->n_chunks, o->p.n_ctx ? o->p.n_ctx : 512,
           r->n_tokens);
    printf("\n");
    printf("%-18s %14s %12s\n", "", "value", "+/-");
    printf("%-18s %14.6f %12.6f\n", "ppl base", r->base.ppl, r->base.ppl_err);
    printf("%-18s %14.6f %12.6f\n", "ppl quant", r->quant.ppl, r->quant.ppl_err);
    printf("%-18s %14.6f %12.6f\n", "ppl ratio", r->ppl_ratio, r->ppl_ratio_err);
    printf("%-18s %14.6f %12.6f\n", "mean KLD", r->kld.mean, r->kld.err);
    printf("%-18s %14.6f\n", "min KLD", r->kld_min);
    printf("%-18s %14.6f\n", "median KLD", r->kld_median);
    printf("%-18s %14.6f\n", "p90 KLD", r->kld_p90);
    printf("%-18s %14.6f\n", "p99 KLD", r->kld_p99);
    printf("%-18s %14.6f\n", "max KLD", r->kld_max);
    printf("%-18s %13.3f%% %11.3f%%\n", "top-1 agreement", 100 * r->top1.mean, 100 * r->top1.err);
}

int hs_cmd_kld(int argc, char **argv)
{
    struct kld_opts o;
    int prc = parse_args(argc, argv, &o);
    if (prc)
        return prc == 1 ? 0 : prc;
    hs_err err = {0};
    char *text = NULL;
    size_t len = 0;
    if (hs_read_file(o.text, &text, &len, &err))
        return hs_cli_fail_err(CMD, &err);
    hs_model *base = NULL, *quant = NULL;
    int rc = hs_model_load(o.base, NULL, &base, &err);
    if (rc == HS_OK)
        rc = hs_model_load(o.model, NULL, &quant, &err);
    struct hs_kld_result r;
    if (rc == HS_OK)
        rc = hs_kld(base, quant, text, len, &o.p, progress, NULL, &r, &err);
    hs_free(text);
    hs_model_free(quant);
    hs_model_free(base);
    if (rc)
        return hs_cli_fail_err(CMD, &err);
    print_table(&o, &r);
    if (o.json && write_json(o.json, &o, &r, &err))
        return hs_cli_fail_err(CMD, &err);
    return 0;
}
