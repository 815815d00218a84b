/* 'hestia bench': prompt-processing and generation speed, measured the way
 * llama-bench measures them, next to this machine's memory bandwidth.
 *
 *  ppN  one batch of N tokens (BOS, then random ids) into an empty context;
 *       tokens/s = N / time.
 *  tgN  N single-token decodes from an empty context (BOS, then random ids),
 *       logits every step; tokens/s = N / time.
 * Each test runs once to warm up (tg: one token) and then REPS times; the
 * table gives the median and the standard deviation of the per-run rates.
 *
 * Bandwidth: a STREAM-like read of a buffer several times the last-level
 * cache, with the same thread counts, in a child process so that the buffer
 * does not count in this process's peak RSS. Generation reads every weight
 * once per token, so tg tokens/s x weight bytes / bandwidth is the share of
 * the memory ceiling that generation reaches. */
#include "base/clock.h"
#include "base/cpu.h"
#include "base/mem.h"
#include "base/parse.h"
#include "base/pool.h"
#include "base/rng.h"
#include "base/sys.h"
#include "cli/cli.h"
#include "model/context.h"
#include "model/ftype_mix.h"
#include "model/model.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_LIST 16
#define MAX_MODELS 16

static void usage(FILE *f)
{
    fprintf(f, "usage: hestia bench -m MODEL [options]\n"
               "\n"
               "Prompt processing (ppN) and generation (tgN) speed, like llama-bench.\n"
               "\n"
               "  -m, --model FILE      a GGUF model (repeat for several)\n"
               "  -p, --n-prompt N,..   prompt lengths (default 512; 0: none)\n"
               "  -n, --n-gen N,..      generation lengths (default 128; 0: none)\n"
               "  -t, --threads N,..    thread counts (default: all CPUs)\n"
               "  -r, --reps N          measured runs per test (default 3), after one warm-up\n"
               "  -c, --ctx N           context size (default: the longest test)\n"
               "  --json FILE           write the results as a JSON array\n"
               "  --bw-mib N            bandwidth buffer in MiB (default: 8 x L3, 1-3 GiB)\n"
               "  --no-bw               skip the bandwidth measurement\n"
               "  -q, --quiet           no progress on stderr\n");
}

/* ---- memory bandwidth ---- */

/* 16-byte vectors of GCC's generic vector extension (SSE2, which every
 * x86-64 has): plain C with eight independent sums, so the loop is bound by
 * loads, not by adds, and nothing spills. Reads 128 bytes per iteration. */
typedef uint64_t v2u64 __attribute__((vector_size(16)));

struct bw_job {
    const uint8_t *buf;
    size_t n_blk; /* 128-byte blocks */
    uint64_t sink[64];
    bool touch;
};

static void bw_run(void *arg, int ith, int nth)
{
    struct bw_job *j = arg;
    long lo, hi;
    hs_pool_split((long)j->n_blk, ith, nth, &lo, &hi);
    if (j->touch) { /* first touch by the thread that will read the pages */
        memset((uint8_t *)j->buf + (size_t)lo * 128, 1, (size_t)(hi - lo) * 128);
        return;
    }
    const v2u64 *v = (const v2u64 *)j->buf + (size_t)lo * 8;
    v2u64 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
    for (long i = lo; i < hi; i++, v += 8) {
        /* 4 KiB ahead, as the dot-product kernels do: without it the hardware
         * prefetcher alone stalls at page boundaries and the probe reads
         * slower than generation itself does. */
        __builtin_prefetch((const char *)v + 4096, 0, 2);
        __builtin_prefetch((const char *)v + 4096 + 64, 0, 2);
        a0 += v[0];
        a1 += v[1];
        a2 += v[2];
        a3 += v[3];
        a4 += v[4];
        a5 += v[5];
        a6 += v[6];
        a7 += v[7];
    }
    a0 += a1 + a2 + a3 + a4 + a5 + a6 + a7;
    j->sink[ith % 64] = a0[0] + a0[1];
}

static size_t l3_bytes(void)
{
    for (int idx = 0; idx < 8; idx++) {
        char path[96], buf[64];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", idx);
        FILE *f = fopen(path, "r");
        if (!f)
            break;
        int level = 0;
        if (fgets(buf, sizeof buf, f))
            level = buf[0] - '0';
        fclose(f);
        if (level != 3)
            continue;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", idx);
        f = fopen(path, "r");
        if (!f)
            break;
        size_t kib = 0;
        if (fgets(buf, sizeof buf, f)) {
            for (char *p = buf; *p >= '0' && *p <= '9'; p++)
                kib = kib * 10 + (size_t)(*p - '0');
        }
        fclose(f);
        return kib * 1024;
    }
    return 0;
}

