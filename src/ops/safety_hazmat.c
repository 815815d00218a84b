/* hazmat_mismatch: the NIOSH IDLH table (data/hazmat/idlh.csv) and the rule
 * that compares an answer's figures with it (see safety.h, docs/ops.md).
 *
 * The table: a CSV with a header naming its columns (name, cas, idlh, unit,
 * mw, aliases, source; order free, name/idlh/unit required), one chemical a
 * row, aliases separated by '|'. Every CAS number's check digit is verified
 * and every name, alias and CAS number must belong to one chemical only.
 *
 * The rule, on the normalised answer:
 *  1. Find chemical mentions (names, aliases, CAS numbers; longest first;
 *     formulas such as "CO" or "H2S" case-sensitively, the rest caseless),
 *     cue terms (idlh / safe / other, from the config) and figures: a number
 *     or a range with a unit (ppm, ppb, mg/m3, ug/m3, g/m3, % by volume).
 *  2. Each figure takes the nearest cue before it in its sentence (else the
 *     nearest after it) and its chemical: the one it names right after it
 *     ("10 ppm for chlorine"), else the nearest before it, else the nearest
 *     after, all within `window` characters. A figure without both is not
 *     an exposure figure ("10 km", "30 minutes", "lethal at 1000 ppm").
 *  3. A cue and a chemical judge one figure, plus the same figure in the
 *     other unit right after it ("10 ppm (29 mg/m3)"): in "the IDLH of CO is
 *     1200 ppm; at 400 ppm headaches start" the 400 is not an IDLH.
 *  4. Convert to the table's unit (mg/m3 = ppm * mw / 24.45) and compare:
 *     idlh: off by more than `tolerance` (a range must contain the value);
 *     safe: above the IDLH by more than `tolerance`.
 * Markdown tables are read by column: a header cell with a cue (and maybe a
 * unit, "IDLH (ppm)") makes the cells below it figures of their row's
 * chemical. */
#include "ops/safety_impl.h"

#include "base/mem.h"
#include "base/parse.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* --- the table --- */

#define CSV_MAX_BYTES (16u << 20)

static void chem_free(struct hs_sfy_chem *c)
{
    hs_free(c->name);
    hs_free(c->cas);
    hs_free(c->source);
    for (int i = 0; i < c->n_aliases; i++)
        hs_free(c->aliases[i]);
    hs_free(c->aliases);
}

void hs_sfy_hazmat_free(hs_safety *s)
{
    for (int i = 0; i < s->n_chems; i++)
        chem_free(&s->chems[i]);
    hs_free(s->chems);
    s->chems = NULL;
    s->n_chems = 0;
    for (int i = 0; i < s->n_keys; i++)
        hs_free(s->keys[i].key);
    hs_free(s->keys);
    s->keys = NULL;
    s->n_keys = 0;
    pcre2_code_free(s->re_chem);
    pcre2_code_free(s->re_figure);
    pcre2_code_free(s->re_unit);
    pcre2_code_free(s->re_bare);
    pcre2_code_free(s->re_link);
    pcre2_code_free(s->re_conv);
    pcre2_code_free(s->re_idlh);
    pcre2_code_free(s->re_safe);
    pcre2_code_free(s->re_other);
    s->re_chem = s->re_figure = s->re_unit = s->re_bare = s->re_link = s->re_conv = NULL;
    s->re_idlh = s->re_safe = s->re_other = NULL;
}

/* CAS Registry Numbers: 2-7 digits, 2 digits, a check digit that is the sum
 * of the other digits, each times its place counted from the right, mod 10. */
static bool cas_valid(const char *s)
{
    size_t n = strlen(s);
    const char *d1 = strchr(s, '-');
    const char *d2 = d1 ? strchr(d1 + 1, '-') : NULL;
    if (!d1 || !d2 || strchr(d2 + 1, '-') || d1 - s < 2 || d1 - s > 7 || d2 - d1 != 3 || s + n - d2 != 2)
        return false;
    int sum = 0, place = 1;
    for (const char *p = d2 - 1; p >= s; p--) {
        if (*p == '-')
            continue;
        if (*p < '0' || *p > '9')
            return false;
        sum += (*p - '0') * place++;
    }
    return d2[1] >= '0' && d2[1] <= '9' && sum % 10 == d2[1] - '0';
}

enum col { C_NAME, C_CAS, C_IDLH, C_UNIT, C_MW, C_ALIASES, C_SOURCE, C_COUNT };
static const char *const col_names[C_COUNT] = {"name", "cas", "idlh", "unit", "mw", "aliases", "source"};

struct csv {
    const char *name;
    hs_err *err;
    int line;
};

static int csv_fail(struct csv *c, const char *col, const char *fmt, const char *arg)
{
    char msg[200];
    snprintf(msg, sizeof(msg), fmt, arg);
    if (col)
        return hs_err_set(c->err, HS_EFORMAT, "%s:%d: %s: %s", c->name, c->line, col, msg);
    return hs_err_set(c->err, HS_EFORMAT, "%s:%d: %s", c->name, c->line, msg);
}

/* Splits one line (without its line break) into fields, unquoting "...".
 * fields[i] are new strings; *n their number. */
