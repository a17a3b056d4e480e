/* The node arena's structs and the hot loops: backward()'s pass down the tape, the local rules,
 * and a layer's forward sums. Everything else lives in _engine.pyx; this is C only where the
 * loop is the product (-ffp-contract=off keeps every a*b+c rounded twice, as Python does). */
#ifndef MICROGRAD_ARENA_H
#define MICROGRAD_ARENA_H

#include <Python.h>
#include <math.h>
#include <stdint.h>

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
    /* 0 children, then 1 or 2 inline (a, b), then n children (DOT: its row and call; CUSTOM:
     * an owned array in u.kids) */
    OP_LEAF = 0, OP_ADD, OP_MUL, OP_ADDC, OP_MULC, OP_POWC, OP_POW,
    OP_RELU, OP_TANH, OP_EXP, OP_LOG, OP_SIGMOID,
    OP_DOT,     /* b + w0*x0 + w1*x1 + ...: one neuron of a layer call (MgCall, MgRows) */
    OP_CUSTOM   /* a user-defined op: its Python _backward lives on the handle */
};

enum {
    F_HEAVY = 1,   /* the handle carries Python state (label, _op text, _backward) */
    F_PINNED = 2,  /* the node holds a strong reference to its handle */
    F_INTEXP = 4,  /* OP_POWC's exponent was an int: _op reads '**2', not '**2.0' */
    F_WLEAVES = 8, /* OP_DOT: every weight was a plain leaf when packed, as of leaf generation b */
    F_LATE = 16    /* a leaf given a _backward: a user-defined op with no children, not on the
                      tape (made before its parents' rules run, it is run after all of them) */
};

/* The tape: every op node's arena index, in the order the nodes were made. A node's children
 * are always made before it, so the tape read backwards is a topological order. */
#define MG_SLAB_SHIFT 13
#define MG_SLAB_NODES (1 << MG_SLAB_SHIFT)
#define MG_NODE(slabs, idx) ((slabs)[(idx) >> MG_SLAB_SHIFT] + ((idx) & (MG_SLAB_NODES - 1)))

typedef struct NodeC NodeC;
struct NodeC {
    double data;
    double grad;
    union { double aux; void *kids; } u;   /* ADDC/MULC/POWC constant; DOT: its MgCall;
                                               CUSTOM: its children */
    union {
        struct { NodeC *a, *b; };           /* inline children */
        struct { NodeC *a_; double cgrad; };/* ADDC/MULC: the grad upstream's constant Value
                                               would hold (b is free: one child only) */
        NodeC *k2[2];
    };
    PyObject *handle;  /* borrowed: the live Value, or NULL; links the dead stack on release */
    uint32_t refcnt;   /* 1 for a live handle + 1 per parent link (+ short internal holds) */
    uint16_t epoch;    /* marked by the backward() of that number (mod 2**16), 0 once it ran */
    uint8_t op;        /* the number of children follows from op (and DOT's call, CUSTOM's array) */
    uint8_t flags;
};

/* 56 bytes a node: seven 8-byte words */
typedef char mg_node_is_56_bytes[sizeof(NodeC) == 56 ? 1 : -1];

static const uint8_t MG_ARITY[OP_CUSTOM + 1] = {
    0, 2, 2, 1, 1, 1, 2, 1, 1, 1, 1, 1, 0, 0  /* LEAF ADD MUL ADDC MULC POWC POW RELU..SIGMOID */
};

/* A layer's weights and biases, each linked once, shared by every call of the layer that
 * uses them: row j is nodes[j*(nin+1)] = b_j, then w_j0 ... w_j(nin-1). */
typedef struct {
    Py_ssize_t refcnt;    /* holders: the Python object that packed it, and each MgCall */
    uint32_t nin, nout;
    NodeC *nodes[1];      /* nout*(nin+1) of them */
} MgRows;

/* One call of a layer: its inputs, each linked once, shared by the call's nout dot nodes.
 * A dot node keeps u.kids = its call and a = its row (NodeC **, b_j first) in the rows. */
