/* Writes a small SentencePiece ModelProto into the directory given as
 * argv[1], the starting corpus for fuzz_spm: pieces with and without score
 * and type, a trainer_spec with a negative pad_id, and a skipped field. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static size_t varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    do {
        p[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            p[n] |= 0x80;
        n++;
    } while (v);
    return n;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    uint8_t buf[512];
    size_t n = 0;
    const char *pieces[] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81the", "a"};
    for (int i = 0; i < 5; i++) {
        uint8_t pc[64];
        size_t k = 0;
        size_t len = strlen(pieces[i]);
        pc[k++] = 0x0a;
        pc[k++] = (uint8_t)len;
        memcpy(pc + k, pieces[i], len);
        k += len;
        float score = -(float)i;
        pc[k++] = 0x15;
        memcpy(pc + k, &score, 4);
        k += 4;
        if (i < 3) {
            pc[k++] = 0x18;
            pc[k++] = (uint8_t)(i == 0 ? 2 : 3);
        }
        buf[n++] = 0x0a;
        buf[n++] = (uint8_t)k;
        memcpy(buf + n, pc, k);
        n += k;
    }
    uint8_t ts[64];
    size_t k = 0;
    k += varint(ts + k, 40 << 3);
    k += varint(ts + k, 0);
    k += varint(ts + k, 41 << 3);
    k += varint(ts + k, 1);
    k += varint(ts + k, 43 << 3);
    k += varint(ts + k, (uint64_t)(int64_t)-1);
    buf[n++] = 0x12;
    buf[n++] = (uint8_t)k;
    memcpy(buf + n, ts, k);
    n += k;
    buf[n++] = 0x1a;
    buf[n++] = 2;
    buf[n++] = 0x08;
    buf[n++] = 0x01;
    char path[4096];
    snprintf(path, sizeof path, "%s/seed-0.model", argv[1]);
    FILE *f = fopen(path, "wb");
    if (!f)
        return 1;
    fwrite(buf, 1, n, f);
    return fclose(f) != 0;
}
