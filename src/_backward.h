/* backward()'s hot loop: one pass down the tape, the marks, and the local rules (made from the
 * op table in _ops.h). backward.pxi drives it and runs what it collects. */
#ifndef MICROGRAD_BACKWARD_H
#define MICROGRAD_BACKWARD_H

#include "_arena.h"

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
    Py_ssize_t looked;    /* tape entries looked at */
    Py_ssize_t met;       /* of them, nodes the pass ran or collected */
    NodeC **order;        /* room for every live node */
    Py_ssize_t cap, count, nlate;
    uint16_t ep;
    int collecting;
} MgScan;

/* mark child c for the pass s (a plain leaf has no rule: it is never marked) */
MG_ALWAYS_INLINE void mg_mark(MgScan *s, uint16_t ep, NodeC *c, Py_ssize_t *pending) {
    if (c->epoch != ep && c->op != OP_LEAF) {
        c->epoch = ep;
        if (c->flags & F_LATE) {
            c->refcnt++;  /* held while collected: the caller's Python code may drop it */
            if (c->flags & F_PINNED) Py_INCREF(c->handle);  /* (as node_link: _arena.h) */
            s->order[s->cap - 1 - s->nlate++] = c;
        }
        else
            (*pending)++;
    }
}

/* a dot node whose weights were all plain leaves when it was made, and still are (no leaf
 * anywhere has become a user-defined op since): its weights need no marks, so the pass does
 * not touch their memory for that */
