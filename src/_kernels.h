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

#endif