static int split_line(struct csv *c, const char *p, size_t len, char ***fields, int *n)
{
    *fields = NULL;
    *n = 0;
    hs_buf f = {0};
    size_t i = 0;
    int rc = HS_OK;
    for (;;) {
        hs_buf_reset(&f);
        if (i < len && p[i] == '"') {
            i++;
            for (;;) {
                if (i >= len) {
                    rc = csv_fail(c, NULL, "%s", "a quoted field does not end on its line");
                    goto out;
                }
                if (p[i] == '"') {
                    if (i + 1 < len && p[i + 1] == '"') {
                        if (hs_buf_putc(&f, '"'))
                            goto oom;
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                if (hs_buf_putc(&f, p[i++]))
                    goto oom;
            }
            if (i < len && p[i] != ',') {
                rc = csv_fail(c, NULL, "%s", "text after a quoted field (quote the whole field)");
                goto out;
            }
        } else {
            while (i < len && p[i] != ',') {
                if (p[i] == '"') {
                    rc = csv_fail(c, NULL, "%s", "a quote inside an unquoted field");
                    goto out;
                }
                if (hs_buf_putc(&f, p[i++]))
                    goto oom;
            }
        }
        char **grown = hs_realloc_array(*fields, (size_t)*n + 1, sizeof(char *));
        if (!grown)
            goto oom;
        *fields = grown;
        (*fields)[*n] = hs_strndup(f.data ? f.data : "", f.len);
        if (!(*fields)[*n])
            goto oom;
        (*n)++;
        if (i >= len)
            break;
        i++; /* the comma */
    }
    goto out;
oom:
    rc = hs_err_set(c->err, HS_ENOMEM, "out of memory");
out:
    hs_buf_free(&f);
    if (rc != HS_OK) {
        for (int k = 0; k < *n; k++)
            hs_free((*fields)[k]);
        hs_free(*fields);
        *fields = NULL;
        *n = 0;
    }
    return rc;
}

static void trim(char *s)
{
    size_t n = strlen(s), a = 0;
    while (a < n && (s[a] == ' ' || s[a] == '\t'))
        a++;
    while (n > a && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    memmove(s, s + a, n - a);
    s[n - a] = 0;
}

static int parse_row(struct csv *c, char **f, const int *col_of, struct hs_sfy_chem *ch)
{
    memset(ch, 0, sizeof(*ch));
    const char *name = f[col_of[C_NAME]];
    if (!name[0])
        return csv_fail(c, "name", "%s", "empty");
    const char *cas = col_of[C_CAS] >= 0 ? f[col_of[C_CAS]] : "";
    if (cas[0] && !cas_valid(cas))
        return csv_fail(c, "cas", "'%.40s' is not a CAS number (NNNNNNN-NN-N with its check digit)", cas);
    double idlh;
    if (hs_parse_f64(f[col_of[C_IDLH]], &idlh) != HS_OK || !(idlh > 0) || !isfinite(idlh))
        return csv_fail(c, "idlh", "'%.40s' is not a positive number", f[col_of[C_IDLH]]);
    const char *unit = f[col_of[C_UNIT]];
    enum hs_hazmat_unit u;
    if (strcmp(unit, "ppm") == 0)
        u = HS_UNIT_PPM;
    else if (strcmp(unit, "mg/m3") == 0 || strcmp(unit, "mg/m\xC2\xB3") == 0)
        u = HS_UNIT_MG_M3;
    else
        return csv_fail(c, "unit", "'%.40s' is not ppm or mg/m3", unit);
    double mw = 0;
    const char *mws = col_of[C_MW] >= 0 ? f[col_of[C_MW]] : "";
    if (mws[0] && (hs_parse_f64(mws, &mw) != HS_OK || !(mw > 0 && mw < 100000)))
        return csv_fail(c, "mw", "'%.40s' is not a molecular weight in g/mol", mws);

    ch->name = hs_strdup(name);
    ch->cas = hs_strdup(cas);
    ch->source = hs_strdup(col_of[C_SOURCE] >= 0 ? f[col_of[C_SOURCE]] : "");
    if (!ch->name || !ch->cas || !ch->source)
        goto oom;
    const char *al = col_of[C_ALIASES] >= 0 ? f[col_of[C_ALIASES]] : "";
    while (*al) {
        const char *bar = strchr(al, '|');
        size_t n = bar ? (size_t)(bar - al) : strlen(al);
        char *a = hs_strndup(al, n);
        if (!a)
            goto oom;
        trim(a);
        if (a[0]) {
            char **grown = hs_realloc_array(ch->aliases, (size_t)ch->n_aliases + 1, sizeof(char *));
            if (!grown) {
                hs_free(a);
                goto oom;
            }
            ch->aliases = grown;
            ch->aliases[ch->n_aliases++] = a;
        } else {
            hs_free(a);
        }
        al += n + (bar ? 1 : 0);
    }
    ch->pub.name = ch->name;
    ch->pub.cas = ch->cas;
    ch->pub.idlh = idlh;
    ch->pub.unit = u;
    ch->pub.mw = mw;
    ch->pub.source = ch->source;
    return HS_OK;
oom:
    chem_free(ch);
    memset(ch, 0, sizeof(*ch));
    return hs_err_set(c->err, HS_ENOMEM, "out of memory");
}

/* A formula: ASCII letters and digits, a capital first, and a digit or a
 * second capital ("CO", "H2S", "NaOH", "MEK"). Those are matched with their
 * case, or "co" and "no" in any sentence would be carbon and nitric oxide. */
static bool is_formula(const char *k)
{
    if (!(k[0] >= 'A' && k[0] <= 'Z'))
        return false;
    int caps = 0, digits = 0;
    for (const char *p = k; *p; p++) {
        if (*p >= 'A' && *p <= 'Z')
            caps++;
        else if (*p >= '0' && *p <= '9')
            digits++;
        else if (!(*p >= 'a' && *p <= 'z'))
            return false;
    }
    return digits > 0 || caps >= 2;
}

/* The key of a name: normalised; and whether it clashes with one we have. */
static int add_key(hs_safety *s, struct csv *c, const char *text, int chem, bool cas)
{
    size_t len;
    char *k = hs_sfy_normalize(text, strlen(text), &len);
    if (!k)
        return hs_err_set(c->err, HS_ENOMEM, "out of memory");
    if (len == 0 || memchr(k, 0, len)) {
        hs_free(k);
        return csv_fail(c, "aliases", "'%.60s' is empty once normalised", text);
    }
    bool formula = !cas && is_formula(k);
    char *low = hs_sfy_lower(k, len);
    if (!low) {
        hs_free(k);
        return hs_err_set(c->err, HS_ENOMEM, "out of memory");
    }
    for (int i = 0; i < s->n_keys; i++) {
        const struct hs_sfy_key *o = &s->keys[i];
        bool same = strcmp(o->key, k) == 0;
        if (!same && !formula && !o->formula) {
            char *ol = hs_sfy_lower(o->key, strlen(o->key));
            same = ol && strcmp(ol, low) == 0;
            hs_free(ol);
        }
        if (!same)
            continue;
        hs_free(low);
        hs_free(k);
        if (o->chem == chem) /* an alias that repeats the name */
            return HS_OK;
        return csv_fail(c, NULL, "'%.60s' already names another chemical", text);
    }
    hs_free(low);
    struct hs_sfy_key *grown = hs_realloc_array(s->keys, (size_t)s->n_keys + 1, sizeof(*grown));
    if (!grown) {
        hs_free(k);
        return hs_err_set(c->err, HS_ENOMEM, "out of memory");
    }
    s->keys = grown;
    s->keys[s->n_keys++] = (struct hs_sfy_key){k, chem, cas, formula};
    return HS_OK;
}

int hs_sfy_hazmat_parse(hs_safety *s, const char *text, size_t len, const char *name, hs_err *err)
{
    struct csv c = {name, err, 0};
    int col_of[C_COUNT];
    int n_cols = 0;
    int rc = HS_OK;
    size_t i = 0;
    bool header = false;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) /* a byte-order mark from a spreadsheet */
        i = 3;
    while (i < len && rc == HS_OK) {
        size_t e = i;
        while (e < len && text[e] != '\n')
            e++;
        size_t le = e;
        if (le > i && text[le - 1] == '\r')
            le--;
        c.line++;
        const char *line = text + i;
        size_t n = le - i;
        i = e + 1;
        size_t k = 0;
        while (k < n && (line[k] == ' ' || line[k] == '\t'))
            k++;
        if (k == n)
            continue; /* blank */
        if (memchr(line, 0, n)) {
            rc = csv_fail(&c, NULL, "%s", "a NUL byte");
            break;
        }
        char **f;
        int nf;
        rc = split_line(&c, line, n, &f, &nf);
        if (rc != HS_OK)
            break;
        for (int j = 0; j < nf; j++)
            trim(f[j]);
        if (!header) {
            for (int j = 0; j < C_COUNT; j++)
                col_of[j] = -1;
            for (int j = 0; j < nf && rc == HS_OK; j++) {
                int which = -1;
                for (int q = 0; q < C_COUNT; q++)
                    if (strcmp(f[j], col_names[q]) == 0)
                        which = q;
                if (which < 0)
                    rc = csv_fail(
                        &c, NULL,
                        "unknown column '%.40s' (known: name, cas, idlh, unit, mw, aliases, source)", f[j]);
                else if (col_of[which] >= 0)
                    rc = csv_fail(&c, f[j], "%s", "the column is named twice");
                else
                    col_of[which] = j;
            }
            if (rc == HS_OK && (col_of[C_NAME] < 0 || col_of[C_IDLH] < 0 || col_of[C_UNIT] < 0))
                rc = csv_fail(&c, NULL, "%s", "the header needs the columns name, idlh and unit");
            n_cols = nf;
            header = true;
        } else if (nf != n_cols) {
            char msg[80];
            snprintf(msg, sizeof(msg), "%d fields where the header has %d", nf, n_cols);
            rc = csv_fail(&c, NULL, "%s", msg);
        } else {
            struct hs_sfy_chem *grown = hs_realloc_array(s->chems, (size_t)s->n_chems + 1, sizeof(*grown));
            if (!grown) {
                rc = hs_err_set(err, HS_ENOMEM, "out of memory");
            } else {
                s->chems = grown;
                rc = parse_row(&c, f, col_of, &s->chems[s->n_chems]);
                if (rc == HS_OK) {
                    int ci = s->n_chems++;
                    struct hs_sfy_chem *ch = &s->chems[ci];
                    rc = add_key(s, &c, ch->name, ci, false);
                    for (int a = 0; a < ch->n_aliases && rc == HS_OK; a++)
                        rc = add_key(s, &c, ch->aliases[a], ci, false);
                    if (rc == HS_OK && ch->cas[0])
                        rc = add_key(s, &c, ch->cas, ci, true);
                }
            }
        }
        for (int j = 0; j < nf; j++)
            hs_free(f[j]);
        hs_free(f);
    }
    if (rc == HS_OK && !header)
        rc = hs_err_set(err, HS_EFORMAT,
                        "%s: empty; expected a header line (name,cas,idlh,unit,mw,aliases,source)", name);
    return rc;
}

/* Only a regular file: its path comes from a config's text. */
int hs_sfy_hazmat_load(hs_safety *s, hs_err *err)
{
    const char *path = s->table_path;
    FILE *f = fopen(path, "rb");
    if (!f)
        return hs_err_set(err, HS_EIO, "%s: cannot open: %m", path);
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return hs_err_set(err, HS_EIO, "%s: not a regular file", path);
    }
    hs_buf text = {0};
    int rc = HS_OK;
    char chunk[8192];
    size_t got;
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (text.len + got > CSV_MAX_BYTES) {
            rc = hs_err_set(err, HS_EFORMAT, "%s: larger than 16 MiB; not a hazmat table", path);
            break;
        }
        if (hs_buf_append(&text, chunk, got) != HS_OK) {
            rc = hs_err_set(err, HS_ENOMEM, "out of memory");
            break;
        }
    }
    if (rc == HS_OK && ferror(f))
        rc = hs_err_set(err, HS_EIO, "%s: read error", path);
    fclose(f);
    if (rc == HS_OK)
        rc = hs_sfy_hazmat_parse(s, text.data ? text.data : "", text.len, path, err);
    hs_buf_free(&text);
    return rc;
}

