/* Writes a few small safetensors files into the directory given as argv[1],
 * as the starting corpus for fuzz_safetensors: every supported dtype, a
 * scalar, an empty tensor, __metadata__ and header padding. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int put(const char *dir, int which, const char *json, size_t data_len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/seed-%d.safetensors", dir, which);
    FILE *f = fopen(path, "wb");
    if (!f)
        return 1;
    uint64_t n = strlen(json);
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)(n >> (8 * i));
    fwrite(len, 1, 8, f);
    fwrite(json, 1, n, f);
    for (size_t i = 0; i < data_len; i++)
        fputc((int)(i * 37 % 251), f);
    return fclose(f) != 0;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    int rc = 0;
    rc |= put(argv[1], 0,
              "{\"__metadata__\":{\"format\":\"pt\"},"
              "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
              "\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]},"
              "\"c\":{\"dtype\":\"BF16\",\"shape\":[1,1,2,1],\"data_offsets\":[32,36]},"
              "\"d\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[36,40]},"
              "\"e\":{\"dtype\":\"F16\",\"shape\":[0,5],\"data_offsets\":[40,40]}}     ",
              40);
    rc |= put(argv[1], 1, "{\"x\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8);
    rc |= put(argv[1], 2, "{}", 0);
    return rc;
}
