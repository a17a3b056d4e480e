# The node arena's contract: op codes, flags and the node struct (declarations only).
from cpython.object cimport PyObject
from libc.stdint cimport uint8_t, uint32_t


cdef enum:
    # op codes: the first group has 0 children, the next 1 or 2 inline (a, b),
    # the last group an owned array of n children (u.kids)
    OP_LEAF = 0
    OP_ADD = 1       # a + b
    OP_MUL = 2       # a * b
    OP_ADDC = 3      # a + u.aux (a constant that lives in the node)
    OP_MULC = 4      # a * u.aux
    OP_POWC = 5      # a ** u.aux
    OP_POW = 6       # a ** b
    OP_RELU = 7
    OP_TANH = 8
    OP_EXP = 9
    OP_LOG = 10
    OP_SIGMOID = 11
    OP_DOT = 12      # kids[0] + kids[1]*kids[2] + kids[3]*kids[4] + ...
    OP_CUSTOM = 13   # a user-defined op: its Python _backward lives on the handle

cdef enum:
    F_HEAVY = 1      # the handle carries Python state (label, _op text, _backward)
    F_PINNED = 2     # the node holds a strong reference to its handle (HEAVY and has parents)
    F_INTEXP = 4     # OP_POWC's exponent was an int: _op reads '**2', not '**2.0'


cdef union AuxC:
    double aux       # the constant of ADDC / MULC / POWC
    void* kids       # DOT / CUSTOM: owned array of n NodeC*


cdef struct NodeC:
    double data
    double grad
    AuxC u
    NodeC* a         # first child; next free node while on the free list
    NodeC* b         # second child
    PyObject* handle # borrowed: this node's live Value, or NULL; next dead node while released
    uint32_t refcnt  # 1 for a live handle + 1 per parent link (+ short internal holds)
    uint32_t epoch   # last backward() that visited this node
    uint32_t n       # number of children
    uint8_t op
    uint8_t flags

