#include "base/parse.h"

#include "base/err.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int hs_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out) {
    if (!s || !*s)
        return HS_EINVAL;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return HS_EINVAL;
    *out = v;
    return HS_OK;
}

int hs_parse_int(const char *s, int min, int max, int *out) {
    int64_t v;
    if (hs_parse_i64(s, min, max, &v))
        return HS_EINVAL;
    *out = (int)v;
    return HS_OK;
}

int hs_parse_u64(const char *s, uint64_t *out) {
    if (!s || !*s || *s == '-')
        return HS_EINVAL;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return HS_EINVAL;
    *out = v;
    return HS_OK;
}

int hs_parse_f64(const char *s, double *out) {
    if (!s || !*s)
        return HS_EINVAL;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v))
        return HS_EINVAL;
    *out = v;
    return HS_OK;
}

int hs_parse_f32(const char *s, float *out) {
    double v;
    if (hs_parse_f64(s, &v) || fabs(v) > 3.4e38)
        return HS_EINVAL;
    *out = (float)v;
    return HS_OK;
}

int hs_parse_int_list(const char *s, int min, int max, int *vals, int cap, int *n_out) {
    if (!s || !*s)
        return HS_EINVAL;
    int n = 0;
    const char *p = s;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char tmp[32];
        if (len == 0 || len >= sizeof tmp || n >= cap)
            return HS_EINVAL;
        memcpy(tmp, p, len);
        tmp[len] = '\0';
        if (hs_parse_int(tmp, min, max, &vals[n]))
            return HS_EINVAL;
        n++;
        if (!comma)
            break;
        p = comma + 1;
        if (!*p)
            return HS_EINVAL;
    }
    *n_out = n;
    return HS_OK;
}
