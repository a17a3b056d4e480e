# The op table, defined in _ops.h: one X-macro row an op; these are what it generates.
from libc.stdint cimport uint8_t


cdef extern from "_ops.h":
    enum:
        MG_NARY          # children kept outside the node (DOT, CUSTOM)
    enum:
        OP_LEAF, OP_ADD, OP_MUL, OP_ADDC, OP_MULC, OP_POWC, OP_POW
        OP_RELU, OP_TANH, OP_EXP, OP_LOG, OP_SIGMOID, OP_SQRT, OP_DOT, OP_SOFTMAX, OP_LOGSOFTMAX, OP_RMSNORM, OP_FUSED
        OP_LOCAL, OP_CUSTOM
        OP_COUNT

    const uint8_t MG_ARITY[]           # inline children of each op, or MG_NARY
    const char* const MG_OP_TEXT[]     # its _op text
    const char* const MG_OP_NAME[]     # its name in the table (upper case)
    const uint8_t MG_OP_PUBLIC[]       # 1 if _OPS lists it

    enum:
        MG_RANGE, MG_DOMAIN  # what mg_forward1 reports: OverflowError, ValueError
    double mg_sigmoid(double x)
    double mg_pow(double x, double y)  # the library's pow, never rewritten for a constant y
    int mg_forward1(uint8_t op, double x, double* out)  # 0, MG_RANGE or MG_DOMAIN
