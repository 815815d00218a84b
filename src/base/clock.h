/* Monotonic time. */
#ifndef HS_BASE_CLOCK_H
#define HS_BASE_CLOCK_H

#include <stdint.h>

int64_t hs_now_ns(void);
double hs_now_s(void);

#endif