/* --- the patterns --- */

/* A number as written in English or Greek: 1200, 1,200, 1.200, 40 000,
 * 2.5, 0,5 (parse_number decides which separator is which). */
#define NUM "\\d{1,3}(?:[ ,.]\\d{3})+(?:[.,]\\d+)?|\\d+(?:[.,]\\d+)?"
/* Each unit ends in a mark naming it (the text is normalised: "m³" is "m3",
 * "µg" is "μg"). */
#define UNITS                                                                                                  \
    "(?:ppmv?(*MARK:p)|parts\\s+per\\s+million(*MARK:p)|μερη\\s+ανα\\s+εκατομμυριο(*MARK:p)" \
    "|ppbv?(*MARK:b)|parts\\s+per\\s+billion(*MARK:b)"                                                         \
    "|mg\\s*/\\s*m\\s*\\^?3(*MARK:m)|mg\\s*m\\s*-\\s*3(*MARK:m)"                                               \
    "|(?:mg|milligrams?)\\s*(?:/|per)\\s*(?:cubic\\s+met(?:er|re)s?|met(?:er|re)s?\\s+cubed)(*MARK:m)"         \
    "|(?:μg|ug|mcg)\\s*/\\s*m\\s*\\^?3(*MARK:u)"                                                              \
    "|g\\s*/\\s*m\\s*\\^?3(*MARK:g)"                                                                           \
    "|%\\s*(?:by\\s+vol(?:ume)?|vol(?:ume)?|v\\s*/\\s*v)(*MARK:v)|vol\\s*%(*MARK:v))"