typedef struct {
    Py_ssize_t refcnt;    /* its dot nodes (+1 while the call is being made) */
    MgRows *rows;         /* one reference */
    uint64_t pass;        /* the backward pass that last marked the inputs */
    uint32_t nin;
    NodeC *x[1];          /* nin of them */
} MgCall;

/* The pre-activations of `count` (1 to 4) consecutive rows of rows (b_j, w_j0, ...; rows of
 * nin + 1): out[j] = b_j + w_j0*x0 + w_j1*x1 + ..., each summed left to right as upstream's
 * Neuron does. Four sums at once so that their additions overlap (one sum alone waits on
 * each addition); each sum's order, and so its bits, is unchanged. */
static void mg_rows_dot(NodeC *const *rows, uint32_t nin, NodeC *const *x, uint32_t count,
                        double *out) {
    const size_t st = (size_t)nin + 1;
    NodeC *const *r0 = rows, *const *r1 = rows + st, *const *r2 = rows + 2 * st,
          *const *r3 = rows + 3 * st;
    double a0, a1, a2, a3, xv;
    uint32_t i, j;
    if (count == 4) {
        a0 = r0[0]->data; a1 = r1[0]->data; a2 = r2[0]->data; a3 = r3[0]->data;
        for (i = 0; i < nin; i++) {
            if (i + MG_DOT_AHEAD < nin) {  /* weights are often cold (a training step's first
                                               touch): start their loads early */
                MG_PREFETCH_R(r0[1 + i + MG_DOT_AHEAD]);
                MG_PREFETCH_R(r1[1 + i + MG_DOT_AHEAD]);
                MG_PREFETCH_R(r2[1 + i + MG_DOT_AHEAD]);
                MG_PREFETCH_R(r3[1 + i + MG_DOT_AHEAD]);
            }
            xv = x[i]->data;
            a0 = a0 + r0[1 + i]->data * xv;
            a1 = a1 + r1[1 + i]->data * xv;
            a2 = a2 + r2[1 + i]->data * xv;
            a3 = a3 + r3[1 + i]->data * xv;
        }
        out[0] = a0; out[1] = a1; out[2] = a2; out[3] = a3;
        return;
    }
    for (j = 0; j < count; j++) {
        r0 = rows + j * st;
        a0 = r0[0]->data;
        for (i = 0; i < nin; i++)
            a0 = a0 + r0[1 + i]->data * x[i]->data;
        out[j] = a0;
    }
}

#define MG_ROW(n) ((NodeC **)(n)->a)
#define MG_CALL(n) ((MgCall *)(n)->u.kids)

/* CUSTOM owns an array [count, kid0, kid1, ...] in u.kids */
static inline NodeC **mg_kids_new(uint32_t count) {
    NodeC **arr = (NodeC **)PyMem_Malloc(((size_t)count + 1) * sizeof(NodeC *));
    if (arr) arr[0] = (NodeC *)(uintptr_t)count;
    return arr;
}

static inline uint32_t mg_nkids(NodeC *n) {
    if (n->op == OP_DOT) return 2 * MG_CALL(n)->nin + 1;
    return n->op == OP_CUSTOM ? (uint32_t)(uintptr_t)((NodeC **)n->u.kids)[0] : MG_ARITY[n->op];
}

/* child i in operand order; a dot node's are b, w0, x0, w1, x1, ... */
static inline NodeC *mg_kid(NodeC *n, uint32_t i) {
    if (n->op == OP_DOT) {
        if (i == 0) return MG_ROW(n)[0];
        return (i & 1) ? MG_ROW(n)[1 + (i - 1) / 2] : MG_CALL(n)->x[(i - 2) / 2];
    }
    return n->op == OP_CUSTOM ? ((NodeC **)n->u.kids)[1 + i] : n->k2[i];
}

static inline double mg_bpow(double x, double y) { return pow(x, y); }

