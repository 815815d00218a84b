/* SentencePiece tokenizer.model import (see convert_vocab.h). The file is a
 * protobuf ModelProto; only the fields the GGUF needs are read: pieces
 * (field 1: piece 1, score 2, type 3) and trainer_spec (field 2: unk_id 40,
 * bos_id 41, eos_id 42, pad_id 43). Everything else is skipped by wire type. */
#include "model/convert_vocab.h"

#include "base/mem.h"
#include "base/sys.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct pb {
    const uint8_t *p, *end;
};

static int pb_varint(struct pb *b, uint64_t *v)
{
    uint64_t r = 0;
    for (int s = 0; s < 64; s += 7) {
        if (b->p >= b->end)
            return -1;
        uint8_t c = *b->p++;
        r |= (uint64_t)(c & 0x7f) << s;
        if (!(c & 0x80)) {
            *v = r;
            return 0;
        }
    }
    return -1;
}

/* Reads one field header and, for a length-delimited field, its bounds. */
static int pb_field(struct pb *b, uint32_t *field, uint32_t *wt, struct pb *sub, uint64_t *val)
{
    uint64_t key;
    if (pb_varint(b, &key) || key >> 32)
        return -1;
    *field = (uint32_t)(key >> 3);
    *wt = (uint32_t)(key & 7);
    switch (*wt) {
    case 0:
        return pb_varint(b, val);
    case 1:
        if (b->end - b->p < 8)
            return -1;
        memcpy(val, b->p, 8);
        b->p += 8;
        return 0;
    case 5: {
        if (b->end - b->p < 4)
            return -1;
        uint32_t u;
        memcpy(&u, b->p, 4);
        *val = u;
        b->p += 4;
        return 0;
    }
    case 2: {
        uint64_t len;
        if (pb_varint(b, &len) || len > (uint64_t)(b->end - b->p))
            return -1;
        sub->p = b->p;
        sub->end = b->p + len;
        b->p += len;
        return 0;
    }
    default:
        return -1;
    }
}

struct spm {
    const char **str;
    size_t *len;
    float *score;
    int32_t *type;
    int64_t n, cap;
    int64_t unk, bos, eos, pad;
};

static int add_piece(struct spm *v, const char *s, size_t len, float score, int32_t type)
{
    if (v->n == v->cap) {
        int64_t cap = v->cap ? v->cap * 2 : 1024;
        const char **a = hs_realloc_array(v->str, (size_t)cap, sizeof *a);
        if (a)
            v->str = a;
        size_t *b = hs_realloc_array(v->len, (size_t)cap, sizeof *b);
        if (b)
            v->len = b;
        float *c = hs_realloc_array(v->score, (size_t)cap, sizeof *c);
        if (c)
            v->score = c;
        int32_t *d = hs_realloc_array(v->type, (size_t)cap, sizeof *d);
        if (d)
            v->type = d;
        if (!a || !b || !c || !d)
            return -1;
        v->cap = cap;
    }
    v->str[v->n] = s;
    v->len[v->n] = len;
    v->score[v->n] = score;
    v->type[v->n] = type;
    v->n++;
    return 0;
}

static int parse_spm(struct spm *v, const uint8_t *data, size_t size, const char *path, hs_err *err)
{
    struct pb b = {data, data + size}, sub;
    v->unk = 0;
    v->bos = 1;
    v->eos = 2;
    v->pad = -1;
    while (b.p < b.end) {
        uint32_t field, wt;
        uint64_t val = 0;
        size_t at = (size_t)(b.p - data);
        if (pb_field(&b, &field, &wt, &sub, &val))
            return hs_err_set(err, HS_EFORMAT, "%s: malformed protobuf at byte %zu", path, at);
        if (field == 1 && wt == 2) {
            const char *s = NULL;
            size_t len = 0;
            float score = 0;
            int32_t type = 1;
            bool have = false;
            struct pb p = sub, ss;
            while (p.p < p.end) {
                uint32_t f2, w2;
                uint64_t v2 = 0;
                if (pb_field(&p, &f2, &w2, &ss, &v2))
                    return hs_err_set(err, HS_EFORMAT, "%s: piece %lld: malformed protobuf", path, (long long)v->n);
                if (f2 == 1 && w2 == 2) {
                    s = (const char *)ss.p;
                    len = (size_t)(ss.end - ss.p);
                    have = true;
                } else if (f2 == 2 && w2 == 5) {
                    uint32_t u = (uint32_t)v2;
                    memcpy(&score, &u, 4);
                } else if (f2 == 3 && w2 == 0) {
                    if (v2 < 1 || v2 > 6)
                        return hs_err_set(err, HS_EFORMAT, "%s: piece %lld: type %llu is not a SentencePiece type",
                                          path, (long long)v->n, (unsigned long long)v2);
                    type = (int32_t)v2;
                }
            }
            if (!have)
                return hs_err_set(err, HS_EFORMAT, "%s: piece %lld has no text", path, (long long)v->n);
            if (add_piece(v, s, len, score, type))
                return hs_err_set(err, HS_ENOMEM, "out of memory");
        } else if (field == 2 && wt == 2) {
            struct pb p = sub, ss;
            while (p.p < p.end) {
                uint32_t f2, w2;
                uint64_t v2 = 0;
                if (pb_field(&p, &f2, &w2, &ss, &v2))
                    return hs_err_set(err, HS_EFORMAT, "%s: trainer_spec: malformed protobuf", path);
                /* int32 fields: negative values come as 64-bit two's complement. */
                int64_t iv = (int64_t)v2;
                if (w2 == 0 && f2 == 40)
                    v->unk = iv;
                else if (w2 == 0 && f2 == 41)
                    v->bos = iv;
                else if (w2 == 0 && f2 == 42)
                    v->eos = iv;
                else if (w2 == 0 && f2 == 43)
                    v->pad = iv;
            }
        }
    }
    if (v->n == 0)
        return hs_err_set(err, HS_EFORMAT, "%s: no pieces", path);
    return HS_OK;
}