static const char re_figure_src[] =
    "(?<![\\w.,])(" NUM ")(?:\\s*(?:-|to|and|εως|ως|μεχρι)\\s*(" NUM "))?\\s*" UNITS "(?![\\w%])";
static const char re_unit_src[] = "(?<!\\w)" UNITS "(?![\\w%])";
/* a table cell that is a number or a range and maybe a note: "2,500 [LEL]" */
static const char re_bare_src[] =
    "\\s*[~≈<>≤≥]?\\s*(" NUM ")(?:\\s*(?:-|to)\\s*(" NUM "))?\\s*(?:[\\[(][^\\])]*[\\])]\\s*)?$";
/* "10 ppm for chlorine", "10 ppm του χλωρίου": the figure names what follows */
static const char re_link_src[] = "(?:\\s|[(:]|\\b(?:for|of|για|του|της|των|το|τον|την)\\b)*$";
/* "10 ppm (29 mg/m3)", "10 ppm / 29 mg/m3", "10 ppm or 29 mg/m3" */
static const char re_conv_src[] = "\\s*(?:[(\\[/=≈~,]|\\bor\\b|\\bη\\b)?\\s*$";

int hs_sfy_hazmat_compile(hs_safety *s, hs_err *err)
{
    /* The chemicals: a trie of the names and CAS numbers (caseless), then
     * the formulas (with their case), behind one guard so that PCRE2 can
     * skip to the characters a key starts with. */
    hs_buf re = {0};
    int rc = HS_OK;
    struct hs_sfy_trie_key *t = s->n_keys ? hs_calloc((size_t)s->n_keys, sizeof(*t)) : NULL;
    if (s->n_keys && !t)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    int nt = 0;
    for (int i = 0; i < s->n_keys; i++)
        if (!s->keys[i].formula)
            t[nt++] = (struct hs_sfy_trie_key){s->keys[i].key, i, false};
    if (hs_buf_puts(&re, "(?<!\\w)(?:") || hs_sfy_trie(&re, t, nt))
        rc = HS_ENOMEM;
    for (int i = 0; i < s->n_keys && rc == HS_OK; i++) {
        const struct hs_sfy_key *k = &s->keys[i];
        if (k->formula && (hs_buf_puts(&re, "|(?-i:") || hs_sfy_put_literal(&re, k->key, strlen(k->key)) ||
                           hs_buf_printf(&re, ")(?!\\w)(*MARK:%d)", i)))
            rc = HS_ENOMEM;
    }
    if (rc == HS_OK && hs_buf_putc(&re, ')'))
        rc = HS_ENOMEM;
    hs_free(t);
    if (rc != HS_OK) {
        hs_buf_free(&re);
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    if (s->n_keys)
        rc = hs_sfy_compile(&s->re_chem, re.data, re.len, false, "hazmat names", err);
    hs_buf_free(&re);
    if (rc == HS_OK)
        rc = hs_sfy_compile(&s->re_figure, re_figure_src, sizeof(re_figure_src) - 1, false, "figure", err);
    if (rc == HS_OK)
        rc = hs_sfy_compile(&s->re_unit, re_unit_src, sizeof(re_unit_src) - 1, false, "unit", err);
    if (rc == HS_OK)
        rc = hs_sfy_compile(&s->re_bare, re_bare_src, sizeof(re_bare_src) - 1, false, "bare", err);
    if (rc == HS_OK)
        rc = hs_sfy_compile(&s->re_link, re_link_src, sizeof(re_link_src) - 1, false, "link", err);
    if (rc == HS_OK)
        rc = hs_sfy_compile(&s->re_conv, re_conv_src, sizeof(re_conv_src) - 1, false, "conversion", err);
    if (rc == HS_OK)
        rc = hs_sfy_compile_terms(&s->re_idlh, &s->idlh_terms, "hazmat.idlh_terms", err);
    if (rc == HS_OK)
        rc = hs_sfy_compile_terms(&s->re_safe, &s->safe_terms, "hazmat.safe_terms", err);
    if (rc == HS_OK)
        rc = hs_sfy_compile_terms(&s->re_other, &s->other_terms, "hazmat.other_terms", err);
    return rc;
}

/* --- the check --- */

/* The value of a number as NUM matched it. A separator followed by exactly
 * three digits groups thousands ("1,200", "1.200", "40 000") unless the
 * number starts with 0 ("0,500"); with both ',' and '.', the last one is
 * the decimal point; otherwise a lone separator is the decimal point. */
static bool parse_number(const char *p, size_t n, double *out)
{
    char buf[64];
    if (n == 0 || n >= sizeof(buf))
        return false;
    int n_comma = 0, n_dot = 0;
    size_t last_sep = n;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == ',')
            n_comma++;
        else if (p[i] == '.')
            n_dot++;
        if (p[i] == ',' || p[i] == '.' || p[i] == ' ')
            last_sep = i;
    }
    char dec = 0; /* the decimal separator, 0 when none */
    if (n_comma && n_dot) {
        dec = p[last_sep];
    } else if (n_comma + n_dot == 1 && last_sep < n) {
        size_t after = n - last_sep - 1;
        bool grouping = after == 3 && p[0] != '0';
        dec = grouping ? 0 : p[last_sep];
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] >= '0' && p[i] <= '9')
            buf[o++] = p[i];
        else if (dec && p[i] == dec && i == last_sep)
            buf[o++] = '.';
    }
    buf[o] = 0;
    return hs_parse_f64(buf, out) == HS_OK && isfinite(*out);
}

