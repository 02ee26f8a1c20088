/*
 * Compiled kernels of the exact engines: the scalar loops NumPy cannot
 * vectorise without a pass over memory per operation.
 *
 * - nn_chain: the nearest-neighbour chain of the reducible engine;
 * - prim, kruskal: the single-linkage engine's minimum spanning tree and
 *   the merges along it in the greedy order;
 * - symmetrize / is_symmetric: the input pair matrix, (A + A^T) / 2 in one
 *   pass by square tiles, and the read-only check of an input to borrow.
 *
 * The nearest-neighbour chain on a square criterion matrix, in place (SPEC 6c).
 *
 * For a reducible criterion (single, average, the weighted energy distance)
 * the chain of nearest neighbours ends in a reciprocal pair, which the greedy
 * algorithm merges too (Murtagh 1983; Muellner 2011, whose fastcluster builds
 * its "ward" and "average" this way). This kernel is the CPU inner loop of
 * the reducible engine (see _reducible_chain.py): one row search per chain
 * step and one row (and column) update per merge, O(N^2) in all.
 *
 * Exact ties: the greedy order breaks them by the lowest pair of slots, the
 * chain cannot. A merge of a and b is certainly one of the greedy merges when
 * b is a's unique nearest neighbour and a is b's (by reducibility no other
 * merge ever brings a cluster closer than that to either). The kernel merges
 * only such pairs; at the first merge where a tie could matter it stops and
 * hands the clusters it has reached to the rounds of reciprocal nearest
 * neighbours, which follow the tie rule exactly.
 *
 * Matrix layout: W x W, C order, symmetric, +inf on the diagonal. Single and
 * the weighted energy hold the criterion itself (updated by Lance-Williams);
 * average holds the pair sums S, read as S / (n_a n_k). Arithmetic is done in
 * the matrix's dtype with the same operations, in the same order, as the
 * NumPy rounds (_reducible_numpy._np_lance_williams), so both engines compute
 * the same values from the same inputs.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

enum { METHOD_SINGLE = 0, METHOD_AVERAGE = 1, METHOD_ENERGY = 2 };
enum { DONE = 0, TIED = 1, STUCK = 2 };

/*
 * chain_<T>: runs the chain until one cluster is left (DONE), a merge is not
 * certain (TIED) or a row has no finite neighbour (STUCK). Writes the merges
 * it made (tree node ids, height) and leaves the matrix, sizes, node ids and
 * the alive mask describing the clusters reached. Returns the merge count.
 */