/* Best of several passes, in GB/s (1e9 bytes per second), or a negative
 * number when the buffer cannot be had. Runs in the child. */
static double bw_measure(size_t bytes, int threads)
{
    uint8_t *buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED)
        return -1;
    hs_pool *pool;
    if (hs_pool_create(threads, &pool) != HS_OK) {
        munmap(buf, bytes);
        return -1;
    }
    struct bw_job j = {.buf = buf, .n_blk = bytes / 128, .touch = true};
    hs_pool_run(pool, bw_run, &j);
    j.touch = false;
    double best = 0;
    for (int rep = 0; rep < 6; rep++) {
        double t0 = hs_now_s();
        hs_pool_run(pool, bw_run, &j);
        double dt = hs_now_s() - t0;
        double gbs = (double)(j.n_blk * 128) / dt / 1e9;
        if (rep > 0 && gbs > best) /* the first pass warms the TLB */
            best = gbs;
    }
    hs_pool_free(pool);
    munmap(buf, bytes);
    return best;
}

/* Measures in a child process: the parent's peak RSS must reflect the model,
 * not a multi-GiB probe buffer. Returns GB/s, or 0 when it failed. */
static double bw_in_child(size_t bytes, int threads)
{
    int fds[2];
    if (pipe(fds) != 0)
        return 0;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return 0;
    }
    if (pid == 0) {
        close(fds[0]);
        double gbs = bw_measure(bytes, threads);
        ssize_t w = write(fds[1], &gbs, sizeof gbs);
        _exit(w == (ssize_t)sizeof gbs ? 0 : 1);
    }
    close(fds[1]);
    double gbs = 0;
    ssize_t r;
    do
        r = read(fds[0], &gbs, sizeof gbs);
    while (r < 0 && errno == EINTR);
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (r != (ssize_t)sizeof gbs || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || !(gbs > 0))
        return 0;
    return gbs;
}

/* ---- results ---- */

