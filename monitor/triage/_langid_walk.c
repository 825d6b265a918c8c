/* The language identifier's per-post work in C: the automaton walk and the naive-Bayes posterior.
 *
 * An optional accelerator of monitor/triage/langid_model.py (Identifier.posterior), built by
 * setup.py when a compiler is there; without it the same arithmetic runs in Python.  It reads the
 * memory-mapped model files through the buffer protocol (no copy, nothing read ahead) and gives
 * the very same floats as the Python path: the features are counted in the order they first
 * occur, each count's table rows are summed exactly as integers, and the float steps are done in
 * the Python path's order (built with -ffp-contract=off, so no step is fused into another);
 * the normalising sum is the interpreter's own `sum`.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#define STACK_BYTES 512 /* a post up to this many bytes needs no allocation */
#define STACK_GROUPS 16
#define STACK_CLASSES 160

typedef struct {
    PyObject_HEAD
    Py_buffer nextmove, rowbase, output, table;
    Py_ssize_t n_moves, n_states, n_rows;
    Py_ssize_t n_classes, row_bytes;
    uint64_t neg_offset; /* -offset: every stored field is value - offset >= 0 */
    double scale;
    double *prior;
    PyObject *sum; /* builtins.sum */
} Scorer;

static uint32_t
load_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void
Scorer_dealloc(Scorer *self)
{
    PyBuffer_Release(&self->nextmove);
    PyBuffer_Release(&self->rowbase);
    PyBuffer_Release(&self->output);
    PyBuffer_Release(&self->table);
    PyMem_Free(self->prior);
    Py_XDECREF(self->sum);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
Scorer_init(Scorer *self, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"nextmove", "rowbase", "output", "table", "prior", "field_bits", "offset",
                               "scale", NULL};
    PyObject *prior;
    int field_bits;
    long long offset;
    double scale;
    if (self->prior != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Scorer already initialised");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*y*y*y*OiLd", keywords, &self->nextmove, &self->rowbase,
                                     &self->output, &self->table, &prior, &field_bits, &offset, &scale)) {
        return -1;
    }
    PyObject *values = PySequence_Fast(prior, "prior must be a sequence of floats");
    if (values == NULL) {
        return -1;
    }
    self->n_classes = PySequence_Fast_GET_SIZE(values);
    self->row_bytes = self->n_classes * (field_bits / 8);
    self->n_moves = self->nextmove.len / 4;
    self->n_states = self->rowbase.len / 4;
    self->n_rows = self->row_bytes ? self->table.len / self->row_bytes : 0;
    const char *wrong = NULL;
    if (field_bits != 32) { /* 64-bit tables stay with the Python path */
        wrong = "only 32-bit fields";
    }
    else if (self->n_classes < 1 || self->table.len % self->row_bytes) {
        wrong = "the table's size is not a whole number of rows";
    }
    else if (self->nextmove.len % 4 || self->rowbase.len % 4 || self->output.len != self->rowbase.len) {
        wrong = "inconsistent automaton";
    }
    else if (offset > 0 || !(scale > 0.0)) {
        wrong = "offset must be <= 0 and scale > 0";
    }
    /* A count's rows are summed in 64 bits: its features times -offset must fit in an int64. */
    else if ((uint64_t)(-offset) > (uint64_t)INT64_MAX / (uint64_t)(self->n_rows + 1)) {
        wrong = "offset too large for 64-bit sums";
    }
    if (wrong != NULL) {
        Py_DECREF(values);
        PyErr_SetString(PyExc_ValueError, wrong);
        return -1;
    }
    self->neg_offset = (uint64_t)(-offset);
    self->scale = scale;
    self->prior = PyMem_Malloc(sizeof(double) * (size_t)self->n_classes);
    if (self->prior == NULL) {
        Py_DECREF(values);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t k = 0; k < self->n_classes; k++) {
        self->prior[k] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(values, k));
    }
    Py_DECREF(values);
    if (PyErr_Occurred()) {
        return -1;
    }
    self->sum = PyDict_GetItemString(PyEval_GetBuiltins(), "sum");
    if (self->sum == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "no builtins.sum");
        return -1;
    }
    Py_INCREF(self->sum);
    return 0;
}

/* Walk `data` through the automaton: the features in the order they first occur (`order`) and how
 * often each occurs (`counts`).  Returns how many distinct features, or -1 with an exception set. */
