/* The op table: every built-in op, once. The enum of op codes, the arity and _op text of each,
 * the names both engines list (micrograd._engine._OPS) and the local chain rules backward()
 * runs are all made from this one list, so an op is added here and nowhere else in C. */
#ifndef MICROGRAD_OPS_H
#define MICROGRAD_OPS_H

#include <math.h>
#include <stdint.h>

#define MG_NARY 255  /* children kept outside the node: DOT (its row and call), CUSTOM (an array) */

/* X(NAME, KIDS, TEXT, PUBLIC, RULE)
 *   NAME    the code is OP_NAME; the listed name is NAME in lower case
 *   KIDS    inline children: 0, 1 (a) or 2 (a, b); MG_NARY when they live elsewhere
 *   TEXT    the _op text (POWC appends its exponent)
 *   PUBLIC  1 if a user's graph shows it as an op of its own; 0 for leaves, user-defined ops
 *           and the constant forms (ADDC/MULC show as '+'/'*' with a leaf for the constant)
 *   RULE    the local chain rule: statements over n (the node's record), g (its grad), nd (its
 *           data), a and b (its children, whose data and grads are MG_D(a), MG_G(a)); DOT's
 *           and LOCAL's are calls, CUSTOM's is Python's (the caller runs it)
 * SOFTMAX, LOGSOFTMAX and RMSNORM are the outputs of micrograd.functional's fused list ops, FUSED
 * the hidden head of such a group (_arena.h's MgGroup, _fused.h's rules); PUBLIC 0, as the pure
 * engine builds the composed scalar nodes instead.
 * LOCAL is an op made as Value(data, children, local_grads): each child gets its local grad
 * times g (microgpt's Value); PUBLIC 0, as it is the user's op.
 * Codes from OP_DOT on have MG_NARY children: keep DOT and CUSTOM last. */
#define MG_OPS(X)                                                                             \
/*  NAME     KIDS     TEXT       PUBLIC                                                       \
 *  FWD                                        ERR                                            \
 *  RULE */                                                                                   \
  X(LEAF,    0,       "",        0,                                                           \
    0,                                         0,                                             \
    ;)                                                                                        \
  X(ADD,     2,       "+",       1,                                                           \
    0,                                         0,                                             \
    MG_G(a) += g; MG_G(b) += g;)                                                              \
  X(MUL,     2,       "*",       1,                                                           \
    0,                                         0,                                             \
    MG_G(a) += MG_D(b) * g; MG_G(b) += MG_D(a) * g;)                                          \
  X(ADDC,    1,       "+",       0,                                                           \
    0,                                         0,                                             \
    MG_G(a) += g; n->v.cgrad += g;)                                                           \
  X(MULC,    1,       "*",       0,                                                           \
    0,                                         0,                                             \
    MG_G(a) += n->u.aux * g; n->v.cgrad += MG_D(a) * g;)                                      \
  X(POWC,    1,       "**",      1,                                                           \
    0,                                         0,                                             \
    MG_G(a) += (n->u.aux * mg_bpow(MG_D(a), n->u.aux - 1.0)) * g;)                            \
  X(POW,     2,       "**",      1,                                                           \
    0,                                         0,                                             \
    MG_G(a) += (MG_D(b) * mg_bpow(MG_D(a), MG_D(b) - 1.0)) * g;                               \
    MG_G(b) += mg_blog(MG_D(a), nd) * g;)                                                     \
  X(RELU,    1,       "ReLU",    1,                                                           \
    (x < 0.0 ? 0.0 : x),                       0,                                             \
    MG_G(a) += nd > 0.0 ? g : 0.0;)                                                           \
  X(TANH,    1,       "tanh",    1,                                                           \
    tanh(x),                                   0,                                             \
    MG_G(a) += (1.0 - nd * nd) * g;)                                                          \
  X(EXP,     1,       "exp",     1,                                                           \
    exp(x),                                    (isinf(r) && isfinite(x) ? MG_RANGE : 0),      \
    MG_G(a) += nd * g;)                                                                       \
  X(LOG,     1,       "log",     1,                                                           \
    (x > 0.0 || isnan(x) ? log(x) : 0.0),      (x > 0.0 || isnan(x) ? 0 : MG_DOMAIN),         \
    MG_G(a) += (1.0 / MG_D(a)) * g;)                                                          \
  X(SIGMOID, 1,       "sigmoid", 1,                                                           \
    mg_sigmoid(x),                             0,                                             \
    MG_G(a) += (nd * (1.0 - nd)) * g;)                                                        \
  X(SQRT,    1,       "sqrt",    1,                                                           \
    (x >= 0.0 || isnan(x) ? sqrt(x) : 0.0),    (x >= 0.0 || isnan(x) ? 0 : MG_DOMAIN),        \
    MG_G(a) += (0.5 / nd) * g;)                                                               \
  X(DOT,     MG_NARY, "dot",     1,                                                           \
    0,                                         0,                                             \
    mg_rule_dot(n, g, s, pending);)                                                           \
  X(SOFTMAX, MG_NARY, "softmax", 0,                                                           \
    0,                                         0,                                             \
    mg_rule_fout(n, g, s, pending);)                                                          \
  X(LOGSOFTMAX, MG_NARY, "log_softmax", 0,                                                    \
    0,                                         0,                                             \
    mg_rule_fout(n, g, s, pending);)                                                          \
  X(RMSNORM, MG_NARY, "rmsnorm", 0,                                                           \
    0,                                         0,                                             \
    mg_rule_fout(n, g, s, pending);)                                                          \
  X(FUSED,   MG_NARY, "",        0,                                                           \
    0,                                         0,                                             \
    mg_rule_fused(n, s, pending);)                                                            \
  X(LOCAL,   MG_NARY, "",        0,                                                           \
    0,                                         0,                                             \
    mg_rule_local(n, g, s, pending);)                                                         \
  X(CUSTOM,  MG_NARY, "",        0,                                                           \
    0,                                         0,                                             \
    ;)

