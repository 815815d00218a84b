#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int hs_err_set(hs_err *err, int code, const char *fmt, ...) {
    if (!err)
        return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

int hs_err_prefix(hs_err *err, const char *fmt, ...) {
    if (!err)
        return HS_OK;
    char head[HS_ERR_MSG_MAX], old[HS_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    /* Callers prefix "<path>: " on the way out; the reader may already have. */
    if (!strncmp(err->msg, head, strlen(head)))
        return err->code;
    memcpy(old, err->msg, sizeof old);
    size_t hl = strlen(head), ol = strnlen(old, sizeof old - 1);
    if (hl > sizeof err->msg - 1)
        hl = sizeof err->msg - 1;
    if (ol > sizeof err->msg - 1 - hl)
        ol = sizeof err->msg - 1 - hl;
    memcpy(err->msg, head, hl);
    memcpy(err->msg + hl, old, ol);
    err->msg[hl + ol] = '\0';
    return err->code;
}

void hs_err_clear(hs_err *err) {
    if (!err)
        return;
    err->code = HS_OK;
    err->msg[0] = '\0';
}

const char *hs_err_name(int code) {
    switch (code) {
    case HS_OK: return "ok";
    case HS_EINVAL: return "invalid argument";
    case HS_ENOMEM: return "out of memory";
    case HS_EIO: return "i/o error";
    case HS_EFORMAT: return "format error";
    case HS_EUNSUPPORTED: return "unsupported";
    case HS_ERANGE: return "out of range";
    case HS_ENOTFOUND: return "not found";
    case HS_EBUSY: return "busy";
    case HS_ETIMEDOUT: return "timed out";
    case HS_ECANCELED: return "canceled";
    default: return "unknown error";
    }
}
