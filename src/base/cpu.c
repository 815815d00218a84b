#include "base/cpu.h"

#include <cpuid.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static struct hs_cpu_features g_feat;
static enum hs_cpu_level g_level;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static uint64_t xgetbv0(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

static void detect(void) {
    unsigned a, b, c, d;
    struct hs_cpu_features *f = &g_feat;
    memset(f, 0, sizeof *f);
    if (!__get_cpuid(1, &a, &b, &c, &d))
        goto level;
    bool osxsave = c & (1u << 27);
    f->fma = c & (1u << 12);
    f->f16c = c & (1u << 29);
    uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    bool ymm_ok = (xcr0 & 0x6) == 0x6;
    bool zmm_ok = ymm_ok && (xcr0 & 0xe0) == 0xe0;
    bool amx_ok = (xcr0 & 0x60000) == 0x60000;
    if (!ymm_ok) {
        f->fma = f->f16c = false;
        goto level;
    }
    if (__get_cpuid_max(0, NULL) < 7)
        goto level;
    __cpuid_count(7, 0, a, b, c, d);
    f->avx2 = b & (1u << 5);
    if (zmm_ok) {
        f->avx512f = b & (1u << 16);
        f->avx512dq = b & (1u << 17);
        f->avx512bw = b & (1u << 30);
        f->avx512vl = b & (1u << 31);
        f->avx512vnni = c & (1u << 11);
    }
    if (amx_ok) {
        f->amx_bf16 = d & (1u << 22);
        f->amx_tile = d & (1u << 24);
        f->amx_int8 = d & (1u << 25);
    }
    __cpuid_count(7, 1, a, b, c, d);
    f->avx_vnni = a & (1u << 4);
    if (zmm_ok)
        f->avx512bf16 = a & (1u << 5);
level:
    g_level = HS_CPU_REF;
    if (f->avx2 && f->fma && f->f16c)
        g_level = HS_CPU_AVX2;
    if (g_level == HS_CPU_AVX2 && f->avx512f && f->avx512bw && f->avx512vl && f->avx512dq &&
        f->avx512vnni && f->avx512bf16)
        g_level = HS_CPU_AVX512;
    const char *cap = getenv("HESTIA_CPU");
    if (cap) {
        enum hs_cpu_level want = g_level;
        if (!strcmp(cap, "ref"))
            want = HS_CPU_REF;
        else if (!strcmp(cap, "avx2"))
            want = HS_CPU_AVX2;
        if (want < g_level)
            g_level = want;
    }
}

const struct hs_cpu_features *hs_cpu_features(void) {
    pthread_once(&g_once, detect);
    return &g_feat;
}

enum hs_cpu_level hs_cpu_level(void) {
    pthread_once(&g_once, detect);
    return g_level;
}

const char *hs_cpu_level_name(enum hs_cpu_level level) {
    switch (level) {
    case HS_CPU_AVX512: return "avx512";
    case HS_CPU_AVX2: return "avx2";
    default: return "ref";
    }
}
