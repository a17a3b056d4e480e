# ---------------------------------------------------------------------------------------------
# micrograd.functional's kernels: softmax, log_softmax, rmsnorm, sum and the activations over a
# list, each one call that builds the very nodes the formula written with scalar Value ops
# builds (the same ops, data and grads bit for bit), with no Python between them and a handle
# only for each result. (linear and dot are the layer kernel: kernels.pxi.)
#
# Discipline (_arena.h): every input is converted first (a number's __float__ runs Python); then
# the nodes are made, each held by this call (a failure part-way frees what was made); then the
# results' handles (which may run Python: the GC) while everything is still held.

cdef struct _Built:
    NodeC** held    # every node this call made or read, one count each
    Py_ssize_t n, cap


cdef NodeC* _keep(_Built* b, NodeC* n) except NULL:
    """Hold n for the call (released by _release_built)."""
    cdef void* p
    if b.n == b.cap:
        p = PyMem_Realloc(b.held, (2 * b.cap + 16) * sizeof(NodeC*))
        if p == NULL:
            if n.refcnt == 0:  # made for this call, held by nobody: give it back
                n.refcnt = 1
                node_decref(ARENA, n)
            raise MemoryError()
        b.held = <NodeC**>p
        b.cap = 2 * b.cap + 16
    b.held[b.n] = _hold(n)
    b.n += 1
    return n


cdef void _release_built(_Built* b) noexcept:
    cdef Py_ssize_t i
    for i in range(b.n):
        node_decref(ARENA, b.held[i])
    PyMem_Free(b.held)
    b.held = NULL
    b.n = b.cap = 0


cdef Py_ssize_t _inputs(_Built* b, object xs, str what) except -1:
    """Convert xs (Values or real numbers) and hold their nodes: numbers become leaves. Returns
    the count; the nodes are b.held[0:count]."""
    cdef tuple t = xs if type(xs) is tuple else tuple(xs)
    cdef Py_ssize_t i, m = len(t)
    cdef double* d = <double*>PyMem_Malloc((m if m else 1) * sizeof(double))
    if d == NULL:
        raise MemoryError()
    try:
        for i in range(m):  # numbers first: their __float__ may run Python
            x = t[i]
            if not isinstance(x, Value) and not _real(x, &d[i]):
                raise TypeError(f"{what} must be Values or real numbers, not {type(x).__name__!r}")
        for i in range(m):
            x = t[i]
            if isinstance(x, Value):
                _keep(b, _node(<Value>x))
            else:
                _keep(b, node_new(ARENA, OP_LEAF, d[i]))
    finally:
        PyMem_Free(d)
    return m


cdef list _handles_of(NodeC** nodes, Py_ssize_t count):
    """Handles of the nodes (held by the call, so a collection cannot free them meanwhile)."""
    cdef list out = []
    cdef Py_ssize_t i
    for i in range(count):
        out.append(_wrap(ARENA, nodes[i]))
    return out


cdef NodeC** _scratch(Py_ssize_t m) except NULL:
    cdef NodeC** p = <NodeC**>PyMem_Malloc((m if m else 1) * sizeof(NodeC*))
    if p == NULL:
        raise MemoryError()
    return p


# the ops as Value's methods make them (value.pxi): the same data, the same nodes

cdef inline NodeC* _b_add(_Built* b, NodeC* x, NodeC* y) except NULL:   # x + y
    return _keep(b, _mk2(ARENA, OP_ADD, x.data + y.data, x, y))


cdef inline NodeC* _b_addc(_Built* b, NodeC* x, double c) except NULL:  # x + c, c + x
    return _keep(b, _mkc(ARENA, OP_ADDC, x.data + c, x, c))


cdef inline NodeC* _b_mul(_Built* b, NodeC* x, NodeC* y) except NULL:   # x * y
    return _keep(b, _mk2(ARENA, OP_MUL, x.data * y.data, x, y))


cdef inline NodeC* _b_mulc(_Built* b, NodeC* x, double c) except NULL:  # x * c
    return _keep(b, _mkc(ARENA, OP_MULC, x.data * c, x, c))


cdef inline NodeC* _b_un(_Built* b, uint8_t op, NodeC* x) except NULL:  # x.exp(), x.log(), ...
    return _keep(b, _mk1(ARENA, op, _forward1(op, x.data), x))


