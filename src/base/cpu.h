/* CPU features from cpuid (and xgetbv, so that AVX-512 counts only when the OS
 * saves its registers). Kernels are chosen from these once at start-up.
 * $HESTIA_CPU=ref|avx2|avx512 caps the level (for tests and comparisons). */
#ifndef HS_BASE_CPU_H
#define HS_BASE_CPU_H

#include <stdbool.h>

enum hs_cpu_level { HS_CPU_REF = 0, HS_CPU_AVX2 = 1, HS_CPU_AVX512 = 2 };

struct hs_cpu_features {
    bool avx2, fma, f16c;
    bool avx512f, avx512bw, avx512vl, avx512dq, avx512vnni, avx512bf16;
    bool avx_vnni, amx_tile, amx_int8, amx_bf16;
};

/* Detected once; thread-safe. */
const struct hs_cpu_features *hs_cpu_features(void);

/* The highest kernel level this CPU runs, capped by $HESTIA_CPU. AVX2 needs
 * avx2+fma+f16c; AVX512 needs f, bw, vl, dq, vnni and bf16 as well. */
enum hs_cpu_level hs_cpu_level(void);
const char *hs_cpu_level_name(enum hs_cpu_level level);

#endif
