/* The node arena's data: the node, a layer's rows and calls, and ArenaC, the engine's state,
 * with the rules of who owns what. The code that works on them is in arena.pxi and tape.pxi;
 * the hot loops are in _backward.h and _kernels.h (-ffp-contract=off keeps every a*b+c rounded
 * twice, as Python does). */
#ifndef MICROGRAD_ARENA_H
#define MICROGRAD_ARENA_H

#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_ops.h"

#if defined(__GNUC__) || defined(__clang__)
#define MG_ALWAYS_INLINE static inline __attribute__((always_inline))
#define MG_PREFETCH_W(p) __builtin_prefetch((p), 1)
#define MG_PREFETCH_R(p) __builtin_prefetch((p), 0)
#elif defined(_MSC_VER)
#define MG_ALWAYS_INLINE static __forceinline
#define MG_PREFETCH_W(p) ((void)0)
#define MG_PREFETCH_R(p) ((void)0)
#else
#define MG_ALWAYS_INLINE static inline
#define MG_PREFETCH_W(p) ((void)0)
#define MG_PREFETCH_R(p) ((void)0)
#endif
#define MG_DOT_AHEAD 8
#if defined(__GNUC__) || defined(__clang__) || defined(_MSC_VER)
#define MG_RESTRICT __restrict  /* (C99's restrict, also in C++ and MSVC) */
#else
#define MG_RESTRICT
#endif
/* a loop over dense double arrays, built twice by GCC on x86-64 glibc Linux: for AVX2 and for the
 * baseline x86-64, the one the CPU can run picked at load time (an ifunc). The bits are the
 * same: each element's operations and their order are the C's, and with -ffp-contract=off
 * no multiply is fused into an add (AVX2 alone has no FMA). MG_NO_CLONES turns it off. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && defined(__GLIBC__) && !defined(MG_NO_CLONES)  /* (musl has no ifuncs) */
#define MG_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define MG_CLONES
#endif
#if defined(__clang__)  /* a short loop over a row's weights: its counting costs as much as it */
#define MG_UNROLL4 _Pragma("unroll 4")
#elif defined(__GNUC__)
#define MG_UNROLL4 _Pragma("GCC unroll 4")
#else
#define MG_UNROLL4
#endif

#if defined(__linux__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#endif

/* Give the pages of a slab whose nodes are all free back to the OS, keeping the addresses:
 * reading them later is allowed and finds zeros or what was there, free nodes either way, and
 * writing them takes fresh pages. 1 if it was done (Linux and macOS; elsewhere the slab stays). */
static int mg_release_pages(void *p, size_t size) {
#if defined(__linux__) || defined(__APPLE__)
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)p + page - 1) & ~(page - 1);
    uintptr_t hi = ((uintptr_t)p + size) & ~(page - 1);
    if (page == 0 || hi <= lo) return 0;
#if defined(__linux__)
    return madvise((void *)lo, (size_t)(hi - lo), MADV_DONTNEED) == 0;
#else
    return madvise((void *)lo, (size_t)(hi - lo), MADV_FREE) == 0;
#endif
#else
    (void)p;
    (void)size;
    return 0;
#endif
}

/* the index of the lowest set bit of a non-zero word */
#if defined(__GNUC__) || defined(__clang__)
#define MG_CTZ64(x) ((unsigned)__builtin_ctzll(x))
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_ARM64))
#include <intrin.h>
static __forceinline unsigned mg_ctz64(unsigned __int64 x) {
    unsigned long i;
    _BitScanForward64(&i, x);
    return (unsigned)i;
}
#define MG_CTZ64(x) mg_ctz64(x)
#else
static inline unsigned mg_ctz64(uint64_t x) {
    unsigned i = 0;
    while (!(x & 1)) { x >>= 1; i++; }
    return i;
}
#define MG_CTZ64(x) mg_ctz64(x)
#endif

