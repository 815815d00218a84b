#include "base/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static int g_level = -1;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static int level_from_env(void) {
    const char *s = getenv("HESTIA_LOG");
    if (!s)
        return HS_LOG_INFO;
    if (!strcasecmp(s, "debug"))
        return HS_LOG_DEBUG;
    if (!strcasecmp(s, "warn"))
        return HS_LOG_WARN;
    if (!strcasecmp(s, "error"))
        return HS_LOG_ERROR;
    if (!strcasecmp(s, "off"))
        return HS_LOG_OFF;
    return HS_LOG_INFO;
}

void hs_log_set_level(enum hs_log_level level) { __atomic_store_n(&g_level, (int)level, __ATOMIC_RELAXED); }

enum hs_log_level hs_log_get_level(void) {
    int l = __atomic_load_n(&g_level, __ATOMIC_RELAXED);
    if (l < 0) {
        l = level_from_env();
        __atomic_store_n(&g_level, l, __ATOMIC_RELAXED);
    }
    return (enum hs_log_level)l;
}

void hs_log(enum hs_log_level level, const char *event, const char *fmt, ...) {
    if ((int)level < (int)hs_log_get_level())
        return;
    static const char *names[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[2048];
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                     names[level > HS_LOG_ERROR ? HS_LOG_ERROR : level], event);
    if (n < 0 || n >= (int)sizeof line)
        n = (int)sizeof line - 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&g_lock);
    fprintf(stderr, "%s\n", line);
    pthread_mutex_unlock(&g_lock);
}
