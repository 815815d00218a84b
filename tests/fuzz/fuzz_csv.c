/* libFuzzer target for the CSV reader (ops/csv) and the evaluation sheet
 * reader on top of it (ops/experiment_eval): any bytes give either records
 * or an HS_EFORMAT message with a line, never a crash, a leak or a hang.
 * Whatever reads is written back with hs_csv_row and must read again into
 * exactly the same fields (the writer and the reader agree on RFC 4180);
 * a sheet that reads has only scores in 1..5 and distinct request ids. */
#include "base/buf.h"
#include "ops/csv.h"
#include "ops/experiment_eval.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    const char *text = (const char *)data;
    struct hs_csv c;
    hs_err err;
    int rc = hs_csv_parse(text, size, "fuzz.csv", &c, &err);
    if (rc != HS_OK) {
        if (rc != HS_EFORMAT || strncmp(err.msg, "fuzz.csv:", 9) != 0 || c.n != 0)
            abort();
    } else {
        hs_buf b = {0};
        for (size_t i = 0; i < c.n; i++) {
            if (c.rows[i].n < 1 || c.rows[i].n > HS_CSV_MAX_FIELDS || c.rows[i].line < 1)
                abort();
            if (hs_csv_row(&b, (const char *const *)c.rows[i].fields, c.rows[i].n))
                abort();
        }
        struct hs_csv d;
        if (hs_csv_parse(b.data ? b.data : "", b.len, "again", &d, &err) != HS_OK || d.n != c.n)
            abort();
        for (size_t i = 0; i < c.n; i++) {
            if (d.rows[i].n != c.rows[i].n)
                abort();
            for (int j = 0; j < c.rows[i].n; j++)
                if (strcmp(d.rows[i].fields[j], c.rows[i].fields[j]))
                    abort();
        }
        hs_csv_free(&d);
        hs_buf_free(&b);
        hs_csv_free(&c);
    }

    struct hs_eval_sheet sh;
    rc = hs_eval_sheet_read(text, size, "sheet.csv", "fuzz", &sh, &err);
    if (rc != HS_OK) {
        if (rc != HS_EFORMAT || strncmp(err.msg, "sheet.csv", 9) != 0 || sh.n != 0 || sh.scores)
            abort();
        return 0;
    }
    for (size_t i = 0; i < sh.n; i++) {
        const struct hs_eval_score *s = &sh.scores[i];
        if (s->accuracy < 1 || s->accuracy > 5 || s->safety < 1 || s->safety > 5 || !s->request_id[0])
            abort();
        for (size_t j = 0; j < i; j++)
            if (!strcmp(sh.scores[j].request_id, s->request_id))
                abort();
    }
    hs_eval_sheet_free(&sh);
    return 0;
}
