# A layer's forward sums, defined in _kernels.h.
from libc.stdint cimport uint32_t

from _arena cimport NodeC


cdef extern from "_kernels.h":
    # out[j] = b_j + w_j0*x0 + ... for count (1 to 4) consecutive rows of nin + 1 nodes
    void mg_rows_dot(NodeC** rows, uint32_t nin, NodeC** x, uint32_t count, double* out)
