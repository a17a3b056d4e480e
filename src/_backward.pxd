# backward()'s pass down the tape, defined in _backward.h.
from libc.stdint cimport uint16_t, uint32_t, uint64_t, uintptr_t

from _arena cimport NodeC, MgGroup


cdef extern from "_backward.h":
    ctypedef struct MgScan:
        Py_ssize_t pos       # next tape entry to look at
        Py_ssize_t pending   # marked nodes not yet met
        uint64_t pass_ "pass"  # this pass's number
        uintptr_t leafgen
        Py_ssize_t looked    # tape entries looked at
        Py_ssize_t met       # of them, nodes run or collected
        NodeC** order        # room for every live node: collected nodes, late leaves at the end
        Py_ssize_t cap, count, nlate
        uint16_t ep
        int collecting

    void mg_fused_apply(MgGroup* G, long only, double g_only)  # a fused group's rule (_fused.h)
    void mg_local(NodeC* n)   # one built-in node's local rule
    void mg_local_as(NodeC* n, double g, double nd)  # the rule of a record n (a copy) with grad g, data nd
    int mg_scan(MgScan* s, const uint32_t* tape, NodeC** slabs, Py_ssize_t budget)  # 1 when done