enum {
    F_HEAVY = 1,   /* the handle must outlive its users: Python state (label, _op text,
                      _backward, attributes) or shown by _prev/_children (identity) */
    F_PINNED = 2,  /* F_HEAVY, or a bridge over an F_HEAVY child (handles.pxi), and with its
                      handle: every count of the node but the handle's own is also a strong
                      reference to the handle (node_link_n, node_decref) */
    F_INTEXP = 4,  /* OP_POWC's exponent was an int: _op reads '**2', not '**2.0' */
    F_WLEAVES = 8, /* OP_DOT: every weight was a plain leaf when packed, as of v.leafgen */
    F_LATE = 16    /* a leaf given a _backward: a user-defined op with no children, not on the
                      tape (made before its parents' rules run, it is run after all of them) */
};

#define MG_SLAB_SHIFT 13
#define MG_SLAB_NODES (1 << MG_SLAB_SHIFT)
#define MG_NODE(slabs, idx) ((slabs)[(idx) >> MG_SLAB_SHIFT] + ((idx) & (MG_SLAB_NODES - 1)))

typedef struct NodeC NodeC;

/* the first word: an op's constant, or where an n-ary node keeps its children */
typedef union {
    double aux;    /* ADDC / MULC / POWC: the constant */
    void *kids;    /* DOT: its MgCall; CUSTOM, LOCAL: an owned array [count, kid0, kid1, ...] */
} NodeAuxC;

/* the third word: the second child, or what a one-child op keeps in its place */
typedef union {
    NodeC *b;           /* ADD, MUL, POW: the second child */
    double cgrad;       /* ADDC / MULC: the grad upstream's constant Value would hold */
    uintptr_t leafgen;  /* DOT with F_WLEAVES: the leaf generation its weights were plain at */
    uintptr_t idx;      /* SOFTMAX / LOGSOFTMAX / RMSNORM: which output of its group it is */
} NodeLinkC;

/* A node's record. Its data and grad are not in it: they live in two dense arrays of doubles in
 * the node's slab (mg_dp, mg_gp below), so the kernels' loops over a layer's weights, whose
 * nodes are consecutive, read and write plain arrays of doubles, eight to a cache line. */
struct NodeC {
    NodeAuxC u;
    NodeC *a;          /* the first child (DOT: its row, a NodeC ** with b_j first) */
    NodeLinkC v;
    PyObject *handle;  /* borrowed: the live Value, or NULL; links the dead stack on release */
    uint32_t refcnt;   /* 1 for a live handle + 1 per parent link (+ short internal holds) */
    uint16_t epoch;    /* marked by the backward() of that number (mod 2**16), 0 once it ran */
    uint8_t op;        /* the number of children follows from op (and DOT's call, CUSTOM's array) */
    uint8_t flags;
};

/* 40 bytes a record: five 8-byte words (mg_dp's arithmetic depends on it) */
typedef char mg_node_is_40_bytes[sizeof(NodeC) == 40 ? 1 : -1];

/* A slab: MG_SLAB_NODES records from its start, then their data (a double each, in record
 * order), a gap, then their grads. A slab starts at a multiple of MG_SLAB_ALIGN, so a record's
 * address gives its slab and its place: record k at byte 40k has its data at MG_DATA_OFF + 8k,
 * that is at 40k / 5 past MG_DATA_OFF, and its grad MG_GSTEP doubles further. The gap of half a
 * page between the two arrays keeps a weight's data and grad apart in the cache sets (a loop
 * reading one and writing the other at the same 4 KiB offset stalls on x86). */
#define MG_SLAB_ALIGN ((uintptr_t)1 << 19)
#define MG_DATA_OFF ((uintptr_t)MG_SLAB_NODES * sizeof(NodeC))
#define MG_GSTEP (MG_SLAB_NODES + 256)
#define MG_SLAB_BYTES ((size_t)MG_DATA_OFF + (size_t)(MG_GSTEP + MG_SLAB_NODES) * sizeof(double))
typedef char mg_slab_fits[MG_SLAB_BYTES <= MG_SLAB_ALIGN ? 1 : -1];
/* a node's share of its slab: its record, data and grad (the gap is 0.25 B a node more) */
#define MG_NODE_BYTES (sizeof(NodeC) + 2 * sizeof(double))