#define DEFINE_CHAIN(NAME, T, EPS)                                                  \
static Py_ssize_t NAME(T *D, Py_ssize_t w, T *size, int method, int64_t *node,      \
                       int64_t next_id, unsigned char *alive, int64_t *children,    \
                       double *heights, int *status, Py_ssize_t *work, double *inv) \
{                                                                                   \
    /* the quotient S / (n_a n_j) rounded in T is within 2 EPS of the true */       \
    /* one, the reciprocal product in double within 4 double eps */                 \
    const double SCREEN = 16.0 * (EPS);                                             \
    for (Py_ssize_t j = 0; j < w; j++) inv[j] = 1.0 / (double)size[j];              \
    /* work: 3 w entries: live slots (ascending), chain, chain tie flags */         \
    Py_ssize_t *live = work, *chain = work + w, *tie = work + 2 * w;                \
    Py_ssize_t n_live = 0, len = 0, n_merges = 0;                                   \
    const int sums = method == METHOD_AVERAGE;                                      \
    for (Py_ssize_t j = 0; j < w; j++)                                              \
        if (alive[j]) live[n_live++] = j;                                           \
    *status = DONE;                                                                 \
    while (n_live > 1) {                                                            \
        if (len == 0) chain[len++] = live[0];                                       \
        Py_ssize_t a = chain[len - 1], prev = len >= 2 ? chain[len - 2] : -1;       \
        const T *row = D + a * w;                                                   \
        const T n_a = size[a];                                                      \
        T best = 0;                                                                 \
        Py_ssize_t arg = -1;                                                        \
        int tied = 0;                                                               \
        if (sums) {  /* first minimum: lowest j */                                  \
            /* the exact quotient only where a product with the reciprocal */       \
            /* (a few ulps off) says it can reach the best: same result, */         \
            /* a division for a few entries instead of all */                       \
            const double ia = 1.0 / (double)n_a;                                    \
            double reach = 0.0;                                                     \
            for (Py_ssize_t t = 0; t < n_live; t++) {                               \
                Py_ssize_t j = live[t];                                             \
                if (j == a) continue;                                               \
                if (arg >= 0 && (double)row[j] * (ia * inv[j]) > reach) continue;   \
                T v = row[j] / (n_a * size[j]);                                     \
                if (arg < 0 || v < best) {                                          \
                    best = v; arg = j; tied = 0;                                    \
                    reach = (double)best + fabs((double)best) * SCREEN;             \
                }                                                                   \
                else if (v == best) tied = 1;                                       \
            }                                                                       \
        } else {                                                                    \
            for (Py_ssize_t t = 0; t < n_live; t++) {                               \
                Py_ssize_t j = live[t];                                             \
                if (j == a) continue;                                               \
                T v = row[j];                                                       \
                if (arg < 0 || v < best) { best = v; arg = j; tied = 0; }           \
                else if (v == best) tied = 1;                                       \
            }                                                                       \
        }                                                                           \
        if (!(best < (T)INFINITY)) { *status = STUCK; break; }                      \
        T v_prev = 0;                                                               \
        if (prev >= 0)                                                              \
            v_prev = sums ? row[prev] / (n_a * size[prev]) : row[prev];             \
        if (prev < 0 || v_prev != best) {  /* the chain grows (strictly closer) */  \
            tie[len - 1] = tied;                                                    \
            chain[len++] = arg;                                                     \
            continue;                                                               \
        }                                                                           \
        /* a and prev are reciprocal nearest neighbours */                          \
        if (tied || tie[len - 2]) { *status = TIED; break; }                        \
        Py_ssize_t lo = a < prev ? a : prev, hi = a < prev ? prev : a;              \
        T *r_lo = D + lo * w, *r_hi = D + hi * w;                                   \
        const T n_lo = size[lo], n_hi = size[hi], d_ab = r_lo[hi];                  \
        for (Py_ssize_t t = 0; t < n_live; t++) {                                   \
            Py_ssize_t k = live[t];                                                 \
            if (k == lo || k == hi) continue;                                       \
            T x = r_lo[k], y = r_hi[k], out;                                        \
            if (method == METHOD_SINGLE) out = x < y ? x : y;                       \
            else if (sums) out = x + y;                                             \
            else {                                                                  \
                const T n_k = size[k];                                              \
                out = x + y; out -= d_ab; out *= n_k;                               \
                out += n_lo * x; out += n_hi * y;                                   \
                out /= n_lo + n_hi + n_k;                                           \
            }                                                                       \
            r_lo[k] = out;                                                          \
            D[k * w + lo] = out;                                                    \
        }                                                                           \
        children[2 * n_merges] = node[lo];                                          \
        children[2 * n_merges + 1] = node[hi];                                      \
        heights[n_merges] = (double)best;                                           \
        node[lo] = next_id + n_merges;                                              \
        n_merges++;                                                                 \
        size[lo] = n_lo + n_hi;                                                     \
        inv[lo] = 1.0 / (double)size[lo];                                           \
        alive[hi] = 0;                                                              \
        Py_ssize_t p = 0;                                                           \
        while (live[p] != hi) p++;                                                  \
        memmove(live + p, live + p + 1, (size_t)(n_live - p - 1) * sizeof(*live));  \
        n_live--;                                                                   \
        len -= 2;                                                                   \
        /* the rest of the chain stays a chain; a link whose far end is now */      \
        /* as close to the new cluster loses its uniqueness */                      \
        for (Py_ssize_t i = 0; i + 1 < len; i++) {                                  \
            Py_ssize_t c = chain[i], nx = chain[i + 1];                             \
            const T *rc = D + c * w;                                                \
            T v_next = sums ? rc[nx] / (size[c] * size[nx]) : rc[nx];               \
            T v_new = sums ? rc[lo] / (size[c] * size[lo]) : rc[lo];                \
            if (v_new <= v_next) tie[i] = 1;                                        \
        }                                                                           \
    }                                                                               \
    return n_merges;                                                                \
}