static Py_ssize_t
walk(const Scorer *self, const unsigned char *data, Py_ssize_t size, int32_t *slots, size_t mask,
     int32_t *order, Py_ssize_t *counts)
{
    const unsigned char *moves = self->nextmove.buf, *bases = self->rowbase.buf, *outputs = self->output.buf;
    Py_ssize_t distinct = 0;
    uint32_t state = 0;
    for (Py_ssize_t i = 0; i < size; i++) {
        uint32_t base;
        int32_t feature;
        memcpy(&base, bases + 4 * (size_t)state, 4); /* native order, as the Python path casts them */
        uint64_t move = (uint64_t)base + data[i];
        if (move >= (uint64_t)self->n_moves) {
            goto corrupt;
        }
        memcpy(&state, moves + 4 * move, 4);
        if (state >= (uint64_t)self->n_states) {
            goto corrupt;
        }
        memcpy(&feature, outputs + 4 * (size_t)state, 4);
        if (feature < 0) {
            continue;
        }
        if (feature >= self->n_rows) {
            goto corrupt;
        }
        size_t slot = ((uint32_t)feature * 2654435761u) & mask;
        while (slots[slot] >= 0 && order[slots[slot]] != feature) {
            slot = (slot + 1) & mask;
        }
        if (slots[slot] < 0) {
            slots[slot] = (int32_t)distinct;
            order[distinct] = feature;
            counts[distinct++] = 1;
        }
        else {
            counts[slots[slot]]++;
        }
    }
    return distinct;
corrupt:
    PyErr_SetString(PyExc_ValueError, "the langid model's files are inconsistent");
    return -1;
}

static PyObject *
uniform(Py_ssize_t n_classes)
{
    PyObject *scores = PyList_New(n_classes);
    for (Py_ssize_t k = 0; scores != NULL && k < n_classes; k++) {
        PyObject *value = PyFloat_FromDouble(1.0 / (double)n_classes);
        if (value == NULL) {
            Py_CLEAR(scores);
            break;
        }
        PyList_SET_ITEM(scores, k, value);
    }
    return scores;
}

/* The normalised posterior from `raw` (prior + weighted log-probabilities) and the post's length. */
static PyObject *
normalised(const Scorer *self, const double *raw, Py_ssize_t size)
{
    Py_ssize_t n = self->n_classes;
    double temperature = 1.0 / sqrt((double)(size ? size : 1));
    double top = raw[0];
    for (Py_ssize_t k = 1; k < n; k++) {
        if (raw[k] > top) {
            top = raw[k];
        }
    }
    PyObject *scores = PyList_New(n);
    if (scores == NULL) {
        return NULL;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *value = PyFloat_FromDouble(exp((raw[k] - top) * temperature));
        if (value == NULL) {
            Py_DECREF(scores);
            return NULL;
        }
        PyList_SET_ITEM(scores, k, value);
    }
    PyObject *total = PyObject_CallOneArg(self->sum, scores); /* this interpreter's float sum */
    double norm = total == NULL ? -1.0 : PyFloat_AsDouble(total);
    Py_XDECREF(total);
    if (PyErr_Occurred()) {
        Py_DECREF(scores);
        return NULL;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *value = PyFloat_FromDouble(PyFloat_AS_DOUBLE(PyList_GET_ITEM(scores, k)) / norm);
        if (value == NULL) {
            Py_DECREF(scores);
            return NULL;
        }
        PyList_SetItem(scores, k, value);
    }
    return scores;
}

