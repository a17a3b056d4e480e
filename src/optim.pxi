@cython.final
cdef class _Params:
    """A fixed list of parameters for the optimizer kernels: their nodes, held for its lifetime."""
    cdef NodeC** nodes
    cdef Py_ssize_t n
    cdef MgRun* runs       # the same nodes as runs of consecutive ones (a layer's row is one)
    cdef Py_ssize_t nruns
    cdef tuple values

    def __cinit__(self):
        self.nodes = NULL
        self.runs = NULL
        self.n = self.nruns = 0

    def __dealloc__(self):
        cdef Py_ssize_t i
        for i in range(self.n):
            node_decref(ARENA, self.nodes[i])
        PyMem_Free(self.nodes)
        PyMem_Free(self.runs)

    def __len__(self):
        return self.n

    def __iter__(self):
        return iter(self.values)

    def __reduce__(self):
        return (_pack, (list(self.values),))


def _pack(params):
    """The parameters, checked once, for the optimizer kernels (_zero_grad, _sgd_step, _adam_step)."""
    cdef _Params pk = _Params.__new__(_Params)
    cdef tuple vals = tuple(params)
    cdef Py_ssize_t i, k, m = len(vals)
    for p in vals:
        if not isinstance(p, Value):
            raise TypeError(f"parameters must be Values, not {type(p).__name__!r}")
        _node(<Value>p)
    pk.nodes = <NodeC**>PyMem_Malloc((m if m else 1) * sizeof(NodeC*))
    if pk.nodes == NULL:
        raise MemoryError()
    for i in range(m):
        pk.nodes[i] = _hold((<Value>vals[i]).c)
    pk.n = m
    for i in range(m):  # nodes never move: the runs stay right for the pack's lifetime
        if i == 0 or pk.nodes[i] != pk.nodes[i - 1] + 1:
            pk.nruns += 1
    pk.runs = <MgRun*>PyMem_Malloc((pk.nruns if pk.nruns else 1) * sizeof(MgRun))
    if pk.runs == NULL:
        raise MemoryError()
    k = -1
    for i in range(m):
        if i == 0 or pk.nodes[i] != pk.nodes[i - 1] + 1:
            k += 1
            pk.runs[k].start = pk.nodes[i]
            pk.runs[k].len = 0
        pk.runs[k].len += 1
    pk.values = vals
    return pk


cdef _Params _as_params(object params):
    if type(params) is _Params:
        return <_Params>params
    return <_Params>_pack(params)


def _zero_grad(params):
    """Set .grad = 0.0 on every Value of the sequence (or of a _pack)."""
    cdef _Params pk = _as_params(params)
    mg_runs_zero_grad(pk.runs, pk.nruns)


@cython.boundscheck(False)
@cython.wraparound(False)
def _sgd_step(params, double lr, double momentum, double weight_decay, double[::1] buf, bint started):
    """PyTorch's SGD: g = grad + wd*p; buf = g (first step) or momentum*buf + g; p -= lr*buf."""
    cdef _Params pk = _as_params(params)
    cdef Py_ssize_t i, m = pk.n
    cdef NodeC* p
    cdef double g
    if momentum != 0.0 and buf.shape[0] < m:
        raise ValueError(f"momentum buffer holds {buf.shape[0]} values for {m} parameters")
    if momentum == 0.0 and weight_decay == 0.0:  # plain SGD: the loop most training runs
        mg_runs_sgd(pk.runs, pk.nruns, lr)
        return
    for i in range(m):
        p = pk.nodes[i]
        g = mg_gp(p)[0]
        if weight_decay != 0.0:
            g = g + weight_decay * mg_dp(p)[0]
        if momentum != 0.0:
            if started:
                g = momentum * buf[i] + g
            buf[i] = g
        mg_dp(p)[0] = mg_dp(p)[0] - lr * g


@cython.boundscheck(False)
@cython.wraparound(False)
def _adam_step(params, double lr, double beta1, double beta2, double eps, double weight_decay,
               double[::1] m, double[::1] v, long t):
    """PyTorch's Adam (L2 weight decay added to the gradient), bias-corrected, step t >= 1."""
    cdef _Params pk = _as_params(params)
    cdef Py_ssize_t i, k = pk.n
    cdef NodeC* p
    cdef double g, denom
    cdef double bc1 = 1.0 - _fpow(beta1, <double>t)
    cdef double bc2 = 1.0 - _fpow(beta2, <double>t)
    cdef double step = lr / bc1
    cdef double bc2_sqrt = sqrt(bc2)
    if m.shape[0] < k or v.shape[0] < k:
        raise ValueError(f"Adam state holds {min(m.shape[0], v.shape[0])} values for {k} parameters")
    if weight_decay == 0.0:  # the loop below, run by run (the same bits)
        if k != 0:
            mg_runs_adam(pk.runs, pk.nruns, &m[0], &v[0], beta1, beta2, step, bc2_sqrt, eps)
        return
    for i in range(k):
        p = pk.nodes[i]
        g = mg_gp(p)[0]
        if weight_decay != 0.0:
            g = g + weight_decay * mg_dp(p)[0]
        m[i] = beta1 * m[i] + (1.0 - beta1) * g
        v[i] = beta2 * v[i] + (1.0 - beta2) * (g * g)
        denom = sqrt(v[i]) / bc2_sqrt + eps
        mg_dp(p)[0] = mg_dp(p)[0] - step * (m[i] / denom)