/* the address of a node's data, and of its grad (n must be a record in a slab) */
MG_ALWAYS_INLINE double *mg_dp(const NodeC *n) {
    uintptr_t p = (uintptr_t)n, off = p & (MG_SLAB_ALIGN - 1);
    return (double *)(p - off + MG_DATA_OFF + off / 5);
}
MG_ALWAYS_INLINE double *mg_gp(const NodeC *n) { return mg_dp(n) + MG_GSTEP; }
#define MG_D(n) (*mg_dp(n))
#define MG_G(n) (*mg_gp(n))

#if defined(_WIN32)
#include <malloc.h>
#endif

/* a slab's memory, MG_SLAB_ALIGN-aligned (NULL when there is none); slabs are never freed */
static inline NodeC *mg_slab_alloc(void) {
#if defined(_WIN32)
    return (NodeC *)_aligned_malloc(MG_SLAB_BYTES, MG_SLAB_ALIGN);
#else
    void *p = NULL;
    if (posix_memalign(&p, MG_SLAB_ALIGN, MG_SLAB_BYTES) != 0) return NULL;
    return (NodeC *)p;
#endif
}

/* A layer's weights and biases, each linked once, shared by every call of the layer that
 * uses them: row j is nodes[j*(nin+1)] = b_j, then w_j0 ... w_j(nin-1). */
typedef struct {
    Py_ssize_t refcnt;    /* holders: the Python object that packed it, and each MgCall */
    uint32_t nin, nout;
    uint32_t contig;      /* rows whose weights are consecutive in memory (w_j(i+1) is the node
                             after w_ji, as a Neuron's are when made in a row): their loops step
                             through the nodes instead of loading a pointer each. Set once packed
                             (nodes never move): MG_ROWS_CONTIG(r)[j] for row j, 0 or 1 */
    uint32_t apart;       /* no node in two places (no bias is a weight, no weight in two rows):
                             a rule may run several rows at once */
    uint32_t nspans;
    struct MgSpan_ *spans;  /* with apart: the rows' nodes as sorted spans (mg_rows_apart) */
    NodeC *lo, *hi;       /* with apart: the lowest and the highest of the nodes */
    NodeC *nodes[1];      /* nout*(nin+1) of them */
} MgRows;

/* the bytes after a row block's nodes: one a row, 1 if its weights are consecutive nodes */
#define MG_ROWS_CONTIG(r) ((uint8_t *)((r)->nodes + (size_t)(r)->nout * ((r)->nin + 1)))

/* a row block of nout rows of nin weights: its size in bytes, nodes and row flags */
static inline size_t mg_rows_size(size_t nin, size_t nout) {
    size_t count = nout * (nin + 1);
    return sizeof(MgRows) + (count ? count : 1) * sizeof(NodeC *) + nout;
}

/* a run of len consecutive records from p: a row's weights, or one bias (bias 1; several rows
 * may share one bias node) */
typedef struct MgSpan_ {
    NodeC *p;
    uint32_t len;
    uint32_t bias;
} MgSpan;

static int mg_ptr_cmp(const void *x, const void *y) {
    const NodeC *a = *(NodeC *const *)x, *b = *(NodeC *const *)y;
    return a < b ? -1 : a > b;
}

static int mg_span_cmp(const void *x, const void *y) {
    const NodeC *a = ((const MgSpan *)x)->p, *b = ((const MgSpan *)y)->p;
    return a < b ? -1 : a > b;
}

