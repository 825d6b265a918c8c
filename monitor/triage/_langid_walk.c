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

#define STACK_BYTES 512 /* a post with up to this many features needs no allocation */
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
    else if (self->nextmove.len % 4 || self->rowbase.len % 4 || self->rowbase.len == 0
             || self->output.len != self->rowbase.len) { /* a walk starts at state 0 */
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

/* Walk posts through the automaton, LANES of them at a time, a byte of each in turn: a post's
 * steps depend on one another (each reads the row its last state names), the lanes' do not, so
 * their cache misses overlap instead of queueing (the automaton is ~40 MB, a post's states are
 * scattered over it).  Post p's features, in order, go to hits[starts[p]...]; found[p] counts them.
 * Returns 0, or -1 with an exception set. */
#define LANES 8
static int
walk_many(const Scorer *self, const unsigned char *const *datas, const Py_ssize_t *sizes, Py_ssize_t n,
          const Py_ssize_t *starts, int32_t *hits, Py_ssize_t *found)
{
    const unsigned char *moves = self->nextmove.buf, *bases = self->rowbase.buf, *outputs = self->output.buf;
    Py_ssize_t post_of[LANES], at[LANES], next = 0;
    uint32_t state[LANES];
    for (int l = 0; l < LANES; l++) {
        post_of[l] = -1;
    }
    for (Py_ssize_t p = 0; p < n; p++) {
        found[p] = 0;
    }
    for (;;) {
        int busy = 0;
        for (int l = 0; l < LANES; l++) {
            if (post_of[l] < 0) {
                while (next < n && sizes[next] == 0) {
                    next++;
                }
                if (next == n) {
                    continue;
                }
                post_of[l] = next++;
                at[l] = 0;
                state[l] = 0;
            }
            busy = 1;
            Py_ssize_t p = post_of[l];
            uint32_t base;
            int32_t feature;
            memcpy(&base, bases + 4 * (size_t)state[l], 4); /* native order, as the Python path casts them */
            uint64_t move = (uint64_t)base + datas[p][at[l]];
            if (move >= (uint64_t)self->n_moves) {
                goto corrupt;
            }
            memcpy(&state[l], moves + 4 * move, 4);
            if (state[l] >= (uint64_t)self->n_states) {
                goto corrupt;
            }
            memcpy(&feature, outputs + 4 * (size_t)state[l], 4);
            if (feature >= 0) {
                if (feature >= self->n_rows) {
                    goto corrupt;
                }
                hits[starts[p] + found[p]++] = feature;
            }
            if (++at[l] == sizes[p]) {
                post_of[l] = -1;
            }
        }
        if (!busy) {
            return 0;
        }
    }
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

/* Frees a scratch buffer unless it is the stack one. */
static void
release(void *buffer, void *on_stack)
{
    if (buffer != on_stack) {
        PyMem_Free(buffer);
    }
}

/* The posterior of one post from its features in order (`hits`) and its length in bytes. */
static PyObject *
score(const Scorer *self, const int32_t *hits, Py_ssize_t n_hits, Py_ssize_t size)
{
    Py_ssize_t n = self->n_classes;
    if (n_hits == 0) {
        return uniform(n); /* py3langid: all-zero scores, normalised */
    }
    /* Scratch space: a hash of features (at least twice as many slots as hits, a power of two), the
     * distinct features in the order they first occur, their counts; then each distinct count's
     * group (in the order the counts first occur, as Counter(visits.values()) has them), and each
     * group's sums. */
    int32_t stack_slots[2 * STACK_BYTES], stack_order[STACK_BYTES], stack_group_of[STACK_BYTES + 1];
    Py_ssize_t stack_counts[STACK_BYTES], stack_group_count[STACK_GROUPS], stack_group_total[STACK_GROUPS];
    uint64_t stack_sums[STACK_GROUPS * STACK_CLASSES];
    double stack_raw[STACK_CLASSES];
    int32_t *slots = stack_slots, *order = stack_order, *group_of = stack_group_of;
    Py_ssize_t *counts = stack_counts, *group_count = stack_group_count, *group_total = stack_group_total;
    uint64_t *sums = stack_sums;
    double *raw = stack_raw;
    PyObject *result = NULL;
    size_t capacity = 16;
    while (capacity < 2 * (size_t)n_hits) {
        capacity *= 2;
    }
    if (n_hits > STACK_BYTES) {
        slots = PyMem_Malloc(sizeof(int32_t) * capacity);
        order = PyMem_Malloc(sizeof(int32_t) * (size_t)n_hits);
        counts = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)n_hits);
        if (slots == NULL || order == NULL || counts == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    memset(slots, 0xff, sizeof(int32_t) * capacity);
    const unsigned char *table = self->table.buf;
    size_t mask = capacity - 1;
    Py_ssize_t distinct = 0, most = 0, groups = 0;
    for (Py_ssize_t i = 0; i < n_hits; i++) {
        int32_t feature = hits[i];
        size_t slot = ((uint32_t)feature * 2654435761u) & mask;
        while (slots[slot] >= 0 && order[slots[slot]] != feature) {
            slot = (slot + 1) & mask;
        }
        if (slots[slot] < 0) {
            slots[slot] = (int32_t)distinct;
            order[distinct] = feature;
            counts[distinct++] = 1;
#if defined(__GNUC__)
            __builtin_prefetch(table + (size_t)feature * (size_t)self->row_bytes); /* summed below */
#endif
        }
        else {
            counts[slots[slot]]++;
        }
    }
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
    release(slots, stack_slots);
    release(order, stack_order);
    release(counts, stack_counts);
    release(group_of, stack_group_of);
    release(sums, stack_sums);
    release(group_count, stack_group_count);
    release(group_total, stack_group_total);
    release(raw, stack_raw);
    return result;
}

static PyObject *
Scorer_posteriors(Scorer *self, PyObject *arg)
{
    if (self->prior == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Scorer not initialised");
        return NULL;
    }
    PyObject *posts = PySequence_Fast(arg, "posteriors() takes a sequence of the posts' bytes");
    if (posts == NULL) {
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(posts), total = 0;
    const unsigned char **datas = PyMem_Malloc(sizeof(char *) * (size_t)(n ? n : 1));
    Py_ssize_t *sizes = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n ? n : 1));
    Py_ssize_t *starts = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n ? n : 1));
    Py_ssize_t *found = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n ? n : 1));
    int32_t *hits = NULL;
    PyObject *result = NULL;
    if (datas == NULL || sizes == NULL || starts == NULL || found == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t p = 0; p < n; p++) {
        PyObject *post = PySequence_Fast_GET_ITEM(posts, p);
        if (!PyBytes_Check(post)) {
            PyErr_SetString(PyExc_TypeError, "posteriors() takes the posts' bytes");
            goto done;
        }
        datas[p] = (const unsigned char *)PyBytes_AS_STRING(post);
        sizes[p] = PyBytes_GET_SIZE(post);
        starts[p] = total;
        total += sizes[p];
    }
    hits = PyMem_Malloc(sizeof(int32_t) * (size_t)(total ? total : 1));
    if (hits == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (walk_many(self, datas, sizes, n, starts, hits, found) < 0) {
        goto done;
    }
    result = PyList_New(n);
    for (Py_ssize_t p = 0; result != NULL && p < n; p++) {
        PyObject *scores = score(self, hits + starts[p], found[p], sizes[p]);
        if (scores == NULL) {
            Py_CLEAR(result);
            break;
        }
        PyList_SET_ITEM(result, p, scores);
    }

done:
    Py_DECREF(posts);
    PyMem_Free(datas);
    PyMem_Free(sizes);
    PyMem_Free(starts);
    PyMem_Free(found);
    PyMem_Free(hits);
    return result;
}

static PyObject *
Scorer_posterior(Scorer *self, PyObject *arg)
{
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "posterior() takes the post's bytes");
        return NULL;
    }
    PyObject *one = PyTuple_Pack(1, arg);
    if (one == NULL) {
        return NULL;
    }
    PyObject *all = Scorer_posteriors(self, one);
    Py_DECREF(one);
    if (all == NULL) {
        return NULL;
    }
    PyObject *scores = PyList_GET_ITEM(all, 0);
    Py_INCREF(scores);
    Py_DECREF(all);
    return scores;
}

static PyMethodDef Scorer_methods[] = {
    {"posterior", (PyCFunction)Scorer_posterior, METH_O,
     "posterior(data: bytes) -> list[float]: the naive-Bayes posterior of a post's encoded bytes."},
    {"posteriors", (PyCFunction)Scorer_posteriors, METH_O,
     "posteriors(posts: Sequence[bytes]) -> list[list[float]]: `posterior` of each, walked together."},
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