static inline double mg_blog(double x, double out) {
    if (x > 0.0) return out * log(x);
    if (x == 0.0) return 0.0;
    return NAN;
}


/* backward() as one pass down the tape: the root is marked, and each marked node met applies
 * its local rule and marks its children; it ends when no marked node is left below. Nodes made
 * after the root, dead ones and stale entries (a slot freed and reused, whose newer entry sits
 * higher) are not marked and cost one look each. A processed node's mark is cleared, so a stale
 * entry below can never run it twice.
 *
 * A user-defined op (Python) must not run while the pass holds the tape, so from the first one
 * on, the pass only marks and collects nodes into order[0..count) for the caller to run; leaves
 * given a _backward (F_LATE) are collected at the far end of order (order[cap-1], order[cap-2]...)
 * and run last. The pass stops after about `budget` units of work (a node plus its children) so
 * the caller can check for Ctrl-C; it returns 1 when done. */
typedef struct {
    Py_ssize_t pos;       /* next tape entry to look at */
    Py_ssize_t pending;   /* marked nodes not yet met */
    uint64_t pass;        /* this pass's number (never wraps; a layer call's inputs are marked
                             once a pass: MgCall.pass) */
    uintptr_t leafgen;
    Py_ssize_t looked;    /* tape entries looked at (a statistic) */
    NodeC **order;        /* room for every live node */
    Py_ssize_t cap, count, nlate;
    uint16_t ep;
    int collecting;
} MgScan;

/* mark child c for the pass s (a plain leaf has no rule: it is never marked) */
MG_ALWAYS_INLINE void mg_mark(MgScan *s, uint16_t ep, NodeC *c, Py_ssize_t *pending) {
    if (c->epoch != ep && c->op != OP_LEAF) {
        c->epoch = ep;
        if (c->flags & F_LATE)
            s->order[s->cap - 1 - s->nlate++] = c;
        else
            (*pending)++;
    }
}

/* a dot node whose weights were all plain leaves when it was made, and still are (no leaf
 * anywhere has become a user-defined op since): its weights need no marks, so the pass does
 * not touch their memory for that */
MG_ALWAYS_INLINE int mg_weights_plain(NodeC *n, uintptr_t leafgen) {
    return (n->flags & F_WLEAVES) && (uintptr_t)n->b == leafgen;
}

/* the marks of a dot node's children, in operand order (b, w0, x0, w1, x1, ...) as the pure
 * engine makes them; the inputs are shared by the call's nodes, so only its first node met in
 * a pass marks them */
static void mg_mark_dot(MgScan *s, NodeC *n, Py_ssize_t *pending) {
    const uint16_t ep = s->ep;
    NodeC **row = MG_ROW(n), **xs = MG_CALL(n)->x;
    uint32_t i, m = MG_CALL(n)->nin;
    int inputs = MG_CALL(n)->pass != s->pass;
    MG_CALL(n)->pass = s->pass;
    mg_mark(s, ep, row[0], pending);
    if (mg_weights_plain(n, s->leafgen)) {
        if (inputs)
            for (i = 0; i < m; i++)
                mg_mark(s, ep, xs[i], pending);
        return;
    }
    for (i = 0; i < m; i++) {
        mg_mark(s, ep, row[1 + i], pending);
        if (inputs)
            mg_mark(s, ep, xs[i], pending);
    }
}

/* The local chain rule of one built-in node (CUSTOM is the caller's: it calls Python), and with
 * s != NULL the marks of its children for the pass s. Written once for both uses. */
