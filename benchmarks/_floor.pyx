# cython: language_level=3, boundscheck=False, wraparound=False
"""The floors: a float-only Value for scalar scripts, and an MLP's training step in plain C loops."""
cimport cython
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.math cimport exp as c_exp, log as c_log, pow as c_pow
from libc.string cimport memset


cdef inline double _num(object o) except? -1.0:
    if type(o) is Value:
        return (<Value>o).data
    return o


cdef inline Value _make(double x):
    cdef Value v = Value.__new__(Value)
    v.data = x
    return v


@cython.final
cdef class Value:
    """Same surface as a scalar autograd Value (data, grad, the operators), no graph at all."""
    cdef public double data
    cdef public double grad

    def __init__(self, data, children=(), local_grads=()):
        self.data = data

    def __add__(self, other):
        return _make(self.data + _num(other))

    def __radd__(self, other):  # other + self
        return _make(_num(other) + self.data)

    def __mul__(self, other):
        return _make(self.data * _num(other))

    def __rmul__(self, other):  # other * self
        return _make(_num(other) * self.data)

    def __sub__(self, other):
        return _make(self.data - _num(other))

    def __rsub__(self, other):  # other - self
        return _make(_num(other) - self.data)

    def __truediv__(self, other):
        return _make(self.data / _num(other))

    def __rtruediv__(self, other):  # other / self
        return _make(_num(other) / self.data)

    def __neg__(self):
        return _make(-self.data)

    def __pow__(self, k, mod):
        return _make(self.data ** <double>k)

    def exp(self):
        return _make(c_exp(self.data))

    def log(self):
        return _make(c_log(self.data))

    def relu(self):
        return _make(self.data if self.data > 0 else 0.0)

    def backward(self):
        pass