struct span {
    size_t a, b;
    int v; /* a chemical, or a cue kind */
};

enum { CUE_IDLH = 1, CUE_SAFE = 2, CUE_OTHER = 3 };

struct figure {
    size_t a, b;   /* the whole figure, unit included */
    double lo, hi; /* hi < 0: a single value */
    char unit;     /* the unit's mark */
};

/* An answer's mentions, cues and the findings so far. */
struct hz {
    const hs_safety *s;
    const struct hs_sfy_text *x;
    const char *t; /* x->norm */
    size_t len;
    pcre2_match_data *md;
    struct span *chem, *cue;
    int n_chem, n_cue;
    size_t *done; /* figures already judged (their start) */
    int n_done;
    /* (cue, chemical) pairs that have judged a figure, with its end */
    struct {
        int cue, chem;
        size_t end;
    } * used;
    int n_used;
    json_t *found;
};

#define MAX_SPANS 4096

static int collect(struct hz *h, const pcre2_code *re, int kind, struct span **arr, int *n)
{
    if (!re)
        return HS_OK;
    size_t at = 0;
    int rc = 1;
    while (*n < MAX_SPANS && (rc = hs_sfy_next(h->s, re, h->t, h->len, &at, h->md)) == HS_OK) {
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(h->md);
        int v = kind;
        if (kind == 0) { /* a chemical: the mark is the key */
            int k = hs_sfy_mark(h->md);
            if (k < 0 || k >= h->s->n_keys)
                continue;
            v = h->s->keys[k].chem;
        }
        struct span *grown = hs_realloc_array(*arr, (size_t)*n + 1, sizeof(**arr));
        if (!grown)
            return HS_ENOMEM;
        *arr = grown;
        (*arr)[(*n)++] = (struct span){ov[0], ov[1], v};
    }
    return rc < 0 ? rc : HS_OK;
}

