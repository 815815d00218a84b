/* Writes the starting corpus for fuzz_tokenizer into the directory argv[1]:
 * the llama.cpp tokenizer test strings (when ../shared has them) and a few
 * strings with special tokens, each behind a selector byte (the tokenizer
 * and flags to use; see fuzz_tokenizer.c). */
#include "base/mem.h"
#include "base/sys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int n_written;

static int put(const char *dir, unsigned char sel, const char *s, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/seed-%03d", dir, n_written++);
    FILE *f = fopen(path, "wb");
    if (!f || fputc(sel, f) == EOF || fwrite(s, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: seed_tokenizer DIR\n");
        return 2;
    }
    static const char *const extra[] = {
        "<|eot_id|>Hello<|user|>  world</s><s>",
        "ab aab \xc3\xa9\xe2\x96\x81 \xf0\x9f\xa6\x99 12345 it's",
        "\xff\xfe\x80 a\xe2 b\xed\xa0\x80 c\xc0\xaf",
    };
    for (size_t i = 0; i < 3; i++)
        for (unsigned sel = 0; sel < 8; sel++)
            if (put(argv[1], (unsigned char)(sel * 37), extra[i], strlen(extra[i])))
                return 1;
    const char *root = getenv("HESTIA_SHARED");
    char path[1024];
    snprintf(path, sizeof path, "%s/testdata/tokenizer/ggml-vocab-gpt-2.gguf.inp", root ? root : "../shared");
    char *data;
    size_t len;
    if (hs_read_file(path, &data, &len, NULL) != 0)
        return 0; /* no shared data: the extra seeds will do */
    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t pos = 0, k = 0;
    const char *m;
    while ((m = memmem(data + pos, len - pos, sep, sizeof sep - 1)) != NULL) {
        size_t n = (size_t)(m - (data + pos));
        if (put(argv[1], (unsigned char)(k++ * 11), data + pos, n)) {
            hs_free(data);
            return 1;
        }
        pos += n + sizeof sep - 1;
    }
    hs_free(data);
    return 0;
}
