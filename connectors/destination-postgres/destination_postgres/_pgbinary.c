/*
 * Rows of PostgreSQL's binary COPY format from Arrow columns, in C (destination_postgres.binary).
 *
 * encode_rows(n, columns) -> bytes: the n rows (no file header, no trailer). Each column is a
 * tuple (kind, validity, offsets, data, offset): kind one of the K_* codes below, the Arrow
 * buffers of the array (validity bitmap or None, 32-bit value offsets or None, values), and the
 * array's offset. The caller (binary.py) picks a kind only for an Arrow type and a target column
 * type that belong together; this module never guesses a type.
 *
 * A value that cannot be sent in binary exactly as PostgreSQL's text input would read it (a
 * number token this encoder does not take, a date or time at the "infinity" sentinels) raises
 * Unsupported(column, row); the caller sends that part as CSV instead. The GIL is released while
 * the rows are built.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum {
    K_INT8 = 1,      /* int64 -> int8 */
    K_BOOL = 2,      /* bool (bitmap) -> bool */
    K_TIMESTAMP = 3, /* timestamp[us] (UTC micros since 1970) -> timestamp / timestamptz */
    K_DATE = 4,      /* date32 -> date */
    K_TIME = 5,      /* time64[us] -> time */
    K_TEXT = 6,      /* string / binary -> text, varchar, bytea, json */
    K_JSONB = 7,     /* string -> jsonb (version byte 1, then the text) */
    K_NUMERIC = 8,   /* string holding a JSON number token -> numeric */
    K_FLOAT8 = 9,    /* float64 -> float8 */
    K_TIMETZ = 10,   /* string "HH:MM:SS[.ffffff]+HH:MM" -> timetz */
};

#define EPOCH_SHIFT_MICROS INT64_C(946684800000000) /* 1970-01-01 -> 2000-01-01 */
#define EPOCH_SHIFT_DAYS 10957
#define MAX_TOKEN_DIGITS 1000 /* number tokens with more digits, or a larger exponent, go as CSV */
#define MAX_TOKEN_EXPONENT 1000

static PyObject *Unsupported;

typedef struct {
    int kind;
    Py_buffer validity, offsets, data;
    int has_validity, has_offsets, has_data;
    Py_ssize_t offset;
} Column;

typedef struct {
    char *buf;
    size_t len, cap;
} Out;

static int out_reserve(Out *o, size_t more) {
    if (o->len + more <= o->cap)
        return 0;
    size_t cap = o->cap ? o->cap : 1 << 16;
    while (cap < o->len + more)
        cap *= 2;
    char *grown = realloc(o->buf, cap);
    if (grown == NULL)
        return -1;
    o->buf = grown;
    o->cap = cap;
    return 0;
}

static inline void put16(Out *o, uint16_t v) {
    o->buf[o->len++] = (char)(v >> 8);
    o->buf[o->len++] = (char)v;
}

static inline void put32(Out *o, uint32_t v) {
    for (int s = 24; s >= 0; s -= 8)
        o->buf[o->len++] = (char)(v >> s);
}

static inline void put64(Out *o, uint64_t v) {
    for (int s = 56; s >= 0; s -= 8)
        o->buf[o->len++] = (char)(v >> s);
}

/* A JSON number token as numeric's binary form (see numeric_recv): ndigits, weight, sign, dscale,
 * then base-10000 digits. dscale is what numeric_in gives the text: the digits after the point
 * less the exponent, at least 0. Returns -1 for a token this encoder does not take. */
