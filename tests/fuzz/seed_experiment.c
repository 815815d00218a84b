/* Writes the starting corpus for fuzz_experiment into the directory
 * argv[1]: A/B, shadow and canary definitions as JSON bodies and as YAML
 * configurations (percentages, durations, absolute times, rules on, off and
 * with their own minimum), and near misses. */
#include <stdio.h>
#include <string.h>

static const char *const seeds[] = {
    "{\"name\":\"ab1\",\"route\":\"chat\",\"mode\":\"ab\",\"a\":\"m1\",\"b\":\"m2\",\"weight\":0.2}",
    "{\"name\":\"sh\",\"route\":\"chat\",\"mode\":\"shadow\",\"a\":\"m1\",\"b\":\"http-up\",\"shadow_queue\":"
    "8}",
    "{\"name\":\"c\",\"route\":\"r\",\"mode\":\"canary\",\"a\":\"m1\",\"b\":\"m2\",\"sticky_by\":\"key\","
    "\"canary\":[{\"weight\":\"1%\"},{\"weight\":\"5%\",\"after\":\"1h\"},{\"weight\":0.5,\"after_ms\":60000}"
    ","
    "{\"weight\":1,\"at\":\"2026-12-01T09:00:00+02:00\"}],\"rollback\":{\"error_ratio\":{\"limit\":3,"
    "\"min_samples\":100},\"p95_margin_ms\":false,\"safety_rate\":\"2%\",\"min_samples\":80,\"window\":"
    "\"5m\"}}",
    "experiments:\n  - name: triage-v2\n    route: triage\n    mode: canary\n    a: llama-3b\n"
    "    b: llama-3b+triage-v2\n    canary:\n      - weight: 1%\n      - {weight: 5%, after: 1h}\n"
    "      - weight: 0.10\n        at: 2026-12-01T09:00:00Z\n    rollback:\n      p95_margin_ms: off\n"
    "      window: 10m\n",
    "experiments:\n  - {name: x, route: r, a: m1, b: m2, weight: 10%}\n  - {name: y, route: r, mode: shadow, "
    "a: m1, b: m2}\n",
    "{\"name\":\"bad\",\"route\":\"r\",\"a\":\"m\",\"b\":\"m\",\"weight\":2}",
    "experiments:\n  - name: x\n    route: r\n    a: &m m1\n    b: *m\n",
};

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: seed_experiment DIR\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/seed_%02zu", argv[1], i);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(seeds[i], 1, strlen(seeds[i]), f) != strlen(seeds[i]) || fclose(f) != 0) {
            perror(path);
            return 1;
        }
    }
    return 0;
}
