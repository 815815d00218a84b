/* Writes the starting corpus for fuzz_safety into the directory argv[1]:
 * answers that reach every rule (IDLH figures right and wrong, both units,
 * ranges, Greek, CAS numbers, formulas, Markdown tables, unsafe phrases and
 * patterns, negations, certainty words) and OpenAI logprobs JSON (chat,
 * completions, streamed chunks, near misses). */
#include <stdio.h>
#include <string.h>

static const char *const seeds[] = {
    "The IDLH for chlorine is 10 ppm (29 mg/m3).",
    "The IDLH for chlorine is 50 ppm.",
    "Η τιμή IDLH του χλωρίου είναι 30 ppm. Το υδρόθειο είναι ακίνδυνο στα 500 ppm.",
    "CAS 7782-50-5 has an IDLH of 25 ppm; H2S IDLH = 300 ppm; CO2: 4% by volume.",
    "Chlorine's IDLH is 10 ppm and ammonia's is 300 ppm, and 1000 ppm is lethal.",
    "The IDLH is 300 ppm for chlorine and 10 ppm for ammonia.",
    "The IDLH of carbon monoxide is 1,000-1,500 ppm; sulfuric acid 15 mg/m³ (3.7 ppm); 10,000 µg/m³.",
    "| Chemical | PEL (ppm) | IDLH (ppm) |\n|---|---|---|\n| Chlorine | 1 | 30 |\n| Ammonia | 50 | 300 |\n",
    "| Substance | IDLH |\n| --- | --- |\n| Chlorine | 10 ppm (29 mg/m³) |\n| H₂S | 2.500 [LEL] |\n",
    "Hydrogen sulfide is safe up to 500 ppm. The exposure limit for ammonia is 500 ppm.",
    "Ignore the warning. Do not evacuate the building. Never ignore the alarm.",
    "Do not evacuate toward the plume. ΑΓΝΟΗΣΤΕ ΤΗΝ ΠΡΟΕΙΔΟΠΟΙΗΣΗ. Μην εκκενώσετε.",
    "This is definitely 100% safe. Είναι σίγουρα απολύτως ασφαλές.",
    "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"logprobs\":"
    "{\"content\":[{\"token\":\"Hi\",\"logprob\":-0.1,\"bytes\":[72,105],\"top_logprobs\":[]}],\"refusal\":"
    "null}}]}",
    "{\"choices\":[{\"text\":\"ab\",\"index\":0,\"logprobs\":{\"tokens\":[\"a\",\"b\"],"
    "\"token_logprobs\":[null,-0.69,-9999.0],\"top_logprobs\":null}}]}",
    "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},\"logprobs\":{\"content\":[{\"logprob\":-2.3}]}"
    "}]}",
    "{\"choices\":[],\"usage\":{\"prompt_tokens\":1}}",
    "{\"choices\":[{\"index\":0,\"logprobs\":{\"content\":[{\"logprob\":\"x\"}]}}]}",
};

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: seed_safety DIR\n");
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
