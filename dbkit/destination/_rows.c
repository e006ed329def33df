/*
 * The data of RECORD messages as Arrow columns, in C (dbkit.destination.rows).
 *
 * decode(datas, names, kinds) -> list | None
 *
 *   datas: a list of buffers, each the JSON text of one record's ``data`` object (the raw slices
 *          msgspec keeps of the input lines);
 *   names: a list of bytes, the UTF-8 field names of the stream's columns;
 *   kinds: bytes, one code per name:
 *          'i'  int64: a JSON integer in int64's range, or null;
 *          'b'  bool: true, false or null;
 *          's'  utf8: a JSON string's value (unescaped), or null;
 *          't'  utf8: any JSON value's exact token text (a number's digits, an object's text as
 *               written), null for a JSON null.
 *
 * The result holds, per name, a tuple (null_count, validity, values, data): the Arrow buffers of
 * the column (validity: a bitmap, or None when no value is null; values: int64 values, a bitmap
 * of booleans, or int32 offsets; data: the UTF-8 bytes of a string column, else None). A field
 * absent from a record is null, as in a typed frame (dbkit.protocol.arrow).
 *
 * None means "not every record is in this form": a value of another JSON kind than its
 * column's (a string for an integer, 1.0 for an integer, an integer past int64), a string with a
 * lone surrogate escape or invalid UTF-8, a key written with an escape, a field given twice, a
 * string column past 2 GiB, or text that is not one JSON object. The caller then decodes the
 * records as before (msgspec, and the general path for what msgspec refuses), which decides
 * what those values become. Fields that are not among ``names`` are skipped. The GIL is
 * released while the records are read.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    unsigned char *buf;
    size_t len, cap;
} Buf;

static int buf_reserve(Buf *b, size_t more) {
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 1 << 14;
    while (cap < b->len + more)
        cap *= 2;
    unsigned char *grown = realloc(b->buf, cap);
    if (grown == NULL)
        return -1;
    b->buf = grown;
    b->cap = cap;
    return 0;
}

typedef struct {
    char kind;
    const char *name;
    Py_ssize_t name_len;
    unsigned char *validity; /* (n + 7) / 8 bytes, zeroed */
    unsigned char *values;   /* int64[n], a bitmap of n bits, or int32[n + 1] offsets */
    Buf data;
    Py_ssize_t seen; /* the last row (+1) that gave this field a value */
} Column;

typedef struct {
    const unsigned char *p, *end;
} Cursor;

enum { OK = 0, REFUSE = 1, NOMEM = 2 };

static inline void skip_ws(Cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static inline int literal(Cursor *c, const char *word, size_t len) {
    if ((size_t)(c->end - c->p) < len || memcmp(c->p, word, len) != 0)
        return 0;
    c->p += len;
    return 1;
}

static inline int is_delimiter(const Cursor *c) {
    if (c->p >= c->end)
        return 1;
    unsigned char ch = *c->p;
    return ch == ',' || ch == '}' || ch == ']' || ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

/* A JSON number's token (RFC 8259 grammar); *integral says whether it has no fraction and no
 * exponent. */
static int scan_number(Cursor *c, int *integral) {
    const unsigned char *p = c->p, *end = c->end;
    *integral = 1;
    if (p < end && *p == '-')
        p++;
    if (p >= end)
        return REFUSE;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    } else {
        return REFUSE;
    }
    if (p < end && *p == '.') {
        *integral = 0;
        p++;
        if (p >= end || *p < '0' || *p > '9')
            return REFUSE;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        *integral = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || *p < '0' || *p > '9')
            return REFUSE;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    c->p = p;
    return is_delimiter(c) ? OK : REFUSE;
}

static int hex4(const unsigned char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char ch = p[i];
        v <<= 4;
        if (ch >= '0' && ch <= '9')
            v |= ch - '0';
        else if (ch >= 'a' && ch <= 'f')
            v |= ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'F')
            v |= ch - 'A' + 10;
        else
            return 0;
    }
    *out = v;
    return 1;
}

