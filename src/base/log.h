/* Structured logging to stderr: one line per event,
 *   2026-11-26T12:00:00.123Z INFO  model.load path=x.gguf tensors=48
 * The library logs through here and never prints to stdout. Thread-safe. */
#ifndef HS_BASE_LOG_H
#define HS_BASE_LOG_H

enum hs_log_level { HS_LOG_DEBUG = 0, HS_LOG_INFO = 1, HS_LOG_WARN = 2, HS_LOG_ERROR = 3, HS_LOG_OFF = 4 };

/* Messages below this level are dropped. Default HS_LOG_INFO, or $HESTIA_LOG
 * (debug|info|warn|error|off) read on first use. */
void hs_log_set_level(enum hs_log_level level);
enum hs_log_level hs_log_get_level(void);

/* event: a dotted name ("gguf.open"); fmt: space-separated key=value pairs. */
void hs_log(enum hs_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define hs_log_debug(ev, ...) hs_log(HS_LOG_DEBUG, ev, __VA_ARGS__)
#define hs_log_info(ev, ...) hs_log(HS_LOG_INFO, ev, __VA_ARGS__)
#define hs_log_warn(ev, ...) hs_log(HS_LOG_WARN, ev, __VA_ARGS__)
#define hs_log_error(ev, ...) hs_log(HS_LOG_ERROR, ev, __VA_ARGS__)

#endif
