/* API keys: creation, revocation, listing, and the verification every
 * authenticated request goes through.
 *
 * A key is "hs-" + base64url(32 random bytes). Because the secret is 256
 * uniformly random bits, a fast unkeyed hash (BLAKE2b, crypto_generichash) is
 * enough to store it: there is nothing to brute-force, so a slow password hash
 * would only cost every request time. Only the hash and a short display prefix
 * reach the file.
 *
 * Verification reads an in-memory list of the active keys' hashes, never the
 * database, except to reload the list when it is older than 2 s: a key the
 * cli creates or revokes while a server runs takes effect within 2 s, and a
 * flood of wrong keys costs at most one query per 2 s. */
#include "ops/store_impl.h"

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"

#include <sodium.h>
#include <string.h>

#define KEY_RAW_BYTES 32
#define KEY_PREFIX_CHARS 11   /* "hs-" + 8 characters (48 bits) to tell keys apart */
#define KEY_PRESENTED_MAX 256 /* longer presented keys are wrong without hashing them */

_Static_assert(HS_STORE_KEY_CAP ==
                   3 + sodium_base64_ENCODED_LEN(KEY_RAW_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING),
               "HS_STORE_KEY_CAP is 'hs-' + the base64url text + NUL");
_Static_assert(KEY_PREFIX_CHARS < sizeof(((struct hs_key_info *)0)->prefix), "prefix fits hs_key_info");

const char *hs_key_scope_name(enum hs_key_scope s)
{
    return s == HS_SCOPE_ADMIN ? "admin" : "user";
}

int hs_key_scope_parse(const char *name, enum hs_key_scope *out)
{
    if (name && !strcmp(name, "user")) {
        *out = HS_SCOPE_USER;
        return HS_OK;
    }
    if (name && !strcmp(name, "admin")) {
        *out = HS_SCOPE_ADMIN;
        return HS_OK;
    }
    return HS_EINVAL;
}

/* Names show in tables, logs and request records: printable ASCII without
 * spaces or quotes keeps all of those unambiguous. */
static int check_name(const char *name, hs_err *err)
{
    if (!name || !name[0])
        return hs_err_set(err, HS_EINVAL, "a key needs a name");
    size_t n = strlen(name);
    if (n >= sizeof(((struct hs_key_info *)0)->name))
        return hs_err_set(err, HS_EINVAL, "key name '%.20s...' is longer than %zu characters", name,
                          sizeof(((struct hs_key_info *)0)->name) - 1);
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                  c == '_' || c == '.' || c == '@' || c == ':';
        if (!ok)
            return hs_err_set(err, HS_EINVAL, "key name '%s': use letters, digits and - _ . @ : only", name);
    }
    return HS_OK;
}

static void hash_key(unsigned char out[HS_KEY_HASH_BYTES], const char *key, size_t len)
{
    crypto_generichash(out, HS_KEY_HASH_BYTES, (const unsigned char *)key, len, NULL, 0);
}

static void copy_str(char *dst, size_t cap, const unsigned char *src)
{
    size_t n = src ? strnlen((const char *)src, cap - 1) : 0;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

/* One api_keys row (name, scope, prefix, created_ms, revoked_ms) into k. */
static void row_info(sqlite3_stmt *st, struct hs_key_info *k)
{
    memset(k, 0, sizeof *k);
    copy_str(k->name, sizeof k->name, sqlite3_column_text(st, 0));
    if (hs_key_scope_parse((const char *)sqlite3_column_text(st, 1), &k->scope))
        k->scope = HS_SCOPE_USER; /* the CHECK constraint makes this unreachable; fail closed */
    copy_str(k->prefix, sizeof k->prefix, sqlite3_column_text(st, 2));
    k->created_ms = sqlite3_column_int64(st, 3);
    k->revoked_ms = sqlite3_column_type(st, 4) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 4);
}

/* ---- the active-key cache ------------------------------------------------- */

/* With dblock held: reads every active key and swaps the cache. */
static int load_locked(hs_store *s, hs_err *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT name, scope, prefix, created_ms, revoked_ms, hash FROM api_keys"
                           " WHERE revoked_ms IS NULL ORDER BY id",
                           -1, &st, NULL) != SQLITE_OK)
        return hs_store_sql_err(err, HS_EIO, s->db, "reading the API keys");
    struct hs_key_entry *keys = NULL;
    size_t n = 0, cap = 0, n_rows = 0;
    int rc, code = HS_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        n_rows++; /* counted even when unusable: such a key still means "keys required" */
        if (sqlite3_column_bytes(st, 5) != HS_KEY_HASH_BYTES)
            continue; /* not a hash this code wrote: it can match nothing */
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct hs_key_entry *nk = hs_realloc_array(keys, ncap, sizeof *nk);
            if (!nk) {
                code = hs_err_set(err, HS_ENOMEM, "reading the API keys: out of memory");
                break;
            }
            keys = nk;
            cap = ncap;
        }
        row_info(st, &keys[n].info);
        memcpy(keys[n].hash, sqlite3_column_blob(st, 5), HS_KEY_HASH_BYTES);
        n++;
    }
    if (!code && rc != SQLITE_DONE)
        code = hs_store_sql_err(err, HS_EIO, s->db, "reading the API keys");
    sqlite3_finalize(st);
    atomic_store(&s->keys_ok, code == HS_OK);
    if (code) {
        hs_free(keys);
        return code;
    }
    pthread_mutex_lock(&s->keylock);
    struct hs_key_entry *old = s->keys;
    s->keys = keys;
    s->n_keys = n;
    s->n_key_rows = n_rows;
    pthread_mutex_unlock(&s->keylock);
    hs_free(old);
    atomic_store(&s->keys_loaded_ns, hs_now_ns());
    return HS_OK;
}

