/* libFuzzer target for the `alerts:` section reader (ops/alerts_config.c):
 * any bytes give a configuration or an error naming the file, never a crash,
 * a hang or a leak. What parses passes the whole-configuration check (the
 * reader checks as it goes), and what fails leaves the configuration as it
 * was. */
#include "ops/alerts.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hs_alerts_config c;
    hs_alerts_config_default(&c);
    c.throttle_s = 77; /* a value no file has set yet */
    hs_err err;
    hs_err_clear(&err);
    int rc = hs_alerts_config_parse(&c, (const char *)data, size, "fuzz.yaml", &err);
    if (rc != HS_OK) {
        if (strncmp(err.msg, "fuzz.yaml", 9) != 0)
            abort(); /* every error names the file */
        if (c.throttle_s != 77 || c.n_sinks != 0 || c.n_throttles != 0 || c.source)
            abort(); /* a failed parse changes nothing */
    } else {
        if (hs_alerts_config_check(&c, &err) != HS_OK)
            abort(); /* parse-time checks hold for the whole */
        for (int i = 0; i < c.n_sinks; i++) {
            const struct hs_alert_sink_config *s = &c.sinks[i];
            for (int j = 0; j < s->n_headers; j++)
                if (!s->headers[j].name || !s->headers[j].value || strpbrk(s->headers[j].value, "\r\n"))
                    abort();
        }
    }
    hs_alerts_config_free(&c);
    return 0;
}