/* the span of sp[0 .. k) (sorted, apart) that holds node p, or NULL */
static const MgSpan *mg_span_find(const MgSpan *sp, size_t k, const NodeC *p) {
    size_t lo = 0, hi = k;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p < sp[mid].p) hi = mid;
        else if (p >= sp[mid].p + sp[mid].len) lo = mid + 1;
        else return sp + mid;
    }
    return NULL;
}

/* r.apart, spans, lo and hi (see MgRows): each row's weights as maximal runs of consecutive
 * records, and each bias, sorted by address; apart when no two overlap (but biases that are
 * one node: functional.linear's shared 0.0 leaf gets its rows' grads in the same order either
 * way). 0 when there is no memory for them. The spans are freed with r (rows_decref). */
static int mg_spans_sorted(const MgSpan *sp, size_t n) {
    size_t i;
    for (i = 1; i < n; i++)
        if (sp[i].p < sp[i - 1].p) return 0;
    return 1;
}

static void mg_rows_apart(MgRows *r) {
    const size_t st = (size_t)r->nin + 1, nout = r->nout, nin = r->nin;
    MgSpan *buf, *w, *b, *sp, next;
    size_t j, i, m, k = 0, nw = 0;
    r->apart = 0;
    r->nspans = 0;
    r->lo = r->hi = NULL;
    if (r->spans) { PyMem_Free(r->spans); r->spans = NULL; }
    if (nout == 0) return;
    for (j = 0; j < nout; j++) {  /* a span at each break in the weights */
        NodeC *const *row = r->nodes + j * st;
        nw += nin != 0;
        for (i = 1; i < nin; i++)
            nw += row[1 + i] != row[i] + 1;
    }
    if (nw + nout > UINT32_MAX) return;
    buf = (MgSpan *)PyMem_Malloc((nw + nout) * sizeof(MgSpan));
    sp = (MgSpan *)PyMem_Malloc((nw + nout) * sizeof(MgSpan));
    if (buf == NULL || sp == NULL) { PyMem_Free(buf); PyMem_Free(sp); return; }
    w = buf;        /* the weights' spans, row after row */
    b = buf + nw;   /* the biases, one each */
    for (j = 0; j < nout; j++) {
        NodeC *const *row = r->nodes + j * st;
        b[j].p = row[0]; b[j].len = 1; b[j].bias = 1;
        for (i = 0; i < nin; i++) {
            if (i == 0 || row[1 + i] != row[i] + 1) {
                w[k].p = row[1 + i]; w[k].len = 0; w[k].bias = 0; k++;
            }
            w[k - 1].len++;
        }
    }
    /* each part sorted (rows made one after another, and one shared bias, need no sort),
     * then merged: a bias seen twice is kept once, any other overlap means not apart. Weights
     * in many short runs out of order (a matrix's columns taken as rows, as attention's
     * weighted sums do, packed for one call) are left not apart: their sort would cost more
     * per call than running their rows one at a time in backward saves */
    if (!mg_spans_sorted(w, nw)) {
        if (nw > 2 * nout) { PyMem_Free(buf); PyMem_Free(sp); return; }
        qsort(w, nw, sizeof(MgSpan), mg_span_cmp);
    }
    if (!mg_spans_sorted(b, nout)) qsort(b, nout, sizeof(MgSpan), mg_span_cmp);
    for (i = m = k = 0; i < nw || m < nout; ) {
        next = (m == nout || (i < nw && w[i].p <= b[m].p)) ? w[i++] : b[m++];
        if (k != 0) {
            const MgSpan *prev = &sp[k - 1];
            if (next.p == prev->p && next.bias && prev->bias) continue;
            if (prev->p + prev->len > next.p) { PyMem_Free(buf); PyMem_Free(sp); return; }
        }
        sp[k++] = next;
    }
    PyMem_Free(buf);
    r->apart = 1;
    r->spans = sp;
    r->nspans = (uint32_t)k;
    r->lo = sp[0].p;
    r->hi = sp[k - 1].p + (sp[k - 1].len - 1);
}

