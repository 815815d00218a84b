#include "base/fp16.h"

#include <pthread.h>

static float g_table[65536];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void fill_table(void) {
    for (uint32_t i = 0; i < 65536; i++)
        g_table[i] = hs_fp16_to_f32((hs_fp16)i);
}

const float *hs_fp16_table(void) {
    pthread_once(&g_once, fill_table);
    return g_table;
}