static int span_order(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    return x->a < y->a ? -1 : x->a > y->a ? 1 : 0;
}

/* Whether re matches all of t[a, b). */
static bool matches_all(struct hz *h, const pcre2_code *re, size_t a, size_t b)
{
    return pcre2_match(re, (PCRE2_SPTR)h->t, b, a, PCRE2_ANCHORED | PCRE2_NO_UTF_CHECK, h->md, h->s->mctx) >=
           0;
}

static const char *unit_name(char u)
{
    switch (u) {
    case 'p':
        return "ppm";
    case 'b':
        return "ppb";
    case 'm':
        return "mg/m3";
    case 'u':
        return "ug/m3";
    case 'g':
        return "g/m3";
    case 'v':
        return "% by volume";
    }
    return "?";
}

/* A value in unit u in the table's unit; false when it cannot be converted
 * (a ppm figure for a chemical without a molecular weight). */
static bool to_table_unit(const struct hs_hazmat_chem *c, double v, char u, double *out)
{
    bool ppm; /* v is now in ppm (else mg/m3) */
    switch (u) {
    case 'p':
        ppm = true;
        break;
    case 'b':
        v /= 1000;
        ppm = true;
        break;
    case 'v':
        v *= 10000;
        ppm = true;
        break;
    case 'm':
        ppm = false;
        break;
    case 'u':
        v /= 1000;
        ppm = false;
        break;
    case 'g':
        v *= 1000;
        ppm = false;
        break;
    default:
        return false;
    }
    if (ppm == (c->unit == HS_UNIT_PPM)) {
        *out = v;
        return true;
    }
    if (!(c->mw > 0))
        return false;
    *out = ppm ? hs_hazmat_ppm_to_mgm3(v, c->mw) : hs_hazmat_mgm3_to_ppm(v, c->mw);
    return true;
}

static json_t *num(double v)
{
    /* 3 significant figures beyond the integer part are plenty for a report */
    return json_real(round(v * 1000) / 1000);
}

/* Judges one figure of chemical ci under a cue of the given kind. */
static int judge(struct hz *h, const struct figure *f, int ci, int kind, size_t sa, size_t sb)
{
    const struct hs_hazmat_chem *c = &h->s->chems[ci].pub;
    double tol = h->s->tolerance;
    double lo, hi = -1;
    if (!to_table_unit(c, f->lo, f->unit, &lo) || (f->hi >= 0 && !to_table_unit(c, f->hi, f->unit, &hi)))
        return HS_OK;
    double t = c->idlh;
    bool ok;
    if (kind == CUE_IDLH)
        ok = hi >= 0 ? (t >= lo * (1 - tol) && t <= hi * (1 + tol)) : fabs(lo - t) <= tol * t;
    else
        ok = (hi >= 0 ? hi : lo) <= t * (1 + tol);
    if (ok)
        return HS_OK;
    if (!h->found && !(h->found = json_array()))
        return HS_ENOMEM;
    if (json_array_size(h->found) >= HS_SFY_MAX_FOUND)
        return HS_OK;
    json_t *o = json_object();
    if (!o)
        return HS_ENOMEM;
    json_t *stated = f->hi >= 0 ? json_pack("[oo]", num(f->lo), num(f->hi)) : num(f->lo);
    json_t *conv = hi >= 0 ? json_pack("[oo]", num(lo), num(hi)) : num(lo);
    int bad = json_object_set_new(o, "chemical", json_string(c->name)) |
              json_object_set_new(o, "cas", json_string(c->cas)) |
              json_object_set_new(o, "kind", json_string(kind == CUE_IDLH ? "idlh" : "safe")) |
              json_object_set_new(o, "stated", stated) |
              json_object_set_new(o, "unit", json_string(unit_name(f->unit))) |
              json_object_set_new(o, "stated_in_table_unit", conv) | json_object_set_new(o, "table", num(t)) |
              json_object_set_new(o, "table_unit", json_string(c->unit == HS_UNIT_PPM ? "ppm" : "mg/m3")) |
              json_object_set_new(o, "source", json_string(c->source)) |
              json_object_set_new(o, "text", hs_sfy_excerpt(h->x, sa, sb));
    if (bad) {
        json_decref(o);
        return HS_ENOMEM;
    }
    return json_array_append_new(h->found, o) ? HS_ENOMEM : HS_OK; /* o is stolen either way */
}

static bool already_done(struct hz *h, size_t a)
{
    for (int i = 0; i < h->n_done; i++)
        if (h->done[i] == a)
            return true;
    return false;
}

