# The node arena's data, defined in _arena.h: flags, the node, rows and calls, the state.
from cpython.object cimport PyObject
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, uintptr_t


cdef extern from "_arena.h":
    enum:
        F_HEAVY, F_PINNED, F_INTEXP, F_WLEAVES, F_LATE
        MG_SLAB_SHIFT, MG_SLAB_NODES, MG_GSTEP
    size_t MG_SLAB_BYTES                  # a slab: its records, then their data, then grads
    size_t MG_NODE_BYTES                  # a node's share: record + data + grad
    double* mg_dp(NodeC* n)               # where a node's data is (read and write as [0])
    double* mg_gp(NodeC* n)               # where its grad is
    NodeC* mg_slab_alloc()                # a slab's aligned memory, or NULL

    ctypedef struct NodeC

    ctypedef union NodeAuxC:
        double aux           # ADDC / MULC / POWC: the constant
        void* kids           # DOT: its MgCall; CUSTOM: an owned array [count, kid0, ...]

    ctypedef union NodeLinkC:
        NodeC* b             # ADD, MUL, POW: the second child
        double cgrad         # ADDC / MULC: the grad upstream's constant Value would hold
        uintptr_t leafgen    # DOT with F_WLEAVES: the leaf generation its weights were plain at
        uintptr_t idx        # a fused output: its place in its group

    ctypedef struct NodeC:  # a node's record; its data and grad are in its slab (mg_dp, mg_gp)
        NodeAuxC u
        NodeC* a             # the first child (DOT: its row)
        NodeLinkC v
        PyObject* handle     # borrowed: this node's live Value, or NULL; next dead node on release
        uint32_t refcnt      # 1 for a live handle + 1 per parent link (+ short internal holds)
        uint16_t epoch       # marked by the backward() of that number (mod 2**16), 0 once it ran
        uint8_t op           # the number of children follows from it (mg_nkids)
        uint8_t flags

    ctypedef struct MgRows:
        Py_ssize_t refcnt    # the Python object that packed it + each MgCall using it
        uint32_t nin, nout
        uint32_t contig      # how many rows have their weights in consecutive nodes
        uint32_t apart       # no node in two places (mg_rows_apart)
        void* spans          # with apart: the sorted spans of the nodes (freed with the rows)
        NodeC* lo
        NodeC* hi
        NodeC* nodes[1]      # row j: nodes[j*(nin+1)] = b_j, then w_j0 ... (each linked once)

    uint8_t* MG_ROWS_CONTIG(MgRows* r)  # a byte a row: 1 if its weights are consecutive
    size_t mg_rows_size(size_t nin, size_t nout)
    void mg_rows_contig(MgRows* r)     # sets contig, the row bytes and apart from the nodes
    bint mg_inputs_apart(MgRows* r, NodeC** x, size_t n)  # x distinct and none of r's nodes
    bint mg_inputs_dense(double** xd, size_t n)  # the inputs' data one array

    ctypedef struct MgCall:
        Py_ssize_t refcnt    # its dot nodes (+1 while it is being made)
        MgRows* rows         # one reference
        uint64_t pass_ "pass"  # the backward pass that last marked the inputs
        uint32_t nin
        uint32_t apart       # mg_inputs_apart: backward may run four rows at once
        uint32_t xdense      # the inputs are consecutive records: their data one array
        double** xd          # the inputs' data (mg_dp), after x in the same block
        NodeC* x[1]          # the inputs, each linked once
    size_t mg_call_size(size_t nin)     # the bytes of a call block for nin inputs

    ctypedef struct MgGroup:  # a fused list op's inputs and what its rule needs
        uint8_t kind         # OP_SOFTMAX, OP_LOGSOFTMAX or OP_RMSNORM
        uint32_t m
        double k[3]
        NodeC** x
        double* e
        double* g
        uint8_t* got

    ctypedef struct ArenaC:  # the engine's state; who owns what: _arena.h
        NodeC** slabs
        Py_ssize_t nslabs, cap_slabs
        uint64_t* freebits
        uint32_t* slab_nfree
        Py_ssize_t low_word
        uint8_t* slab_state
        double* slab_idle_since
        NodeC** by_addr
        uint32_t* by_addr_no
        NodeC* last_slab
        uint32_t last_no
        Py_ssize_t live
        Py_ssize_t limit
        NodeC* dead
        int draining
        uint32_t* tape
        Py_ssize_t tape_len, tape_cap
        Py_ssize_t live_ops
        Py_ssize_t tape_dead
        Py_ssize_t tape_waste
        Py_ssize_t tape_compactions, tape_looked, tape_swept
        int scanning
        NodeC** order
        Py_ssize_t order_cap
        int backward_depth
        uint16_t epoch
        uint64_t epochs_active[1024]
        uint64_t passes
        uintptr_t leafgen
        uint64_t reinit
        int grad_enabled

    ArenaC mg_arena          # the one instance
    ArenaC* ARENA "MG_ARENA"  # &mg_arena

    unsigned MG_CTZ64(uint64_t x)         # the lowest set bit's index (x != 0)
    int mg_release_pages(void* p, size_t size)  # 1 if the OS took the pages back
    NodeC** mg_kids_new(uint32_t count, int grads)  # grads: room for LOCAL's local grads
    bint MG_HAS_ARRAY(NodeC* n)           # CUSTOM or LOCAL: children in an owned array
    double* mg_local_grads(NodeC* n)      # LOCAL's local grads
    uint32_t mg_nkids(NodeC* n)
    NodeC* mg_kid(NodeC* n, uint32_t i)   # child i in operand order (b, w0, x0, ... for DOT)
    NodeC** MG_ROW(NodeC* n)
    MgCall* MG_CALL(NodeC* n)
    MgGroup* MG_GROUP(NodeC* n)
    bint MG_IS_FOUT(uint8_t op)
    NodeC* MG_NODE(NodeC** slabs, uint32_t idx)
