/* The rules of micrograd.functional's fused list ops (softmax, log_softmax, rmsnorm): one group
 * (_arena.h's MgGroup) owned by a hidden head node, one output node per element. Included by
 * _backward.h, whose marks they use; functional.pxi makes the groups.
 *
 * Each rule sends the inputs what the composed scalar formula's nodes would (the formula of
 * micrograd.functional's docstrings, as Value's ops build it), operation for operation and in
 * the order a pass over those nodes would run them: the same bits, for every input, also when
 * one Value is several inputs. (The "0.0 +" are the grads of the formula's intermediate nodes,
 * which start at zero: they keep a -0.0 as those nodes would.) Only the outputs met in the pass
 * count, as only their parts of the formula would run. */
#ifndef MICROGRAD_FUSED_H
#define MICROGRAD_FUSED_H

/* output i's grad for the rule: deposited this pass (only < 0), or g_only for output `only`
 * (an output's own _backward called by hand); 0 when it does not take part */
#define MG_FGOT(G, i, only) ((only) < 0 ? (G)->got[i] : (uint32_t)(only) == (i))
#define MG_FG(G, i, only, g_only) ((only) < 0 ? (G)->g[i] : (g_only))

static void mg_fused_apply(MgGroup *G, long only, double g_only) {
    NodeC **x = G->x;
    const double *e = G->e;
    uint32_t m = G->m, i;
    double acc, c, tg, eg, gi;
    switch (G->kind) {
    case OP_SOFTMAX: {
        /* y_i = e_i * inv_i, inv_i = total ** -1, total = e_0 + 0.0 + e_1 + ..., e_i = exp(s_i),
         * s_i = x_i + -top: the y and inv nodes run first (i descending), then the sum's adds
         * (each e gets the total's grad), then e_i and s_i, i descending */
        const double total = G->k[0], inv = G->k[1];
        c = -1.0 * mg_bpow(total, -1.0 - 1.0);
        tg = 0.0;
        for (i = m; i-- > 0;)
            if (MG_FGOT(G, i, only))
                tg += c * (0.0 + e[i] * MG_FG(G, i, only, g_only));
        for (i = m; i-- > 0;) {
            eg = MG_FGOT(G, i, only) ? (0.0 + inv * MG_FG(G, i, only, g_only)) + tg : 0.0 + tg;
            MG_G(x[i]) += 0.0 + e[i] * eg;
        }
        return;
    }
    case OP_LOGSOFTMAX: {
        /* out_i = s_i + neg_i, neg_i = lse * -1.0, lse = log(sum), sum = e_0 + 0.0 + e_1 ...,
         * e_i = exp(s_i), s_i = x_i + -top */
        const double sum = G->k[0];
        acc = 0.0;  /* lse's grad */
        for (i = m; i-- > 0;)
            if (MG_FGOT(G, i, only))
                acc += -1.0 * (0.0 + MG_FG(G, i, only, g_only));
        tg = 0.0 + (1.0 / sum) * acc;  /* the sum's grad, which each e gets */
        eg = 0.0 + tg;
        for (i = m; i-- > 0;) {
            gi = MG_FGOT(G, i, only) ? 0.0 + MG_FG(G, i, only, g_only) : 0.0;
            MG_G(x[i]) += gi + e[i] * eg;
        }
        return;
    }
    case OP_RMSNORM: {
        /* out_i = x_i * scale, scale = t ** -0.5, t = ms + eps, ms = ss * (1/m),
         * ss = sq_0 + 0.0 + sq_1 + ..., sq_i = x_i * x_i: the outs first (i descending), then
         * scale, t, ms, the sum's adds, and sq_i (i descending; x_i gets both of its parts) */
        const double t = G->k[0], scale = G->k[1], invm = G->k[2];
        acc = 0.0;  /* scale's grad */
        for (i = m; i-- > 0;)
            if (MG_FGOT(G, i, only)) {
                gi = MG_FG(G, i, only, g_only);
                MG_G(x[i]) += scale * gi;
                acc += MG_D(x[i]) * gi;
            }
        tg = 0.0 + (-0.5 * mg_bpow(t, -0.5 - 1.0)) * acc;
        tg = 0.0 + tg;           /* ms's */
        tg = 0.0 + invm * tg;    /* ss's */
        eg = 0.0 + tg;           /* each sq's */
        for (i = m; i-- > 0;) {
            MG_G(x[i]) += MG_D(x[i]) * eg;
            MG_G(x[i]) += MG_D(x[i]) * eg;
        }
        return;
    }
    }
}

/* an output's rule: its grad is left for the head, which it marks */
MG_ALWAYS_INLINE void mg_rule_fout(NodeC *n, double g, MgScan *s, Py_ssize_t *pending) {
    MgGroup *G = MG_GROUP(n->a);
    G->g[n->v.idx] = g;
    G->got[n->v.idx] = 1;
    if (s)
        mg_mark(s, s->ep, n->a, pending);
}

/* the head's rule: what the outputs left, sent on to the inputs (then cleared) */
MG_ALWAYS_INLINE void mg_rule_fused(NodeC *n, MgScan *s, Py_ssize_t *pending) {
    MgGroup *G = MG_GROUP(n);
    uint32_t i;
    mg_fused_apply(G, -1, 0.0);
    for (i = 0; i < G->m; i++)
        G->got[i] = 0;
    if (s)
        for (i = 0; i < G->m; i++)
            mg_mark(s, s->ep, G->x[i], pending);
}

#endif