struct result {
    const char *model_path;
    char model_desc[96]; /* "llama 1.2B Q4_K_M" */
    char type_name[64];
    char arch[32];
    uint64_t model_bytes, model_params;
    int threads;
    char test[16];
    int n_prompt, n_gen, reps;
    double ts_median, ts_mean, ts_sd;
    double samples[64];
    double bw_gbs, bw_frac; /* bw_frac < 0: not a generation test */
    size_t peak_rss, kv_bytes;
    int n_ctx;
    bool rss_reset; /* the peak RSS was reset before this model */
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void stats(struct result *r)
{
    double s[64];
    int n = r->reps;
    memcpy(s, r->samples, (size_t)n * sizeof(double));
    qsort(s, (size_t)n, sizeof(double), cmp_double);
    r->ts_median = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += s[i];
    r->ts_mean = sum / n;
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += (s[i] - r->ts_mean) * (s[i] - r->ts_mean);
    r->ts_sd = n > 1 ? sqrt(ss / (n - 1)) : 0;
}

/* ---- the tests ---- */

struct bench {
    int reps;
    int n_ctx;
    bool quiet;
    hs_rng rng;
};

static int32_t random_token(struct bench *b, int n_vocab)
{
    return (int32_t)(hs_rng_u64(&b->rng) % (uint64_t)n_vocab);
}

/* One ppN run: BOS (if the vocabulary has one) then random ids, one batch. */
static int run_pp(struct bench *b, hs_ctx *ctx, const hs_model *m, int n, int32_t *tok, int32_t *pos,
                  int32_t *seq, double *secs, hs_err *err)
{
    int n_vocab = hs_model_hparams(m)->n_vocab;
    int32_t bos = hs_tok_bos(hs_model_tok(m));
    for (int i = 0; i < n; i++) {
        tok[i] = i == 0 && bos >= 0 ? bos : random_token(b, n_vocab);
        pos[i] = i;
        seq[i] = 0;
    }
    hs_ctx_seq_clear(ctx, 0);
    struct hs_batch batch = {.n = n, .tokens = tok, .pos = pos, .seq = seq, .logits = NULL};
    double t0 = hs_now_s();
    int rc = hs_decode(ctx, &batch, err);
    *secs = hs_now_s() - t0;
    return rc;
}

/* One tgN run: N decodes of one token each from an empty context. */
static int run_tg(struct bench *b, hs_ctx *ctx, const hs_model *m, int n, double *secs, hs_err *err)
{
    int n_vocab = hs_model_hparams(m)->n_vocab;
    int32_t bos = hs_tok_bos(hs_model_tok(m));
    int32_t tok = bos >= 0 ? bos : random_token(b, n_vocab);
    hs_ctx_seq_clear(ctx, 0);
    double t0 = hs_now_s();
    for (int i = 0; i < n; i++) {
        int32_t pos = i, seq = 0;
        int8_t want = 1;
        struct hs_batch batch = {.n = 1, .tokens = &tok, .pos = &pos, .seq = &seq, .logits = &want};
        int rc = hs_decode(ctx, &batch, err);
        if (rc)
            return rc;
        tok = random_token(b, n_vocab);
    }
    *secs = hs_now_s() - t0;
    return HS_OK;
}

static void progress(const struct bench *b, const char *model, int threads, const char *test, int rep,
                     int reps)
{
    if (b->quiet)
        return;
    fprintf(stderr, "\rbench: %s  t=%d  %-6s %s %d/%d   ", model, threads, test, rep == 0 ? "warm-up" : "run",
            rep == 0 ? 1 : rep, rep == 0 ? 1 : reps);
    fflush(stderr);
}

/* llama.cpp's name for general.file_type, upper case ("Q4_K_M"). */
static void ftype_label(char *buf, size_t cap, int file_type)
{
    buf[0] = 0;
    for (int i = 0; i < hs_ftype_count(); i++) {
        const struct hs_ftype *ft = hs_ftype_at(i);
        if (ft->file_type != file_type)
            continue;
        size_t k = 0;
        for (const char *p = ft->name; *p && k + 1 < cap; p++)
            buf[k++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        buf[k] = 0;
        return;
    }
    snprintf(buf, cap, "ftype %d", file_type);
}

static void params_label(char *buf, size_t cap, uint64_t n)
{
    if (n >= 1000000000ull)
        snprintf(buf, cap, "%.2f B", (double)n / 1e9);
    else
        snprintf(buf, cap, "%.2f M", (double)n / 1e6);
}

static void size_label(char *buf, size_t cap, uint64_t bytes)
{
    if (bytes >= (1ull << 30))
        snprintf(buf, cap, "%.2f GiB", (double)bytes / (double)(1ull << 30));
    else
        snprintf(buf, cap, "%.2f MiB", (double)bytes / (double)(1ull << 20));
}

/* Resets this process's peak RSS (VmHWM) so each model is measured on its own
 * (Linux's clear_refs "5"); false where the kernel does not allow it. */
static bool reset_peak_rss(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY);
    if (fd < 0)
        return false;
    bool ok = write(fd, "5", 1) == 1;
    close(fd);
    return ok;
}

struct results {
    struct result *r;
    int n, cap;
};

static struct result *results_add(struct results *rs)
{
    if (rs->n == rs->cap) {
        int cap = rs->cap ? rs->cap * 2 : 16;
        struct result *r = hs_realloc_array(rs->r, (size_t)cap, sizeof *r);
        if (!r)
            return NULL;
        rs->r = r;
        rs->cap = cap;
    }
    struct result *r = &rs->r[rs->n++];
    memset(r, 0, sizeof *r);
    return r;
}

static int bench_model(struct bench *b, const char *path, const int *pp, int n_pp, const int *tg, int n_tg,
                       const int *threads, int n_threads, const double *bw, struct results *rs)
{
    hs_err err = {0};
    bool rss_reset = reset_peak_rss();
    hs_model *m;
    if (hs_model_load(path, NULL, &m, &err) != HS_OK)
        return hs_cli_fail_err("bench", &err);
    const struct hs_hparams *hp = hs_model_hparams(m);
    const hs_gguf *g = hs_model_gguf(m);
    uint64_t n_params = 0;
    for (int64_t i = 0; i < hs_gguf_n_tensors(g); i++) {
        const struct hs_gguf_tensor *t = hs_gguf_tensor_at(g, i);
        uint64_t e = 1;
        for (uint32_t d = 0; d < t->n_dims; d++)
            e *= (uint64_t)t->ne[d];
        n_params += e;
    }
    char ft[32], pl[32], desc[96];
    ftype_label(ft, sizeof ft, hp->file_type);
    params_label(pl, sizeof pl, n_params);
    snprintf(desc, sizeof desc, "%s %s %s", hp->arch, pl, ft);

    int max_pp = 1, need_ctx = 1;
    for (int i = 0; i < n_pp; i++) {
        if (pp[i] > max_pp)
            max_pp = pp[i];
        if (pp[i] > need_ctx)
            need_ctx = pp[i];
    }
    for (int i = 0; i < n_tg; i++)
        if (tg[i] > need_ctx)
            need_ctx = tg[i];
    int n_ctx = b->n_ctx > 0 ? b->n_ctx : need_ctx;
    if (n_ctx < need_ctx) {
        hs_model_free(m);
        return hs_cli_usage("bench", "-c %d is shorter than the longest test (%d tokens)", n_ctx, need_ctx);
    }
    int32_t *tok = hs_malloc((size_t)max_pp * sizeof(int32_t));
    int32_t *pos = hs_malloc((size_t)max_pp * sizeof(int32_t));
    int32_t *seq = hs_malloc((size_t)max_pp * sizeof(int32_t));
    int rc = 0;
    if (!tok || !pos || !seq) {
        rc = hs_cli_fail("bench", "out of memory");
        goto done;
    }
    for (int ti = 0; ti < n_threads && rc == 0; ti++) {
        struct hs_ctx_params cp = {.n_ctx = n_ctx, .n_seq = 1, .n_batch = max_pp, .n_threads = threads[ti]};
        hs_ctx *ctx;
        if (hs_ctx_create(m, &cp, &ctx, &err) != HS_OK) {
            rc = hs_cli_fail_err("bench", &err);
            break;
        }
        for (int k = 0; k < n_pp + n_tg && rc == 0; k++) {
            bool is_pp = k < n_pp;
            int n = is_pp ? pp[k] : tg[k - n_pp];
            if (n <= 0)
                continue;
            struct result *r = results_add(rs);
            if (!r) {
                rc = hs_cli_fail("bench", "out of memory");
                break;
            }
            r->model_path = path;
            snprintf(r->model_desc, sizeof r->model_desc, "%s", desc);
            snprintf(r->type_name, sizeof r->type_name, "%s", hs_model_type_name(m));
            snprintf(r->arch, sizeof r->arch, "%s", hp->arch);
            snprintf(r->test, sizeof r->test, "%s%d", is_pp ? "pp" : "tg", n);
            r->model_bytes = hs_model_weight_bytes(m);
            r->model_params = n_params;
            r->threads = threads[ti];
            r->n_prompt = is_pp ? n : 0;
            r->n_gen = is_pp ? 0 : n;
            r->reps = b->reps;
            r->n_ctx = n_ctx;
            r->rss_reset = rss_reset;
            for (int rep = 0; rep <= b->reps && rc == 0; rep++) {
                progress(b, desc, threads[ti], r->test, rep, b->reps);
                double secs = 0;
                int e = is_pp ? run_pp(b, ctx, m, n, tok, pos, seq, &secs, &err)
                              : run_tg(b, ctx, m, rep == 0 ? 1 : n, &secs, &err);
                if (e) {
                    rc = hs_cli_fail_err("bench", &err);
                    break;
                }
                if (rep > 0)
                    r->samples[rep - 1] = secs > 0 ? n / secs : 0;
            }
            if (rc)
                break;
            stats(r);
            r->bw_gbs = bw[ti];
            r->bw_frac = !is_pp && bw[ti] > 0 ? r->ts_median * (double)r->model_bytes / (bw[ti] * 1e9) : -1;
            r->kv_bytes = hs_ctx_kv_bytes(ctx);
            r->peak_rss = hs_peak_rss();
        }
        hs_ctx_free(ctx);
    }
    if (!b->quiet)
        fprintf(stderr, "\r%72s\r", "");
done:
    hs_free(tok);
    hs_free(pos);
    hs_free(seq);
    hs_model_free(m);
    return rc;
}

/* ---- output ---- */

/* Prints s right-aligned in a column of `width` characters; counts UTF-8
 * characters, not bytes, so "±" takes one column. */
static void print_right(const char *s, int width)
{
    int chars = 0;
    for (const char *p = s; *p; p++)
        chars += ((unsigned char)*p & 0xC0) != 0x80;
    for (int i = chars; i < width; i++)
        putchar(' ');
    fputs(s, stdout);
}

static void dashes(int n, bool right)
{
    for (int i = 0; i < n - (right ? 1 : 0); i++)
        putchar('-');
    if (right)
        putchar(':');
}

/* A markdown table like llama-bench's; the model and type columns are as wide
 * as their longest entry. */
static void print_table(const struct results *rs)
{
    int wm = 5, wt = 4;
    for (int i = 0; i < rs->n; i++) {
        int lm = (int)strlen(rs->r[i].model_desc), lt = (int)strlen(rs->r[i].type_name);
        wm = lm > wm ? lm : wm;
        wt = lt > wt ? lt : wt;
    }
    printf("| %-*s | %10s | %9s | %-*s | %7s | %6s | %18s | %8s |\n", wm, "model", "size", "params", wt,
           "type", "threads", "test", "t/s", "bw share");
    static const int widths[] = {0, 10, 9, 0, 7, 6, 18, 8};
    for (int c = 0; c < 8; c++) {
        fputs(c == 0 ? "| " : " | ", stdout);
        dashes(c == 0 ? wm : c == 3 ? wt : widths[c], c != 0 && c != 3);
    }
    puts(" |");
    for (int i = 0; i < rs->n; i++) {
        const struct result *r = &rs->r[i];
        char size[32], pl[32], ts[48], share[16];
        size_label(size, sizeof size, r->model_bytes);
        params_label(pl, sizeof pl, r->model_params);
        snprintf(ts, sizeof ts, "%.2f \u00b1 %.2f", r->ts_median, r->ts_sd);
        if (r->bw_frac >= 0)
            snprintf(share, sizeof share, "%.0f%%", r->bw_frac * 100);
        else
            snprintf(share, sizeof share, "-");
        printf("| %-*s | %10s | %9s | %-*s | %7d | %6s | ", wm, r->model_desc, size, pl, wt, r->type_name,
               r->threads, r->test);
        print_right(ts, 18);
        printf(" | %8s |\n", share);
    }
    fflush(stdout);
}

/* One object per line, so that line tools can read the file as well as JSON
 * parsers. */
static int write_json(const char *path, const struct results *rs)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return hs_cli_fail("bench", "cannot write %s: %s", path, strerror(errno));
    char when[32];
    time_t now = time(NULL);
    struct tm tmv;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tmv));
    fputs("[\n", f);
    for (int i = 0; i < rs->n; i++) {
        const struct result *r = &rs->r[i];
        json_t *o = json_object();
        json_object_set_new(o, "test", json_string(r->test));
        json_object_set_new(o, "threads", json_integer(r->threads));
        json_object_set_new(o, "tokens_per_second", json_real(r->ts_median));
        json_object_set_new(o, "tokens_per_second_mean", json_real(r->ts_mean));
        json_object_set_new(o, "stddev", json_real(r->ts_sd));
        json_object_set_new(o, "reps", json_integer(r->reps));
        json_t *arr = json_array();
        for (int k = 0; k < r->reps; k++)
            json_array_append_new(arr, json_real(r->samples[k]));
        json_object_set_new(o, "samples", arr);
        json_object_set_new(o, "n_prompt", json_integer(r->n_prompt));
        json_object_set_new(o, "n_gen", json_integer(r->n_gen));
        json_object_set_new(o, "n_ctx", json_integer(r->n_ctx));
        json_object_set_new(o, "model", json_string(r->model_path));
        json_object_set_new(o, "model_desc", json_string(r->model_desc));
        json_object_set_new(o, "model_type", json_string(r->type_name));
        json_object_set_new(o, "arch", json_string(r->arch));
        json_object_set_new(o, "model_bytes", json_integer((json_int_t)r->model_bytes));
        json_object_set_new(o, "model_params", json_integer((json_int_t)r->model_params));
        json_object_set_new(o, "bandwidth_gbs", r->bw_gbs > 0 ? json_real(r->bw_gbs) : json_null());
        json_object_set_new(o, "bandwidth_fraction", r->bw_frac >= 0 ? json_real(r->bw_frac) : json_null());
        json_object_set_new(o, "peak_rss_bytes", json_integer((json_int_t)r->peak_rss));
        json_object_set_new(o, "peak_rss_per_model", json_boolean(r->rss_reset));
        json_object_set_new(o, "kv_bytes", json_integer((json_int_t)r->kv_bytes));
        json_object_set_new(o, "cpu_level", json_string(hs_cpu_level_name(hs_cpu_level())));
        json_object_set_new(o, "time", json_string(when));
        char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        if (!s) {
            fclose(f);
            return hs_cli_fail("bench", "out of memory");
        }
        fprintf(f, "%s%s\n", s, i + 1 < rs->n ? "," : "");
        free(s);
    }
    fputs("]\n", f);
    if (fclose(f) != 0)
        return hs_cli_fail("bench", "cannot write %s: %s", path, strerror(errno));
    return 0;
}

