# A layer's forward sums and the optimizers' plain loops, defined in _kernels.h.
from libc.stdint cimport uint32_t

from _arena cimport NodeC


cdef extern from "_kernels.h":
    # out[j] = b_j + w_j0*x0 + ... for count (1 to 4) consecutive rows of nin + 1 nodes, over
    # the inputs' data x (mg_dp of each)
    void mg_rows_dot(NodeC** rows, uint32_t nin, double** x, uint32_t count, double* out)
    # the same, for rows whose weights are consecutive nodes (MgRows.contig)
    void mg_rows_dot_contig(NodeC** rows, uint32_t nin, double** x, uint32_t count, double* out)
    void mg_rows_dot8_dense(NodeC** rows, uint32_t nin, double* x, uint32_t count, double* out)

    ctypedef struct MgRun:  # the optimizers' parameters as runs of consecutive nodes
        NodeC* start
        Py_ssize_t len
    void mg_runs_zero_grad(const MgRun* runs, Py_ssize_t nruns)
    void mg_runs_sgd(const MgRun* runs, Py_ssize_t nruns, double lr)
    void mg_runs_adam(const MgRun* runs, Py_ssize_t nruns, double* m, double* v, double beta1,
                      double beta2, double step, double bc2_sqrt, double eps)