@cython.final
cdef class MLPStep:
    """An MLP's per-sample SGD step as C arithmetic alone: dense arrays, no graph, no objects.

    The model is the nn.MLP one (relu hidden layers, a linear last layer), the step the
    benchmark's: forward, loss = sum((o - t)**2), grads zeroed, backward, p -= lr * grad. Every
    sum runs in the engine's order (b first, then w_i * x_i left to right; an input's grad from
    the last row to the first, as backward meets them), so the losses are the engine's.
    """
    cdef int nlayers
    cdef int* size          # size[0] = nin, size[k + 1] = layer k's nout
    cdef double** w         # layer k: row j's weights at w[k][j * size[k]]
    cdef double** b
    cdef double** gw
    cdef double** gb
    cdef double** out       # out[0] = x, out[k + 1] = layer k's outputs (after the activation)
    cdef double** gout      # their grads
    cdef double* target
    cdef double lr

    def __cinit__(self):
        self.nlayers = 0
        self.size = NULL
        self.w = self.b = self.gw = self.gb = self.out = self.gout = NULL
        self.target = NULL

    def __init__(self, weights, biases, target, double lr):
        """weights[k][j][i]: layer k, neuron j, input i; biases[k][j]; target: one per output."""
        cdef int k, j, i, n = len(weights)
        if n == 0 or len(biases) != n:
            raise ValueError("need one list of biases per layer, and at least one layer")
        self.size = <int*>PyMem_Malloc((n + 1) * sizeof(int))
        self.w = <double**>PyMem_Malloc(6 * (n + 1) * sizeof(double*))
        if self.size == NULL or self.w == NULL:
            raise MemoryError()
        memset(self.w, 0, 6 * (n + 1) * sizeof(double*))
        self.b, self.gw, self.gb = self.w + (n + 1), self.w + 2 * (n + 1), self.w + 3 * (n + 1)
        self.out, self.gout = self.w + 4 * (n + 1), self.w + 5 * (n + 1)
        self.nlayers = n
        self.size[0] = len(weights[0][0])
        for k in range(n):
            self.size[k + 1] = len(weights[k])
        for k in range(n + 1):
            self.out[k] = _zeros(self.size[k])
            self.gout[k] = _zeros(self.size[k])
        for k in range(n):
            self.w[k] = _zeros(self.size[k + 1] * self.size[k])
            self.gw[k] = _zeros(self.size[k + 1] * self.size[k])
            self.b[k] = _zeros(self.size[k + 1])
            self.gb[k] = _zeros(self.size[k + 1])
            for j in range(self.size[k + 1]):
                if len(weights[k][j]) != self.size[k]:
                    raise ValueError(f"layer {k}, row {j}: {len(weights[k][j])} weights, "
                                     f"expected {self.size[k]}")
                self.b[k][j] = biases[k][j]
                for i in range(self.size[k]):
                    self.w[k][j * self.size[k] + i] = weights[k][j][i]
        if len(target) != self.size[n]:
            raise ValueError(f"{len(target)} targets for {self.size[n]} outputs")
        self.target = _zeros(self.size[n])
        for j in range(self.size[n]):
            self.target[j] = target[j]
        self.lr = lr

    def __dealloc__(self):
        cdef int k
        if self.w != NULL:
            for k in range(6 * (self.nlayers + 1)):
                PyMem_Free(self.w[k])
            PyMem_Free(self.w)
        PyMem_Free(self.size)
        PyMem_Free(self.target)

    def step(self, xrow):
        """One training step on the sample xrow (a list of floats); the loss before the update."""
        cdef int k, j, i, nin, nout, last = self.nlayers - 1
        cdef double acc, g, d, xv, a0, a1, a2, a3, loss = 0.0
        cdef double lr = self.lr
        cdef double* wr
        cdef double* gwr
        cdef double* o
        cdef double* x
        cdef double* gx
        if len(xrow) != self.size[0]:
            raise ValueError(f"{len(xrow)} inputs, expected {self.size[0]}")
        for i in range(self.size[0]):
            self.out[0][i] = xrow[i]
        for k in range(self.nlayers):  # forward: b + w0*x0 + w1*x1 + ..., then relu but last
            nin, nout, x, o = self.size[k], self.size[k + 1], self.out[k], self.out[k + 1]
            j = 0
            while j + 4 <= nout:  # four rows at once, so that their additions overlap
                wr = self.w[k] + j * nin
                a0, a1, a2, a3 = self.b[k][j], self.b[k][j + 1], self.b[k][j + 2], self.b[k][j + 3]
                for i in range(nin):
                    xv = x[i]
                    a0 = a0 + wr[i] * xv
                    a1 = a1 + wr[nin + i] * xv
                    a2 = a2 + wr[2 * nin + i] * xv
                    a3 = a3 + wr[3 * nin + i] * xv
                o[j], o[j + 1], o[j + 2], o[j + 3] = a0, a1, a2, a3
                j += 4
            while j < nout:
                wr = self.w[k] + j * nin
                acc = self.b[k][j]
                for i in range(nin):
                    acc = acc + wr[i] * x[i]
                o[j] = acc
                j += 1
            if k != last:
                for j in range(nout):
                    o[j] = 0.0 if o[j] < 0.0 else o[j]
        nout = self.size[self.nlayers]
        for j in range(nout):  # loss = sum((o - t)**2), from 0 as the built-in sum()
            d = self.out[self.nlayers][j] - self.target[j]
            loss = loss + c_pow(d, 2.0)
        for k in range(self.nlayers):  # zero_grad
            memset(self.gw[k], 0, self.size[k + 1] * self.size[k] * sizeof(double))
            memset(self.gb[k], 0, self.size[k + 1] * sizeof(double))
        for k in range(self.nlayers + 1):
            memset(self.gout[k], 0, self.size[k] * sizeof(double))
        for j in range(nout):  # d loss / d o = (2 * (o - t)**1) * 1
            d = self.out[self.nlayers][j] - self.target[j]
            self.gout[self.nlayers][j] = (2.0 * c_pow(d, 1.0)) * 1.0
        for k in range(last, -1, -1):  # backward: the rows from the last to the first
            nin, nout, x, gx = self.size[k], self.size[k + 1], self.out[k], self.gout[k]
            for j in range(nout - 1, -1, -1):
                g = self.gout[k + 1][j]
                if k != last:  # relu's rule: the grad where out > 0
                    g = g if self.out[k + 1][j] > 0.0 else 0.0
                wr, gwr = self.w[k] + j * nin, self.gw[k] + j * nin
                self.gb[k][j] += g
                for i in range(nin):
                    gwr[i] += x[i] * g
                    gx[i] += wr[i] * g
        for k in range(self.nlayers):  # SGD: p -= lr * grad
            wr, gwr, nin = self.w[k], self.gw[k], self.size[k + 1] * self.size[k]
            for i in range(nin):
                wr[i] = wr[i] - lr * gwr[i]
            wr, gwr = self.b[k], self.gb[k]
            for j in range(self.size[k + 1]):
                wr[j] = wr[j] - lr * gwr[j]
        return loss


cdef double* _zeros(Py_ssize_t n) except NULL:
    cdef double* p = <double*>PyMem_Malloc((n if n else 1) * sizeof(double))
    if p == NULL:
        raise MemoryError()
    memset(p, 0, (n if n else 1) * sizeof(double))
    return p