/* set r's row flags from its nodes; contig = how many rows are consecutive; then apart */
static inline void mg_rows_contig(MgRows *r) {
    const size_t st = (size_t)r->nin + 1;
    uint8_t *flags = MG_ROWS_CONTIG(r);
    size_t j, i;
    r->contig = 0;
    for (j = 0; j < r->nout; j++) {
        NodeC *const *row = r->nodes + j * st;
        flags[j] = 1;
        for (i = 1; i < r->nin; i++)
            if (row[1 + i] != row[1] + i) { flags[j] = 0; break; }
        r->contig += flags[j];
    }
    mg_rows_apart(r);
}

/* 1 if the n nodes of x are distinct and none lies among r's (r->apart) nodes: then
 * a rule may run several of r's rows at once over x (mg_rule_dot4). Addresses that rise, as a
 * layer's outputs made one after another do, need no sort. */
/* the first of sp[k .. ns) (sorted, apart) that ends past p: ns if none does */
static inline size_t mg_span_after(const MgSpan *sp, size_t k, size_t ns, const NodeC *p) {
    size_t hi = ns;
    while (k < hi) {
        size_t mid = k + (hi - k) / 2;
        if (sp[mid].p + sp[mid].len <= p) k = mid + 1;
        else hi = mid;
    }
    return k;
}

static int mg_inputs_apart(const MgRows *r, NodeC *const *x, size_t n) {
    const MgSpan *sp = r->spans;
    const size_t ns = r->nspans;
    size_t i, k = 0;
    NodeC **t;
    int ok = 1;
    if (!r->apart) return 0;
    for (i = 1; i < n; i++)
        if (x[i] <= x[i - 1]) break;
    if (i >= n) {  /* rising (distinct): walk the spans beside them, a search at each gap */
        for (i = 0; i < n; i++) {
            if (x[i] < r->lo || x[i] > r->hi) continue;
            if (i == 0 || (k < ns && sp[k].p + sp[k].len <= x[i])) k = mg_span_after(sp, k, ns, x[i]);
            if (k < ns && sp[k].p <= x[i]) return 0;
        }
        return 1;
    }
    for (i = 0; i < n; i++)
        if (x[i] >= r->lo && x[i] <= r->hi && mg_span_find(sp, ns, x[i]) != NULL)
            return 0;
    t = (NodeC **)PyMem_Malloc(n * sizeof(NodeC *));
    if (t == NULL) return 0;
    memcpy(t, x, n * sizeof(NodeC *));
    qsort(t, n, sizeof(NodeC *), mg_ptr_cmp);
    for (i = 1; i < n; i++)
        if (t[i] == t[i - 1]) { ok = 0; break; }
    PyMem_Free(t);
    return ok;
}

/* 1 if the n inputs' data are one array (consecutive records of a slab, as a layer's outputs
 * made one after another are): xd[i] == xd[0] + i, and so their grads xd[0] + MG_GSTEP + i */
static inline int mg_inputs_dense(double *const *xd, size_t n) {
    size_t i;
    if (n == 0) return 0;
    for (i = 1; i < n; i++)
        if (xd[i] != xd[0] + i) return 0;
    return 1;
}

/* One call of a layer: its inputs, each linked once, shared by the call's nout dot nodes.
 * A dot node keeps u.kids = its call and a = its row (NodeC **, b_j first) in the rows. */
typedef struct {
    Py_ssize_t refcnt;    /* its dot nodes (+1 while the call is being made) */
    MgRows *rows;         /* one reference */
    uint64_t pass;        /* the backward pass that last marked the inputs */
    uint32_t nin;
    uint32_t apart;       /* mg_inputs_apart(rows, x, nin): the rule may run 4 rows at once */
    uint32_t xdense;      /* mg_inputs_dense(xd, nin): input i's data at xd[0] + i */
    double **xd;          /* the inputs' data (mg_dp), after x in the same block */
    NodeC *x[1];          /* nin of them */
} MgCall;

