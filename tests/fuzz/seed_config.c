/* Writes the starting corpus for fuzz_config into the directory argv[1]: the
 * example config/hestia.yaml, the shipped config/agents.yaml and a few small
 * files that reach every section, the upstream form, adapters, agents and
 * schemas, flow style and some mistakes. Run from the repo root. */
#include <stdio.h>
#include <string.h>

static const char *const seeds[] = {
    "server: {host: 0.0.0.0, port: 0, parallel: 2, insecure: true}\n",
    "store:\n  path: x.db\n  log_bodies: false\nlimits: {max_body_bytes: 100, max_messages: 0}\n",
    "rate_limits:\n  per_key: {requests_per_minute: 10, requests_per_hour: 100}\n"
    "  per_address:\n    tokens_per_minute: 5\n",
    "models:\n  - name: a\n    path: a.gguf\n    ctx: 512\n  - name: b\n    upstream:\n"
    "      url: http://127.0.0.1:8001/v1\n      model: x\n      api_key: ~\n      timeout_s: 5\n",
    "models:\n  - {name: a, path: a.gguf}\n  - {name: a, path: b.gguf}\n",
    "server:\n  port: &p 1\n  threads: *p\n",
    "server:\n  prot: 1\n",
    "- 1\n- [2, {a: b}]\n",
    "server:\n  host: [a,\n",
    "models:\n  - {name: a, alias: b, path: a.gguf}\n",
    "adapters:\n  - name: lora\n    path: l.gguf\n    model: default\n    scale: 0.5\n"
    "agents:\n  - id: x\n    name: X\n    role: r\n    expertise: e\n    system_prompt: >-\n      p\n"
    "    adapters: [lora, {name: lora2, scale: -1}]\n"
    "    sampling: {temperature: 0.4, top_p: 0.9, top_k: 40, min_p: 0.05, max_tokens: 400}\n"
    "    schema:\n      type: object\n      properties:\n        a: {type: number, minimum: 0.1}\n"
    "        b: {enum: [\"1\", yes, true, null, 2.5]}\n      required: [a]\n",
    "agents:\n  - {id: y, system_prompt: p, schema: s}\n"
    "  - {id: z, system_prompt: q, schema: '{\"type\": \"object\"}'}\n"
    "schemas:\n  s: {type: object}\n",
    "agents:\n  - {id: x, system_prompt: p}\n  - {id: x, system_prompt: p}\n",
    "agents_file: config/agents.yaml\n",
};

static int put(const char *dir, int i, const char *s, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/seed-%03d", dir, i);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(s, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: seed_config DIR\n");
        return 2;
    }
    int n = 0;
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++)
        if (put(argv[1], n++, seeds[i], strlen(seeds[i])))
            return 1;
    const char *files[] = {"config/hestia.yaml", "config/agents.yaml"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        FILE *f = fopen(files[i], "rb");
        if (!f)
            continue;
        static char text[65536];
        size_t len = fread(text, 1, sizeof(text), f);
        fclose(f);
        if (put(argv[1], n++, text, len))
            return 1;
    }
    return 0;
}
