/* The byte-level pushdown automaton of structured output.
 *
 * The stack holds one frame per open value. A byte goes to the top frame; a
 * number or a literal cannot tell it has ended until the next byte, so a
 * frame that can end and does not take the byte is popped and the byte goes
 * to the frame below. A container advances its own phase before pushing a
 * child, so every frame's completion cost (frame_cost) counts only what it
 * still owes, and the distance to a whole document is their sum.
 *
 * Invariant: every accepted prefix can still be completed (no dead ends), so
 * the masking walk never leaves a sequence with nothing allowed. The checks
 * that keep it are where a choice closes a door: '}' only once no required
 * property remains, ',' only while another item or property may follow, a
 * \u escape refused at the digit that makes it a surrogate or \u0000. */
#include "model/json_impl.h"

#include <assert.h>
#include <string.h>

enum { O_OPEN, O_COMMA, O_KEY, O_COLON, O_VALUE, O_AFTER };
enum { A_OPEN, A_COMMA, A_AFTER };
enum { S_BODY, S_ESC, S_U0, S_U1, S_U2, S_U3 };
enum { N_START, N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

/* step results: rejected, taken, whitespace taken (keeps the run counting) */
enum { R_NO, R_YES, R_WS };

static bool is_ws(uint8_t b)
{
    return b == ' ' || b == '\n' || b == '\t' || b == '\r';
}

static bool is_digit(uint8_t b)
{
    return b >= '0' && b <= '9';
}

static int take_ws(struct hs_jstate *st, uint8_t b)
{
    if (st->ws == 0 && (b == ' ' || b == '\n'))
        st->ws = b == ' ' ? 1 : 2;
    else if (st->ws >= 2 && st->ws < 2 + HS_J_INDENT_MAX && (b == ' ' || b == '\t'))
        st->ws++;
    else
        return R_NO;
    return R_WS;
}

static int sat_add(int a, int b)
{
    const int s = a + b;
    return s > HS_J_COST_INF ? HS_J_COST_INF : s;
}

static int sat_mul(int a, int b)
{
    if (a == 0 || b == 0)
        return 0;
    if (a > HS_J_COST_INF / b)
        return HS_J_COST_INF;
    return sat_add(a * b, 0);
}

void hs_jauto_init(const hs_jschema *s, struct hs_jstate *st)
{
    st->depth = 1;
    st->ws = 0;
    st->done = 0;
    memset(&st->f[0], 0, sizeof st->f[0]);
    st->f[0].kind = HS_JF_VAL;
    st->f[0].node = (uint16_t)s->root;
}

void hs_jauto_copy(struct hs_jstate *dst, const struct hs_jstate *src)
{
    memcpy(dst, src, offsetof(struct hs_jstate, f) + (size_t)src->depth * sizeof src->f[0]);
}

static void pop(struct hs_jstate *st)
{
    assert(st->depth > 0);
    if (--st->depth == 0)
        st->done = 1;
}

static struct hs_jframe *push(struct hs_jstate *st, int node, uint8_t fdepth)
{
    assert(st->depth < HS_J_STACK);
    struct hs_jframe *f = &st->f[st->depth++];
    memset(f, 0, sizeof *f);
    f->kind = HS_JF_VAL;
    f->node = (uint16_t)node;
    f->fdepth = fdepth;
    return f;
}

/* ---- literals: [lo, hi) of sorted texts that share the first pos bytes ---- */

/* Byte at pos of literal k, or -1 when it ends there (sorts first). */
static int lit_byte(const struct hs_jnode *n, int k, int pos)
{
    return n->lit_lens[k] > pos ? (uint8_t)n->lits[k][pos] : -1;
}

/* First k in [lo, hi) whose byte at pos is >= b. */
static int lit_lower(const struct hs_jnode *n, int lo, int hi, int pos, int b)
{
    while (lo < hi) {
        const int mid = lo + (hi - lo) / 2;
        if (lit_byte(n, mid, pos) < b)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool lit_narrow(const struct hs_jnode *n, struct hs_jframe *f, uint8_t b)
{
    const int lo = lit_lower(n, f->i, f->j, f->n, b);
    const int hi = lit_lower(n, lo, f->j, f->n, b + 1);
    if (lo >= hi)
        return false;
    f->i = (uint16_t)lo;
    f->j = (uint16_t)hi;
    f->n++;
    return true;
}

static bool lit_can_end(const struct hs_jnode *n, const struct hs_jframe *f)
{
    return n->lit_lens[f->i] == f->n;
}

/* ---- numbers ---- */

static bool num_step(struct hs_jframe *f, uint8_t b)
{
    const bool integer = f->aux != 0;
    const bool exp_start = (b == 'e' || b == 'E') && !integer;
    switch (f->phase) {
    case N_START:
        if (b == '-') {
            f->phase = N_MINUS;
            return true;
        }
        /* fall through */
    case N_MINUS:
        if (b == '0') {
            f->phase = N_ZERO;
            return true;
        }
        if (is_digit(b)) {
            f->phase = N_INT;
            f->n = 1;
            return true;
        }
        return false;
    case N_ZERO:
    case N_INT:
        if (f->phase == N_INT && is_digit(b) && f->n < HS_J_INT_DIGITS) {
            f->n++;
            return true;
        }
        if (b == '.' && !integer) {
            f->phase = N_DOT;
            return true;
        }
        if (exp_start) {
            f->phase = N_E;
            return true;
        }
        return false;
    case N_DOT:
        if (!is_digit(b))
            return false;
        f->phase = N_FRAC;
        f->n = 1;
        return true;
    case N_FRAC:
        if (is_digit(b) && f->n < HS_J_FRAC_DIGITS) {
            f->n++;
            return true;
        }
        if (exp_start) {
            f->phase = N_E;
            return true;
        }
        return false;
    case N_E:
        if (b == '+' || b == '-') {
            f->phase = N_ESIGN;
            return true;
        }
        /* fall through */
    case N_ESIGN:
        if (!is_digit(b))
            return false;
        f->phase = N_EXP;
        f->n = 1;
        return true;
    case N_EXP:
        if (is_digit(b) && f->n < HS_J_EXP_DIGITS) {
            f->n++;
            return true;
        }
        return false;
    }
    return false;
}

static bool num_can_end(const struct hs_jframe *f)
{
    return f->phase == N_ZERO || f->phase == N_INT || f->phase == N_FRAC || f->phase == N_EXP;
}

/* ---- strings ---- */

static int hex_value(uint8_t b)
{
    if (is_digit(b))
        return b - '0';
    if (b >= 'a' && b <= 'f')
        return b - 'a' + 10;
    if (b >= 'A' && b <= 'F')
        return b - 'A' + 10;
    return -1;
}

static void utf8_expect(struct hs_jframe *f, int count, uint8_t lo, uint8_t hi)
{
    f->aux = (uint8_t)count;
    f->mask = (f->mask & 0xffff) | ((uint64_t)lo << 16) | ((uint64_t)hi << 24);
}

/* RFC 3629's table: the lead byte fixes the length and the range of the
 * first continuation byte (no overlongs, no surrogates, nothing past U+10FFFF). */
static bool utf8_lead(struct hs_jframe *f, uint8_t b)
{
    if (b >= 0xC2 && b <= 0xDF)
        utf8_expect(f, 1, 0x80, 0xBF);
    else if (b == 0xE0)
        utf8_expect(f, 2, 0xA0, 0xBF);
    else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF)
        utf8_expect(f, 2, 0x80, 0xBF);
    else if (b == 0xED)
        utf8_expect(f, 2, 0x80, 0x9F);
    else if (b == 0xF0)
        utf8_expect(f, 3, 0x90, 0xBF);
    else if (b >= 0xF1 && b <= 0xF3)
        utf8_expect(f, 3, 0x80, 0xBF);
    else if (b == 0xF4)
        utf8_expect(f, 3, 0x80, 0x8F);
    else
        return false;
    return true;
}

static int str_step(struct hs_jstate *st, struct hs_jframe *f, uint8_t b)
{
    if (f->phase == S_BODY) {
        if (f->aux > 0) {
            const uint8_t lo = (uint8_t)(f->mask >> 16), hi = (uint8_t)(f->mask >> 24);
            if (b < lo || b > hi)
                return R_NO;
            utf8_expect(f, f->aux - 1, 0x80, 0xBF);
            return R_YES;
        }
        if (b == '"') {
            if (f->n < f->j)
                return R_NO;
            pop(st);
            return R_YES;
        }
        if (f->n >= f->i || b < 0x20)
            return R_NO;
        if (b == '\\') {
            f->phase = S_ESC;
        } else if (b >= 0x80 && !utf8_lead(f, b)) {
            return R_NO;
        }
        f->n++;
        return R_YES;
    }
    if (f->phase == S_ESC) {
        if (b == 'u') {
            f->phase = S_U0;
            f->mask &= ~(uint64_t)0xffff;
            return R_YES;
        }
        if (!memchr("\"\\/bfnrt", b, 8))
            return R_NO;
        f->phase = S_BODY;
        return R_YES;
    }
    const int h = hex_value(b);
    if (h < 0)
        return R_NO;
    const unsigned v = (unsigned)((f->mask & 0xffff) << 4 | (unsigned)h) & 0xffff;
    /* \uD800-\uDFFF (surrogates; a pair would need a second escape) are
     * refused at the second digit, \u0000 at the fourth: C strings and
     * jansson's default reject it. */
    if (f->phase == S_U1 && v >= 0xD8 && v <= 0xDF)
        return R_NO;
    if (f->phase == S_U3 && v == 0)
        return R_NO;
    f->mask = (f->mask & ~(uint64_t)0xffff) | v;
    f->phase = f->phase == S_U3 ? S_BODY : (uint8_t)(f->phase + 1);
    return R_YES;
}

int hs_jauto_string_room(const struct hs_jstate *st)
{
    if (st->depth == 0)
        return -1;
    const struct hs_jframe *f = &st->f[st->depth - 1];
    if (f->kind != HS_JF_STR || f->phase != S_BODY || f->aux != 0)
        return -1;
    return f->i - f->n;
}

/* ---- values ---- */

/* Turns the VAL frame f into the value node starts with byte b. */
static int start_value(const hs_jschema *s, struct hs_jstate *st, struct hs_jframe *f, int node, uint8_t b)
{
    const struct hs_jnode *n = &s->nodes[node];
    switch (n->kind) {
    case HS_JK_ANY:
    case HS_JK_ANYOF: {
        const int alt = n->alt_of[b];
        if (alt < 0)
            return R_NO;
        if (n->kind == HS_JK_ANY && (b == '{' || b == '[')) {
            if (f->fdepth >= HS_J_FREE_DEPTH)
                return R_NO;
            f->fdepth++;
        }
        return start_value(s, st, f, alt, b);
    }
    case HS_JK_OBJECT:
        if (b != '{')
            return R_NO;
        f->kind = HS_JF_OBJ;
        f->node = (uint16_t)node;
        f->phase = O_OPEN;
        return R_YES;
    case HS_JK_ARRAY:
        if (b != '[')
            return R_NO;
        f->kind = HS_JF_ARR;
        f->node = (uint16_t)node;
        f->phase = A_OPEN;
        return R_YES;
    case HS_JK_STRING:
        if (b != '"')
            return R_NO;
        f->kind = HS_JF_STR;
        f->node = (uint16_t)node;
        f->phase = S_BODY;
        f->i = (uint16_t)n->gen_max;
        f->j = (uint16_t)n->gen_min;
        return R_YES;
    case HS_JK_NUMBER:
    case HS_JK_INTEGER:
        f->kind = HS_JF_NUM;
        f->node = (uint16_t)node;
        f->phase = N_START;
        f->aux = n->kind == HS_JK_INTEGER;
        return num_step(f, b) ? R_YES : R_NO;
    case HS_JK_LITERAL:
        f->kind = HS_JF_LIT;
        f->node = (uint16_t)node;
        f->i = 0;
        f->j = (uint16_t)n->n_lits;
        f->n = 0;
        return lit_narrow(n, f, b) ? R_YES : R_NO;
    }
    return R_NO;
}

/* Pushes the value of node after its container moved on, and feeds it b. */
static int push_value(const hs_jschema *s, struct hs_jstate *st, int node, uint8_t fdepth, uint8_t b)
{
    struct hs_jframe *c = push(st, node, fdepth);
    return start_value(s, st, c, node, b);
}

/* Declared properties that may come next: from i up to the first required one. */
static uint64_t key_candidates(const struct hs_jnode *n, int i)
{
    const int last = n->next_req[i] < n->n_props ? n->next_req[i] : n->n_props - 1;
    uint64_t m = 0;
    for (int k = i; k <= last; k++)
        m |= (uint64_t)1 << k;
    return m;
}

static int obj_step(const hs_jschema *s, struct hs_jstate *st, struct hs_jframe *f, uint8_t b)
{
    const struct hs_jnode *n = &s->nodes[f->node];
    switch (f->phase) {
    case O_OPEN:
    case O_COMMA:
        if (is_ws(b))
            return take_ws(st, b);
        if (b == '}' && f->phase == O_OPEN && n->tail_count[n->free_keys ? 0 : f->i] == 0) {
            pop(st);
            return R_YES;
        }
        if (b != '"')
            return R_NO;
        if (n->free_keys) {
            const uint8_t fd = f->fdepth;
            f->i++;
            f->phase = O_COLON;
            struct hs_jframe *k = push(st, s->any_key, fd);
            return start_value(s, st, k, s->any_key, b);
        }
        if (f->i >= n->n_props)
            return R_NO;
        f->mask = key_candidates(n, f->i);
        f->n = 1; /* every candidate starts with the quote */
        f->phase = O_KEY;
        return R_YES;
    case O_KEY: {
        uint64_t keep = 0;
        int done = -1;
        for (uint64_t m = f->mask; m; m &= m - 1) {
            const int c = __builtin_ctzll(m);
            const struct hs_jprop *p = &n->props[c];
            if (p->lit_len > f->n && (uint8_t)p->lit[f->n] == b) {
                keep |= (uint64_t)1 << c;
                if (p->lit_len == f->n + 1)
                    done = c;
            }
        }
        if (!keep)
            return R_NO;
        f->mask = keep;
        f->n++;
        if (done >= 0) {
            /* the closing quote: no other serialized name continues past it */
            f->j = (uint16_t)done;
            f->phase = O_COLON;
        }
        return R_YES;
    }
    case O_COLON:
        if (is_ws(b))
            return take_ws(st, b);
        if (b != ':')
            return R_NO;
        f->phase = O_VALUE;
        return R_YES;
    case O_VALUE: {
        if (is_ws(b))
            return take_ws(st, b);
        int child;
        if (n->free_keys) {
            child = n->addl;
        } else {
            child = n->props[f->j].node;
            f->i = (uint16_t)(f->j + 1);
        }
        f->phase = O_AFTER;
        return push_value(s, st, child, f->fdepth, b);
    }
    case O_AFTER:
        if (is_ws(b))
            return take_ws(st, b);
        if (b == ',') {
            const bool more = n->free_keys ? f->i < HS_J_KEYS_CAP : f->i < n->n_props;
            if (!more)
                return R_NO;
            f->phase = O_COMMA;
            return R_YES;
        }
        if (b == '}' && n->tail_count[n->free_keys ? 0 : f->i] == 0) {
            pop(st);
            return R_YES;
        }
        return R_NO;
    }
    return R_NO;
}

static int arr_step(const hs_jschema *s, struct hs_jstate *st, struct hs_jframe *f, uint8_t b)
{
    const struct hs_jnode *n = &s->nodes[f->node];
    if (is_ws(b))
        return take_ws(st, b);
    if (f->phase == A_AFTER) {
        if (b == ',' && f->n < n->gen_max) {
            f->phase = A_COMMA;
            return R_YES;
        }
        if (b == ']' && f->n >= n->gen_min) {
            pop(st);
            return R_YES;
        }
        return R_NO;
    }
    if (f->phase == A_OPEN && b == ']') {
        if (n->gen_min > 0)
            return R_NO;
        pop(st);
        return R_YES;
    }
    if (f->n >= n->gen_max)
        return R_NO;
    f->n++;
    f->phase = A_AFTER;
    return push_value(s, st, n->items, f->fdepth, b);
}

static int step(const hs_jschema *s, struct hs_jstate *st, uint8_t b)
{
    for (;;) {
        if (st->depth == 0)
            return R_NO; /* nothing after the document, not even whitespace */
        struct hs_jframe *f = &st->f[st->depth - 1];
        const struct hs_jnode *n = &s->nodes[f->node];
        switch (f->kind) {
        case HS_JF_VAL:
            if (is_ws(b))
                return take_ws(st, b);
            return start_value(s, st, f, f->node, b);
        case HS_JF_STR:
            return str_step(st, f, b);
        case HS_JF_OBJ:
            return obj_step(s, st, f, b);
        case HS_JF_ARR:
            return arr_step(s, st, f, b);
        case HS_JF_NUM:
            if (num_step(f, b))
                return R_YES;
            if (!num_can_end(f))
                return R_NO;
            pop(st);
            continue;
        case HS_JF_LIT:
            if (lit_narrow(n, f, b))
                return R_YES;
            if (!lit_can_end(n, f))
                return R_NO;
            pop(st);
            continue;
        }
        return R_NO;
    }
}

bool hs_jauto_step(const hs_jschema *s, struct hs_jstate *st, uint8_t b)
{
    const int r = step(s, st, b);
    if (r == R_YES)
        st->ws = 0;
    return r != R_NO;
}

bool hs_jauto_complete(const hs_jschema *s, const struct hs_jstate *st)
{
    if (st->done)
        return true;
    if (st->depth != 1)
        return false;
    const struct hs_jframe *f = &st->f[0];
    if (f->kind == HS_JF_NUM)
        return num_can_end(f);
    if (f->kind == HS_JF_LIT)
        return lit_can_end(&s->nodes[f->node], f);
    return false;
}

/* ---- completion distance ---- */

/* Bytes from "after property c's key" (the ':' not included) to the '}'. */
static int prop_rest(const hs_jschema *s, const struct hs_jnode *n, int c)
{
    int d = sat_add(s->nodes[n->props[c].node].minlen, n->tail_cost[c + 1]);
    return sat_add(d, n->tail_count[c + 1] + 1);
}

static int obj_cost(const hs_jschema *s, const struct hs_jframe *f)
{
    const struct hs_jnode *n = &s->nodes[f->node];
    if (n->free_keys) {
        const int v = s->nodes[n->addl].minlen;
        switch (f->phase) {
        case O_OPEN:
        case O_AFTER:
            return 1;
        case O_COMMA:
            return sat_add(v, 4); /* "": and } */
        case O_COLON:
            return sat_add(v, 2);
        default:
            return sat_add(v, 1);
        }
    }
    switch (f->phase) {
    case O_OPEN: {
        const int k = n->tail_count[f->i];
        return sat_add(n->tail_cost[f->i], (k > 0 ? k - 1 : 0) + 1);
    }
    case O_AFTER:
        return sat_add(n->tail_cost[f->i], n->tail_count[f->i] + 1);
    case O_COLON:
        return sat_add(prop_rest(s, n, f->j), 1);
    case O_VALUE:
        return prop_rest(s, n, f->j);
    case O_KEY:
    case O_COMMA: {
        const uint64_t cand = f->phase == O_KEY ? f->mask : key_candidates(n, f->i);
        const int pos = f->phase == O_KEY ? f->n : 0;
        int best = HS_J_COST_INF;
        for (uint64_t m = cand; m; m &= m - 1) {
            const int c = __builtin_ctzll(m);
            const int d = sat_add(n->props[c].lit_len - pos + 1, prop_rest(s, n, c));
            if (d < best)
                best = d;
        }
        return best;
    }
    }
    return 0;
}

static int arr_cost(const hs_jschema *s, const struct hs_jframe *f)
{
    const struct hs_jnode *n = &s->nodes[f->node];
    const int item = s->nodes[n->items].minlen;
    const int begun = f->n;
    switch (f->phase) {
    case A_OPEN:
        if (n->gen_min == 0)
            return 1;
        return sat_add(sat_mul(n->gen_min, item), n->gen_min);
    case A_COMMA: {
        const int rest = n->gen_min - begun - 1 > 0 ? n->gen_min - begun - 1 : 0;
        return sat_add(sat_add(item, sat_mul(rest, sat_add(item, 1))), 1);
    }
    default: {
        const int rest = n->gen_min - begun > 0 ? n->gen_min - begun : 0;
        return sat_add(sat_mul(rest, sat_add(item, 1)), 1);
    }
    }
}

static int frame_cost(const hs_jschema *s, const struct hs_jframe *f)
{
    switch (f->kind) {
    case HS_JF_VAL:
        return s->nodes[f->node].minlen;
    case HS_JF_OBJ:
        return obj_cost(s, f);
    case HS_JF_ARR:
        return arr_cost(s, f);
    case HS_JF_STR: {
        int d = 1 + f->aux + (f->j > f->n ? f->j - f->n : 0);
        if (f->phase == S_ESC)
            d += 1;
        else if (f->phase >= S_U0)
            d += 4 - (f->phase - S_U0);
        return d;
    }
    case HS_JF_NUM:
        return num_can_end(f) ? 0 : 1;
    case HS_JF_LIT: {
        const struct hs_jnode *n = &s->nodes[f->node];
        int best = HS_J_COST_INF;
        for (int k = f->i; k < f->j; k++)
            if (n->lit_lens[k] - f->n < best)
                best = n->lit_lens[k] - f->n;
        return best;
    }
    }
    return 0;
}

int hs_jauto_distance(const hs_jschema *s, const struct hs_jstate *st)
{
    int d = 0;
    for (int k = 0; k < st->depth; k++)
        d = sat_add(d, frame_cost(s, &st->f[k]));
    return d;
}
