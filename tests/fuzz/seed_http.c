/* Writes the starting corpus for fuzz_http into the directory argv[1]: each
 * file is a flags byte, "METHOD PATH", header lines, an empty line and a
 * body (see fuzz_http.c), covering every route, good requests and the
 * refusals (401, 404, 405, 413, 429, 400s, 502 from the closed upstream). */
#include <stdio.h>
#include <string.h>

struct seed {
    unsigned char flags;
    const char *text;
};

static const struct seed seeds[] = {
    {0x10, "GET /health\n\n"},
    {0x10, "GET /metrics\n\n"},
    {0x00, "GET /v1/models\n\n"},
    {0x00, "GET /v1/models/tiny\n\n"},
    {0x00, "GET /v1/models/nope\n\n"},
    {0x00, "DELETE /v1/models\n\n"},
    {0x00, "GET /nowhere\nx-request-id: my-id-1\n\n"},
    {0x00, "POST /v1/chat/completions\nContent-Type: application/json\n\n"
           "{\"model\":\"tiny\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
           "{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":2,\"temperature\":0}"},
    {0x00, "POST /v1/chat/completions\n\n"
           "{\"model\":\"default\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true,"
           "\"stream_options\":{\"include_usage\":true},\"logprobs\":true,\"top_logprobs\":2,\"n\":2}"},
    {0x64, "POST /v1/chat/completions\n\n"
           "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true}"},
    {0x00, "POST /v1/completions\n\n"
           "{\"model\":\"tiny\",\"prompt\":[\"Once upon\",\"a "
           "time\"],\"echo\":true,\"logprobs\":2,\"stop\":[\".\"]}"},
    {0x00,
     "POST /v1/completions\n\n{\"model\":\"tiny\",\"prompt\":[[1,2,3],[4]],\"stream\":true,\"seed\":7}"},
    {0x00, "POST /v1/completions\n\n{\"model\":\"tiny\",\"prompt\":[1,99999]}"},
    {0x00, "POST /v1/completions\n\n{\"model\":\"tiny\",\"prompt\":\"\",\"max_tokens\":1}"},
    {0x00,
     "POST "
     "/v1/embeddings\n\n{\"model\":\"tiny\",\"input\":[\"hello\",\"world\"],\"encoding_format\":\"base64\"}"},
    {0x00, "POST /v1/embeddings\n\n{\"model\":\"tiny\",\"input\":[[1,2],[3]],\"dimensions\":8}"},
    {0x00,
     "POST "
     "/v1/chat/completions\n\n{\"model\":\"remote\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"},
    {0x00,
     "POST "
     "/v1/chat/completions\n\n{\"model\":\"missing\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"},
    {0x00,
     "POST "
     "/v1/chat/completions\n\n{\"model\":\"tiny\",\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}"},
    {0x00, "POST /v1/chat/completions\n\n{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\""},
    {0x08, "POST /v1/chat/completions\n\n"},
    {0x01,
     "POST "
     "/v1/chat/completions\n\n{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"},
    {0x01, "GET /v1/models\nAuthorization: Bearer hs-wrong\n\n"},
    {0x03, "POST /v1/completions\n\n{\"model\":\"tiny\",\"prompt\":\"hi\",\"max_tokens\":2}"},
    {0x03, "GET /admin/keys\n\n"},
    {0x01, "GET /metrics\n\n"},
};

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: seed_http DIR\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/seed-%02zu", argv[1], i);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(&seeds[i].flags, 1, 1, f) != 1 ||
            fwrite(seeds[i].text, 1, strlen(seeds[i].text), f) != strlen(seeds[i].text) || fclose(f) != 0) {
            perror(path);
            return 1;
        }
    }
    return 0;
}