MG_ALWAYS_INLINE void mg_rule(NodeC *n, MgScan *s, uint16_t ep, Py_ssize_t *pending) {
    double g = n->grad, k;
    NodeC *a = n->a, *b = n->b, **row, **xs;
    uint32_t i, m;
    switch (n->op) {
    case OP_ADD: a->grad += g; b->grad += g; goto two;
    case OP_MUL: a->grad += b->data * g; b->grad += a->data * g; goto two;
    case OP_ADDC: a->grad += g; n->cgrad += g; goto one;
    case OP_MULC: a->grad += n->u.aux * g; n->cgrad += a->data * g; goto one;
    case OP_POWC: k = n->u.aux; a->grad += (k * mg_bpow(a->data, k - 1.0)) * g; goto one;
    case OP_POW:
        a->grad += (b->data * mg_bpow(a->data, b->data - 1.0)) * g;
        b->grad += mg_blog(a->data, n->data) * g;
        goto two;
    case OP_RELU: a->grad += n->data > 0.0 ? g : 0.0; goto one;
    case OP_TANH: a->grad += (1.0 - n->data * n->data) * g; goto one;
    case OP_EXP: a->grad += n->data * g; goto one;
    case OP_LOG: a->grad += (1.0 / a->data) * g; goto one;
    case OP_SIGMOID: a->grad += (n->data * (1.0 - n->data)) * g; goto one;
    case OP_DOT:
        row = MG_ROW(n);
        xs = MG_CALL(n)->x;
        m = MG_CALL(n)->nin;
        row[0]->grad += g;
        for (i = 0; i < m; i++) {
            a = row[1 + i];
            b = xs[i];
            a->grad += b->data * g;
            b->grad += a->data * g;
        }
        if (s)
            mg_mark_dot(s, n, pending);
        return;
    default: return;
    }
two:
    if (s) { mg_mark(s, ep, a, pending); mg_mark(s, ep, b, pending); }
    return;
one:
    if (s) mg_mark(s, ep, a, pending);
}

static void mg_local(NodeC *n) { mg_rule(n, NULL, 0, NULL); }

/* the marks alone, for nodes whose rule the caller runs later */
static void mg_mark_kids(MgScan *s, NodeC *n, Py_ssize_t *pending) {
    const uint16_t ep = s->ep;
    uint32_t k, nk;
    if (n->op == OP_DOT) {
        mg_mark_dot(s, n, pending);
        return;
    }
    nk = mg_nkids(n);
    for (k = 0; k < nk; k++)
        mg_mark(s, ep, mg_kid(n, k), pending);
}

#define MG_AHEAD 16  /* entries looked up ahead: the nodes' loads start early (power of two) */

static int mg_scan(MgScan *s, const uint32_t *tape, NodeC *const *slabs, Py_ssize_t budget) {
    Py_ssize_t i = s->pos, pending = s->pending, work = 0, j;
    const uint16_t ep = s->ep;
    int collecting = s->collecting;
    NodeC *n, *ahead[MG_AHEAD];
    for (j = 0; j < MG_AHEAD && i - j >= 0; j++) {
        ahead[(i - j) & (MG_AHEAD - 1)] = MG_NODE(slabs, tape[i - j]);
        MG_PREFETCH_W(ahead[(i - j) & (MG_AHEAD - 1)]);
    }
    while (pending > 0 && i >= 0) {
        n = ahead[i & (MG_AHEAD - 1)];
        if (i >= MG_AHEAD) {
            NodeC *p = MG_NODE(slabs, tape[i - MG_AHEAD]);
            ahead[i & (MG_AHEAD - 1)] = p;
            MG_PREFETCH_W(p);
        }
        i--;
        if (n->epoch != ep || (n->flags & F_LATE))
            continue;
        n->epoch = 0;
        pending--;
        work++;
        if (n->op >= OP_DOT) {
            work += mg_nkids(n);
            if (n->op == OP_CUSTOM)
                collecting = 1;
        }
        if (collecting) {
            mg_mark_kids(s, n, &pending);
            s->order[s->count++] = n;
        } else {
            mg_rule(n, s, ep, &pending);
        }
        if (work >= budget)
            break;
    }
    s->collecting = collecting;
    s->looked += s->pos - i;
    s->pos = i;
    s->pending = pending;
    return pending == 0 || i < 0;
}

#endif
