/* What the AMX tile kernels share (q_legacy_amx_avx512.c, q_k_amx_avx512.c,
 * q_k_amxg_avx512.c): the attribute that enables the tile instructions per
 * function (matmul.c calls these kernels only when hs_amx_enabled()), and
 * the 64-byte tile configuration that ldtilecfg reads. */
#ifndef HS_TENSOR_AMX_IMPL_H
#define HS_TENSOR_AMX_IMPL_H

#include <stdint.h>
#include <string.h>

#define AMX __attribute__((target("amx-tile,amx-int8")))

/* Palette 1: per tile t, rows[t] rows of colsb[t] bytes. */
struct hs_tilecfg {
    uint8_t palette;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

/* Palette 1, every tile unused until shaped. */
static inline void hs_tilecfg_init(struct hs_tilecfg *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->palette = 1;
}

static inline void hs_tile_shape(struct hs_tilecfg *cfg, int t, int rows, int colsb)
{
    cfg->rows[t] = (uint8_t)rows;
    cfg->colsb[t] = (uint16_t)colsb;
}

#endif
