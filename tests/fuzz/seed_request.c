/* Writes the starting corpus for fuzz_request into the directory argv[1]:
 * valid chat, completion and embeddings bodies using every field, and a few
 * near misses (wrong types, out-of-range values, broken JSON). */
#include <stdio.h>
#include <string.h>

static const char *const seeds[] = {
    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
    "{\"model\":\"m\",\"messages\":[{\"role\":\"developer\",\"content\":\"be brief\"},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]},"
    "{\"role\":\"assistant\",\"content\":\"ok\"}],\"temperature\":0.7,\"top_p\":0.9,\"top_k\":40,\"min_p\":0."
    "05,"
    "\"frequency_penalty\":0.5,\"presence_penalty\":-0.5,\"repeat_penalty\":1.1,\"repeat_last_n\":64,"
    "\"seed\":42,"
    "\"n\":2,\"max_tokens\":16,\"max_completion_tokens\":8,\"stop\":[\"\\n\",\"END\"],\"stream\":true,"
    "\"stream_options\":{\"include_usage\":true},\"logprobs\":true,\"top_logprobs\":5,\"user\":\"u\","
    "\"response_format\":{\"type\":\"text\"},\"ignore_eos\":false,\"tools\":[],\"logit_bias\":{}}",
    "{\"model\":\"m\",\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}",
    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{}}"
    "]}]}",
    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\\u00e9\\ud83d\\ude00\"}],\"n\":17}",
    "{\"model\":\"m\",\"messages\":[],\"temperature\":\"hot\"}",
    "{\"model\":\"m\",\"prompt\":\"Once upon a "
    "time\",\"logprobs\":3,\"echo\":true,\"max_tokens\":4,\"stop\":\".\"}",
    "{\"model\":\"m\",\"prompt\":[\"a\",\"b\"],\"suffix\":\"\",\"best_of\":1,\"n\":1}",
    "{\"model\":\"m\",\"prompt\":[1,2,3]}",
    "{\"model\":\"m\",\"prompt\":[[1,2],[3]],\"stream\":true}",
    "{\"model\":\"m\",\"prompt\":[[1,2],[-3]]}",
    "{\"model\":\"e\",\"input\":\"hello\",\"encoding_format\":\"base64\"}",
    "{\"model\":\"e\",\"input\":[\"a\",\"b\",\"c\"],\"encoding_format\":\"float\",\"dimensions\":16}",
    "{\"model\":\"e\",\"input\":[[1],[2,3]]}",
    "{\"model\":\"e\",\"input\":\"\"}",
    "{\"model\":\"m\",\n \"messages\": [,]}",
    "[1,2,3]",
    "\"text\"",
    "{\"model\":null}",
};

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: seed_request DIR\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/seed-%03zu", argv[1], i);
        FILE *f = fopen(path, "wb");
        size_t len = strlen(seeds[i]);
        if (!f || fwrite(seeds[i], 1, len, f) != len || fclose(f) != 0) {
            perror(path);
            return 1;
        }
    }
    return 0;
}
