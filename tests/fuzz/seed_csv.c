/* Writes the starting corpus for fuzz_csv into the directory argv[1]:
 * evaluation sheets as `hestia eval export` writes them and as people fill
 * them in (CRLF and LF, a byte-order mark, quoted fields with commas,
 * quotes and line breaks, Greek, empty cells, reordered columns) and near
 * misses (bad scores, an open quote, a stray quote). */
#include <stdio.h>
#include <string.h>

static const char *const seeds[] = {
    "request_id,variant,question,answer,accuracy,safety,comment\r\n"
    "r1,A,\"Τι είναι το IDLH;\",\"10 ppm, \"\"όχι\"\" 30\",4,5,\"ok\r\nline 2\"\r\n"
    "r2,B,q,a,,,\r\n",
    "\xEF\xBB\xBFrequest_id,question,answer,accuracy,safety,comment\nr1,q,'=1+1,5,5,\n",
    "comment,request_id,safety,accuracy\n,r1,3,2\n\"x\",r2,1,1\n",
    "request_id,accuracy,safety\nr1,6,5\n",
    "request_id,accuracy,safety\nr1,4,\n",
    "request_id,accuracy,safety\n\"open,4,4\n",
    "request_id,accuracy,safety\nr\"1,4,4\n",
    "request_id,accuracy,safety\n\"r1\"x,4,4\n",
    "a,b,c\r\n\r\n1,2,3",
    "\"\"\n\"\"\"\"\n,\n",
};

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: seed_csv DIR\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/seed_%02zu.csv", argv[1], i);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(seeds[i], 1, strlen(seeds[i]), f) != strlen(seeds[i]) || fclose(f) != 0) {
            perror(path);
            return 1;
        }
    }
    return 0;
}
