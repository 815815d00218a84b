/* Result codes and error messages.
 * A function that can fail returns HS_OK (0) or a negative HS_E* code and, when
 * given a non-NULL hs_err, fills it with a message naming the place (file,
 * byte offset, field). The cli turns it into one line; the server into JSON. */
#ifndef HS_BASE_ERR_H
#define HS_BASE_ERR_H

enum {
    HS_OK = 0,
    HS_EINVAL = -1,       /* bad argument or request */
    HS_ENOMEM = -2,       /* allocation failed */
    HS_EIO = -3,          /* read, write, open, mmap failed */
    HS_EFORMAT = -4,      /* malformed input file or data */
    HS_EUNSUPPORTED = -5, /* valid but not supported (architecture, type) */
    HS_ERANGE = -6,       /* a value or size out of range (context full) */
    HS_ENOTFOUND = -7,    /* a key, tensor or name does not exist */
    HS_EBUSY = -8,        /* no room now (queue full); try again later */
    HS_ETIMEDOUT = -9,    /* a peer or a wait took too long */
    HS_ECANCELED = -10,   /* stopped on purpose (client gone, shutdown) */
};

#define HS_ERR_MSG_MAX 512

typedef struct hs_err {
    int code;
    char msg[HS_ERR_MSG_MAX];
} hs_err;

/* Sets err (if non-NULL) to code and a printf-style message; returns code so that
 * callers can write `return hs_err_set(err, HS_EFORMAT, "...")`. */
int hs_err_set(hs_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prefixes an existing message with more context ("loading x.gguf: " + msg). */
int hs_err_prefix(hs_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Clears err to HS_OK and an empty message. */
void hs_err_clear(hs_err *err);

/* Short name of a code: "invalid argument", "format error", ... */
const char *hs_err_name(int code);

#endif
