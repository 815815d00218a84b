/* Writes the starting corpus for fuzz_schema into the directory argv[1]:
 * schemas of the supported subset (and a few outside it), each followed by a
 * NUL byte and a document, valid or not. */
#include <stdio.h>
#include <string.h>

static const char *const seeds[][2] = {
    {"", "{\"a\":[1,{\"b\":null}],\"c\":\"x\"}"},
    {"{}", "[1, \"x\", true]"},
    {"{\"type\":\"object\",\"properties\":{\"risk_level\":{\"enum\":[\"low\",\"medium\",\"high\"]},"
     "\"actions\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":40},\"maxItems\":3},"
     "\"count\":{\"type\":\"integer\"},\"confidence\":{\"type\":\"number\"},\"urgent\":{\"type\":\"boolean\"}"
     ","
     "\"contact\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"minLength\":1},"
     "\"phone\":{\"type\":[\"string\",\"null\"]}},\"required\":[\"name\"]}},"
     "\"required\":[\"risk_level\",\"actions\",\"count\"],\"additionalProperties\":false}",
     "{\"risk_level\": \"high\", \"actions\": [\"a\\u00e9\"], \"count\": -3, \"confidence\": 0.5e-3}"},
    {"{\"anyOf\":[{\"type\":\"string\",\"maxLength\":2},{\"type\":\"integer\"},{\"const\":null}]}", "\"ab\""},
    {"{\"type\":\"array\",\"minItems\":2,\"items\":{\"enum\":[1,\"a\",{\"k\":[true]}]}}",
     "[1,{\"k\":[true]}]"},
    {"{\"type\":\"object\",\"additionalProperties\":{\"type\":\"number\"},\"required\":[\"x\"]}",
     "{\"x\":1}"},
    {"{\"properties\":{\"a\":{\"$ref\":\"#/x\"}}}", "{}"},
    {"{\"type\":\"string\",\"minLength\":3,\"maxLength\":3}", "\"\xe6\x97\xa5\\n\xf0\x9f\x98\x80\""},
};

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: seed_schema DIR\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/seed-%03zu", argv[1], i);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(seeds[i][0], 1, strlen(seeds[i][0]), f) != strlen(seeds[i][0]) ||
            fputc(0, f) == EOF || fwrite(seeds[i][1], 1, strlen(seeds[i][1]), f) != strlen(seeds[i][1]) ||
            fclose(f) != 0) {
            perror(path);
            return 1;
        }
    }
    return 0;
}
