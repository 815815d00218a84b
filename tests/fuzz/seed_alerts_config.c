/* Writes the starting corpus for fuzz_alerts_config into the directory
 * argv[1]: the example config/alerts.example.yaml and a few small documents
 * that reach every key, flow style and some mistakes. Run from the repo root. */
#include <stdio.h>
#include <string.h>

static const char *const seeds[] = {
    "alerts:\n  throttle_s: 60\n  throttle: {high_latency: 5, model_error: 0}\n",
    "alerts:\n  retry_initial_ms: 10\n  retry_max_ms: 20\n  flush_timeout_ms: 0\n  source: n1\n",
    "alerts:\n  sinks:\n    - {kind: jsonl, path: a.jsonl}\n    - {kind: slack, url: \"http://h/x\", "
    "min_severity: warning}\n",
    "alerts:\n  sinks:\n    - kind: pagerduty\n      routing_key: k\n      timeout_ms: 100\n      queue: 3\n",
    "alerts:\n  sinks:\n    - kind: webhook\n      name: w\n      url: https://h:8080/p?q=1\n"
    "      headers: {Authorization: Bearer x, X-A: b}\n",
    "server: {port: 1}\nalerts: ~\nmodels: []\n",
    "alerts:\n  source: &s x\n  throttle_s: *s\n",
    "alerts:\n  sinks:\n    - kind: slack\n",
    "alerts: [1, 2]\n",
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
        fprintf(stderr, "usage: seed_alerts_config DIR\n");
        return 2;
    }
    int i = 0;
    for (; i < (int)(sizeof seeds / sizeof seeds[0]); i++)
        if (put(argv[1], i, seeds[i], strlen(seeds[i])))
            return 1;
    FILE *f = fopen("config/alerts.example.yaml", "rb");
    if (f) {
        static char text[65536];
        size_t n = fread(text, 1, sizeof text, f);
        fclose(f);
        if (put(argv[1], i, text, n))
            return 1;
    }
    return 0;
}