MG_ALWAYS_INLINE int mg_weights_plain(NodeC *n, uintptr_t leafgen) {
    return (n->flags & F_WLEAVES) && n->v.leafgen == leafgen;
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

/* row j of r has its weights in consecutive nodes (MgRows.contig) */
MG_ALWAYS_INLINE int mg_row_contig(const MgRows *r, NodeC *const *row) {
    if (r->contig == r->nout) return 1;
    return MG_ROWS_CONTIG(r)[(size_t)(row - r->nodes) / ((size_t)r->nin + 1)];
}

/* one row's part over dense inputs, in an apart call (no node in two places, so the arrays
 * w, wg, x and xg never overlap where they are written): wg[i] += x[i] * g, xg[i] += w[i] * g,
 * each element's operations those of the loop below, so the compiler may run it two or four
 * elements at once with the same bits */
MG_CLONES static void mg_dot1_dense(const double *MG_RESTRICT w, double *MG_RESTRICT wg,
                          const double *MG_RESTRICT x, double *MG_RESTRICT xg, uint32_t m,
                          double g) {
    uint32_t i;
    for (i = 0; i < m; i++) {
        wg[i] += x[i] * g;
        xg[i] += w[i] * g;
    }
}

/* DOT's rule: b_j gets g, each w_i x_i's pair gets the other's data times g (the data are
 * read before the grads are written: the same bits when a weight is also an input) */
MG_ALWAYS_INLINE void mg_rule_dot(NodeC *n, double g, MgScan *s, Py_ssize_t *pending) {
    NodeC **row = MG_ROW(n);
    MgCall *c = MG_CALL(n);
    double *const *xd = c->xd;
    uint32_t i, m = c->nin;
    double ad, bd;
    MG_G(row[0]) += g;
    if (m != 0 && mg_row_contig(c->rows, row)) {  /* the weights' data and grads are */
        double *wd = mg_dp(row[1]), *wg = wd + MG_GSTEP;    /* two arrays */
        if (c->apart && c->xdense) {
            mg_dot1_dense(wd, wg, xd[0], xd[0] + MG_GSTEP, m, g);
        } else {
            MG_UNROLL4
            for (i = 0; i < m; i++) {
                ad = wd[i];
                bd = xd[i][0];
                wg[i] += bd * g;
                xd[i][MG_GSTEP] += ad * g;
            }
        }
    } else {
        for (i = 0; i < m; i++) {
            double *a = mg_dp(row[1 + i]);
            ad = a[0];
            bd = xd[i][0];
            a[MG_GSTEP] += bd * g;
            xd[i][MG_GSTEP] += ad * g;
        }
    }
    if (s)
        mg_mark_dot(s, n, pending);
}

/* mg_rule_dot4's loop when the four rows' weights are arrays w[k] (grads w[k] + MG_GSTEP) and
 * the inputs' data the array x (grads xg): every array apart where it is written, so the
 * compiler may run the loop several elements at once; each element's sums are unchanged */
MG_CLONES static void mg_dot4_dense(const double *MG_RESTRICT w0, const double *MG_RESTRICT w1,
                          const double *MG_RESTRICT w2, const double *MG_RESTRICT w3,
                          double *MG_RESTRICT v0, double *MG_RESTRICT v1,
                          double *MG_RESTRICT v2, double *MG_RESTRICT v3,
                          const double *MG_RESTRICT x, double *MG_RESTRICT xg, uint32_t m,
                          const double *g) {
    const double g0 = g[0], g1 = g[1], g2 = g[2], g3 = g[3];
    uint32_t i;
    for (i = 0; i < m; i++) {
        const double xv = x[i];
        double t = xg[i];
        v0[i] += xv * g0;
        t += w0[i] * g0;
        v1[i] += xv * g1;
        t += w1[i] * g1;
        v2[i] += xv * g2;
        t += w2[i] * g2;
        v3[i] += xv * g3;
        t += w3[i] * g3;
        xg[i] = t;
    }
}

/* Four dot nodes of one call, rows j, j-1, j-2, j-3 (n[0] .. n[3], consecutive on the tape),
 * whose call is apart (MgCall.apart: no node in two places, no input among the rows' nodes, no
 * input twice), with grads g[0] .. g[3]: what mg_rule_dot of each, in that order, would do, in
 * one pass over the inputs. Every weight and bias gets its one part as before; input i gets
 * row j's part, then row j-1's, ..., added in that order: the same bits. */
static void mg_rule_dot4(NodeC *const *n, const double *g) {
    NodeC **row = MG_ROW(n[0]);
    MgCall *c = MG_CALL(n[0]);
    double *const *xd = c->xd;
    const ptrdiff_t st = (ptrdiff_t)c->nin + 1;
    NodeC **r[4];
    uint32_t i, m = c->nin;
    const double g0 = g[0], g1 = g[1], g2 = g[2], g3 = g[3];
    double *w0, *w1, *w2, *w3, xv, t;
    int k, contig = 1;
    for (k = 0; k < 4; k++) {
        r[k] = row - k * st;
        MG_G(r[k][0]) += g[k];
    }
    if (m == 0) return;
    for (k = 0; k < 4; k++)
        contig = contig && mg_row_contig(c->rows, r[k]);
    if (!contig) {  /* (a row that crosses from one slab to the next, say) */
        for (i = 0; i < m; i++) {
            double *x = xd[i], *a;
            xv = x[0];
            t = x[MG_GSTEP];
            for (k = 0; k < 4; k++) {
                a = mg_dp(r[k][1 + i]);
                a[MG_GSTEP] += xv * g[k];
                t += a[0] * g[k];
            }
            x[MG_GSTEP] = t;
        }
        return;
    }
    w0 = mg_dp(r[0][1]);
    w1 = mg_dp(r[1][1]);
    w2 = mg_dp(r[2][1]);
    w3 = mg_dp(r[3][1]);
    if (c->xdense) {
        mg_dot4_dense(w0, w1, w2, w3, w0 + MG_GSTEP, w1 + MG_GSTEP, w2 + MG_GSTEP,
                      w3 + MG_GSTEP, xd[0], xd[0] + MG_GSTEP, m, g);
        return;
    }
    for (i = 0; i < m; i++) {
        double *x = xd[i];
        xv = x[0];
        t = x[MG_GSTEP];
        w0[MG_GSTEP + i] += xv * g0;
        t += w0[i] * g0;
        w1[MG_GSTEP + i] += xv * g1;
        t += w1[i] * g1;
        w2[MG_GSTEP + i] += xv * g2;
        t += w2[i] * g2;
        w3[MG_GSTEP + i] += xv * g3;
        t += w3[i] * g3;
        x[MG_GSTEP] = t;
    }
}

/* n (a dot node met at tape entry i, marked for this pass) and the three entries below it are
 * rows j .. j-3 of one apart call, all marked and run by this pass: 1, with them in q[1..3] */
MG_ALWAYS_INLINE int mg_dot4_ready(NodeC *n, NodeC *const *q, uint16_t ep) {
    MgCall *c = MG_CALL(n);
    NodeC **row = MG_ROW(n);
    const size_t st = (size_t)c->nin + 1;
    int k;
    if (!c->apart || row - c->rows->nodes < 3 * (ptrdiff_t)st) return 0;
    for (k = 1; k <= 3; k++) {
        NodeC *p = q[k];
        if (p->op != OP_DOT || p->epoch != ep || (p->flags & F_LATE) || MG_CALL(p) != c ||
            MG_ROW(p) != row - k * (ptrdiff_t)st)
            return 0;
    }
    return 1;
}

/* LOCAL's rule: child i gets local_grads[i] * g, as microgpt's Value does */
MG_ALWAYS_INLINE void mg_rule_local(NodeC *n, double g, MgScan *s, Py_ssize_t *pending) {
    NodeC **kids = (NodeC **)n->u.kids + 1;
    const double *lg = mg_local_grads(n);
    uint32_t i, m = mg_nkids(n);
    for (i = 0; i < m; i++)
        MG_G(kids[i]) += lg[i] * g;
    if (s)
        for (i = 0; i < m; i++)
            mg_mark(s, s->ep, kids[i], pending);
}

#include "_fused.h"

/* The local chain rule of one built-in node (CUSTOM is the caller's: it calls Python), and with
 * s != NULL the marks of its children for the pass s: the op table's RULE column, then the
 * marks its KIDS column asks for. g and nd are the node's grad and data (n may be a copy of a
 * record, whose own data and grad are not beside it: _builtin_rule). */
MG_ALWAYS_INLINE void mg_rule_at(NodeC *n, double g, double nd, MgScan *s, uint16_t ep,
                                 Py_ssize_t *pending) {
    NodeC *a = n->a, *b = n->v.b;
    (void)b;
    (void)nd;
    switch (n->op) {
#define MG_X_RULE(name, kids, text, public, fwd, err, rule)                                   \
    case OP_##name:                                                                           \
        { rule }                                                                              \
        if ((kids) == 2) goto two;                                                            \
        if ((kids) == 1) goto one;                                                            \
        return;
    MG_OPS(MG_X_RULE)
#undef MG_X_RULE
    default: return;
    }
two:
    if (s) { mg_mark(s, ep, a, pending); mg_mark(s, ep, b, pending); }
    return;
one:
    if (s) mg_mark(s, ep, a, pending);
}

MG_ALWAYS_INLINE void mg_rule(NodeC *n, MgScan *s, uint16_t ep, Py_ssize_t *pending) {
    const double *d = mg_dp(n);
    mg_rule_at(n, d[MG_GSTEP], d[0], s, ep, pending);
}

static void mg_local(NodeC *n) { mg_rule(n, NULL, 0, NULL); }

/* the rule of n, a copy of a record, as if it had grad g and data nd */
static void mg_local_as(NodeC *n, double g, double nd) { mg_rule_at(n, g, nd, NULL, 0, NULL); }

/* the marks alone, for nodes whose rule the caller runs later */
static void mg_mark_kids(MgScan *s, NodeC *n, Py_ssize_t *pending) {
    const uint16_t ep = s->ep;
    uint32_t k, nk;
    if (n->op == OP_DOT) {
        mg_mark_dot(s, n, pending);
        return;
    }
    if (MG_IS_FOUT(n->op)) {  /* its child is the head (the inputs it shows are the head's) */
        mg_mark(s, ep, n->a, pending);
        return;
    }
    nk = mg_nkids(n);
    for (k = 0; k < nk; k++)
        mg_mark(s, ep, mg_kid(n, k), pending);
}

#define MG_AHEAD 16  /* entries looked up ahead: the nodes' loads start early (power of two) */

static int mg_scan(MgScan *s, const uint32_t *tape, NodeC *const *slabs, Py_ssize_t budget) {
    Py_ssize_t i = s->pos, pending = s->pending, work = 0, met = 0, j;
    const uint16_t ep = s->ep;
    int collecting = s->collecting, k;
    NodeC *n, *ahead[MG_AHEAD], *q[4];
    double g[4];
    for (j = 0; j < MG_AHEAD && i - j >= 0; j++) {
        ahead[(i - j) & (MG_AHEAD - 1)] = MG_NODE(slabs, tape[i - j]);
        MG_PREFETCH_W(ahead[(i - j) & (MG_AHEAD - 1)]);
    }
/* the node at entry i from the ring, and the ring refilled from entry i - MG_AHEAD */
#define MG_NEXT(out)                                                                          \
    do {                                                                                      \
        (out) = ahead[i & (MG_AHEAD - 1)];                                                    \
        if (i >= MG_AHEAD) {                                                                  \
            NodeC *p_ = MG_NODE(slabs, tape[i - MG_AHEAD]);                                   \
            ahead[i & (MG_AHEAD - 1)] = p_;                                                   \
            MG_PREFETCH_W(p_);                                                                \
            MG_PREFETCH_R(mg_gp(p_));                                                         \
        }                                                                                     \
        i--;                                                                                  \
    } while (0)
    while (pending > 0 && i >= 0) {
        MG_NEXT(n);
        if (n->epoch != ep || (n->flags & F_LATE))
            continue;
        n->epoch = 0;
        pending--;
        work++;
        met++;
        if (n->op >= OP_DOT) {
            work += mg_nkids(n);
            if (n->op == OP_CUSTOM)
                collecting = 1;
        }
        if (collecting) {
            mg_mark_kids(s, n, &pending);
            n->refcnt++;  /* held while collected (released by the caller) */
            if (n->flags & F_PINNED) Py_INCREF(n->handle);
            s->order[s->count++] = n;
        } else if (n->op == OP_DOT && i >= 2) {
            /* a layer's dot nodes sit side by side on the tape (kernels.pxi makes a call's
             * dots before its activations): four rows at once when they may be */
            q[0] = n;
            for (k = 1; k <= 3; k++)
                q[k] = ahead[(i + 1 - k) & (MG_AHEAD - 1)];
            if (mg_dot4_ready(n, q, ep)) {
                for (k = 0; k < 4; k++)
                    g[k] = MG_G(q[k]);
                mg_rule_dot4(q, g);
                mg_mark_dot(s, n, &pending);
                for (k = 1; k <= 3; k++) {
                    MG_NEXT(n);  /* (n is q[k]) */
                    n->epoch = 0;
                    pending--;
                    work += 1 + mg_nkids(n);
                    met++;
                    mg_mark_dot(s, n, &pending);
                }
            } else {
                mg_rule(n, s, ep, &pending);
            }
        } else {
            mg_rule(n, s, ep, &pending);
        }
        if (work >= budget)
            break;
    }
#undef MG_NEXT
    s->collecting = collecting;
    s->looked += s->pos - i;
    s->met += met;
    s->pos = i;
    s->pending = pending;
    return pending == 0 || i < 0;
}

#endif