int hs_store_keys_reload(hs_store *s, hs_err *err)
{
    pthread_mutex_lock(&s->dblock);
    int rc = load_locked(s, err);
    pthread_mutex_unlock(&s->dblock);
    return rc;
}

void hs_store_keys_free(hs_store *s)
{
    hs_free(s->keys);
    s->keys = NULL;
    s->n_keys = 0;
}

static bool stale(hs_store *s)
{
    int64_t t = atomic_load(&s->keys_loaded_ns);
    return t == 0 || hs_now_ns() - t >= HS_KEY_REFRESH_NS;
}

/* Reloads when the list is 2 s old. Threads that find it stale together
 * queue on dblock; the first reloads, the rest see a fresh list and go on. */
static void refresh_if_stale(hs_store *s)
{
    if (!stale(s))
        return;
    pthread_mutex_lock(&s->dblock);
    if (stale(s)) {
        hs_err err = {0};
        if (load_locked(s, &err)) {
            /* keep the old list and try again in 2 s rather than on every request */
            atomic_store(&s->keys_loaded_ns, hs_now_ns());
            hs_log_warn("store.keys", "path=%s error=\"%s\"", s->path, err.msg);
        }
    }
    pthread_mutex_unlock(&s->dblock);
}

bool hs_store_key_verify(hs_store *s, const char *presented, struct hs_key_info *out)
{
    if (!s || !presented)
        return false;
    size_t len = strnlen(presented, KEY_PRESENTED_MAX + 1);
    if (len == 0 || len > KEY_PRESENTED_MAX)
        return false;
    refresh_if_stale(s);
    unsigned char h[HS_KEY_HASH_BYTES];
    hash_key(h, presented, len);
    /* Every active hash is compared, in constant time each, with no early
     * exit: the time taken says nothing about which key, if any, matched. */
    pthread_mutex_lock(&s->keylock);
    size_t hit = SIZE_MAX;
    for (size_t i = 0; i < s->n_keys; i++)
        if (sodium_memcmp(h, s->keys[i].hash, HS_KEY_HASH_BYTES) == 0)
            hit = i;
    if (hit != SIZE_MAX && out)
        *out = s->keys[hit].info;
    pthread_mutex_unlock(&s->keylock);
    return hit != SIZE_MAX;
}

/* ---- create / revoke / list ----------------------------------------------- */

static int active_name_exists(sqlite3 *db, const char *name, bool *out)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM api_keys WHERE name = ? AND revoked_ms IS NULL", -1, &st, NULL))
        return HS_EIO;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return HS_EIO;
    *out = rc == SQLITE_ROW;
    return HS_OK;
}

static int insert_key(hs_store *s, const char *name, enum hs_key_scope scope, const unsigned char *hash,
                      const char *prefix, hs_err *err)
{
    sqlite3 *db = s->db;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return hs_store_sql_err(err, HS_EIO, db, "creating a key");
    bool exists = false;
    int code = active_name_exists(db, name, &exists);
    if (code) {
        hs_store_sql_err(err, code, db, "creating a key");
    } else if (exists) {
        code = hs_err_set(err, HS_EINVAL, "an active key is already named '%s' (revoke it first)", name);
    } else {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(
                db, "INSERT INTO api_keys (name, scope, hash, prefix, created_ms) VALUES (?,?,?,?,?)", -1,
                &st, NULL) != SQLITE_OK) {
            code = hs_store_sql_err(err, HS_EIO, db, "creating a key");
        } else {
            sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, hs_key_scope_name(scope), -1, SQLITE_STATIC);
            sqlite3_bind_blob(st, 3, hash, HS_KEY_HASH_BYTES, SQLITE_STATIC);
            sqlite3_bind_text(st, 4, prefix, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 5, hs_store_now_ms());
            if (sqlite3_step(st) != SQLITE_DONE)
                code = hs_store_sql_err(err, HS_EIO, db, "creating a key");
            sqlite3_finalize(st);
        }
    }
    if (!code && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        code = hs_store_sql_err(err, HS_EIO, db, "creating a key");
    if (code)
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return code;
}

