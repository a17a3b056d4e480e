# The node arena's contract, defined in _arena.h: op codes, flags, the node struct, hot loops.
from cpython.object cimport PyObject
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, uintptr_t


cdef extern from "_arena.h":
    enum:
        OP_LEAF, OP_ADD, OP_MUL, OP_ADDC, OP_MULC, OP_POWC, OP_POW
        OP_RELU, OP_TANH, OP_EXP, OP_LOG, OP_SIGMOID, OP_DOT, OP_CUSTOM
    enum:
        F_HEAVY, F_PINNED, F_INTEXP, F_WLEAVES, F_LATE
        MG_SLAB_SHIFT, MG_SLAB_NODES

    ctypedef union AuxC:
        double aux       # the constant of ADDC / MULC / POWC
        void* kids       # CUSTOM: owned array [count, kid0, kid1, ...] (mg_kids_new); DOT: its MgCall

    ctypedef struct NodeC:
        double data
        double grad
        AuxC u
        NodeC* a         # first child (DOT: its row)
        NodeC* b         # second child (DOT: the leaf generation of F_WLEAVES)
        double cgrad     # ADDC/MULC (in b's place): the grad of the constant, as upstream's Value
        PyObject* handle # borrowed: this node's live Value, or NULL; next dead node on release
        uint32_t refcnt  # 1 for a live handle + 1 per parent link (+ short internal holds)
        uint16_t epoch   # marked by the backward() of that number (mod 2**16), 0 once it ran
        uint8_t op       # the number of children follows from it (mg_nkids)
        uint8_t flags

    ctypedef struct MgRows:
        Py_ssize_t refcnt    # the Python object that packed it + each MgCall using it
        uint32_t nin, nout
        NodeC* nodes[1]      # row j: nodes[j*(nin+1)] = b_j, then w_j0 ... (each linked once)

    ctypedef struct MgCall:
        Py_ssize_t refcnt    # its dot nodes (+1 while it is being made)
        MgRows* rows         # one reference
        uint64_t pass_ "pass"  # the backward pass that last marked the inputs
        uint32_t nin
        NodeC* x[1]          # the inputs, each linked once

    ctypedef struct MgScan:
        Py_ssize_t pos       # next tape entry to look at
        Py_ssize_t pending   # marked nodes not yet met
        uint64_t pass_ "pass"  # this pass's number
        uintptr_t leafgen
        Py_ssize_t looked    # tape entries looked at
        NodeC** order        # room for every live node: collected nodes, late leaves at the end
        Py_ssize_t cap, count, nlate
        uint16_t ep
        int collecting

    unsigned MG_CTZ64(uint64_t x)         # the lowest set bit's index (x != 0)
    int mg_release_pages(void* p, size_t size)  # 1 if the OS took the pages back
    const uint8_t* MG_ARITY
    NodeC** mg_kids_new(uint32_t count)
    uint32_t mg_nkids(NodeC* n)
    NodeC* mg_kid(NodeC* n, uint32_t i)   # child i in operand order (b, w0, x0, ... for DOT)
    void mg_rows_dot(NodeC** rows, uint32_t nin, NodeC** x, uint32_t count, double* out)
    NodeC** MG_ROW(NodeC* n)
    MgCall* MG_CALL(NodeC* n)
    NodeC* MG_NODE(NodeC** slabs, uint32_t idx)
    void mg_local(NodeC* n)
    int mg_scan(MgScan* s, const uint32_t* tape, NodeC** slabs, Py_ssize_t budget)
