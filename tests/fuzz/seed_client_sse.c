/* Writes the starting corpus for fuzz_client_sse into the directory argv[1]:
 * a piece-size byte then a stream body (see fuzz_client_sse.c): a whole
 * answer with usage and [DONE], CRLF endings and comments, a multi-line
 * event, an error event, a stream cut short, and a non-JSON event. */
#include <stdio.h>
#include <string.h>

struct seed {
    unsigned char flags;
    const char *text;
};

static const struct seed seeds[] = {
    {0x05,
     "data: {\"id\":\"a\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n"
     "data: {\"id\":\"a\",\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n"
     "data: {\"id\":\"a\",\"choices\":[{\"delta\":{\"content\":\"lo \\u00e9\"},\"finish_reason\":null}]}\n\n"
     "data: {\"id\":\"a\",\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
     "data: {\"id\":\"a\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n"
     "data: [DONE]\n\n"},
    {0x83, ": keep-alive\r\nevent: message\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\r\n\r\n"
           "data:{\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\r\n\r\n"
           "data: {\"choices\":[{\"delta\":{\"content\":\"c\"}}]}\r\n\r\n"
           "data: {\"choices\":[{\"delta\":{\"content\":\"d\"}}]}\r\n\r\n"},
    {0x00,
     "data: {\"choices\":\ndata: [{\"delta\":{\"content\":\"joined\"},\"finish_reason\":\"length\"}]}\n\n"},
    {0x07,
     "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\ndata: {\"error\":{\"message\":\"boom\"}}\n\n"},
    {0x02, "data: {\"choices\":[{\"delta\":{\"content\":\"cut\"}}]}\n\ndata: {\"cho"},
    {0x01, "data: not json\n\n"},
};

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: seed_client_sse DIR\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/seed_%02zu", argv[1], i);
        FILE *f = fopen(path, "wb");
        if (!f) {
            perror(path);
            return 1;
        }
        fputc(seeds[i].flags, f);
        fwrite(seeds[i].text, 1, strlen(seeds[i].text), f);
        if (fclose(f) != 0) {
            perror(path);
            return 1;
        }
    }
    return 0;
}