static int list_arg(const char *flag, const char *v, int min, int max, int *vals, int *n)
{
    if (!v || hs_parse_int_list(v, min, max, vals, MAX_LIST, n) != 0)
        return hs_cli_usage("bench", "%s needs a comma-separated list of numbers in [%d, %d]", flag, min,
                            max);
    return 0;
}

int hs_cmd_bench(int argc, char **argv)
{
    const char *models[MAX_MODELS];
    int n_models = 0;
    int pp[MAX_LIST] = {512}, n_pp = 1;
    int tg[MAX_LIST] = {128}, n_tg = 1;
    int threads[MAX_LIST] = {hs_cpu_count()}, n_threads = 1;
    const char *json_path = NULL;
    int bw_mib = 0;
    bool no_bw = false;
    struct bench b = {.reps = 3};
    hs_rng_seed(&b.rng, 1234);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!v)
                return hs_cli_usage("bench", "%s needs a file", a);
            if (n_models == MAX_MODELS)
                return hs_cli_usage("bench", "at most %d models", MAX_MODELS);
            models[n_models++] = v;
            i++;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) {
            rc = list_arg(a, v, 0, 1 << 16, pp, &n_pp), i++;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) {
            rc = list_arg(a, v, 0, 1 << 16, tg, &n_tg), i++;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            rc = list_arg(a, v, 1, 1024, threads, &n_threads), i++;
        } else if (!strcmp(a, "-r") || !strcmp(a, "--reps")) {
            if (!v || hs_parse_int(v, 1, 64, &b.reps) != 0)
                return hs_cli_usage("bench", "%s needs a number in [1, 64]", a);
            i++;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
            if (!v || hs_parse_int(v, 1, 1 << 20, &b.n_ctx) != 0)
                return hs_cli_usage("bench", "%s needs a positive number", a);
            i++;
        } else if (!strcmp(a, "--json")) {
            if (!v)
                return hs_cli_usage("bench", "--json needs a file");
            json_path = v;
            i++;
        } else if (!strcmp(a, "--bw-mib")) {
            if (!v || hs_parse_int(v, 1, 1 << 20, &bw_mib) != 0)
                return hs_cli_usage("bench", "--bw-mib needs a positive number");
            i++;
        } else if (!strcmp(a, "--no-bw")) {
            no_bw = true;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            b.quiet = true;
        } else {
            return hs_cli_usage("bench", "unknown option '%s'", a);
        }
        if (rc)
            return rc;
    }
    if (n_models == 0)
        return hs_cli_usage("bench", "-m MODEL is required");

    /* Bandwidth first, before this process has a model or any threads. */
    double bw[MAX_LIST] = {0};
    if (!no_bw) {
        size_t bytes = (size_t)bw_mib << 20;
        if (!bytes) {
            /* well past the last-level cache, so the reads come from DRAM */
            size_t l3 = l3_bytes();
            bytes = 8 * l3;
            if (bytes < (1ull << 30))
                bytes = 1ull << 30;
            if (bytes > (3ull << 30))
                bytes = 3ull << 30;
        }
        for (int i = 0; i < n_threads; i++) {
            if (!b.quiet) {
                fprintf(stderr, "\rbench: memory bandwidth, %d thread%s, %.0f MiB ...", threads[i],
                        threads[i] > 1 ? "s" : "", (double)bytes / (1 << 20));
                fflush(stderr);
            }
            bw[i] = bw_in_child(bytes, threads[i]);
            if (!b.quiet)
                fprintf(stderr, " %.1f GB/s\n", bw[i]);
        }
    }

    struct results rs = {0};
    int rc = 0;
    for (int i = 0; i < n_models && rc == 0; i++)
        rc = bench_model(&b, models[i], pp, n_pp, tg, n_tg, threads, n_threads, bw, &rs);
    if (rs.n > 0)
        print_table(&rs);
    if (rc == 0 && json_path)
        rc = write_json(json_path, &rs);
    hs_free(rs.r);
    return rc;
}