static int put_numeric(Out *o, const char *s, Py_ssize_t n) {
    Py_ssize_t i = 0;
    int negative = 0;
    if (i < n && s[i] == '-') {
        negative = 1;
        i++;
    }
    char digits[MAX_TOKEN_DIGITS + 8];
    int count = 0, before_point = 0, after_point = 0, seen_digit = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        if (count >= MAX_TOKEN_DIGITS)
            return -1;
        digits[count++] = (char)(s[i++] - '0');
        before_point++;
        seen_digit = 1;
    }
    if (!seen_digit)
        return -1;
    if (i < n && s[i] == '.') {
        i++;
        int frac = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (count >= MAX_TOKEN_DIGITS)
                return -1;
            digits[count++] = (char)(s[i++] - '0');
            after_point++;
            frac = 1;
        }
        if (!frac)
            return -1;
    }
    long exponent = 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        int exp_negative = 0;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            exp_negative = s[i++] == '-';
        int exp_digits = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            exponent = exponent * 10 + (s[i++] - '0');
            if (exponent > MAX_TOKEN_EXPONENT)
                return -1;
            exp_digits = 1;
        }
        if (!exp_digits)
            return -1;
        if (exp_negative)
            exponent = -exponent;
    }
    if (i != n)
        return -1;
    long dscale = after_point - exponent;
    if (dscale < 0)
        dscale = 0;
    /* the value is digits[0..count) with the decimal point after `point` of them */
    long point = before_point + exponent;
    int first = 0;
    while (first < count && digits[first] == 0)
        first++;
    int last = count;
    while (last > first && digits[last - 1] == 0)
        last--;
    if (first == last) { /* zero */
        if (out_reserve(o, 12))
            return -2;
        put32(o, 8);
        put16(o, 0);
        put16(o, 0);
        put16(o, 0);
        put16(o, (uint16_t)dscale);
        return 0;
    }
    /* decimal weight of digits[first]: its power of ten */
    long dweight = point - first - 1;
    long weight; /* the base-10000 weight of the first group: floor(dweight / 4) */
    if (dweight >= 0)
        weight = dweight / 4;
    else
        weight = -((-dweight - 1) / 4 + 1);
    /* zeros before digits[first] in the first group */
    long lead = (weight + 1) * 4 - (dweight + 1);
    long total = lead + (last - first);
    long ndigits = (total + 3) / 4;
    if (out_reserve(o, 12 + 2 * (size_t)ndigits))
        return -2;
    put32(o, (uint32_t)(8 + 2 * ndigits));
    put16(o, (uint16_t)ndigits);
    put16(o, (uint16_t)(int16_t)weight);
    put16(o, negative ? 0x4000 : 0);
    put16(o, (uint16_t)dscale);
    long k = -lead; /* index into digits[first..last) of the group's first decimal digit */
    for (long g = 0; g < ndigits; g++) {
        int group = 0;
        for (int j = 0; j < 4; j++, k++) {
            int d = (k >= 0 && k < last - first) ? digits[first + k] : 0;
            group = group * 10 + d;
        }
        put16(o, (uint16_t)group);
    }
    return 0;
}

static int two_digits(const char *s, int *out) {
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return -1;
    *out = (s[0] - '0') * 10 + (s[1] - '0');
    return 0;
}

/* "HH:MM:SS[.f{1,6}](+|-)HH:MM" (the batch's normalized text of a time with a time zone) as
 * timetz's binary form: microseconds of the day, then the zone in seconds west of UTC. Returns -1
 * for any other text, or a time or zone the server would refuse (its text input then says why). */
static int put_timetz(Out *o, const char *s, Py_ssize_t n) {
    int h, m, sec, zh, zm;
    if (n < 14 || two_digits(s, &h) || s[2] != ':' || two_digits(s + 3, &m) || s[5] != ':' ||
        two_digits(s + 6, &sec))
        return -1;
    Py_ssize_t i = 8;
    int64_t micros = 0;
    if (s[i] == '.') {
        int digits = 0;
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
            if (digits == 6)
                return -1;
            micros = micros * 10 + (s[i] - '0');
        }
        if (digits == 0)
            return -1;
        for (; digits < 6; digits++)
            micros *= 10;
    }
    if (n - i != 6 || (s[i] != '+' && s[i] != '-') || two_digits(s + i + 1, &zh) || s[i + 3] != ':' ||
        two_digits(s + i + 4, &zm))
        return -1;
    if (h > 24 || m > 59 || sec > 59 || (h == 24 && (m || sec || micros)) || zh > 15 || zm > 59)
        return -1;
    int64_t time = ((int64_t)h * 3600 + m * 60 + sec) * 1000000 + micros;
    int32_t east = (zh * 3600 + zm * 60) * (s[i] == '-' ? -1 : 1);
    if (out_reserve(o, 16))
        return -2;
    put32(o, 12);
    put64(o, (uint64_t)time);
    put32(o, (uint32_t)(-east));
    return 0;
}

static inline int is_valid(const Column *c, Py_ssize_t row) {
    if (!c->has_validity)
        return 1;
    Py_ssize_t bit = c->offset + row;
    return (((const uint8_t *)c->validity.buf)[bit >> 3] >> (bit & 7)) & 1;
}

/* Returns 0, -1 (unsupported value: *bad_column, *bad_row set), -2 (out of memory) or -3 (a
 * value's offsets changed since check_sizes). */