/* the bytes of a call block for nin inputs: its x, then its xd */
static inline size_t mg_call_size(size_t nin) {
    return sizeof(MgCall) + (nin ? nin : 1) * (sizeof(NodeC *) + sizeof(double *));
}

/* A fused list op (softmax, log_softmax, rmsnorm: functional.pxi, _fused.h): its inputs, each
 * linked once, and what its rule needs. It is owned by one hidden node, its head (op FUSED,
 * u.kids = the group, no handle, made just before the outputs, so a pass meets it after all of
 * them); each output (op SOFTMAX, ...) holds the head as its child a, and keeps its place in
 * v.idx. An output's rule only leaves its grad in g[idx]; the head's rule sends the inputs what
 * the composed scalar formula's nodes would, in their order. */
typedef struct {
    uint8_t kind;         /* OP_SOFTMAX, OP_LOGSOFTMAX or OP_RMSNORM */
    uint32_t m;           /* inputs (and outputs) */
    double k[3];          /* softmax: total, 1/total; log_softmax: the sum; rmsnorm: ms + eps,
                             the scale, 1/m */
    NodeC **x;            /* m inputs */
    double *e;            /* softmax, log_softmax: the m exps */
    double *g;            /* the outputs' grads left this pass */
    uint8_t *got;         /* g[i] was left this pass */
} MgGroup;

#define MG_GROUP(n) ((MgGroup *)(n)->u.kids)
#define MG_IS_FOUT(op) ((op) == OP_SOFTMAX || (op) == OP_LOGSOFTMAX || (op) == OP_RMSNORM)

#define MG_ROW(n) ((NodeC **)(n)->a)
#define MG_CALL(n) ((MgCall *)(n)->u.kids)

/* CUSTOM owns an array [count, kid0, kid1, ...] in u.kids; LOCAL the same followed by its
 * count local grads (doubles): mg_kids_new(count, 1) */
static inline NodeC **mg_kids_new(uint32_t count, int grads) {
    size_t words = 1 + (size_t)count * (grads ? 2 : 1);
    NodeC **arr = (NodeC **)PyMem_Malloc(words * sizeof(NodeC *));
    if (arr) arr[0] = (NodeC *)(uintptr_t)count;
    return arr;
}

#define MG_HAS_ARRAY(n) ((n)->op == OP_CUSTOM || (n)->op == OP_LOCAL)

static inline uint32_t mg_nkids(NodeC *n) {
    if (n->op == OP_DOT) return 2 * MG_CALL(n)->nin + 1;
    if (n->op == OP_FUSED) return MG_GROUP(n)->m;
    if (MG_IS_FOUT(n->op)) return MG_GROUP(n->a)->m;  /* shown with the group's inputs */
    return MG_HAS_ARRAY(n) ? (uint32_t)(uintptr_t)((NodeC **)n->u.kids)[0] : MG_ARITY[n->op];
}

/* LOCAL's local grads, one a child (also kept when it becomes CUSTOM: see the _backward setter) */
static inline double *mg_local_grads(NodeC *n) {
    return (double *)((NodeC **)n->u.kids + 1 + mg_nkids(n));
}

/* child i in operand order; a dot node's are b, w0, x0, w1, x1, ...; a fused output's and its
 * head's are the group's inputs (the output only links the head) */
static inline NodeC *mg_kid(NodeC *n, uint32_t i) {
    if (n->op == OP_FUSED) return MG_GROUP(n)->x[i];
    if (MG_IS_FOUT(n->op)) return MG_GROUP(n->a)->x[i];
    if (n->op == OP_DOT) {
        if (i == 0) return MG_ROW(n)[0];
        return (i & 1) ? MG_ROW(n)[1 + (i - 1) / 2] : MG_CALL(n)->x[(i - 2) / 2];
    }
    if (MG_HAS_ARRAY(n)) return ((NodeC **)n->u.kids)[1 + i];
    return i == 0 ? n->a : n->v.b;
}