static int mark_done(struct hz *h, size_t a)
{
    size_t *grown = hs_realloc_array(h->done, (size_t)h->n_done + 1, sizeof(size_t));
    if (!grown)
        return HS_ENOMEM;
    h->done = grown;
    h->done[h->n_done++] = a;
    return HS_OK;
}

/* The figure at the last match of re_figure (or re_bare) in md. */
static bool read_figure(struct hz *h, struct figure *f, char unit)
{
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(h->md);
    int pairs = (int)pcre2_get_ovector_count(h->md);
    f->a = ov[0];
    f->b = ov[1];
    f->hi = -1;
    if (pairs < 2 || ov[2] == PCRE2_UNSET || !parse_number(h->t + ov[2], ov[3] - ov[2], &f->lo))
        return false;
    if (pairs >= 3 && ov[4] != PCRE2_UNSET && !parse_number(h->t + ov[4], ov[5] - ov[4], &f->hi))
        return false;
    if (f->hi >= 0 && f->hi < f->lo) { /* "20-10 ppm" */
        double x = f->lo;
        f->lo = f->hi;
        f->hi = x;
    }
    if (unit) {
        f->unit = unit;
    } else {
        PCRE2_SPTR m = pcre2_get_mark(h->md);
        f->unit = m ? (char)m[0] : 0;
    }
    return f->unit != 0;
}

/* The sentence pass: every figure with a cue and a chemical in its sentence. */
static int sentences(struct hz *h)
{
    const hs_safety *s = h->s;
    size_t at = 0;
    int rc = 1;
    while ((rc = hs_sfy_next(s, s->re_figure, h->t, h->len, &at, h->md)) == HS_OK) {
        struct figure f;
        if (!read_figure(h, &f, 0))
            continue;
        size_t sa, sb;
        hs_sfy_sentence(h->t, h->len, f.a, &sa, &sb);
        size_t w = (size_t)s->window;

        /* the cue: the nearest before the figure, else the nearest after */
        int cue = -1;
        for (int i = 0; i < h->n_cue; i++) {
            const struct span *c = &h->cue[i];
            if (c->a >= sa && c->b <= f.a && f.a - c->b <= w)
                cue = i; /* sorted: the last one is the nearest */
        }
        if (cue < 0)
            for (int i = 0; i < h->n_cue && cue < 0; i++) {
                const struct span *c = &h->cue[i];
                if (c->a >= f.b && c->b <= sb && c->a - f.b <= w)
                    cue = i;
            }
        if (cue < 0 || h->cue[cue].v == CUE_OTHER)
            continue;

        /* the chemical: named right after, else the nearest before, else after */
        int chem = -1;
        for (int i = 0; i < h->n_chem && chem < 0; i++) {
            const struct span *m = &h->chem[i];
            if (m->a >= f.b && m->b <= sb && m->a - f.b <= 24 && matches_all(h, s->re_link, f.b, m->a))
                chem = i;
        }
        for (int i = 0; i < h->n_chem && chem < 0; i++) {
            const struct span *m = &h->chem[h->n_chem - 1 - i];
            if (m->a >= sa && m->b <= f.a && f.a - m->b <= w)
                chem = h->n_chem - 1 - i;
        }
        for (int i = 0; i < h->n_chem && chem < 0; i++) {
            const struct span *m = &h->chem[i];
            if (m->a >= f.b && m->b <= sb && m->a - f.b <= w)
                chem = i;
        }
        if (chem < 0)
            continue;
        int ci = h->chem[chem].v;

        /* one figure per cue and chemical, and its conversion right after */
        bool skip = false;
        for (int i = 0; i < h->n_used; i++) {
            if (h->used[i].cue != cue || h->used[i].chem != ci)
                continue;
            if (h->used[i].end <= f.a && f.a - h->used[i].end <= 16 &&
                matches_all(h, s->re_conv, h->used[i].end, f.a))
                h->used[i].end = f.b;
            else
                skip = true;
        }
        if (skip)
            continue;
        bool have = false;
        for (int i = 0; i < h->n_used; i++)
            have |= h->used[i].cue == cue && h->used[i].chem == ci;
        if (!have) {
            void *grown = hs_realloc_array(h->used, (size_t)h->n_used + 1, sizeof(*h->used));
            if (!grown)
                return HS_ENOMEM;
            h->used = grown;
            h->used[h->n_used].cue = cue;
            h->used[h->n_used].chem = ci;
            h->used[h->n_used].end = f.b;
            h->n_used++;
        }
        if (mark_done(h, f.a) || judge(h, &f, ci, h->cue[cue].v, sa, sb))
            return HS_ENOMEM;
    }
    return rc < 0 ? rc : HS_OK;
}

/* Cells of the table row t[a, b): the spans between '|'s. */
#define MAX_CELLS 32
static int cells(const char *t, size_t a, size_t b, size_t *ca, size_t *cb)
{
    size_t i = a;
    while (i < b && (t[i] == ' ' || t[i] == '\t'))
        i++;
    if (i < b && t[i] == '|')
        i++;
    int n = 0;
    while (i < b && n < MAX_CELLS) {
        size_t e = i;
        while (e < b && t[e] != '|')
            e++;
        if (e == b) { /* text after the last '|' is a cell only if not blank */
            size_t k = i;
            while (k < e && (t[k] == ' ' || t[k] == '\t' || t[k] == '\r'))
                k++;
            if (k == e)
                break;
        }
        ca[n] = i;
        cb[n] = e;
        n++;
        i = e + 1;
    }
    return n;
}