DEFINE_CHAIN(chain_float, float, FLT_EPSILON)
DEFINE_CHAIN(chain_double, double, DBL_EPSILON)


/*
 * prim_<T>: Prim's algorithm over the symmetric W x W matrix S (read only),
 * exactly as _engine_mst._prim_numpy does it (the same working order, the
 * same first minimum), one fused pass per step: the update of the distances
 * to the tree and the search of the next minimum.
 */
#define DEFINE_PRIM(NAME, T)                                                        \
static void NAME(const T *S, Py_ssize_t k, int64_t *order, double *weight,          \
                 Py_ssize_t *rest, T *dist)                                         \
{                                                                                   \
    Py_ssize_t n = k - 1, p = 0;                                                    \
    for (Py_ssize_t q = 0; q < n; q++) {                                            \
        rest[q] = q + 1;                                                            \
        dist[q] = S[q + 1];                                                         \
        if (dist[q] < dist[p]) p = q;                                               \
    }                                                                               \
    order[0] = 0;                                                                   \
    weight[0] = 0.0;                                                                \
    for (Py_ssize_t t = 1; t < k; t++) {                                            \
        Py_ssize_t j = rest[p];                                                     \
        order[t] = j;                                                               \
        weight[t] = (double)dist[p];                                                \
        n--;                                                                        \
        rest[p] = rest[n];                                                          \
        dist[p] = dist[n];                                                          \
        const T *row = S + j * k;                                                   \
        p = 0;                                                                      \
        for (Py_ssize_t q = 0; q < n; q++) {                                        \
            T v = row[rest[q]];                                                     \
            if (v < dist[q]) dist[q] = v;                                           \
            if (dist[q] < dist[p]) p = q;                                           \
        }                                                                           \
    }                                                                               \
}

DEFINE_PRIM(prim_float, float)
DEFINE_PRIM(prim_double, double)

/*
 * symmetrize_<T>: out = (A + A^T) * 0.5 by square tiles (each transposed read
 * stays in cache), every pair read before it is written, so out may be A.
 * The values are those of _pair_matrix._symmetrize_ (an exactly symmetric A
 * is kept to the bit). Returns whether A was exactly symmetric.
 * is_symmetric_<T>: the same comparison, read only, stopping at the first
 * pair that differs.
 */
#define TILE 64
#define DEFINE_SYM(SYM, IS_SYM, T)                                                  \
static int SYM(const T *A, T *out, Py_ssize_t k)                                    \
{                                                                                   \
    int exact = 1;                                                                  \
    for (Py_ssize_t i0 = 0; i0 < k; i0 += TILE) {                                   \
        Py_ssize_t i1 = i0 + TILE < k ? i0 + TILE : k;                              \
        for (Py_ssize_t j0 = i0; j0 < k; j0 += TILE) {                              \
            Py_ssize_t j1 = j0 + TILE < k ? j0 + TILE : k;                          \
            for (Py_ssize_t i = i0; i < i1; i++) {                                  \
                for (Py_ssize_t j = (j0 > i ? j0 : i); j < j1; j++) {               \
                    T a = A[i * k + j], b = A[j * k + i];                           \
                    T v = (a + b) * (T)0.5;                                         \
                    exact &= a == b;                                                \
                    out[i * k + j] = v;                                             \
                    out[j * k + i] = v;                                             \
                }                                                                   \
            }                                                                       \
        }                                                                           \
    }                                                                               \
    return exact;                                                                   \
}                                                                                   \
static int IS_SYM(const T *A, Py_ssize_t k)                                         \
{                                                                                   \
    for (Py_ssize_t i0 = 0; i0 < k; i0 += TILE) {                                   \
        Py_ssize_t i1 = i0 + TILE < k ? i0 + TILE : k;                              \
        for (Py_ssize_t j0 = i0; j0 < k; j0 += TILE) {                              \
            Py_ssize_t j1 = j0 + TILE < k ? j0 + TILE : k;                          \
            int same = 1;                                                           \
            for (Py_ssize_t i = i0; i < i1; i++)                                    \
                for (Py_ssize_t j = (j0 > i ? j0 : i); j < j1; j++)                 \
                    same &= A[i * k + j] == A[j * k + i];                           \
            if (!same) return 0;                                                    \
        }                                                                           \
    }                                                                               \
    return 1;                                                                       \
}

