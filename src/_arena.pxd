# The node arena's contract, defined in _arena.h: op codes, flags, the node struct, hot loops.
from cpython.object cimport PyObject
from libc.stdint cimport uint8_t, uint32_t


cdef extern from "_arena.h":
    enum:
        OP_LEAF, OP_ADD, OP_MUL, OP_ADDC, OP_MULC, OP_POWC, OP_POW
        OP_RELU, OP_TANH, OP_EXP, OP_LOG, OP_SIGMOID, OP_DOT, OP_CUSTOM
    enum:
        F_HEAVY, F_PINNED, F_INTEXP

    ctypedef union AuxC:
        double aux       # the constant of ADDC / MULC / POWC
        void* kids       # DOT / CUSTOM: owned array of n NodeC*

    ctypedef struct NodeC:
        double data
        double grad
        AuxC u
        NodeC* a         # first child; next free node while on the free list
        NodeC* b         # second child
        PyObject* handle # borrowed: this node's live Value, or NULL; next dead node on release
        uint32_t refcnt  # 1 for a live handle + 1 per parent link (+ short internal holds)
        uint32_t epoch   # last backward() that visited this node
        uint32_t n       # number of children
        uint8_t op
        uint8_t flags

    ctypedef struct FrameC:
        NodeC* node
        uint32_t i

    Py_ssize_t mg_topo(NodeC* root, uint32_t ep, NodeC** order, FrameC** pstack,
                       Py_ssize_t* pcap, Py_ssize_t check_every)
    void mg_local(NodeC* n)
    Py_ssize_t mg_sweep(NodeC** order, Py_ssize_t hi, Py_ssize_t check_every)