static bool is_row(const char *t, size_t a, size_t b)
{
    while (a < b && (t[a] == ' ' || t[a] == '\t'))
        a++;
    return a < b && t[a] == '|';
}

static bool is_rule_row(const char *t, size_t a, size_t b)
{
    for (size_t i = a; i < b; i++)
        if (!strchr("|-: \t\r", t[i]))
            return false;
    return true;
}

/* The table pass: Markdown tables whose header names a cue. */
static int tables(struct hz *h)
{
    const hs_safety *s = h->s;
    const char *t = h->t;
    size_t i = 0;
    size_t ha[MAX_CELLS], hb[MAX_CELLS], ra[MAX_CELLS], rb[MAX_CELLS];
    int hkind[MAX_CELLS];
    char hunit[MAX_CELLS];
    while (i < h->len) {
        size_t e = i;
        while (e < h->len && t[e] != '\n')
            e++;
        if (!is_row(t, i, e)) {
            i = e + 1;
            continue;
        }
        /* a header */
        int nh = cells(t, i, e, ha, hb);
        bool any = false;
        for (int c = 0; c < nh; c++) {
            hkind[c] = 0;
            hunit[c] = 0;
            for (int k = 0; k < h->n_cue && !hkind[c]; k++)
                if (h->cue[k].a >= ha[c] && h->cue[k].b <= hb[c])
                    hkind[c] = h->cue[k].v;
            if (pcre2_match(s->re_unit, (PCRE2_SPTR)t, hb[c], ha[c], PCRE2_NO_UTF_CHECK, h->md, s->mctx) >=
                0) {
                PCRE2_SPTR m = pcre2_get_mark(h->md);
                hunit[c] = m ? (char)m[0] : 0;
            }
            any |= hkind[c] == CUE_IDLH || hkind[c] == CUE_SAFE;
        }
        /* its rows */
        i = e + 1;
        while (i < h->len) {
            e = i;
            while (e < h->len && t[e] != '\n')
                e++;
            if (!is_row(t, i, e))
                break;
            size_t row_a = i, row_b = e;
            i = e + 1;
            if (!any || is_rule_row(t, row_a, row_b))
                continue;
            int chem = -1;
            for (int k = 0; k < h->n_chem && chem < 0; k++)
                if (h->chem[k].a >= row_a && h->chem[k].b <= row_b)
                    chem = h->chem[k].v;
            if (chem < 0)
                continue;
            int nr = cells(t, row_a, row_b, ra, rb);
            for (int c = 0; c < nr && c < nh; c++) {
                if (hkind[c] != CUE_IDLH && hkind[c] != CUE_SAFE)
                    continue;
                struct figure f;
                bool got = false;
                if (pcre2_match(s->re_figure, (PCRE2_SPTR)t, rb[c], ra[c], PCRE2_NO_UTF_CHECK, h->md,
                                s->mctx) >= 0)
                    got = read_figure(h, &f, 0);
                else if (hunit[c] && pcre2_match(s->re_bare, (PCRE2_SPTR)t, rb[c], ra[c],
                                                 PCRE2_ANCHORED | PCRE2_NO_UTF_CHECK, h->md, s->mctx) >= 0)
                    got = read_figure(h, &f, hunit[c]);
                if (!got || already_done(h, f.a))
                    continue;
                if (mark_done(h, f.a) || judge(h, &f, chem, hkind[c], row_a, row_b))
                    return HS_ENOMEM;
            }
        }
    }
    return HS_OK;
}

int hs_sfy_check_hazmat(const hs_safety *s, const struct hs_sfy_text *x, pcre2_match_data *md, json_t **found)
{
    *found = NULL;
    if (!s->re_chem || (!s->re_idlh && !s->re_safe))
        return HS_OK;
    struct hz h = {.s = s, .x = x, .t = x->norm, .len = x->nlen, .md = md};
    /* cheapest first: most answers name no chemical */
    int rc = collect(&h, s->re_chem, 0, &h.chem, &h.n_chem);
    if (rc == HS_OK && h.n_chem) {
        rc = collect(&h, s->re_idlh, CUE_IDLH, &h.cue, &h.n_cue);
        if (rc == HS_OK)
            rc = collect(&h, s->re_safe, CUE_SAFE, &h.cue, &h.n_cue);
        if (rc == HS_OK)
            rc = collect(&h, s->re_other, CUE_OTHER, &h.cue, &h.n_cue);
        if (rc == HS_OK && h.n_cue) {
            qsort(h.cue, (size_t)h.n_cue, sizeof(*h.cue), span_order);
            rc = sentences(&h);
            if (rc == HS_OK)
                rc = tables(&h);
        }
    }
    hs_free(h.chem);
    hs_free(h.cue);
    hs_free(h.done);
    hs_free(h.used);
    if (rc != HS_OK) {
        json_decref(h.found);
        return rc;
    }
    *found = h.found;
    return HS_OK;
}