DEFINE_SYM(symmetrize_float, is_symmetric_float, float)
DEFINE_SYM(symmetrize_double, is_symmetric_double, double)

/*
 * kruskal: the merges of _engine_mst._kruskal along the tree edges (a, b, w)
 * taken in ``order`` (ascending weight, stable): tied edges merge together,
 * in ascending (lo, hi) order of their roots, and the run gives up (returns
 * -1) when two tied edges share a cluster. Union-find roots are the smallest
 * slot of their group (_union_find). Stops after q_max merges or at the
 * first weight >= threshold.
 */
static int
pair_less(const void *x, const void *y)
{
    const int64_t *p = x, *q = y;
    if (p[0] != q[0]) return p[0] < q[0] ? -1 : 1;
    return (p[1] > q[1]) - (p[1] < q[1]);
}

static int64_t
find_root(int64_t *parent, int64_t x)
{
    while (parent[x] != x) {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    return x;
}

static Py_ssize_t
kruskal_run(const int64_t *a, const int64_t *b, const double *w, const int64_t *order,
            Py_ssize_t n_edges, Py_ssize_t k, Py_ssize_t q_max, double threshold,
            int64_t *node, int64_t next_id, int64_t *children, double *heights,
            int64_t *parent, int64_t *stamp, int64_t *pairs)
{
    for (Py_ssize_t i = 0; i < k; i++) { parent[i] = i; stamp[i] = -1; }
    Py_ssize_t t = 0, m = 0, group = 0;
    while (t < n_edges && m < q_max) {
        double h = w[order[t]];
        if (h >= threshold) break;
        Py_ssize_t end = t + 1;
        while (end < n_edges && w[order[end]] == h) end++;
        Py_ssize_t g = 0;
        for (Py_ssize_t e = t; e < end; e++, g++) {
            int64_t ra = find_root(parent, a[order[e]]), rb = find_root(parent, b[order[e]]);
            int64_t lo = ra < rb ? ra : rb, hi = ra < rb ? rb : ra;
            if (stamp[lo] == group || stamp[hi] == group || lo == hi) return -1;
            stamp[lo] = stamp[hi] = group;
            pairs[2 * g] = lo;
            pairs[2 * g + 1] = hi;
        }
        if (g > 1) qsort(pairs, (size_t)g, 2 * sizeof(int64_t), pair_less);
        for (Py_ssize_t p = 0; p < g && m < q_max; p++, m++) {
            int64_t lo = pairs[2 * p], hi = pairs[2 * p + 1];
            parent[hi] = lo;
            children[2 * m] = node[lo];
            children[2 * m + 1] = node[hi];
            heights[m] = h;
            node[lo] = next_id + m;
        }
        group++;
        t = end;
    }
    return m;
}

static int
get_buffer(PyObject *obj, Py_buffer *view, const char *name, int writable)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous%s buffer", name,
                     writable ? " writable" : "");
        return -1;
    }
    return 0;
}

static char
format_char(const Py_buffer *view)
{
    const char *f = view->format;
    if (f[0] == '<' || f[0] == '=' || f[0] == '@') f++;
    return f[0] != '\0' && f[1] == '\0' ? f[0] : '\0';
}