static int encode(Out *o, Column *cols, Py_ssize_t ncols, Py_ssize_t nrows, Py_ssize_t *bad_column,
                  Py_ssize_t *bad_row) {
    for (Py_ssize_t row = 0; row < nrows; row++) {
        if (out_reserve(o, 2))
            return -2;
        put16(o, (uint16_t)ncols);
        for (Py_ssize_t k = 0; k < ncols; k++) {
            Column *c = &cols[k];
            if (!is_valid(c, row)) {
                if (out_reserve(o, 4))
                    return -2;
                put32(o, 0xFFFFFFFFu);
                continue;
            }
            Py_ssize_t at = c->offset + row;
            switch (c->kind) {
            case K_INT8:
            case K_FLOAT8: {
                if (out_reserve(o, 12))
                    return -2;
                uint64_t v;
                memcpy(&v, (const char *)c->data.buf + 8 * at, 8);
                put32(o, 8);
                put64(o, v);
                break;
            }
            case K_TIME: {
                if (out_reserve(o, 12))
                    return -2;
                int64_t v = ((const int64_t *)c->data.buf)[at];
                put32(o, 8);
                put64(o, (uint64_t)v);
                break;
            }
            case K_TIMESTAMP: {
                int64_t v = ((const int64_t *)c->data.buf)[at];
                if (v <= INT64_MIN + EPOCH_SHIFT_MICROS) /* would be (or pass) -infinity */
                    goto unsupported;
                v -= EPOCH_SHIFT_MICROS;
                if (v == INT64_MAX)
                    goto unsupported;
                if (out_reserve(o, 12))
                    return -2;
                put32(o, 8);
                put64(o, (uint64_t)v);
                break;
            }
            case K_DATE: {
                int32_t v = ((const int32_t *)c->data.buf)[at];
                if (v <= INT32_MIN + EPOCH_SHIFT_DAYS)
                    goto unsupported;
                v -= EPOCH_SHIFT_DAYS;
                if (v == INT32_MAX)
                    goto unsupported;
                if (out_reserve(o, 8))
                    return -2;
                put32(o, 4);
                put32(o, (uint32_t)v);
                break;
            }
            case K_BOOL: {
                if (out_reserve(o, 5))
                    return -2;
                int v = (((const uint8_t *)c->data.buf)[at >> 3] >> (at & 7)) & 1;
                put32(o, 1);
                o->buf[o->len++] = (char)v;
                break;
            }
            case K_TEXT:
            case K_JSONB:
            case K_NUMERIC:
            case K_TIMETZ: {
                /* checked by check_sizes, read again here without the GIL: each offset is read
                 * once and bounded, so a buffer another thread changes cannot send us outside */
                const int32_t *offsets = (const int32_t *)c->offsets.buf;
                Py_ssize_t low = offsets[at], high = offsets[at + 1];
                if (low < 0 || high < low || high > c->data.len)
                    return -3;
                Py_ssize_t n = high - low;
                const char *s = n ? (const char *)c->data.buf + low : "";
                if (c->kind == K_NUMERIC || c->kind == K_TIMETZ) {
                    int r = c->kind == K_NUMERIC ? put_numeric(o, s, n) : put_timetz(o, s, n);
                    if (r == -1)
                        goto unsupported;
                    if (r == -2)
                        return -2;
                    break;
                }
                int version = c->kind == K_JSONB;
                if (out_reserve(o, 4 + version + (size_t)n))
                    return -2;
                put32(o, (uint32_t)(n + version));
                if (version)
                    o->buf[o->len++] = 1;
                if (n)
                    memcpy(o->buf + o->len, s, (size_t)n);
                o->len += (size_t)n;
                break;
            }
            default:
                goto unsupported;
            }
            continue;
        unsupported:
            *bad_column = k;
            *bad_row = row;
            return -1;
        }
    }
    return 0;
}

static void release(Column *cols, Py_ssize_t n) {
    for (Py_ssize_t k = 0; k < n; k++) {
        if (cols[k].has_validity)
            PyBuffer_Release(&cols[k].validity);
        if (cols[k].has_offsets)
            PyBuffer_Release(&cols[k].offsets);
        if (cols[k].has_data)
            PyBuffer_Release(&cols[k].data);
    }
    PyMem_Free(cols);
}

/* The smallest number of bytes each buffer must have for nrows rows from the column's offset. */
static int check_sizes(const Column *c, Py_ssize_t nrows) {
    if (nrows == 0)
        return 0;
    /* offset + nrows + 1 rows, and 8 bytes each, without overflow */
    if (c->offset < 0 || nrows < 0 || c->offset > PY_SSIZE_T_MAX / 8 - nrows - 1)
        return -1;
    Py_ssize_t last = c->offset + nrows;
    if (c->has_validity && c->validity.len < (last + 7) / 8)
        return -1;
    switch (c->kind) {
    case K_INT8:
    case K_FLOAT8:
    case K_TIME:
    case K_TIMESTAMP:
        return c->has_data && c->data.len >= 8 * last ? 0 : -1;
    case K_DATE:
        return c->has_data && c->data.len >= 4 * last ? 0 : -1;
    case K_BOOL:
        return c->has_data && c->data.len >= (last + 7) / 8 ? 0 : -1;
    case K_TEXT:
    case K_JSONB:
    case K_NUMERIC:
    case K_TIMETZ: {
        if (!c->has_offsets || c->offsets.len < 4 * (last + 1))
            return -1;
        const int32_t *offsets = (const int32_t *)c->offsets.buf;
        Py_ssize_t low = offsets[c->offset], high = offsets[last];
        if (low < 0 || high < low)
            return -1;
        if (high > 0 && (!c->has_data || c->data.len < high))
            return -1;
        for (Py_ssize_t i = c->offset; i < last; i++)
            if (offsets[i + 1] < offsets[i])
                return -1;
        return 0;
    }
    default:
        return -1;
    }
}

