#include "store_util.h"

#include "test_util.h"

#include <sqlite3.h>
#include <unistd.h>

char *hs_test_fresh_path(const char *name)
{
    char *p = hs_test_tmpfile(name);
    unlink(p);
    return p;
}

hs_store *hs_test_store_open(const char *path)
{
    hs_store *s = NULL;
    hs_err err = {0};
    if (hs_store_open(path, &s, &err) != HS_OK || !s)
        fail_msg("open %s: %s", path, err.msg);
    return s;
}

int64_t hs_test_sql_i64(const char *path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}