/* The length of the valid UTF-8 sequence at p (a lead byte >= 0x80), 0 if it is not one. */
static inline int utf8_length(const unsigned char *p, const unsigned char *end) {
    unsigned char b0 = p[0];
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        return (end - p >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
    }
    if (b0 >= 0xE0 && b0 <= 0xEF) {
        if (end - p < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
            return 0;
        if (b0 == 0xE0 && p[1] < 0xA0)
            return 0; /* overlong */
        if (b0 == 0xED && p[1] >= 0xA0)
            return 0; /* a surrogate */
        return 3;
    }
    if (b0 >= 0xF0 && b0 <= 0xF4) {
        if (end - p < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        if (b0 == 0xF0 && p[1] < 0x90)
            return 0; /* overlong */
        if (b0 == 0xF4 && p[1] >= 0x90)
            return 0; /* past U+10FFFF */
        return 4;
    }
    return 0;
}

static inline unsigned char *put_utf8(unsigned char *o, unsigned cp) {
    if (cp < 0x80) {
        *o++ = (unsigned char)cp;
    } else if (cp < 0x800) {
        *o++ = (unsigned char)(0xC0 | (cp >> 6));
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (unsigned char)(0xE0 | (cp >> 12));
        *o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (unsigned char)(0xF0 | (cp >> 18));
        *o++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* A JSON string at c->p (on its opening quote): its value appended to out (NULL: only
 * checked). The decoded value is never longer than its text, so out is reserved once. */
static int scan_string(Cursor *c, Buf *out) {
    const unsigned char *p = c->p + 1, *end = c->end;
    unsigned char *o = NULL;
    if (out != NULL) {
        if (buf_reserve(out, (size_t)(end - p)) < 0)
            return NOMEM;
        o = out->buf + out->len;
    }
    while (p < end) {
        unsigned char ch = *p;
        if (ch == '"') {
            c->p = p + 1;
            if (out != NULL)
                out->len = (size_t)(o - out->buf);
            return OK;
        }
        if (ch < 0x20)
            return REFUSE;
        if (ch < 0x80 && ch != '\\') {
            if (o)
                *o++ = ch;
            p++;
            continue;
        }
        if (ch >= 0x80) {
            int n = utf8_length(p, end);
            if (n == 0)
                return REFUSE;
            if (o) {
                memcpy(o, p, (size_t)n);
                o += n;
            }
            p += n;
            continue;
        }
        /* an escape */
        if (end - p < 2)
            return REFUSE;
        unsigned char e = p[1];
        unsigned char plain;
        switch (e) {
        case '"': plain = '"'; break;
        case '\\': plain = '\\'; break;
        case '/': plain = '/'; break;
        case 'b': plain = '\b'; break;
        case 'f': plain = '\f'; break;
        case 'n': plain = '\n'; break;
        case 'r': plain = '\r'; break;
        case 't': plain = '\t'; break;
        case 'u': {
            unsigned cp;
            if (end - p < 6 || !hex4(p + 2, &cp))
                return REFUSE;
            p += 6;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return REFUSE; /* a lone low surrogate */
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned low;
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || !hex4(p + 2, &low) || low < 0xDC00 ||
                    low > 0xDFFF)
                    return REFUSE; /* a lone high surrogate */
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            }
            if (o)
                o = put_utf8(o, cp);
            continue;
        }
        default:
            return REFUSE;
        }
        if (o)
            *o++ = plain;
        p += 2;
    }
    return REFUSE; /* no closing quote */
}

#define MAX_DEPTH 10000

/* Any JSON value at c->p, skipped and checked (strings, numbers, literals, nesting). */
static int skip_value(Cursor *c) {
    unsigned char closers[MAX_DEPTH];
    int depth = 0, r;
    unsigned char ch;
value:
    skip_ws(c);
    if (c->p >= c->end)
        return REFUSE;
    ch = *c->p;
    if (ch == '{' || ch == '[') {
        if (depth == MAX_DEPTH)
            return REFUSE;
        closers[depth++] = ch == '{' ? '}' : ']';
        c->p++;
        skip_ws(c);
        if (c->p < c->end && *c->p == closers[depth - 1]) {
            c->p++;
            depth--;
            goto after;
        }
        if (ch == '{')
            goto key;
        goto value;
    }
    if (ch == '"') {
        if ((r = scan_string(c, NULL)) != OK)
            return r;
    } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
        int integral;
        if ((r = scan_number(c, &integral)) != OK)
            return r;
    } else if (!(literal(c, "true", 4) || literal(c, "false", 5) || literal(c, "null", 4))) {
        return REFUSE;
    }
after:
    if (depth == 0)
        return OK;
    skip_ws(c);
    if (c->p >= c->end)
        return REFUSE;
    ch = *c->p;
    if (ch == closers[depth - 1]) {
        c->p++;
        depth--;
        goto after;
    }
    if (ch != ',')
        return REFUSE;
    c->p++;
    if (closers[depth - 1] == ']')
        goto value;
key:
    skip_ws(c);
    if (c->p >= c->end || *c->p != '"')
        return REFUSE;
    if ((r = scan_string(c, NULL)) != OK)
        return r;
    skip_ws(c);
    if (c->p >= c->end || *c->p != ':')
        return REFUSE;
    c->p++;
    goto value;
}

/* ---------------------------------------------------------------- field lookup */

typedef struct {
    Column *columns;
    Py_ssize_t count;
    Py_ssize_t *slots; /* open addressing: column index + 1, 0 empty */
    size_t mask;
} Fields;

static inline size_t hash_key(const unsigned char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    return (size_t)h;
}

static Column *lookup(const Fields *f, const unsigned char *key, size_t n) {
    size_t i = hash_key(key, n) & f->mask;
    for (;;) {
        Py_ssize_t slot = f->slots[i];
        if (slot == 0)
            return NULL;
        Column *col = &f->columns[slot - 1];
        if ((size_t)col->name_len == n && memcmp(col->name, key, n) == 0)
            return col;
        i = (i + 1) & f->mask;
    }
}

/* ---------------------------------------------------------------- one record */

static int value_into(Cursor *c, Column *col, Py_ssize_t row) {
    unsigned char ch = c->p < c->end ? *c->p : 0;
    if (ch == 'n') {
        if (!literal(c, "null", 4) || !is_delimiter(c))
            return REFUSE;
        return OK; /* null: the validity bit stays 0 */
    }
    int r;
    switch (col->kind) {
    case 'i': {
        const unsigned char *start = c->p;
        int integral;
        if (!(ch == '-' || (ch >= '0' && ch <= '9')))
            return REFUSE;
        if ((r = scan_number(c, &integral)) != OK)
            return r;
        if (!integral)
            return REFUSE;
        const unsigned char *q = start;
        int negative = *q == '-';
        if (negative)
            q++;
        uint64_t v = 0;
        for (; q < c->p; q++) {
            unsigned d = (unsigned)(*q - '0');
            if (v > (UINT64_MAX - d) / 10)
                return REFUSE;
            v = v * 10 + d;
        }
        int64_t x;
        if (negative) {
            if (v > (uint64_t)INT64_MAX + 1)
                return REFUSE;
            x = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
        } else {
            if (v > (uint64_t)INT64_MAX)
                return REFUSE;
            x = (int64_t)v;
        }
        memcpy(col->values + (size_t)row * 8, &x, 8);
        break;
    }
    case 'b':
        if (literal(c, "true", 4)) {
            col->values[row >> 3] |= (unsigned char)(1u << (row & 7));
        } else if (!literal(c, "false", 5)) {
            return REFUSE;
        }
        if (!is_delimiter(c))
            return REFUSE;
        break;
    case 's':
        if (ch != '"')
            return REFUSE;
        if ((r = scan_string(c, &col->data)) != OK)
            return r;
        break;
    default: { /* 't': the exact token */
        const unsigned char *start = c->p;
        if ((r = skip_value(c)) != OK)
            return r;
        size_t n = (size_t)(c->p - start);
        if (buf_reserve(&col->data, n) < 0)
            return NOMEM;
        memcpy(col->data.buf + col->data.len, start, n);
        col->data.len += n;
        break;
    }
    }
    col->validity[row >> 3] |= (unsigned char)(1u << (row & 7));
    return OK;
}

static int record(const Fields *f, const unsigned char *text, Py_ssize_t len, Py_ssize_t row) {
    Cursor c = {text, text + len};
    Cursor *cur = &c;
    /* a field absent from this record: an empty value (its validity bit stays 0) */
    for (Py_ssize_t k = 0; k < f->count; k++) {
        Column *col = &f->columns[k];
        if (col->kind == 's' || col->kind == 't') {
            if (col->data.len > INT32_MAX)
                return REFUSE;
            ((int32_t *)col->values)[row + 1] = (int32_t)col->data.len;
        }
    }
    skip_ws(cur);
    if (cur->p >= cur->end || *cur->p != '{')
        return REFUSE;
    cur->p++;
    skip_ws(cur);
    if (cur->p < cur->end && *cur->p == '}') {
        cur->p++;
    } else {
        for (;;) {
            if (cur->p >= cur->end || *cur->p != '"')
                return REFUSE;
            const unsigned char *key = cur->p + 1, *q = key;
            while (q < cur->end && *q != '"' && *q != '\\' && *q >= 0x20)
                q++;
            if (q >= cur->end || *q != '"')
                return REFUSE; /* an escaped or unterminated key: the general path reads it */
            Column *col = lookup(f, key, (size_t)(q - key));
            cur->p = q + 1;
            skip_ws(cur);
            if (cur->p >= cur->end || *cur->p != ':')
                return REFUSE;
            cur->p++;
            skip_ws(cur);
            int r;
            if (col == NULL) {
                /* not a column: skipped, but its key must be text msgspec reads too */
                for (const unsigned char *k = key; k < q;) {
                    if (*k < 0x80) {
                        k++;
                        continue;
                    }
                    int n = utf8_length(k, q);
                    if (n == 0)
                        return REFUSE;
                    k += n;
                }
                r = skip_value(cur);
            } else {
                if (col->seen == row + 1)
                    return REFUSE; /* a field given twice */
                col->seen = row + 1;
                r = value_into(cur, col, row);
            }
            if (r != OK)
                return r;
            if (col != NULL && (col->kind == 's' || col->kind == 't')) {
                if (col->data.len > INT32_MAX)
                    return REFUSE;
                ((int32_t *)col->values)[row + 1] = (int32_t)col->data.len;
            }
            skip_ws(cur);
            if (cur->p < cur->end && *cur->p == ',') {
                cur->p++;
                skip_ws(cur);
                continue;
            }
            if (cur->p < cur->end && *cur->p == '}') {
                cur->p++;
                break;
            }
            return REFUSE;
        }
    }
    skip_ws(cur);
    return cur->p == cur->end ? OK : REFUSE;
}

/* ---------------------------------------------------------------- the module function */

static void free_columns(Column *cols, Py_ssize_t count) {
    if (cols == NULL)
        return;
    for (Py_ssize_t k = 0; k < count; k++) {
        free(cols[k].validity);
        free(cols[k].values);
        free(cols[k].data.buf);
    }
    free(cols);
}

static Py_ssize_t popcount_bits(const unsigned char *bits, Py_ssize_t n) {
    Py_ssize_t ones = 0;
    for (Py_ssize_t i = 0; i < n / 8; i++)
        ones += __builtin_popcount(bits[i]);
    for (Py_ssize_t i = n - n % 8; i < n; i++)
        ones += (bits[i >> 3] >> (i & 7)) & 1;
    return ones;
}

static PyObject *decode(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *datas_arg, *names_arg;
    const char *kinds;
    Py_ssize_t kinds_len;
    if (!PyArg_ParseTuple(args, "OOy#:decode", &datas_arg, &names_arg, &kinds, &kinds_len))
        return NULL;
    /* tuples of their own: the columns point into the names' bytes while the GIL is released, when
     * another thread may change a list it was given (and free the bytes it held) */
    PyObject *datas = PySequence_Tuple(datas_arg);
    if (datas == NULL)
        return NULL;
    PyObject *names = PySequence_Tuple(names_arg);
    if (names == NULL) {
        Py_DECREF(datas);
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(datas);
    Py_ssize_t count = PyTuple_GET_SIZE(names);
    PyObject *result = NULL;
    Py_buffer *views = NULL;
    Py_ssize_t viewed = 0;
    Column *cols = NULL;
    Fields fields = {NULL, count, NULL, 0};
    if (kinds_len != count) {
        PyErr_SetString(PyExc_ValueError, "one kind per name");
        goto done;
    }
    cols = calloc((size_t)(count ? count : 1), sizeof(Column));
    size_t slots = 4;
    while (slots < (size_t)count * 2)
        slots *= 2;
    fields.slots = calloc(slots, sizeof(Py_ssize_t));
    views = calloc((size_t)(n ? n : 1), sizeof(Py_buffer));
    if (cols == NULL || fields.slots == NULL || views == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    fields.columns = cols;
    fields.mask = slots - 1;
    size_t bitmap = (size_t)(n + 7) / 8 + 1;
    for (Py_ssize_t k = 0; k < count; k++) {
        Column *col = &cols[k];
        PyObject *name = PyTuple_GET_ITEM(names, k);
        char *text;
        if (PyBytes_AsStringAndSize(name, &text, &col->name_len) < 0)
            goto done;
        col->name = text;
        col->kind = kinds[k];
        size_t values;
        switch (col->kind) {
        case 'i': values = (size_t)n * 8 + 8; break;
        case 'b': values = bitmap; break;
        case 's':
        case 't': values = ((size_t)n + 1) * 4; break;
        default:
            PyErr_Format(PyExc_ValueError, "unknown kind %c", col->kind);
            goto done;
        }
        col->validity = calloc(bitmap, 1);
        col->values = calloc(values, 1);
        if (col->validity == NULL || col->values == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        size_t i = hash_key((const unsigned char *)text, (size_t)col->name_len) & fields.mask;
        while (fields.slots[i] != 0) {
            Column *other = &cols[fields.slots[i] - 1];
            if (other->name_len == col->name_len && memcmp(other->name, text, (size_t)col->name_len) == 0) {
                PyErr_SetString(PyExc_ValueError, "a name given twice");
                goto done;
            }
            i = (i + 1) & fields.mask;
        }
        fields.slots[i] = k + 1;
    }
    for (; viewed < n; viewed++) {
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(datas, viewed), &views[viewed], PyBUF_SIMPLE) < 0)
            goto done;
    }
    int status = OK;
    Py_BEGIN_ALLOW_THREADS;
    for (Py_ssize_t row = 0; row < n && status == OK; row++)
        status = record(&fields, views[row].buf, views[row].len, row);
    Py_END_ALLOW_THREADS;
    if (status == NOMEM) {
        PyErr_NoMemory();
        goto done;
    }
    if (status == REFUSE) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    PyObject *out = PyList_New(count);
    if (out == NULL)
        goto done;
    for (Py_ssize_t k = 0; k < count; k++) {
        Column *col = &cols[k];
        Py_ssize_t valid = popcount_bits(col->validity, n);
        PyObject *validity = valid == n ? Py_NewRef(Py_None)
                                        : PyBytes_FromStringAndSize((char *)col->validity, (Py_ssize_t)bitmap);
        Py_ssize_t values_len = col->kind == 'i' ? n * 8 : col->kind == 'b' ? (Py_ssize_t)bitmap : (n + 1) * 4;
        PyObject *values = PyBytes_FromStringAndSize((char *)col->values, values_len);
        PyObject *data = (col->kind == 's' || col->kind == 't')
                             ? PyBytes_FromStringAndSize((char *)col->data.buf, (Py_ssize_t)col->data.len)
                             : Py_NewRef(Py_None);
        /* "O", not "N": Py_BuildValue releases what "N" gave it when it fails, so the three are
         * released here whatever it returns */
        PyObject *item = (validity && values && data) ? Py_BuildValue("(nOOO)", n - valid, validity, values, data)
                                                      : NULL;
        Py_XDECREF(validity);
        Py_XDECREF(values);
        Py_XDECREF(data);
        if (item == NULL) {
            Py_DECREF(out);
            goto done;
        }
        PyList_SET_ITEM(out, k, item);
    }
    result = out;
done:
    for (Py_ssize_t i = 0; i < viewed; i++)
        PyBuffer_Release(&views[i]);
    free(views);
    free(fields.slots);
    free_columns(cols, count);
    Py_DECREF(datas);
    Py_DECREF(names);
    return result;
}

/* tokens(validity, offsets, data, offset, length) -> bool: whether every non-null value of an
 * Arrow string array (its buffers, validity None when no value is null; 32-bit offsets) is
 * exactly one JSON value: no white space around it, strings of valid text with no lone
 * surrogate escape, nesting within the limit. */
static PyObject *tokens(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *validity_arg;
    Py_buffer offsets, data, validity = {0};
    Py_ssize_t offset, length;
    if (!PyArg_ParseTuple(args, "Oy*y*nn:tokens", &validity_arg, &offsets, &data, &offset, &length))
        return NULL;
    int has_validity = validity_arg != Py_None;
    PyObject *result = NULL;
    if (has_validity && PyObject_GetBuffer(validity_arg, &validity, PyBUF_SIMPLE) < 0)
        goto done;
    /* offsets: offset + length + 1 entries from the start (compared without overflow: offset and
     * length are any Py_ssize_t) */
    Py_ssize_t entries = offsets.len / 4;
    if (offset < 0 || length < 0) {
        PyErr_SetString(PyExc_ValueError, "a negative offset or length");
        goto done;
    }
    if (length == 0) { /* no value: its buffers may be empty (Arrow allows no offsets for it) */
        result = Py_NewRef(Py_True);
        goto done;
    }
    if (offset > entries - 1 || length > entries - 1 - offset ||
        (has_validity && (offset + length + 7) / 8 > validity.len)) {
        PyErr_SetString(PyExc_ValueError, "buffers shorter than the array");
        goto done;
    }
    /* the offsets buffer may be any bytes-like object, not aligned for int32: read by memcpy */
    const unsigned char *at = offsets.buf;
    const unsigned char *bits = validity.buf, *text = data.buf;
    int good = 1;
    Py_BEGIN_ALLOW_THREADS;
    for (Py_ssize_t i = offset; i < offset + length && good; i++) {
        if (has_validity && !((bits[i >> 3] >> (i & 7)) & 1))
            continue;
        int32_t lo, hi;
        memcpy(&lo, at + (size_t)i * 4, 4);
        memcpy(&hi, at + (size_t)i * 4 + 4, 4);
        if (lo < 0 || hi < lo || hi > data.len) {
            good = -1;
            break;
        }
        Cursor c = {text + lo, text + hi};
        if (lo == hi || text[lo] == ' ' || text[lo] == '\t' || text[lo] == '\n' || text[lo] == '\r')
            good = 0;
        else
            good = skip_value(&c) == OK && c.p == c.end;
    }
    Py_END_ALLOW_THREADS;
    if (good < 0) {
        PyErr_SetString(PyExc_ValueError, "offsets outside the data");
        goto done;
    }
    result = PyBool_FromLong(good);
done:
    if (has_validity && validity.obj != NULL)
        PyBuffer_Release(&validity);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&data);
    return result;
}

/* uuid_text(raw) -> bytes: for each 16 bytes of ``raw`` (random), the canonical text (36
 * characters, lower-case hex) of the version-4 UUID they make: byte 6's high nibble set to 4,
 * byte 8's two high bits to 10. */
static PyObject *uuid_text(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer raw;
    if (!PyArg_ParseTuple(args, "y*:uuid_text", &raw))
        return NULL;
    if (raw.len % 16 != 0) {
        PyBuffer_Release(&raw);
        PyErr_SetString(PyExc_ValueError, "the random bytes are not a whole number of UUIDs");
        return NULL;
    }
    Py_ssize_t n = raw.len / 16;
    if (n > PY_SSIZE_T_MAX / 36) {
        PyBuffer_Release(&raw);
        return PyErr_NoMemory();
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * 36);
    if (out == NULL) {
        PyBuffer_Release(&raw);
        return NULL;
    }
    static const char hex[] = "0123456789abcdef";
    const unsigned char *in = raw.buf;
    char *text = PyBytes_AS_STRING(out);
    Py_BEGIN_ALLOW_THREADS;
    for (Py_ssize_t i = 0; i < n; i++) {
        const unsigned char *u = in + i * 16;
        char *t = text + i * 36;
        for (int b = 0; b < 16; b++) {
            unsigned char v = u[b];
            if (b == 6)
                v = (unsigned char)((v & 0x0F) | 0x40);
            else if (b == 8)
                v = (unsigned char)((v & 0x3F) | 0x80);
            if (b == 4 || b == 6 || b == 8 || b == 10)
                *t++ = '-';
            *t++ = hex[v >> 4];
            *t++ = hex[v & 0x0F];
        }
    }
    Py_END_ALLOW_THREADS;
    PyBuffer_Release(&raw);
    return out;
}

static PyMethodDef methods[] = {
    {"decode", decode, METH_VARARGS, "The data of records as Arrow column buffers, or None."},
    {"tokens", tokens, METH_VARARGS, "Whether each value of a string array is one JSON value."},
    {"uuid_text", uuid_text, METH_VARARGS, "The canonical text of version-4 UUIDs made of random bytes."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rows", NULL, -1, methods};

PyMODINIT_FUNC PyInit__rows(void) { return PyModule_Create(&module); }
