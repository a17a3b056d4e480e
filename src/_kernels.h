/* A layer's forward sums: the hot loop of a layer call (kernels.pxi). */
#ifndef MICROGRAD_KERNELS_H
#define MICROGRAD_KERNELS_H

#include "_arena.h"
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* The pre-activations of `count` (1 to 4) consecutive rows of rows (b_j, w_j0, ...; rows of
 * nin + 1) over the inputs' data x: out[j] = b_j + w_j0*x0 + w_j1*x1 + ..., each summed left
 * to right as upstream's Neuron does. Four sums at once so that their additions overlap (one
 * sum alone waits on each addition); each sum's order, and so its bits, is unchanged. */
static void mg_rows_dot(NodeC *const *rows, uint32_t nin, double *const *x, uint32_t count,
                        double *out) {
    const size_t st = (size_t)nin + 1;
    NodeC *const *r0 = rows, *const *r1 = rows + st, *const *r2 = rows + 2 * st,
          *const *r3 = rows + 3 * st;
    double a0, a1, a2, a3, xv;
    uint32_t i, j;
    if (count == 4) {
        a0 = MG_D(r0[0]); a1 = MG_D(r1[0]); a2 = MG_D(r2[0]); a3 = MG_D(r3[0]);
        for (i = 0; i < nin; i++) {
            if (i + MG_DOT_AHEAD < nin) {  /* weights are often cold (a training step's first
                                               touch): start their loads early */
                MG_PREFETCH_R(mg_dp(r0[1 + i + MG_DOT_AHEAD]));
                MG_PREFETCH_R(mg_dp(r1[1 + i + MG_DOT_AHEAD]));
                MG_PREFETCH_R(mg_dp(r2[1 + i + MG_DOT_AHEAD]));
                MG_PREFETCH_R(mg_dp(r3[1 + i + MG_DOT_AHEAD]));
            }
            xv = x[i][0];
            a0 = a0 + MG_D(r0[1 + i]) * xv;
            a1 = a1 + MG_D(r1[1 + i]) * xv;
            a2 = a2 + MG_D(r2[1 + i]) * xv;
            a3 = a3 + MG_D(r3[1 + i]) * xv;
        }
        out[0] = a0; out[1] = a1; out[2] = a2; out[3] = a3;
        return;
    }
    for (j = 0; j < count; j++) {
        r0 = rows + j * st;
        a0 = MG_D(r0[0]);
        for (i = 0; i < nin; i++)
            a0 = a0 + MG_D(r0[1 + i]) * x[i][0];
        out[j] = a0;
    }
}

/* mg_rows_dot for rows whose weights are consecutive nodes (MgRows.contig): row j's weights'
 * data are the array mg_dp(rows[j*(nin+1) + 1])[0 .. nin), so the loop reads a stream of
 * doubles. The same sums in the same order: the same bits. */
static void mg_rows_dot_contig(NodeC *const *rows, uint32_t nin, double *const *x, uint32_t count,
                               double *out) {
    const size_t st = (size_t)nin + 1;
    const double *w0, *w1, *w2, *w3;
    double a0, a1, a2, a3, xv;
    uint32_t i, j;
    if (nin == 0) {
        for (j = 0; j < count; j++) out[j] = MG_D(rows[j * st]);
        return;
    }
    if (count == 4) {
        w0 = mg_dp(rows[1]); w1 = mg_dp(rows[st + 1]); w2 = mg_dp(rows[2 * st + 1]);
        w3 = mg_dp(rows[3 * st + 1]);
        a0 = MG_D(rows[0]); a1 = MG_D(rows[st]); a2 = MG_D(rows[2 * st]); a3 = MG_D(rows[3 * st]);
        for (i = 0; i < nin; i++) {
            xv = x[i][0];
            a0 = a0 + w0[i] * xv;
            a1 = a1 + w1[i] * xv;
            a2 = a2 + w2[i] * xv;
            a3 = a3 + w3[i] * xv;
        }
        out[0] = a0; out[1] = a1; out[2] = a2; out[3] = a3;
        return;
    }
    for (j = 0; j < count; j++) {
        w0 = mg_dp(rows[j * st + 1]);
        a0 = MG_D(rows[j * st]);
        for (i = 0; i < nin; i++)
            a0 = a0 + w0[i] * x[i][0];
        out[j] = a0;
    }
}

/* mg_rows_dot_contig over dense inputs (MgCall.xdense: input i's data x[i]) for `count` (1 to
 * 8) consecutive rows: eight sums at once keep both of a core's adders busy (an addition waits
 * four cycles for the one before it in its sum); each sum's order, and so its bits, as before */