static void spm_free(struct spm *v)
{
    hs_free(v->str);
    hs_free(v->len);
    hs_free(v->score);
    hs_free(v->type);
}

int hs_convert_spm_check(const void *data, size_t size, const char *name, int64_t *n_pieces, hs_err *err)
{
    struct spm v = {0};
    int rc = parse_spm(&v, data, size, name, err);
    *n_pieces = rc ? 0 : v.n;
    spm_free(&v);
    return rc;
}

static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = hs_malloc(a + b + 2);
    if (p) {
        memcpy(p, dir, a);
        p[a] = '/';
        memcpy(p + a + 1, name, b + 1);
    }
    return p;
}

/* tokenizer_config.json: add_bos_token, add_eos_token, chat_template. */
static int write_tok_config(hs_gguf_writer *w, const char *dir, hs_err *err)
{
    char *path = join(dir, "tokenizer_config.json");
    if (!path)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    int rc = HS_OK;
    if (access(path, F_OK) != 0)
        goto out;
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        rc = hs_err_set(err, HS_EFORMAT, "%s: line %d column %d: %s", path, je.line, je.column, je.text);
        goto out;
    }
    json_t *v;
    if ((v = json_object_get(root, "add_bos_token")) && json_is_boolean(v))
        hs_gguf_w_bool(w, "tokenizer.ggml.add_bos_token", json_is_true(v));
    if ((v = json_object_get(root, "add_eos_token")) && json_is_boolean(v))
        hs_gguf_w_bool(w, "tokenizer.ggml.add_eos_token", json_is_true(v));
    v = json_object_get(root, "chat_template");
    if (json_is_string(v)) {
        hs_gguf_w_str(w, "tokenizer.chat_template", json_string_value(v), json_string_length(v));
    } else if (v && !json_is_null(v)) {
        rc = hs_err_set(err, HS_EUNSUPPORTED, "%s: field 'chat_template' is not a string (named templates are not supported)",
                        path);
    }
    json_decref(root);
out:
    hs_free(path);
    return rc;
}

