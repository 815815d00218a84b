/* 'hestia tokenize -m MODEL (-p TEXT | -f FILE) [--ids] [--add-special]
 * [--parse-special]': the tokens of the exact bytes given. Only the
 * vocabulary is read, so vocab-only GGUF files work too. */
#include "cli/cli.h"

#include "base/buf.h"
#include "base/mem.h"
#include "base/sys.h"
#include "gguf/gguf.h"
#include "model/tokenizer.h"

#include <stdio.h>
#include <string.h>

static const char *const k_cmd = "tokenize";

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: hestia tokenize -m MODEL.gguf (-p TEXT | -f FILE) [--ids] [--add-special] [--parse-special]\n"
        "  Tokenizes the exact bytes of TEXT or FILE (no BOS/EOS unless --add-special).\n"
        "  -m, --model FILE    a GGUF model or vocabulary-only file\n"
        "  -p, --prompt TEXT   the text\n"
        "  -f, --file FILE     read the text from FILE\n"
        "  --ids               print only the ids, space-separated, on one line\n"
        "  --add-special       add BOS/EOS as the vocabulary says\n"
        "  --parse-special     text like <|eot_id|> becomes that control token\n"
        "  Otherwise one line per token: the id and its piece in quotes (control\n"
        "  bytes and bytes that are not whole UTF-8 characters as \\xNN).\n");
}

/* Length of the valid UTF-8 character at s (n bytes left), 0 if invalid. */
static size_t utf8_char(const unsigned char *s, size_t n)
{
    size_t len = s[0] < 0x80             ? 1
                 : (s[0] & 0xe0) == 0xc0 ? 2
                 : (s[0] & 0xf0) == 0xe0 ? 3
                 : (s[0] & 0xf8) == 0xf0 ? 4
                                         : 0;
    if (len == 0 || len > n || (len == 2 && s[0] < 0xc2))
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

static void put_piece(const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    putchar('\'');
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t k = utf8_char(s + i, n - i);
        if (c == '\n') {
            fputs("\\n", stdout);
        } else if (c == '\t') {
            fputs("\\t", stdout);
        } else if (c == '\r') {
            fputs("\\r", stdout);
        } else if (c == '\\' || c == '\'') {
            printf("\\%c", c);
        } else if (k == 0 || c < 0x20 || c == 0x7f) {
            printf("\\x%02x", c);
        } else {
            fwrite(s + i, 1, k, stdout);
            i += k;
            continue;
        }
        i++;
    }
    putchar('\'');
}

static bool is(const char *a, const char *short_name, const char *long_name)
{
    return !strcmp(a, short_name) || !strcmp(a, long_name);
}

int hs_cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *prompt = NULL, *file = NULL;
    bool ids_only = false, add_special = false, parse_special = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (is(a, "-m", "--model") || is(a, "-p", "--prompt") || is(a, "-f", "--file")) {
            if (i + 1 >= argc)
                return hs_cli_usage(k_cmd, "%s needs a value", a);
            const char **dst = is(a, "-m", "--model") ? &model : is(a, "-p", "--prompt") ? &prompt : &file;
            if (*dst)
                return hs_cli_usage(k_cmd, "%s given twice", a);
            *dst = argv[++i];
        } else if (!strcmp(a, "--ids")) {
            ids_only = true;
        } else if (!strcmp(a, "--add-special")) {
            add_special = true;
        } else if (!strcmp(a, "--parse-special")) {
            parse_special = true;
        } else {
            return hs_cli_usage(k_cmd, "unknown argument '%s'", a);
        }
    }
    if (!model)
        return hs_cli_usage(k_cmd, "no model (-m MODEL.gguf)");
    if (!prompt == !file)
        return hs_cli_usage(k_cmd, "give exactly one of -p TEXT and -f FILE");

    hs_err err;
    char *data = NULL;
    size_t len;
    if (file) {
        if (hs_read_file(file, &data, &len, &err))
            return hs_cli_fail_err(k_cmd, &err);
    } else {
        len = strlen(prompt);
    }
    const char *text = file ? data : prompt;

    hs_gguf *g = NULL;
    hs_tok *t = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = hs_gguf_open(model, &g, &err);
    if (!rc) {
        rc = hs_tok_load(g, &t, &err);
        if (rc)
            hs_err_prefix(&err, "%s: ", model);
    }
    if (!rc)
        rc = hs_tok_encode(t, text, len, add_special, parse_special, &ids, &n, &err);
    if (rc) {
        hs_free(data);
        hs_tok_free(t);
        hs_gguf_close(g);
        return hs_cli_fail_err(k_cmd, &err);
    }

    hs_buf piece = {0};
    for (size_t i = 0; i < n; i++) {
        if (ids_only) {
            printf(i ? " %d" : "%d", (int)ids[i]);
            continue;
        }
        hs_buf_reset(&piece);
        hs_tok_decode_token(t, ids[i], true, &piece);
        printf("%6d -> ", (int)ids[i]);
        put_piece(piece.data ? piece.data : "", piece.len);
        putchar('\n');
    }
    if (ids_only)
        putchar('\n');
    hs_buf_free(&piece);
    hs_free(ids);
    hs_free(data);
    hs_tok_free(t);
    hs_gguf_close(g);
    if (fflush(stdout) != 0 || ferror(stdout))
        return hs_cli_fail(k_cmd, "could not write the output");
    return 0;
}