#define MG_X_CODE(name, kids, text, public, fwd, err, rule) OP_##name,
enum { MG_OPS(MG_X_CODE) OP_COUNT };
#undef MG_X_CODE

#define MG_X_KIDS(name, kids, text, public, fwd, err, rule) kids,
static const uint8_t MG_ARITY[256] = { MG_OPS(MG_X_KIDS) };
#undef MG_X_KIDS

#define MG_X_TEXT(name, kids, text, public, fwd, err, rule) text,
static const char *const MG_OP_TEXT[OP_COUNT] = { MG_OPS(MG_X_TEXT) };
#undef MG_X_TEXT

#define MG_X_NAME(name, kids, text, public, fwd, err, rule) #name,
static const char *const MG_OP_NAME[OP_COUNT] = { MG_OPS(MG_X_NAME) };
#undef MG_X_NAME

#define MG_X_PUBLIC(name, kids, text, public, fwd, err, rule) public,
static const uint8_t MG_OP_PUBLIC[OP_COUNT] = { MG_OPS(MG_X_PUBLIC) };
#undef MG_X_PUBLIC

enum { MG_RANGE = 1, MG_DOMAIN = 2 };  /* OverflowError("math range error"), ValueError(...) */

/* pow() as the library computes it, as Python's float ** does: the exponent is read at run time,
 * so a constant one cannot let the compiler rewrite the call (pow(x, -1.0) as 1.0 / x rounds
 * differently from glibc's pow for some x: 0x1.fffffffffffffp-1 gives 1 + 2**-52, not 1.0) */
static inline double mg_pow(double x, double y) {
    volatile double vy = y;
    return pow(x, vy);
}

/* 1 / (1 + e**-x) without overflow: exp of a non-positive number only */
static inline double mg_sigmoid(double x) {
    double e;
    if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
    e = exp(x);
    return e / (1.0 + e);
}

/* The value of one-child op `op` at x, into *out; 0, or MG_RANGE / MG_DOMAIN where Python's
 * math raises (ops with another arity: 0 and *out = 0). */
static inline int mg_forward1(uint8_t op, double x, double *out) {
    double r;
    switch (op) {
#define MG_X_FWD(name, kids, text, public, fwd, err, rule) \
    case OP_##name: r = (fwd); *out = r; return (err);
    MG_OPS(MG_X_FWD)
#undef MG_X_FWD
    }
    *out = 0.0;
    return 0;
}

#endif