/* The engine's state: one instance, mg_arena; every function that reads or writes it takes it
 * as its first argument (ArenaC *A), so a signature says what a call may touch.
 *
 * Who owns what:
 * - A node is owned by its count (refcnt): its live handle holds 1, each parent node 1 per
 *   link (a row or a call links each of its nodes once), and a C function making or walking
 *   nodes may hold 1 across any call that can run Python (node_hold / node_decref). At 0 the
 *   node goes on the dead stack (dead, linked through .handle) and the drain frees it and
 *   releases its children, in a loop: never recursion.
 * - A handle (Value) owns one count of its node; the node only borrows the handle (.handle)
 *   unless F_PINNED: a handle with Python state (F_HEAVY) is pinned, and then every other
 *   count of its node (each parent link, each hold) is also one Python reference to the handle,
 *   so the state outlives the handle's users, and the GC can be told which parent owns which
 *   reference (handles.pxi's _traverse_pins; each is reported by at most one owner).
 * - Rows (MgRows) and calls (MgCall) are owned by their refcnt: a packed _Rows object and each
 *   call hold a row block; each dot node holds its call; both are freed by their last holder.
 * - A fused group (MgGroup) is owned by its head node (freed in the head's release), which links
 *   each input once; the head is owned by its outputs' links (and a saved _LocalBackward's
 *   hold), never by a handle. A head's children, and its outputs' shown ones, are the inputs.
 * - slabs, the tables beside them, tape and order are owned by this struct (PyMem_Raw*); a
 *   slab whose nodes are all free may give its pages back to the OS (slab_state SLAB_GONE) but
 *   keeps its address, so node pointers into it stay valid to read.
 * - Generations: leafgen moves on whenever a leaf becomes a user-defined op (F_WLEAVES rows
 *   then no longer skip their weights' marks); reinit whenever Value.__init__ runs again on a
 *   live handle (packed rows compare it to see that a handle now means another node); passes
 *   counts backward passes (MgCall.pass marks a call's inputs once a pass); epoch numbers the
 *   node marks (mod 2**16; a pass claims its epoch in epochs_active, and a wrap clears every
 *   mark but the claimed ones).
 *
 * Re-entrancy: Python code can run in the middle of an engine call, and that code may call the
 * engine again (build, drop, re-initialise, backward, call the same layer) or free what the
 * call was using. The rules every engine function keeps:
 * 1. Convert every operand to a C double (or a node) before taking node pointers or reading
 *    packed rows; after a conversion that may have run Python, read self's node again.
 * 2. Hold a count on every node (node_link_n / _hold) and on every row or call block that is
 *    used across a call that can run Python, and release it only after the last use.
 * 3. Never keep a raw pointer into a buffer Python code can reallocate or free (a Python
 *    list's items, the tape, a _Rows' packing): copy what is needed (a tuple of the inputs, the
 *    rows' flags into locals) or hold the block.
 * 4. Release last: old children, old Python state (labels, rules, dicts) and temporary holds
 *    are dropped at the end of a call, as their release can run Python.
 * 5. A nested backward() (from a rule, a signal handler, a callback, another thread) works: it
 *    gets its own order buffer, claims its own epoch, leaves the tape uncompacted while a pass
 *    scans it, and the outer pass's held nodes stay held.
 * Where Python code can run, and what guards it:
 * - an operand's __float__/__index__ (numbers.pxi _real/_num): rule 1, in every op, setter,
 *   Value(...), layer call (kernels.pxi converts all inputs before _rows_check) and optimizer
 *   argument;
 * - a handle's allocation (_wrap: the GC may run finalizers, weakref callbacks, gc.callbacks):
 *   _wrap is an op's last step, a node nobody holds yet is freed if it fails; _kid_handles
 *   holds the node and each child; a layer call holds its rows and call block (rule 2);
 * - a release (node_decref of a pinned node, a handle's death, _drain, node_drop_kids): the
 *   drain is a loop that only pushes while it runs (draining); _release_handle clears the
 *   node's handle before its count goes; mg_dealloc untracks the dying handle first;
 * - a user-defined op's rule and a signal handler inside backward() (_local, PyErr_CheckSignals
 *   in _scan and the rule loop): rule 5; the nodes a pass collected are held;
 * - a gc.callbacks hook (_after_gc): gives memory back only when no pass is running;
 * - Value.__init__ run again (value.pxi): the node takes its new content in place (so packs,
 *   graphs and optimizers see it), a node may not become its own descendant (_refuse_cycle, a
 *   C-only walk), and the old children and state are released last (rule 4);
 * - assignments of label, _op, _backward and attributes: the old object is released after the
 *   node is updated.
 * tests/test_hardening_reentry.py, tests/test_hardening_internal.py and the fuzzer
 * (tests/test_hardening_fuzz.py, also under tests/sanitize.sh) hold each of these. */