int hs_convert_vocab_spm(hs_gguf_writer *w, const char *dir, int64_t n_vocab, hs_err *err)
{
    char *path = join(dir, "tokenizer.model");
    if (!path)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    char *data = NULL;
    size_t size = 0;
    struct spm v = {0};
    char (*pads)[32] = NULL;
    int rc = hs_read_file(path, &data, &size, err);
    if (rc || (rc = parse_spm(&v, (const uint8_t *)data, size, path, err)))
        goto out;
    if (v.n > n_vocab) {
        rc = hs_err_set(err, HS_EFORMAT, "%s: %lld pieces but config.json's vocab_size is %lld", path, (long long)v.n,
                        (long long)n_vocab);
        goto out;
    }
    int64_t n_real = v.n;
    pads = hs_calloc((size_t)(n_vocab - n_real) + 1, sizeof *pads);
    if (!pads) {
        rc = hs_err_set(err, HS_ENOMEM, "out of memory");
        goto out;
    }
    for (int64_t i = n_real; i < n_vocab; i++) {
        int len = snprintf(pads[i - n_real], sizeof pads[0], "[PAD%lld]", (long long)i);
        if (add_piece(&v, pads[i - n_real], (size_t)len, -1000.0f, 5)) {
            rc = hs_err_set(err, HS_ENOMEM, "out of memory");
            goto out;
        }
    }
    hs_gguf_w_str(w, "tokenizer.ggml.model", "llama", 5);
    hs_gguf_w_str(w, "tokenizer.ggml.pre", "default", 7);
    hs_gguf_w_arr_str(w, "tokenizer.ggml.tokens", v.str, v.len, (uint64_t)v.n);
    hs_gguf_w_arr(w, "tokenizer.ggml.scores", HS_GGUF_FLOAT32, v.score, (uint64_t)v.n);
    hs_gguf_w_arr(w, "tokenizer.ggml.token_type", HS_GGUF_INT32, v.type, (uint64_t)v.n);
    const struct {
        const char *key;
        int64_t id;
    } ids[] = {{"tokenizer.ggml.bos_token_id", v.bos},
               {"tokenizer.ggml.eos_token_id", v.eos},
               {"tokenizer.ggml.unknown_token_id", v.unk},
               {"tokenizer.ggml.padding_token_id", v.pad}};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        if (ids[i].id < 0)
            continue;
        if (ids[i].id >= n_real) {
            rc = hs_err_set(err, HS_EFORMAT, "%s: trainer_spec: %s %lld is past the %lld pieces", path, ids[i].key,
                            (long long)ids[i].id, (long long)n_real);
            goto out;
        }
        hs_gguf_w_u32(w, ids[i].key, (uint32_t)ids[i].id);
    }
    rc = write_tok_config(w, dir, err);
out:
    spm_free(&v);
    hs_free(pads);
    hs_free(data);
    hs_free(path);
    return rc;
}

/* ---- tokenizer.json (byte-level BPE) ---- */

/* A special token in tokenizer_config.json: "<s>" or {"content": "<s>", ...}. */
static const char *tok_content(json_t *v)
{
    if (json_is_object(v))
        v = json_object_get(v, "content");
    return json_string_value(v);
}

