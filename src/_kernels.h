/* A layer's forward sums: the hot loop of a layer call (kernels.pxi). */
#ifndef MICROGRAD_KERNELS_H
#define MICROGRAD_KERNELS_H

#include "_arena.h"

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

/* mg_rows_dot for rows whose weights are consecutive nodes (MgRows.contig): row j's weights are
 * rows[j*(nin+1) + 1][0 .. nin), so no pointer is loaded per weight and the hardware sees a
 * stream. The same sums in the same order: the same bits. */
static void mg_rows_dot_contig(NodeC *const *rows, uint32_t nin, NodeC *const *x, uint32_t count,
                               double *out) {
    const size_t st = (size_t)nin + 1;
    const NodeC *w0, *w1, *w2, *w3;
    double a0, a1, a2, a3, xv;
    uint32_t i, j;
    if (nin == 0) {
        for (j = 0; j < count; j++) out[j] = rows[j * st]->data;
        return;
    }
    if (count == 4) {
        w0 = rows[1]; w1 = rows[st + 1]; w2 = rows[2 * st + 1]; w3 = rows[3 * st + 1];
        a0 = rows[0]->data; a1 = rows[st]->data; a2 = rows[2 * st]->data; a3 = rows[3 * st]->data;
        for (i = 0; i < nin; i++) {
            xv = x[i]->data;
            a0 = a0 + w0[i].data * xv;
            a1 = a1 + w1[i].data * xv;
            a2 = a2 + w2[i].data * xv;
            a3 = a3 + w3[i].data * xv;
        }
        out[0] = a0; out[1] = a1; out[2] = a2; out[3] = a3;
        return;
    }
    for (j = 0; j < count; j++) {
        w0 = rows[j * st + 1];
        a0 = rows[j * st]->data;
        for (i = 0; i < nin; i++)
            a0 = a0 + w0[i].data * x[i]->data;
        out[j] = a0;
    }
}

/* The optimizers' parameters as runs of consecutive nodes (a layer's weights are one run a
 * row): run k is `len[k]` nodes from `start[k]`; the parameters in order, run after run. */

typedef struct {
    NodeC *start;
    Py_ssize_t len;
} MgRun;

static void mg_runs_zero_grad(const MgRun *runs, Py_ssize_t nruns) {
    Py_ssize_t r, i;
    for (r = 0; r < nruns; r++) {
        NodeC *p = runs[r].start;
        const Py_ssize_t m = runs[r].len;
        MG_UNROLL4
        for (i = 0; i < m; i++) p[i].grad = 0.0;
    }
}

/* plain SGD: p -= lr * grad, as optim.pxi's general loop computes it */
static void mg_runs_sgd(const MgRun *runs, Py_ssize_t nruns, double lr) {
    Py_ssize_t r, i;
    for (r = 0; r < nruns; r++) {
        NodeC *p = runs[r].start;
        const Py_ssize_t m = runs[r].len;
        MG_UNROLL4
        for (i = 0; i < m; i++) p[i].data = p[i].data - lr * p[i].grad;
    }
}

#endif