typedef struct {
    /* slabs of MG_SLAB_NODES nodes; free nodes are set bits, MG_SLAB_NODES / 64 words a slab */
    NodeC **slabs;
    Py_ssize_t nslabs, cap_slabs;
    uint64_t *freebits;
    uint32_t *slab_nfree;      /* free nodes in each slab */
    Py_ssize_t low_word;       /* no free node in the words of freebits below this one (slab
                                  s's words are s * MG_SLAB_NODES / 64 on: word idx >> 6) */
    uint8_t *slab_state;       /* SLAB_BUSY, SLAB_IDLE or SLAB_GONE (arena.pxi) */
    double *slab_idle_since;   /* SLAB_IDLE: when a full collection first found it so */
    NodeC **by_addr;           /* the slabs sorted by address, and their numbers: a node's */
    uint32_t *by_addr_no;      /* arena index is its slab's number << 13 | its offset */
    NodeC *last_slab;          /* the slab of the last index lookup, and its number */
    uint32_t last_no;
    Py_ssize_t live;           /* nodes in use */
    Py_ssize_t limit;          /* test hook: most nodes the arena may hold (PY_SSIZE_T_MAX:
                                  no limit) */
    NodeC *dead;               /* nodes whose count reached zero, linked through .handle */
    int draining;              /* the drain is running: a release only pushes */
    /* the tape: every op node's arena index in the order the nodes were made; children are
     * made before their parents, so read backwards it is a topological order */
    uint32_t *tape;
    Py_ssize_t tape_len, tape_cap;
    Py_ssize_t live_ops;       /* live nodes with an entry (op nodes that are not F_LATE) */
    Py_ssize_t tape_dead;      /* such nodes released since the last compaction */
    Py_ssize_t tape_waste;     /* entries backward passes looked at in vain (dead, stale, or
                                  above the root) since the last compaction: its cost, paid */
    Py_ssize_t tape_compactions, tape_looked, tape_swept;  /* statistics */
    int scanning;              /* a backward pass holds the tape: it may grow, not be compacted */
    /* backward */
    NodeC **order;             /* its work buffer, reused between calls (room for every node) */
    Py_ssize_t order_cap;
    int backward_depth;        /* > 0 inside backward(); a nested one gets its own buffer */
    uint16_t epoch;
    uint64_t epochs_active[1024]; /* a bit per epoch a running pass marks with (several run at
                                     once: nested, or in threads); a wrap keeps their marks */
    uint64_t passes;
    /* generations, and the grad mode */
    uintptr_t leafgen;
    uint64_t reinit;
    int grad_enabled;          /* 0 inside no_grad(): ops make leaves */
} ArenaC;

static ArenaC mg_arena = {0};
#define MG_ARENA (&mg_arena)

#endif