cdef NodeC* _b_sub(_Built* b, NodeC* x, NodeC* y) except NULL:          # x + (-y)
    cdef NodeC* neg = _b_mulc(b, y, -1.0)
    return _b_add(b, x, neg)


cdef NodeC* _b_div(_Built* b, NodeC* x, NodeC* y) except NULL:          # x * y**-1
    cdef NodeC* inv = _keep(b, _mkc(ARENA, OP_POWC, _recip(y.data), y, -1.0))
    inv.flags |= F_INTEXP
    return _b_mul(b, x, inv)


cdef NodeC* _b_sum(_Built* b, NodeC** xs, Py_ssize_t m, double start) except NULL:
    """sum(xs, start) for a number start, as the built-in: start + x0 + x1 + ... (m >= 1)"""
    cdef NodeC* acc = _b_addc(b, xs[0], start)
    cdef Py_ssize_t i
    for i in range(1, m):
        acc = _b_add(b, acc, xs[i])
    return acc


cdef double _max_data(NodeC** xs, Py_ssize_t m):
    """max(x.data for x in xs), as the built-in compares (a NaN first stays)."""
    cdef double top = xs[0].data
    cdef Py_ssize_t i
    for i in range(1, m):
        if xs[i].data > top:
            top = xs[i].data
    return top


def _f_softmax(logits):
    """[e / total for e in exps], exps = [(v - max(v.data ...)).exp() ...], total = sum(exps)."""
    cdef _Built b = _Built(NULL, 0, 0)
    cdef NodeC** x = NULL
    cdef NodeC** e = NULL
    cdef NodeC* total
    cdef Py_ssize_t m, i
    cdef double top
    try:
        m = _inputs(&b, logits, "logits")
        if m == 0:
            raise ValueError("softmax of an empty sequence")
        x = _scratch(m)
        e = _scratch(m)
        for i in range(m):
            x[i] = b.held[i]
        top = _max_data(x, m)
        for i in range(m):
            e[i] = _b_un(&b, OP_EXP, _b_addc(&b, x[i], -top))
        total = _b_sum(&b, e, m, 0.0)
        for i in range(m):
            x[i] = _b_div(&b, e[i], total)
        return _handles_of(x, m)
    finally:
        PyMem_Free(x)
        PyMem_Free(e)
        _release_built(&b)


def _f_log_softmax(logits):
    """[s - lse for s in shifted], shifted = [v - max(v.data ...) ...],
    lse = sum(s.exp() for s in shifted).log()."""
    cdef _Built b = _Built(NULL, 0, 0)
    cdef NodeC** x = NULL
    cdef NodeC** e = NULL
    cdef NodeC* lse
    cdef Py_ssize_t m, i
    cdef double top
    try:
        m = _inputs(&b, logits, "logits")
        if m == 0:
            raise ValueError("log_softmax of an empty sequence")
        x = _scratch(m)
        e = _scratch(m)
        for i in range(m):
            x[i] = b.held[i]
        top = _max_data(x, m)
        for i in range(m):
            x[i] = _b_addc(&b, x[i], -top)
        for i in range(m):
            e[i] = _b_un(&b, OP_EXP, x[i])
        lse = _b_un(&b, OP_LOG, _b_sum(&b, e, m, 0.0))
        for i in range(m):
            x[i] = _b_sub(&b, x[i], lse)
        return _handles_of(x, m)
    finally:
        PyMem_Free(x)
        PyMem_Free(e)
        _release_built(&b)


def _f_rmsnorm(xs, double eps):
    """[xi * scale for xi in x], scale = (sum(xi * xi for xi in x) / len(x) + eps) ** -0.5."""
    cdef _Built b = _Built(NULL, 0, 0)
    cdef NodeC** x = NULL
    cdef NodeC** sq = NULL
    cdef NodeC* scale
    cdef NodeC* t
    cdef Py_ssize_t m, i
    try:
        m = _inputs(&b, xs, "inputs")
        if m == 0:
            raise ValueError("rmsnorm of an empty sequence")
        x = _scratch(m)
        sq = _scratch(m)
        for i in range(m):
            x[i] = b.held[i]
        for i in range(m):
            sq[i] = _b_mul(&b, x[i], x[i])
        t = _b_addc(&b, _b_mulc(&b, _b_sum(&b, sq, m, 0.0), _recip(<double>m)), eps)
        scale = _keep(&b, _mkc(ARENA, OP_POWC, _fpow(t.data, -0.5), t, -0.5))
        for i in range(m):
            x[i] = _b_mul(&b, x[i], scale)
        return _handles_of(x, m)
    finally:
        PyMem_Free(x)
        PyMem_Free(sq)
        _release_built(&b)