static int get_buffer(PyObject *obj, Py_buffer *view, int *has) {
    *has = 0;
    if (obj == Py_None)
        return 0;
    if (PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) < 0)
        return -1;
    *has = 1;
    return 0;
}

static PyObject *encode_rows(PyObject *self, PyObject *args) {
    Py_ssize_t nrows;
    PyObject *specs;
    if (!PyArg_ParseTuple(args, "nO!", &nrows, &PyList_Type, &specs))
        return NULL;
    if (nrows < 0) {
        PyErr_SetString(PyExc_ValueError, "a negative row count");
        return NULL;
    }
    Py_ssize_t ncols = PyList_GET_SIZE(specs);
    if (ncols > 1600) {
        PyErr_SetString(PyExc_ValueError, "more columns than PostgreSQL allows");
        return NULL;
    }
    Column *cols = PyMem_Calloc((size_t)(ncols ? ncols : 1), sizeof(Column));
    if (cols == NULL)
        return PyErr_NoMemory();
    for (Py_ssize_t k = 0; k < ncols; k++) {
        PyObject *validity, *offsets, *data;
        Column *c = &cols[k];
        if (!PyArg_ParseTuple(PyList_GET_ITEM(specs, k), "iOOOn", &c->kind, &validity, &offsets, &data,
                              &c->offset) ||
            get_buffer(validity, &c->validity, &c->has_validity) < 0 ||
            get_buffer(offsets, &c->offsets, &c->has_offsets) < 0 ||
            get_buffer(data, &c->data, &c->has_data) < 0) {
            release(cols, ncols);
            return NULL;
        }
        if (c->offset < 0 || check_sizes(c, nrows) < 0) {
            int kind = c->kind; /* cols is freed below */
            release(cols, ncols);
            PyErr_Format(PyExc_ValueError, "column %zd: buffers too small for %zd rows (kind %d)", k,
                         nrows, kind);
            return NULL;
        }
    }
    Out out = {NULL, 0, 0};
    Py_ssize_t bad_column = -1, bad_row = -1;
    int status;
    Py_BEGIN_ALLOW_THREADS status = encode(&out, cols, ncols, nrows, &bad_column, &bad_row);
    Py_END_ALLOW_THREADS release(cols, ncols);
    if (status == -2) {
        free(out.buf);
        return PyErr_NoMemory();
    }
    if (status == -3) {
        free(out.buf);
        PyErr_SetString(PyExc_ValueError, "a value's offsets changed while the rows were built");
        return NULL;
    }
    if (status == -1) {
        free(out.buf);
        PyObject *exc_args = Py_BuildValue("(nn)", bad_column, bad_row);
        if (exc_args != NULL) {
            PyErr_SetObject(Unsupported, exc_args);
            Py_DECREF(exc_args);
        }
        return NULL;
    }
    PyObject *result = PyBytes_FromStringAndSize(out.buf ? out.buf : "", (Py_ssize_t)out.len);
    free(out.buf);
    return result;
}

static PyMethodDef methods[] = {
    {"encode_rows", encode_rows, METH_VARARGS,
     "encode_rows(n, columns) -> bytes: n rows of binary COPY from Arrow buffers."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_pgbinary", NULL, -1, methods};

PyMODINIT_FUNC PyInit__pgbinary(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Unsupported = PyErr_NewException("destination_postgres._pgbinary.Unsupported", PyExc_ValueError, NULL);
    if (Unsupported == NULL || PyModule_AddObject(m, "Unsupported", Unsupported) < 0) {
        Py_XDECREF(Unsupported);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(Unsupported);
    for (int kind = K_INT8; kind <= K_TIMETZ; kind++) {
        static const char *names[] = {"", "INT8", "BOOL", "TIMESTAMP", "DATE", "TIME", "TEXT", "JSONB",
                                      "NUMERIC", "FLOAT8", "TIMETZ"};
        if (PyModule_AddIntConstant(m, names[kind], kind) < 0) {
            Py_DECREF(m);
            return NULL;
        }
    }
    return m;
}
