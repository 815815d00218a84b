/* 'hestia info FILE.gguf [--all]': a GGUF file's header, metadata and tensors.
 * Long strings and arrays are cut short unless --all is given. */
#include "cli/cli.h"

#include "gguf/gguf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHORT_STR 64 /* bytes of a string shown without --all */
#define SHORT_ARR 8  /* array elements shown without --all */

static void usage(FILE *f)
{
    fprintf(f, "usage: hestia info FILE.gguf [--all]\n"
               "  Shows the GGUF version, alignment, every metadata key (arrays as type[n] with\n"
               "  their first elements) and every tensor (name, type, shape, offset, bytes).\n"
               "  --all   print strings and arrays in full\n");
}

/* A string in double quotes, with control bytes, quotes and backslashes
 * escaped; UTF-8 passes through. */
static void put_str(const char *s, size_t len, bool all)
{
    size_t n = (!all && len > SHORT_STR) ? SHORT_STR : len;
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            fputs("\\n", stdout);
        else if (c == '\t')
            fputs("\\t", stdout);
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    putchar('"');
    if (n < len)
        printf("...(%zu bytes)", len);
}

/* The shortest %g form that reads back as the same float (1e-05, not
 * 9.99999975e-06). */
static void put_f32(float f)
{
    char buf[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, f);
        if (strtof(buf, NULL) == f || f != f)
            break;
    }
    fputs(buf, stdout);
}

/* One scalar of type t at p (unaligned, little-endian). */
static void put_scalar(enum hs_gguf_vtype t, const void *p)
{
    union {
        uint8_t u8;
        int8_t i8;
        uint16_t u16;
        int16_t i16;
        uint32_t u32;
        int32_t i32;
        uint64_t u64;
        int64_t i64;
        float f32;
        double f64;
    } v;
    memcpy(&v, p, hs_gguf_vtype_size(t));
    switch (t) {
    case HS_GGUF_UINT8:
        printf("%" PRIu8, v.u8);
        break;
    case HS_GGUF_INT8:
        printf("%" PRId8, v.i8);
        break;
    case HS_GGUF_UINT16:
        printf("%" PRIu16, v.u16);
        break;
    case HS_GGUF_INT16:
        printf("%" PRId16, v.i16);
        break;
    case HS_GGUF_UINT32:
        printf("%" PRIu32, v.u32);
        break;
    case HS_GGUF_INT32:
        printf("%" PRId32, v.i32);
        break;
    case HS_GGUF_UINT64:
        printf("%" PRIu64, v.u64);
        break;
    case HS_GGUF_INT64:
        printf("%" PRId64, v.i64);
        break;
    case HS_GGUF_FLOAT32:
        put_f32(v.f32);
        break;
    case HS_GGUF_FLOAT64:
        printf("%.17g", v.f64);
        break;
    case HS_GGUF_BOOL:
        fputs(v.u8 ? "true" : "false", stdout);
        break;
    default:
        fputs("?", stdout);
        break;
    }
}

static void put_kv(const hs_gguf *g, const struct hs_gguf_kv *kv, bool all)
{
    char type[40];
    if (kv->type == HS_GGUF_ARRAY)
        snprintf(type, sizeof type, "%s[%" PRIu64 "]", hs_gguf_vtype_name(kv->arr_type), kv->n);
    else
        snprintf(type, sizeof type, "%s", hs_gguf_vtype_name(kv->type));
    printf("  %-44s %-12s ", kv->key, type);
    if (kv->type == HS_GGUF_STRING) {
        put_str(kv->data, (size_t)kv->n, all);
    } else if (kv->type != HS_GGUF_ARRAY) {
        put_scalar(kv->type, kv->data);
    } else {
        uint64_t n = (!all && kv->n > SHORT_ARR) ? SHORT_ARR : kv->n;
        size_t es = hs_gguf_vtype_size(kv->arr_type);
        putchar('[');
        for (uint64_t i = 0; i < n; i++) {
            if (i)
                fputs(", ", stdout);
            if (kv->arr_type == HS_GGUF_STRING) {
                size_t len;
                const char *s = hs_gguf_arr_str(g, kv, i, &len);
                put_str(s, len, all);
            } else {
                put_scalar(kv->arr_type, (const uint8_t *)kv->data + i * es);
            }
        }
        if (n < kv->n)
            printf(", ... %" PRIu64 " more", kv->n - n);
        putchar(']');
    }
    putchar('\n');
}

static int info(const char *path, bool all)
{
    hs_gguf *g;
    hs_err err = {0};
    if (hs_gguf_open(path, &g, &err))
        return hs_cli_fail_err("info", &err);

    printf("file:      %s\n", path);
    printf("version:   %" PRIu32 "\n", hs_gguf_version(g));
    printf("alignment: %zu\n", hs_gguf_alignment(g));
    printf("size:      %zu bytes", hs_gguf_file_size(g));
    if (hs_gguf_n_tensors(g))
        printf(", data section at byte %zu", hs_gguf_data_offset(g));
    putchar('\n');

    printf("\nmetadata: %" PRId64 " keys\n", hs_gguf_n_kv(g));
    for (int64_t i = 0; i < hs_gguf_n_kv(g); i++)
        put_kv(g, hs_gguf_kv_at(g, i), all);

    int64_t nt = hs_gguf_n_tensors(g);
    printf("\ntensors: %" PRId64 "\n", nt);
    if (nt)
        printf("  %-40s %-8s %-26s %12s %12s\n", "name", "type", "shape", "offset", "bytes");
    uint64_t total_bytes = 0, total_params = 0;
    uint64_t per_type[HS_TYPE_COUNT] = {0}, per_type_bytes[HS_TYPE_COUNT] = {0};
    for (int64_t i = 0; i < nt; i++) {
        const struct hs_gguf_tensor *t = hs_gguf_tensor_at(g, i);
        char shape[96];
        int len = snprintf(shape, sizeof shape, "[");
        uint64_t nel = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            len += snprintf(shape + len, sizeof shape - (size_t)len, "%s%" PRId64, d ? ", " : "", t->ne[d]);
            nel *= (uint64_t)t->ne[d];
        }
        snprintf(shape + len, sizeof shape - (size_t)len, "]");
        printf("  %-40s %-8s %-26s %12" PRIu64 " %12" PRIu64 "\n", t->name, hs_type_size(t->type)->name,
               shape, t->offset, t->nbytes);
        total_bytes += t->nbytes;
        total_params += nel;
        per_type[t->type]++;
        per_type_bytes[t->type] += t->nbytes;
    }
    printf("\ntotal: %" PRId64 " tensors, %" PRIu64 " elements, %" PRIu64 " bytes (%.2f MiB)\n", nt,
           total_params, total_bytes, (double)total_bytes / (1024.0 * 1024.0));
    for (int ty = 0; ty < HS_TYPE_COUNT; ty++)
        if (per_type[ty])
            printf("  %-8s %6" PRIu64 " tensors %14" PRIu64 " bytes\n", hs_type_size((uint32_t)ty)->name,
                   per_type[ty], per_type_bytes[ty]);
    hs_gguf_close(g);
    return 0;
}

int hs_cmd_info(int argc, char **argv)
{
    const char *path = NULL;
    bool all = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--all"))
            all = true;
        else if (argv[i][0] == '-' && argv[i][1])
            return hs_cli_usage("info", "unknown option '%s'", argv[i]);
        else if (path)
            return hs_cli_usage("info", "one file at a time ('%s' and '%s')", path, argv[i]);
        else
            path = argv[i];
    }
    if (!path)
        return hs_cli_usage("info", "missing FILE.gguf");
    return info(path, all);
}
