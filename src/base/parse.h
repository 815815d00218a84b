/* Checked number parsing for flags and config: the whole string must be a
 * number in range, otherwise HS_EINVAL (atoi/atof would silently give 0). */
#ifndef HS_BASE_PARSE_H
#define HS_BASE_PARSE_H

#include <stdint.h>

int hs_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
int hs_parse_int(const char *s, int min, int max, int *out);
int hs_parse_u64(const char *s, uint64_t *out);
int hs_parse_f64(const char *s, double *out);
int hs_parse_f32(const char *s, float *out);
/* "1,2,4" -> {1,2,4}; at most cap values; each in [min,max]. */
int hs_parse_int_list(const char *s, int min, int max, int *vals, int cap, int *n_out);

#endif
