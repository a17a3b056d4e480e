/* The node arena's struct and the two hot loops of backward(): the topological order and the
 * reverse sweep. Everything else lives in _engine.pyx; this is C only where the loop is the
 * product (-ffp-contract=off keeps every a*b+c rounded twice, as Python does). */
#ifndef MICROGRAD_ARENA_H
#define MICROGRAD_ARENA_H

#include <Python.h>
#include <math.h>
#include <stdint.h>

enum {
    /* 0 children, then 1 or 2 inline (a, b), then an owned array of n children (u.kids) */
    OP_LEAF = 0, OP_ADD, OP_MUL, OP_ADDC, OP_MULC, OP_POWC, OP_POW,
    OP_RELU, OP_TANH, OP_EXP, OP_LOG, OP_SIGMOID,
    OP_DOT,     /* kids[0] + kids[1]*kids[2] + kids[3]*kids[4] + ... */
    OP_CUSTOM   /* a user-defined op: its Python _backward lives on the handle */
};

enum {
    F_HEAVY = 1,   /* the handle carries Python state (label, _op text, _backward) */
    F_PINNED = 2,  /* the node holds a strong reference to its handle */
    F_INTEXP = 4,  /* OP_POWC's exponent was an int: _op reads '**2', not '**2.0' */
    F_WLEAVES = 8  /* OP_DOT: every weight was a plain leaf when made, as of leaf generation b */
};

typedef struct NodeC NodeC;
struct NodeC {
    double data;
    double grad;
    union { double aux; void *kids; } u;   /* ADDC/MULC/POWC constant; DOT/CUSTOM children */
    union {
        struct { NodeC *a, *b; };           /* inline children; a links the free list */
        struct { NodeC *a_; double cgrad; };/* ADDC/MULC: the grad upstream's constant Value
                                               would hold (b is free: one child only) */
        NodeC *k2[2];
    };
    PyObject *handle;  /* borrowed: the live Value, or NULL; links the dead stack on release */
    uint32_t refcnt;   /* 1 for a live handle + 1 per parent link (+ short internal holds) */
    uint16_t epoch;    /* last backward() that visited this node (mod 2**16; reset on wrap) */
    uint8_t op;        /* the number of children follows from op; DOT/CUSTOM store it in u.kids */
    uint8_t flags;
};

/* 56 bytes a node: seven 8-byte words */
typedef char mg_node_is_56_bytes[sizeof(NodeC) == 56 ? 1 : -1];

static const uint8_t MG_ARITY[OP_CUSTOM + 1] = {
    0, 2, 2, 1, 1, 1, 2, 1, 1, 1, 1, 1, 0, 0  /* LEAF ADD MUL ADDC MULC POWC POW RELU..SIGMOID */
};

/* DOT and CUSTOM own an array [count, kid0, kid1, ...] in u.kids */
static inline NodeC **mg_kids_new(uint32_t count) {
    NodeC **arr = (NodeC **)PyMem_Malloc(((size_t)count + 1) * sizeof(NodeC *));
    if (arr) arr[0] = (NodeC *)(uintptr_t)count;
    return arr;
}

typedef struct { NodeC *node; uint32_t i; } FrameC;

static inline NodeC **mg_kids(NodeC *n) {
    return n->op >= OP_DOT ? (NodeC **)n->u.kids + 1 : n->k2;
}

static inline uint32_t mg_nkids(NodeC *n) {
    return n->op >= OP_DOT ? (uint32_t)(uintptr_t)((NodeC **)n->u.kids)[0] : MG_ARITY[n->op];
}

/* Post-order DFS from root, children in operand order, each node once (epoch marks); plain
 * leaves are skipped since they have no local rule. order must hold every live node.
 * Returns the count, -1 if the stack could not grow (no exception set), -2 on a signal
 * (exception set by PyErr_CheckSignals). */
