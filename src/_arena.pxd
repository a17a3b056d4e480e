# The node arena's contract, defined in _arena.h: op codes, flags, the node struct, hot loops.
from cpython.object cimport PyObject
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uintptr_t


cdef extern from "_arena.h":
    enum:
        OP_LEAF, OP_ADD, OP_MUL, OP_ADDC, OP_MULC, OP_POWC, OP_POW
        OP_RELU, OP_TANH, OP_EXP, OP_LOG, OP_SIGMOID, OP_DOT, OP_CUSTOM
    enum:
        F_HEAVY, F_PINNED, F_INTEXP, F_WLEAVES

    ctypedef union AuxC:
        double aux       # the constant of ADDC / MULC / POWC
        void* kids       # DOT / CUSTOM: owned array [count, kid0, kid1, ...] (mg_kids_new)

    ctypedef struct NodeC:
        double data
        double grad
        AuxC u
        NodeC* a         # first child; next free node while on the free list
        NodeC* b         # second child
        double cgrad     # ADDC/MULC (in b's place): the grad of the constant, as upstream's Value
        PyObject* handle # borrowed: this node's live Value, or NULL; next dead node on release
        uint32_t refcnt  # 1 for a live handle + 1 per parent link (+ short internal holds)
        uint16_t epoch   # last backward() that visited this node (mod 2**16)
        uint8_t op       # the number of children follows from it (mg_nkids)
        uint8_t flags

    ctypedef struct FrameC:
        NodeC* node
        uint32_t i

    const uint8_t* MG_ARITY
    NodeC** mg_kids_new(uint32_t count)
    NodeC** mg_kids(NodeC* n)
    uint32_t mg_nkids(NodeC* n)
    Py_ssize_t mg_topo(NodeC* root, uint16_t ep, NodeC** order, FrameC** pstack,
                       Py_ssize_t* pcap, Py_ssize_t check_every, uintptr_t leafgen)
    void mg_local(NodeC* n)
    Py_ssize_t mg_sweep(NodeC** order, Py_ssize_t hi, Py_ssize_t check_every)