static PyObject *
Scorer_posterior(Scorer *self, PyObject *arg)
{
    if (self->prior == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Scorer not initialised");
        return NULL;
    }
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "posterior() takes the post's bytes");
        return NULL;
    }
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(arg);
    Py_ssize_t size = PyBytes_GET_SIZE(arg);
    Py_ssize_t n = self->n_classes;

    /* Scratch space: a hash of features (twice the post's bytes, a power of two), the distinct
     * features in order, their counts; then per distinct count its group, and each group's sums. */
    int32_t stack_slots[2 * STACK_BYTES], stack_order[STACK_BYTES];
    Py_ssize_t stack_counts[STACK_BYTES];
    size_t capacity = 16;
    while (capacity < 2 * (size_t)size) {
        capacity *= 2;
    }
    int32_t *slots = stack_slots, *order = stack_order;
    Py_ssize_t *counts = stack_counts;
    int32_t stack_group_of[STACK_BYTES + 1], *group_of = stack_group_of;
    uint64_t stack_sums[STACK_GROUPS * STACK_CLASSES], *sums = stack_sums;
    Py_ssize_t stack_group_count[STACK_GROUPS], stack_group_total[STACK_GROUPS];
    Py_ssize_t *group_count = stack_group_count, *group_total = stack_group_total;
    double stack_raw[STACK_CLASSES], *raw = stack_raw;
    PyObject *result = NULL;

    if (size > STACK_BYTES) {
        slots = PyMem_Malloc(sizeof(int32_t) * capacity);
        order = PyMem_Malloc(sizeof(int32_t) * (size_t)size);
        counts = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)size);
        if (slots == NULL || order == NULL || counts == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    memset(slots, 0xff, sizeof(int32_t) * capacity);
    Py_ssize_t distinct = walk(self, data, size, slots, capacity - 1, order, counts);
    if (distinct < 0) {
        goto done;
    }
    if (distinct == 0) {
        result = uniform(n); /* py3langid: all-zero scores, normalised */
        goto done;
    }

    /* The distinct counts in the order they first occur, as Counter(visits.values()) has them. */
    Py_ssize_t most = 0, groups = 0;
    for (Py_ssize_t i = 0; i < distinct; i++) {
        most = counts[i] > most ? counts[i] : most;
    }
    if (most > STACK_BYTES) {
        group_of = PyMem_Malloc(sizeof(int32_t) * (size_t)(most + 1));
        if (group_of == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    memset(group_of, 0xff, sizeof(int32_t) * (size_t)(most + 1));
    for (Py_ssize_t i = 0; i < distinct; i++) {
        if (group_of[counts[i]] < 0) {
            group_of[counts[i]] = (int32_t)groups++;
        }
    }
    if (groups > STACK_GROUPS || n > STACK_CLASSES) {
        sums = PyMem_Calloc((size_t)groups * (size_t)n, sizeof(uint64_t));
        group_count = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)groups);
        group_total = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)groups);
        raw = n > STACK_CLASSES ? PyMem_Malloc(sizeof(double) * (size_t)n) : stack_raw;
        if (sums == NULL || group_count == NULL || group_total == NULL || raw == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    else {
        memset(stack_sums, 0, sizeof(uint64_t) * (size_t)groups * (size_t)n);
    }
    memset(group_total, 0, sizeof(Py_ssize_t) * (size_t)groups);

    /* Each count's rows summed, field by field (the fields never overflow: see langid_model). */
    const unsigned char *table = self->table.buf;
    for (Py_ssize_t i = 0; i < distinct; i++) {
        int32_t g = group_of[counts[i]];
        group_count[g] = counts[i];
        group_total[g]++;
        const unsigned char *row = table + (size_t)order[i] * (size_t)self->row_bytes;
        uint64_t *into = sums + (size_t)g * (size_t)n;
        for (Py_ssize_t k = 0; k < n; k++) {
            into[k] += load_u32(row + 4 * k);
        }
    }
    memcpy(raw, self->prior, sizeof(double) * (size_t)n);
    for (Py_ssize_t g = 0; g < groups; g++) {
        double weight = log1p((double)group_count[g]) / self->scale;
        int64_t shift = -(int64_t)((uint64_t)group_total[g] * self->neg_offset); /* total * offset */
        const uint64_t *from = sums + (size_t)g * (size_t)n;
        for (Py_ssize_t k = 0; k < n; k++) {
            raw[k] = raw[k] + weight * (double)((int64_t)from[k] + shift); /* field + shift, exact */
        }
    }
    result = normalised(self, raw, size);

done:
    if (slots != stack_slots) {
        PyMem_Free(slots);
    }
    if (order != stack_order) {
        PyMem_Free(order);
    }
    if (counts != stack_counts) {
        PyMem_Free(counts);
    }
    if (group_of != stack_group_of) {
        PyMem_Free(group_of);
    }
    if (sums != stack_sums) {
        PyMem_Free(sums);
    }
    if (group_count != stack_group_count) {
        PyMem_Free(group_count);
    }
    if (group_total != stack_group_total) {
        PyMem_Free(group_total);
    }
    if (raw != stack_raw) {
        PyMem_Free(raw);
    }
    return result;
}

static PyMethodDef Scorer_methods[] = {
    {"posterior", (PyCFunction)Scorer_posterior, METH_O,
     "posterior(data: bytes) -> list[float]: the naive-Bayes posterior of a post's encoded bytes."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ScorerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "monitor.triage._langid_walk.Scorer",
    .tp_doc = "Scorer(nextmove, rowbase, output, table, prior, field_bits, offset, scale): one table's "
              "posterior over the mapped automaton.",
    .tp_basicsize = sizeof(Scorer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Scorer_init,
    .tp_dealloc = (destructor)Scorer_dealloc,
    .tp_methods = Scorer_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "monitor.triage._langid_walk",
    .m_doc = "The language identifier's automaton walk and posterior in C (optional; see langid_model).",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__langid_walk(void)
{
    if (PyType_Ready(&ScorerType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&ScorerType);
    if (PyModule_AddObject(m, "Scorer", (PyObject *)&ScorerType) < 0) {
        Py_DECREF(&ScorerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