static Py_ssize_t mg_topo(NodeC *root, uint16_t ep, NodeC **order,
                          FrameC **pstack, Py_ssize_t *pcap, Py_ssize_t check_every,
                          uintptr_t leafgen) {
    FrameC *stack = *pstack;
    Py_ssize_t cap = *pcap, sp = 0, count = 0, tick = 0;
    NodeC *n = root, **kids, *c;
    uint32_t k = 0, nk, step;
    root->epoch = ep;
    for (;;) {
        nk = mg_nkids(n);
        kids = mg_kids(n);
        /* a fused node whose weights are all still plain leaves: visit b and the inputs only
         * (kids are b, w0, x0, w1, x1, ...), without touching the weights' memory */
        step = (n->op == OP_DOT && (n->flags & F_WLEAVES) && (uintptr_t)n->b == leafgen) ? 2 : 1;
        for (; k < nk; k += step) {
            c = kids[k];
            if (c->epoch != ep && c->op != OP_LEAF) break;
        }
        if (k < nk) {  /* descend into c */
            if (sp == cap) {
                FrameC *p = (FrameC *)PyMem_RawRealloc(stack, (size_t)(2 * cap + 1024) * sizeof(FrameC));
                if (!p) { *pstack = stack; *pcap = cap; return -1; }
                stack = p; cap = 2 * cap + 1024;
            }
            c->epoch = ep;
            stack[sp].node = n; stack[sp].i = k + step; sp++;
            n = c; k = 0;
            continue;
        }
        order[count++] = n;
        tick += 1 + (Py_ssize_t)nk;  /* work, not nodes: a fused node of 10^4 children counts so */
        if (tick >= check_every) {
            tick = 0;
            if (PyErr_CheckSignals() < 0) { *pstack = stack; *pcap = cap; return -2; }
        }
        if (sp == 0) break;
        sp--; n = stack[sp].node; k = stack[sp].i;
    }
    *pstack = stack; *pcap = cap;
    return count;
}

static inline double mg_bpow(double x, double y) { return pow(x, y); }

static inline double mg_blog(double x, double out) {
    if (x > 0.0) return out * log(x);
    if (x == 0.0) return 0.0;
    return NAN;
}

/* The local chain rule of one built-in node (CUSTOM is the caller's: it calls Python). */
static inline void mg_local(NodeC *n) {
    double g = n->grad, k;
    NodeC *a = n->a, *b = n->b, **kids;
    uint32_t i, m;
    switch (n->op) {
    case OP_ADD: a->grad += g; b->grad += g; break;
    case OP_MUL: a->grad += b->data * g; b->grad += a->data * g; break;
    case OP_ADDC: a->grad += g; n->cgrad += g; break;
    case OP_MULC: a->grad += n->u.aux * g; n->cgrad += a->data * g; break;
    case OP_POWC: k = n->u.aux; a->grad += (k * mg_bpow(a->data, k - 1.0)) * g; break;
    case OP_POW:
        a->grad += (b->data * mg_bpow(a->data, b->data - 1.0)) * g;
        b->grad += mg_blog(a->data, n->data) * g;
        break;
    case OP_RELU: a->grad += n->data > 0.0 ? g : 0.0; break;
    case OP_TANH: a->grad += (1.0 - n->data * n->data) * g; break;
    case OP_EXP: a->grad += n->data * g; break;
    case OP_LOG: a->grad += (1.0 / a->data) * g; break;
    case OP_SIGMOID: a->grad += (n->data * (1.0 - n->data)) * g; break;
    case OP_DOT:
        kids = mg_kids(n);
        kids[0]->grad += g;
        m = (mg_nkids(n) - 1) / 2;
        for (i = 0; i < m; i++) {
            a = kids[1 + 2 * i];
            b = kids[2 + 2 * i];
            a->grad += b->data * g;
            b->grad += a->data * g;
        }
        break;
    default: break;
    }
}

/* Sweep order[hi-1] down to order[0]; stops at a CUSTOM node and returns its index (the caller
 * runs it and resumes below it), or -1 when done, or -2 on a signal (exception set). */
static Py_ssize_t mg_sweep(NodeC **order, Py_ssize_t hi, Py_ssize_t check_every) {
    Py_ssize_t i, tick = 0;
    for (i = hi - 1; i >= 0; i--) {
        NodeC *n = order[i];
        if (n->op == OP_CUSTOM) return i;
        mg_local(n);
        tick += 1 + (Py_ssize_t)mg_nkids(n);
        if (tick >= check_every) {
            tick = 0;
            if (PyErr_CheckSignals() < 0) return -2;
        }
    }
    return -1;
}

#endif