/* A square float32 / float64 matrix: its dtype code and size, or an error. */
static int
square_matrix(const Py_buffer *view, const char *name, char *fmt, Py_ssize_t *k)
{
    *fmt = format_char(view);
    *k = view->ndim == 2 ? view->shape[0] : -1;
    if ((*fmt != 'f' && *fmt != 'd') || *k < 0 || view->shape[1] != *k) {
        PyErr_Format(PyExc_ValueError, "%s must be a square float32 or float64 matrix",
                     name);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(nn_chain_doc,
"nn_chain(D, sizes, method, node, next_id, alive, children, heights)\n"
"--\n\n"
"Nearest-neighbour chain merges on the square criterion matrix ``D``, in place.\n\n"
"``D`` (W x W, float32 or float64), ``sizes`` (W, same dtype), ``node`` (W,\n"
"int64) and ``alive`` (W, bool) are updated; ``children`` (>= W - 1 x 2, int64)\n"
"and ``heights`` (>= W - 1, float64) receive the merges. ``method``: 0 single,\n"
"1 average (``D`` holds pair sums), 2 weighted energy. Returns\n"
"``(n_merges, status)``, status 0 done, 1 a tie (hand over), 2 no finite pair.");

static PyObject *
nn_chain(PyObject *self, PyObject *args)
{
    PyObject *o_d, *o_size, *o_node, *o_alive, *o_children, *o_heights;
    int method;
    long long next_id;
    if (!PyArg_ParseTuple(args, "OOiOLOOO", &o_d, &o_size, &method, &o_node, &next_id,
                          &o_alive, &o_children, &o_heights))
        return NULL;
    if (method < METHOD_SINGLE || method > METHOD_ENERGY) {
        PyErr_Format(PyExc_ValueError, "method must be 0, 1 or 2, got %d", method);
        return NULL;
    }
    Py_buffer b[6];
    PyObject *objs[6] = {o_d, o_size, o_node, o_alive, o_children, o_heights};
    const char *names[6] = {"D", "sizes", "node", "alive", "children", "heights"};
    int got = 0;
    PyObject *result = NULL;
    for (; got < 6; got++)
        if (get_buffer(objs[got], &b[got], names[got], 1) < 0) goto done;
    char fmt;
    Py_ssize_t w;
    if (square_matrix(&b[0], "D", &fmt, &w) < 0) goto done;
    Py_ssize_t item = fmt == 'f' ? 4 : 8;
    if (format_char(&b[1]) != fmt || b[1].len != w * item) {
        PyErr_SetString(PyExc_ValueError, "sizes must be a vector of D's length and dtype");
        goto done;
    }
    if (b[2].itemsize != 8 || b[2].len != w * 8 || b[3].itemsize != 1 || b[3].len != w) {
        PyErr_SetString(PyExc_ValueError, "node must be int64 and alive bool, of length W");
        goto done;
    }
    Py_ssize_t cap = w > 0 ? w - 1 : 0;
    if (b[4].itemsize != 8 || b[4].len < 2 * cap * 8 || b[5].itemsize != 8
            || b[5].len < cap * 8) {
        PyErr_SetString(PyExc_ValueError, "children / heights hold fewer than W - 1 merges");
        goto done;
    }
    Py_ssize_t *work = PyMem_RawMalloc((size_t)(3 * (w > 0 ? w : 1)) * sizeof(Py_ssize_t));
    double *inv = PyMem_RawMalloc((size_t)(w > 0 ? w : 1) * sizeof(double));
    if (work == NULL || inv == NULL) {
        PyMem_RawFree(work);
        PyMem_RawFree(inv);
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t n_merges;
    int status;
    Py_BEGIN_ALLOW_THREADS
    if (fmt == 'f')
        n_merges = chain_float((float *)b[0].buf, w, (float *)b[1].buf, method,
                               (int64_t *)b[2].buf, (int64_t)next_id,
                               (unsigned char *)b[3].buf, (int64_t *)b[4].buf,
                               (double *)b[5].buf, &status, work, inv);
    else
        n_merges = chain_double((double *)b[0].buf, w, (double *)b[1].buf, method,
                                (int64_t *)b[2].buf, (int64_t)next_id,
                                (unsigned char *)b[3].buf, (int64_t *)b[4].buf,
                                (double *)b[5].buf, &status, work, inv);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(work);
    PyMem_RawFree(inv);
    result = Py_BuildValue("ni", n_merges, status);
done:
    for (int i = 0; i < got; i++) PyBuffer_Release(&b[i]);
    return result;
}


PyDoc_STRVAR(prim_doc,
"prim(S, order, weight)\n"
"--\n\n"
"Prim's minimum spanning tree of the symmetric K x K matrix ``S`` (float32 or\n"
"float64, read only): ``order`` (K, int64) receives the clusters in the order\n"
"reached, ``weight`` (K, float64) the weight of the edge that reached each.");

static PyObject *
prim(PyObject *self, PyObject *args)
{
    PyObject *o_s, *o_order, *o_weight;
    if (!PyArg_ParseTuple(args, "OOO", &o_s, &o_order, &o_weight))
        return NULL;
    Py_buffer b[3];
    int got = 0;
    PyObject *result = NULL;
    if (get_buffer(o_s, &b[0], "S", 0) < 0) goto done;
    got = 1;
    if (get_buffer(o_order, &b[1], "order", 1) < 0) goto done;
    got = 2;
    if (get_buffer(o_weight, &b[2], "weight", 1) < 0) goto done;
    got = 3;
    char fmt;
    Py_ssize_t k;
    if (square_matrix(&b[0], "S", &fmt, &k) < 0) goto done;
    if (k < 1) {
        PyErr_SetString(PyExc_ValueError, "S must hold at least one cluster");
        goto done;
    }
    Py_ssize_t item = fmt == 'f' ? 4 : 8;
    if (b[1].itemsize != 8 || b[1].len != k * 8 || b[2].itemsize != 8
            || b[2].len != k * 8) {
        PyErr_SetString(PyExc_ValueError, "order (int64) and weight (float64) need K entries");
        goto done;
    }
    void *work = PyMem_RawMalloc((size_t)k * (sizeof(Py_ssize_t) + (size_t)item));
    if (work == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t *rest = work;
    void *dist = rest + k;
    Py_BEGIN_ALLOW_THREADS
    if (fmt == 'f')
        prim_float((const float *)b[0].buf, k, (int64_t *)b[1].buf, (double *)b[2].buf,
                   rest, (float *)dist);
    else
        prim_double((const double *)b[0].buf, k, (int64_t *)b[1].buf, (double *)b[2].buf,
                    rest, (double *)dist);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(work);
    Py_INCREF(Py_None);
    result = Py_None;
done:
    for (int i = 0; i < got; i++) PyBuffer_Release(&b[i]);
    return result;
}

PyDoc_STRVAR(symmetrize_doc,
"symmetrize(A, out)\n"
"--\n\n"
"``out = (A + A.T) * 0.5`` for the square ``A`` (``out`` may be ``A``, same\n"
"shape and dtype); returns whether ``A`` was exactly symmetric.");

static PyObject *
symmetrize(PyObject *self, PyObject *args)
{
    PyObject *o_a, *o_out;
    if (!PyArg_ParseTuple(args, "OO", &o_a, &o_out))
        return NULL;
    Py_buffer a, out;
    if (get_buffer(o_a, &a, "A", 0) < 0) return NULL;
    if (get_buffer(o_out, &out, "out", 1) < 0) { PyBuffer_Release(&a); return NULL; }
    PyObject *result = NULL;
    char fmt, fmt_out;
    Py_ssize_t k, k_out;
    if (square_matrix(&a, "A", &fmt, &k) < 0 || square_matrix(&out, "out", &fmt_out, &k_out) < 0)
        goto done;
    if (fmt != fmt_out || k != k_out) {
        PyErr_SetString(PyExc_ValueError, "A and out must have the same shape and dtype");
        goto done;
    }
    int exact;
    Py_BEGIN_ALLOW_THREADS
    if (fmt == 'f') exact = symmetrize_float((const float *)a.buf, (float *)out.buf, k);
    else exact = symmetrize_double((const double *)a.buf, (double *)out.buf, k);
    Py_END_ALLOW_THREADS
    result = PyBool_FromLong(exact);
done:
    PyBuffer_Release(&a);
    PyBuffer_Release(&out);
    return result;
}

PyDoc_STRVAR(is_symmetric_doc,
"is_symmetric(A)\n"
"--\n\n"
"Whether the square ``A`` equals its transpose exactly (read only).");

static PyObject *
is_symmetric(PyObject *self, PyObject *args)
{
    PyObject *o_a;
    if (!PyArg_ParseTuple(args, "O", &o_a))
        return NULL;
    Py_buffer a;
    if (get_buffer(o_a, &a, "A", 0) < 0) return NULL;
    PyObject *result = NULL;
    char fmt;
    Py_ssize_t k;
    if (square_matrix(&a, "A", &fmt, &k) == 0) {
        int same;
        Py_BEGIN_ALLOW_THREADS
        same = fmt == 'f' ? is_symmetric_float((const float *)a.buf, k)
                          : is_symmetric_double((const double *)a.buf, k);
        Py_END_ALLOW_THREADS
        result = PyBool_FromLong(same);
    }
    PyBuffer_Release(&a);
    return result;
}

PyDoc_STRVAR(kruskal_doc,
"kruskal(a, b, w, order, q_max, threshold, node, next_id, children, heights)\n"
"--\n\n"
"The greedy merges along the tree edges ``(a[e], b[e], w[e])`` (int64, int64,\n"
"float64; ``order`` their stable ascending order): ``node`` (K, int64) is\n"
"updated, ``children`` and ``heights`` receive the merges. Returns the merge\n"
"count, or -1 when tied edges share a cluster (the greedy rule may leave the tree).");

static PyObject *
kruskal(PyObject *self, PyObject *args)
{
    PyObject *obj[4], *o_node, *o_children, *o_heights;
    Py_ssize_t q_max;
    double threshold;
    long long next_id;
    if (!PyArg_ParseTuple(args, "OOOOndOLOO", &obj[0], &obj[1], &obj[2], &obj[3], &q_max,
                          &threshold, &o_node, &next_id, &o_children, &o_heights))
        return NULL;
    Py_buffer b[7];
    PyObject *objs[7] = {obj[0], obj[1], obj[2], obj[3], o_node, o_children, o_heights};
    const char *names[7] = {"a", "b", "w", "order", "node", "children", "heights"};
    int got = 0;
    PyObject *result = NULL;
    for (; got < 7; got++)
        if (get_buffer(objs[got], &b[got], names[got], got >= 4) < 0) goto done;
    Py_ssize_t n_edges = b[0].len / 8, k = b[4].len / 8;
    for (int i = 0; i < 7; i++)
        if (b[i].itemsize != 8) {
            PyErr_Format(PyExc_ValueError, "%s must hold 8-byte items", names[i]);
            goto done;
        }
    if (b[1].len != b[0].len || b[2].len != b[0].len || b[3].len != b[0].len
            || b[5].len < 2 * b[0].len || b[6].len < b[0].len) {
        PyErr_SetString(PyExc_ValueError, "a, b, w, order, children, heights: lengths differ");
        goto done;
    }
    const int64_t *pa = b[0].buf, *pb = b[1].buf, *po = b[3].buf;
    for (Py_ssize_t e = 0; e < n_edges; e++)
        if (pa[e] < 0 || pa[e] >= k || pb[e] < 0 || pb[e] >= k || po[e] < 0
                || po[e] >= n_edges) {
            PyErr_SetString(PyExc_ValueError, "an edge end or order entry is out of range");
            goto done;
        }
    int64_t *work = PyMem_RawMalloc((size_t)(2 * k + 2 * n_edges + 1) * sizeof(int64_t));
    if (work == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t m;
    Py_BEGIN_ALLOW_THREADS
    m = kruskal_run(pa, pb, (const double *)b[2].buf, po, n_edges, k, q_max, threshold,
                    (int64_t *)b[4].buf, (int64_t)next_id, (int64_t *)b[5].buf,
                    (double *)b[6].buf, work, work + k, work + 2 * k);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(work);
    result = PyLong_FromSsize_t(m);
done:
    for (int i = 0; i < got; i++) PyBuffer_Release(&b[i]);
    return result;
}

static PyMethodDef methods[] = {
    {"nn_chain", nn_chain, METH_VARARGS, nn_chain_doc},
    {"prim", prim, METH_VARARGS, prim_doc},
    {"kruskal", kruskal, METH_VARARGS, kruskal_doc},
    {"symmetrize", symmetrize, METH_VARARGS, symmetrize_doc},
    {"is_symmetric", is_symmetric, METH_VARARGS, is_symmetric_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_exact_kernels",
    "Compiled kernels of the exact engines (CPU): the nearest-neighbour chain, Prim, "
    "the symmetric input.",
    -1, methods,
};

PyMODINIT_FUNC
PyInit__exact_kernels(void)
{
    return PyModule_Create(&module);
}
