# cython: language_level=3, boundscheck=False, wraparound=False
"""The floor for scalar scripts: a compiled Value whose ops compute floats and record nothing."""
cimport cython
from libc.math cimport exp as c_exp, log as c_log


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