static void mg_rows_dot8_dense(NodeC *const *rows, uint32_t nin, const double *MG_RESTRICT x,
                               uint32_t count, double *out) {
    const size_t st = (size_t)nin + 1;
    const double *w[8];
    double a0, a1, a2, a3, a4, a5, a6, a7, xv;
    uint32_t i, j;
    for (j = 0; j < count; j++) {
        out[j] = MG_D(rows[j * st]);
        w[j] = nin ? mg_dp(rows[j * st + 1]) : NULL;
    }
    if (nin == 0) return;
    if (count == 8) {
        const double *MG_RESTRICT w0 = w[0], *MG_RESTRICT w1 = w[1], *MG_RESTRICT w2 = w[2],
                     *MG_RESTRICT w3 = w[3], *MG_RESTRICT w4 = w[4], *MG_RESTRICT w5 = w[5],
                     *MG_RESTRICT w6 = w[6], *MG_RESTRICT w7 = w[7];
        a0 = out[0]; a1 = out[1]; a2 = out[2]; a3 = out[3];
        a4 = out[4]; a5 = out[5]; a6 = out[6]; a7 = out[7];
        for (i = 0; i < nin; i++) {
            xv = x[i];
            a0 = a0 + w0[i] * xv;
            a1 = a1 + w1[i] * xv;
            a2 = a2 + w2[i] * xv;
            a3 = a3 + w3[i] * xv;
            a4 = a4 + w4[i] * xv;
            a5 = a5 + w5[i] * xv;
            a6 = a6 + w6[i] * xv;
            a7 = a7 + w7[i] * xv;
        }
        out[0] = a0; out[1] = a1; out[2] = a2; out[3] = a3;
        out[4] = a4; out[5] = a5; out[6] = a6; out[7] = a7;
        return;
    }
    for (j = 0; j + 4 <= count; j += 4) {
        const double *w0 = w[j], *w1 = w[j + 1], *w2 = w[j + 2], *w3 = w[j + 3];
        a0 = out[j]; a1 = out[j + 1]; a2 = out[j + 2]; a3 = out[j + 3];
        for (i = 0; i < nin; i++) {
            xv = x[i];
            a0 = a0 + w0[i] * xv;
            a1 = a1 + w1[i] * xv;
            a2 = a2 + w2[i] * xv;
            a3 = a3 + w3[i] * xv;
        }
        out[j] = a0; out[j + 1] = a1; out[j + 2] = a2; out[j + 3] = a3;
    }
    for (; j < count; j++) {
        const double *w0 = w[j];
        a0 = out[j];
        for (i = 0; i < nin; i++)
            a0 = a0 + w0[i] * x[i];
        out[j] = a0;
    }
}

/* The optimizers' parameters as runs of consecutive nodes (a layer's weights are one run a
 * row): run k is `len[k]` nodes from `start[k]`, whose data and grads are arrays (a run never
 * leaves its slab: the node after a slab's last record is not a record); the parameters in
 * order, run after run. */

typedef struct {
    NodeC *start;
    Py_ssize_t len;
} MgRun;

static void mg_runs_zero_grad(const MgRun *runs, Py_ssize_t nruns) {
    Py_ssize_t r, i;
    for (r = 0; r < nruns; r++) {
        double *g = mg_gp(runs[r].start);
        const Py_ssize_t m = runs[r].len;
        for (i = 0; i < m; i++) g[i] = 0.0;
    }
}

/* plain SGD: p -= lr * grad, as optim.pxi's general loop computes it */
MG_CLONES static void mg_runs_sgd(const MgRun *runs, Py_ssize_t nruns, double lr) {
    Py_ssize_t r, i;
    for (r = 0; r < nruns; r++) {
        double *d = mg_dp(runs[r].start), *g = d + MG_GSTEP;
        const Py_ssize_t m = runs[r].len;
        for (i = 0; i < m; i++) d[i] = d[i] - lr * g[i];
    }
}

/* Adam without weight decay, as optim.pxi's general loop computes it, run by run (m and v in
 * the parameters' order). Every operation is IEEE's, exact in each lane, so two parameters at
 * once (SSE2, on every x86-64) give the same bits as one at a time; the compiler would not pair
 * them itself, as sqrt may set errno. */
MG_CLONES static void mg_runs_adam(const MgRun *runs, Py_ssize_t nruns, double *MG_RESTRICT m,
                                   double *MG_RESTRICT v, double beta1, double beta2,
                                   double step, double bc2_sqrt, double eps) {
    const double c1 = 1.0 - beta1, c2 = 1.0 - beta2;
    Py_ssize_t r, i, k = 0;
#if defined(__SSE2__)
    const __m128d B1 = _mm_set1_pd(beta1), C1 = _mm_set1_pd(c1), B2 = _mm_set1_pd(beta2),
                  C2 = _mm_set1_pd(c2), ST = _mm_set1_pd(step), BS = _mm_set1_pd(bc2_sqrt),
                  EP = _mm_set1_pd(eps);
#endif
    for (r = 0; r < nruns; r++) {
        double *MG_RESTRICT d = mg_dp(runs[r].start);
        const double *MG_RESTRICT g = d + MG_GSTEP;
        const Py_ssize_t n = runs[r].len;
        double *MG_RESTRICT mr = m + k, *MG_RESTRICT vr = v + k;
        i = 0;
#if defined(__SSE2__)
        for (; i + 2 <= n; i += 2) {
            const __m128d gi = _mm_loadu_pd(g + i);
            const __m128d mi = _mm_add_pd(_mm_mul_pd(B1, _mm_loadu_pd(mr + i)), _mm_mul_pd(C1, gi));
            const __m128d vi = _mm_add_pd(_mm_mul_pd(B2, _mm_loadu_pd(vr + i)),
                                          _mm_mul_pd(C2, _mm_mul_pd(gi, gi)));
            const __m128d den = _mm_add_pd(_mm_div_pd(_mm_sqrt_pd(vi), BS), EP);
            _mm_storeu_pd(mr + i, mi);
            _mm_storeu_pd(vr + i, vi);
            _mm_storeu_pd(d + i, _mm_sub_pd(_mm_loadu_pd(d + i), _mm_mul_pd(ST, _mm_div_pd(mi, den))));
        }
#endif
        for (; i < n; i++) {
            const double gi = g[i];
            const double mi = beta1 * mr[i] + c1 * gi;
            const double vi = beta2 * vr[i] + c2 * (gi * gi);
            mr[i] = mi;
            vr[i] = vi;
            d[i] = d[i] - step * (mi / (sqrt(vi) / bc2_sqrt + eps));
        }
        k += n;
    }
}
#endif