int hs_store_key_create(hs_store *s, const char *name, enum hs_key_scope scope, char *key_out, size_t cap,
                        hs_err *err)
{
    if (key_out && cap)
        key_out[0] = '\0';
    int rc = check_name(name, err);
    if (rc)
        return rc;
    if (scope != HS_SCOPE_USER && scope != HS_SCOPE_ADMIN)
        return hs_err_set(err, HS_EINVAL, "key scope must be user or admin");
    if (!key_out || cap < HS_STORE_KEY_CAP)
        return hs_err_set(err, HS_EINVAL, "the key needs %d bytes of room", HS_STORE_KEY_CAP);
    if (sodium_init() < 0)
        return hs_err_set(err, HS_EIO, "libsodium could not start (no random source)");

    unsigned char raw[KEY_RAW_BYTES], hash[HS_KEY_HASH_BYTES];
    char key[HS_STORE_KEY_CAP];
    randombytes_buf(raw, sizeof raw);
    memcpy(key, "hs-", 3);
    sodium_bin2base64(key + 3, sizeof key - 3, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
    size_t len = strlen(key);
    hash_key(hash, key, len);
    char prefix[KEY_PREFIX_CHARS + 1];
    memcpy(prefix, key, KEY_PREFIX_CHARS);
    prefix[KEY_PREFIX_CHARS] = '\0';

    pthread_mutex_lock(&s->dblock);
    rc = insert_key(s, name, scope, hash, prefix, err);
    if (!rc) {
        hs_err lerr = {0};
        if (load_locked(s, &lerr))
            hs_log_warn("store.keys", "path=%s error=\"%s\"", s->path, lerr.msg);
    }
    pthread_mutex_unlock(&s->dblock);
    if (!rc) {
        memcpy(key_out, key, len + 1);
        hs_log_info("store.key_create", "name=%s scope=%s prefix=%s", name, hs_key_scope_name(scope), prefix);
    }
    sodium_memzero(key, sizeof key);
    return rc;
}

int hs_store_key_revoke(hs_store *s, const char *name, hs_err *err)
{
    if (!name || !name[0])
        return hs_err_set(err, HS_EINVAL, "which key? (no name given)");
    pthread_mutex_lock(&s->dblock);
    sqlite3_stmt *st = NULL;
    int rc = HS_OK;
    if (sqlite3_prepare_v2(s->db, "UPDATE api_keys SET revoked_ms = ? WHERE name = ? AND revoked_ms IS NULL",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = hs_store_sql_err(err, HS_EIO, s->db, "revoking a key");
    } else {
        sqlite3_bind_int64(st, 1, hs_store_now_ms());
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = hs_store_sql_err(err, HS_EIO, s->db, "revoking a key");
        else if (sqlite3_changes(s->db) == 0)
            rc = hs_err_set(err, HS_ENOTFOUND, "no active key is named '%s'", name);
        sqlite3_finalize(st);
    }
    if (!rc) {
        hs_err lerr = {0};
        if (load_locked(s, &lerr))
            hs_log_warn("store.keys", "path=%s error=\"%s\"", s->path, lerr.msg);
    }
    pthread_mutex_unlock(&s->dblock);
    if (!rc)
        hs_log_info("store.key_revoke", "name=%s", name);
    return rc;
}

int hs_store_key_list(hs_store *s, void (*fn)(void *user, const struct hs_key_info *k), void *user,
                      hs_err *err)
{
    /* The rows are copied out first so that fn runs without the lock (it may
     * call back into the store). */
    struct hs_key_info *rows = NULL;
    size_t n = 0, cap = 0;
    int code = HS_OK, rc;
    pthread_mutex_lock(&s->dblock);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT name, scope, prefix, created_ms, revoked_ms FROM api_keys"
                           " ORDER BY created_ms, id",
                           -1, &st, NULL) != SQLITE_OK) {
        code = hs_store_sql_err(err, HS_EIO, s->db, "listing the keys");
    } else {
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                struct hs_key_info *nr = hs_realloc_array(rows, ncap, sizeof *nr);
                if (!nr) {
                    code = hs_err_set(err, HS_ENOMEM, "listing the keys: out of memory");
                    break;
                }
                rows = nr;
                cap = ncap;
            }
            row_info(st, &rows[n++]);
        }
        if (!code && rc != SQLITE_DONE)
            code = hs_store_sql_err(err, HS_EIO, s->db, "listing the keys");
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->dblock);
    for (size_t i = 0; !code && i < n; i++)
        fn(user, &rows[i]);
    hs_free(rows);
    return code;
}

/* From the active-key cache that verify reads (reloaded when 2 s old), so
 * the check every request makes costs no query. */
int hs_store_key_count(hs_store *s)
{
    refresh_if_stale(s);
    if (!atomic_load(&s->keys_ok))
        return HS_EIO;
    pthread_mutex_lock(&s->keylock);
    const int n = (int)s->n_key_rows;
    pthread_mutex_unlock(&s->keylock);
    return n;
}