int hs_convert_vocab_bpe(hs_gguf_writer *w, const char *dir, int64_t n_vocab, const char *pre, hs_err *err)
{
    char *path = join(dir, "tokenizer.json");
    char *cpath = join(dir, "tokenizer_config.json");
    const char **str = NULL;
    size_t *len = NULL;
    int32_t *type = NULL;
    const char **merges = NULL;
    char **owned = NULL; /* merges built from ["a", "b"] pairs */
    char (*pads)[32] = NULL;
    json_t *root = NULL, *cfg = NULL;
    size_t n_merges = 0;
    int rc = HS_OK;
    if (!path || !cpath) {
        rc = hs_err_set(err, HS_ENOMEM, "out of memory");
        goto out;
    }
    json_error_t je;
    root = json_load_file(path, 0, &je);
    if (!root) {
        rc = hs_err_set(err, HS_EFORMAT, "%s: line %d column %d: %s", path, je.line, je.column, je.text);
        goto out;
    }
    json_t *model = json_object_get(root, "model");
    json_t *mt = json_object_get(model, "type");
    if (!json_is_string(mt) || strcmp(json_string_value(mt), "BPE")) {
        rc = hs_err_set(err, HS_EUNSUPPORTED, "%s: field 'model.type' is not \"BPE\" (only byte-level BPE is supported)",
                        path);
        goto out;
    }
    if (json_is_true(json_object_get(model, "byte_fallback"))) {
        rc = hs_err_set(err, HS_EUNSUPPORTED,
                        "%s: field 'model.byte_fallback' is true: a SentencePiece-style vocabulary "
                        "(convert it from tokenizer.model)",
                        path);
        goto out;
    }
    json_t *vocab = json_object_get(model, "vocab"), *mg = json_object_get(model, "merges");
    if (!json_is_object(vocab) || !json_is_array(mg)) {
        rc = hs_err_set(err, HS_EFORMAT, "%s: fields 'model.vocab' (object) and 'model.merges' (array) are required",
                        path);
        goto out;
    }
    str = hs_calloc((size_t)n_vocab, sizeof *str);
    len = hs_calloc((size_t)n_vocab, sizeof *len);
    type = hs_calloc((size_t)n_vocab, sizeof *type);
    n_merges = json_array_size(mg);
    merges = hs_calloc(n_merges + 1, sizeof *merges);
    owned = hs_calloc(n_merges + 1, sizeof *owned);
    pads = hs_calloc((size_t)n_vocab, sizeof *pads);
    if (!str || !len || !type || !merges || !owned || !pads) {
        rc = hs_err_set(err, HS_ENOMEM, "out of memory");
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v)
    {
        json_int_t id = json_is_integer(v) ? json_integer_value(v) : -1;
        if (id < 0 || id >= n_vocab) {
            rc = hs_err_set(err, HS_EFORMAT, "%s: model.vocab['%.64s'] = %lld is not an id below vocab_size %lld", path,
                            key, (long long)id, (long long)n_vocab);
            goto out;
        }
        if (str[id]) {
            rc = hs_err_set(err, HS_EFORMAT, "%s: model.vocab: id %lld is used twice", path, (long long)id);
            goto out;
        }
        str[id] = key;
        len[id] = strlen(key);
        type[id] = 1;
    }
    json_t *added = json_object_get(root, "added_tokens");
    size_t i;
    json_array_foreach(added, i, v)
    {
        json_t *jid = json_object_get(v, "id");
        const char *content = json_string_value(json_object_get(v, "content"));
        json_int_t id = json_is_integer(jid) ? json_integer_value(jid) : -1;
        if (!content || id < 0 || id >= n_vocab) {
            rc = hs_err_set(err, HS_EFORMAT, "%s: added_tokens[%zu]: needs 'content' and an 'id' below vocab_size %lld",
                            path, i, (long long)n_vocab);
            goto out;
        }
        str[id] = content;
        len[id] = strlen(content);
        type[id] = json_is_true(json_object_get(v, "special")) ? 3 : 4;
    }
    for (int64_t k = 0; k < n_vocab; k++) {
        if (str[k])
            continue;
        len[k] = (size_t)snprintf(pads[k], sizeof pads[k], "[PAD%lld]", (long long)k);
        str[k] = pads[k];
        type[k] = 5;
    }
    json_array_foreach(mg, i, v)
    {
        if (json_is_string(v)) {
            merges[i] = json_string_value(v);
            continue;
        }
        const char *a = json_string_value(json_array_get(v, 0)), *b = json_string_value(json_array_get(v, 1));
        if (!a || !b || json_array_size(v) != 2) {
            rc = hs_err_set(err, HS_EFORMAT, "%s: model.merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", path, i);
            goto out;
        }
        size_t la = strlen(a), lb = strlen(b);
        owned[i] = hs_malloc(la + lb + 2);
        if (!owned[i]) {
            rc = hs_err_set(err, HS_ENOMEM, "out of memory");
            goto out;
        }
        memcpy(owned[i], a, la);
        owned[i][la] = ' ';
        memcpy(owned[i] + la + 1, b, lb + 1);
        merges[i] = owned[i];
    }
    hs_gguf_w_str(w, "tokenizer.ggml.model", "gpt2", 4);
    hs_gguf_w_str(w, "tokenizer.ggml.pre", pre, strlen(pre));
    hs_gguf_w_arr_str(w, "tokenizer.ggml.tokens", str, len, (uint64_t)n_vocab);
    hs_gguf_w_arr(w, "tokenizer.ggml.token_type", HS_GGUF_INT32, type, (uint64_t)n_vocab);
    hs_gguf_w_arr_str(w, "tokenizer.ggml.merges", merges, NULL, n_merges);
    if (access(cpath, F_OK) == 0) {
        cfg = json_load_file(cpath, 0, &je);
        if (!cfg) {
            rc = hs_err_set(err, HS_EFORMAT, "%s: line %d column %d: %s", cpath, je.line, je.column, je.text);
            goto out;
        }
        static const char *const names[][2] = {{"bos_token", "tokenizer.ggml.bos_token_id"},
                                               {"eos_token", "tokenizer.ggml.eos_token_id"},
                                               {"unk_token", "tokenizer.ggml.unknown_token_id"},
                                               {"pad_token", "tokenizer.ggml.padding_token_id"}};
        for (size_t k = 0; k < 4; k++) {
            json_t *t = json_object_get(cfg, names[k][0]);
            const char *c = tok_content(t);
            if (!c)
                continue;
            int64_t id = -1;
            for (int64_t j = 0; j < n_vocab && id < 0; j++)
                if (type[j] != 5 && len[j] == strlen(c) && !memcmp(str[j], c, len[j]))
                    id = j;
            if (id < 0) {
                rc = hs_err_set(err, HS_EFORMAT, "%s: field '%s' names '%.64s', which is not in the vocabulary", cpath,
                                names[k][0], c);
                goto out;
            }
            hs_gguf_w_u32(w, names[k][1], (uint32_t)id);
        }
    }
    rc = write_tok_config(w, dir, err);
out:
    for (size_t k = 0; owned && k < n_merges; k++)
        hs_free(owned[k]);
    hs_free(owned);
    hs_free(merges);
    hs_free(str);
    hs_free(len);
    hs_free(type);
    hs_free(pads);
    if (root)
        json_decref(root);
    if (cfg)
        json_decref(cfg);
    hs_free(path);
    hs_free(cpath);
    return rc;
}