def _f_sum(values, start):
    """sum(values, start): start + v0 + v1 + ... (start a number or a Value)."""
    cdef _Built b = _Built(NULL, 0, 0)
    cdef NodeC** x = NULL
    cdef NodeC* acc
    cdef Py_ssize_t m, i
    cdef double s = 0.0
    cdef bint start_value = isinstance(start, Value)
    try:
        if not start_value and not _real(start, &s):
            raise TypeError(f"start must be a Value or a real number, not {type(start).__name__!r}")
        m = _inputs(&b, values, "values")
        if start_value:
            _keep(&b, _node(<Value>start))
        if m == 0:
            return start if start_value else Value(s)
        x = _scratch(m)
        for i in range(m):
            x[i] = b.held[i]
        if start_value:
            acc = _b_add(&b, b.held[m], x[0])
            for i in range(1, m):
                acc = _b_add(&b, acc, x[i])
        else:
            acc = _b_sum(&b, x, m, s)
        return _wrap(ARENA, acc)
    finally:
        PyMem_Free(x)
        _release_built(&b)


def _f_map(xs, act):
    """[getattr(x, act)() for x in xs] for an activation of the layer kernel's table."""
    cdef _Built b = _Built(NULL, 0, 0)
    cdef NodeC** x = NULL
    cdef Py_ssize_t m, i
    cdef uint8_t code
    if act not in _ACTS or act == "linear":
        raise ValueError(f"unknown activation {act!r}; expected relu, tanh or sigmoid")
    code = _ACTS[act]
    try:
        m = _inputs(&b, xs, "inputs")
        x = _scratch(m)
        for i in range(m):
            x[i] = _b_un(&b, code, b.held[i])
        return _handles_of(x, m)
    finally:
        PyMem_Free(x)
        _release_built(&b)


# linear's packings of weight matrices kept between calls: a model's matrices are the same lists
# call after call, and packing one (a link and a release of every weight) is a tenth of a
# microgpt-style step. Only lists of lists of plain leaves are kept (parameters: holding them
# keeps no graph alive), the newest 64 by first use; each is checked as it is used (rows
# replaced, added or removed, a weight replaced, a Value re-initialised: packed again).
cdef dict _PACKED = {}
cdef Py_ssize_t _PACKED_MAX = 64


cdef bint _leaf_matrix(object w) noexcept:
    cdef Py_ssize_t i, m
    cdef PyObject** items
    cdef PyObject* o
    for row in <list>w:
        if type(row) is not list:
            return False
        m = len(<list>row)
        items = PySequence_Fast_ITEMS(row)
        for i in range(m):
            o = items[i]
            if MG_TYPE(o) != <PyTypeObject*>Value or (<Value>o).c == NULL or (<Value>o).c.op != OP_LEAF:
                return False
    return True


def _f_linear(w, x):
    """[sum(wi * xi for wi, xi in zip(row, x)) for row in w]: the layer kernel from 0.0, with
    the packing of a matrix of leaves kept for its next call."""
    cdef tuple xs = x if type(x) is tuple else tuple(x)
    cdef _Rows rw
    if type(w) is list:
        ent = _PACKED.get(id(w))
        if ent is not None and (<_Rows>ent).outer is w:
            return _layer_go(ARENA, xs, OP_LEAF, <_Rows>ent, None, None)
        if len(<list>w) and _leaf_matrix(w):
            zero = Value(0.0)
            rw = _rows(w, (zero,) * len(<list>w))
            rw.outer = w
            rw.zero = zero
            if len(_PACKED) >= _PACKED_MAX:
                del _PACKED[next(iter(_PACKED))]  # the oldest
            _PACKED[id(w)] = rw
            return _layer_go(ARENA, xs, OP_LEAF, rw, None, None)
    return _layer_go(ARENA, xs, OP_LEAF, None, w, None)


def _f_forget():
    """Drop linear's kept packings (tests; a program that wants its matrices freed at once)."""
    _PACKED.clear()
