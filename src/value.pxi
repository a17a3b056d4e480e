# ---------------------------------------------------------------------------------------------
# Value

cdef bint _heavy_kid(NodeC* n) noexcept:
    cdef uint32_t i
    for i in range(mg_nkids(n)):
        if node_kid(n, i).flags & F_HEAVY:
            return True
    return False


cdef int _refuse_cycle(ArenaC* A, NodeC* target, NodeC** arr) except -1:
    """ValueError if target is among the nodes below arr's children (arr as mg_kids_new made
    it): __init__ run again with them would make a node its own descendant, a cycle of counts
    no collection could free (and a graph with no order). C only, so no Python code runs (and
    frees a node) during the walk; the walk marks nodes with a fresh epoch and puts every mark
    back after, as a pass may be mid-scan (this can run in a signal handler)."""
    cdef uint16_t ep = _next_epoch(A)
    cdef Py_ssize_t top = 0, cap = 64, nseen = 0, seencap = 64
    cdef NodeC** st = <NodeC**>PyMem_Malloc(cap * sizeof(NodeC*))
    cdef NodeC** seen = <NodeC**>PyMem_Malloc(seencap * sizeof(NodeC*))
    cdef uint16_t* old = <uint16_t*>PyMem_Malloc(seencap * sizeof(uint16_t))
    cdef NodeC* n
    cdef uint32_t i, m
    cdef int found = 0
    cdef void* p
    try:
        if st == NULL or seen == NULL or old == NULL:
            raise MemoryError()
        m = <uint32_t>(<uintptr_t>arr[0])
        for i in range(m):
            if top == cap:
                p = PyMem_Realloc(st, 2 * cap * sizeof(NodeC*))
                if p == NULL:
                    raise MemoryError()
                st = <NodeC**>p
                cap *= 2
            st[top] = arr[1 + i]
            top += 1
        while top:
            top -= 1
            n = st[top]
            if n == target:
                found = 1
                break
            if n.epoch == ep:
                continue
            if nseen == seencap:
                p = PyMem_Realloc(seen, 2 * seencap * sizeof(NodeC*))
                if p == NULL:
                    raise MemoryError()
                seen = <NodeC**>p
                p = PyMem_Realloc(old, 2 * seencap * sizeof(uint16_t))
                if p == NULL:
                    raise MemoryError()
                old = <uint16_t*>p
                seencap *= 2
            seen[nseen] = n
            old[nseen] = n.epoch
            nseen += 1
            n.epoch = ep
            m = mg_nkids(n)
            for i in range(m):
                if top == cap:
                    p = PyMem_Realloc(st, 2 * cap * sizeof(NodeC*))
                    if p == NULL:
                        raise MemoryError()
                    st = <NodeC**>p
                    cap *= 2
                st[top] = node_kid(n, i)
                top += 1
    finally:
        while nseen:
            nseen -= 1
            seen[nseen].epoch = old[nseen]
        PyMem_Free(st)
        PyMem_Free(seen)
        PyMem_Free(old)
    if found:
        raise ValueError("a Value cannot become its own descendant: the new children already "
                         "depend on it")
    return 0


cdef inline int _check_label(object label) except -1:
    # __init__ checks before it changes anything, the setter before it sets
    if not isinstance(label, str):
        raise TypeError(f"label must be a str, not {type(label).__name__!r}")
    return 0


@cython.freelist(64)
@cython.embedsignature(False)  # the docstring carries the signature, for inspect.signature
cdef class Value:
    """Value(data, _children=(), _op='', label='', *, children=None, local_grads=None)
--

stores a single scalar value and its gradient"""
    cdef NodeC* c         # this handle's node (one reference)
    cdef object _label    # None, or the user's label
    cdef object _opstr    # None, or the _op text given to the constructor
    cdef object _bw       # None, or a user-assigned _backward callable
    cdef PyObject* _attrs  # the instance dict (_handles.h): NULL until v.note = ... sets one
    cdef object __weakref__

    def __init__(self, data, _children=(), _op='', label='', *, children=None, local_grads=None):
        """__init__($self, data, _children=(), _op='', label='', *, children=None, local_grads=None)
--

A leaf holding float(data), or, given children, a node over them: with _op (a str) as
upstream (no gradient flows unless _backward is set), or with local_grads (one number per
child, microgpt's form) whose rule adds local_grad * out.grad to each child."""
        cdef double d
        cdef list kids = None
        cdef list grads = None
        cdef NodeC* n
        cdef NodeC** arr = NULL
        cdef NodeC old
        cdef bint again
        cdef Py_ssize_t i
        d = _num(data, "Value data")
        _check_label(label)
        if children is not None:
            _children = children
        if not isinstance(_op, str):
            if local_grads is not None or not isinstance(_op, (tuple, list)):
                raise TypeError(f"_op must be a str, not {type(_op).__name__!r}")
            local_grads, _op = _op, ''  # microgpt's Value(data, children, local_grads)
        if not (type(_children) is tuple and len(<tuple>_children) == 0):
            kids = []
            for ch in _children:
                if not isinstance(ch, Value):
                    raise TypeError(f"_children must be Values, not {type(ch).__name__!r}")
                _node(<Value>ch)
                kids.append(ch)
        if local_grads is not None:
            grads = [_num(x, "a local grad") for x in local_grads]
            if len(grads) != (len(kids) if kids else 0):
                raise ValueError(f"got {len(kids) if kids else 0} children but {len(grads)} local grads")
        if not ARENA.grad_enabled:
            kids = None
        if kids:
            arr = mg_kids_new(<uint32_t>len(kids), grads is not None)
            if arr == NULL:
                raise MemoryError()
            for i in range(len(kids)):
                arr[1 + i] = (<Value>kids[i]).c
            if grads is not None:
                for i in range(len(kids)):
                    (<double*>(arr + 1 + len(kids)))[i] = <double>grads[i]
        old.op = OP_LEAF  # (read only when again)
        old.a = old.v.b = NULL
        old.u.kids = NULL
        n = NULL
        again = self.c != NULL
        if again and arr != NULL:
            try:
                _refuse_cycle(ARENA, self.c, arr)
            except BaseException:
                PyMem_Free(arr)
                raise
        if again:
            # __init__ run again on a live Value: its node takes the new content, so the graphs
            # and packs that hold it see it (the pure engine's Value is its node); the old
            # children and Python state are let go last, as that may run Python code
            old = self.c[0]
            _refill(ARENA, self.c, d, arr, grads is not None)
            old_state = (self._label, self._opstr, self._bw)
        else:
            try:
                n = node_new(ARENA, OP_LEAF if arr == NULL else OP_CUSTOM if grads is None else OP_LOCAL, d)
            except BaseException:
                PyMem_Free(arr)
                raise
            if arr != NULL:
                n.u.kids = arr
                for i in range(len(kids)):
                    node_link(arr[1 + i])
        if type(self) is Value and mg_no_dict(<PyObject*>self):
            PyObject_GC_UnTrack(self)  # no Python state yet: cannot be in a cycle
        if not again:
            self.c = n
            n.handle = <PyObject*>self
            n.refcnt += 1
        self._label = None
        self._opstr = None
        self._bw = None
        if len(<str>_op) != 0:
            self._opstr = _op
            _mark_heavy(self)
        if not (isinstance(label, str) and len(<str>label) == 0):
            self._label = label
            _mark_heavy(self)
            _track_if_may_cycle(self, label)
        if mg_has_attrs(<PyObject*>self):
            _mark_heavy(self)  # attributes set before __init__ ran again
        if arr != NULL and _heavy_kid(self.c):
            # over a child with Python state: a bridge the GC must see (as _wrap's)
            if not PyObject_GC_IsTracked(self):
                PyObject_GC_Track(self)
            if not (self.c.flags & F_PINNED):
                _pin(self.c)
        if again:
            node_drop_kids(ARENA, &old)
            old_state = None

    cdef void _release(self) noexcept:
        _release_handle(<PyObject*>self)

    # -- attributes ---------------------------------------------------------------------------

    @property
    def data(self):
        """The scalar value (a float)."""
        return mg_dp(_node(self))[0]

    @data.setter
    def data(self, value):
        cdef double d = _num(value, "data")  # first: its __float__ may run Python (_arena.h)
        mg_dp(_node(self))[0] = d

    @property
    def grad(self):
        """The gradient accumulated by backward() (a float)."""
        return mg_gp(_node(self))[0]

    @grad.setter
    def grad(self, value):
        cdef double d = _num(value, "grad")  # first: its __float__ may run Python (_arena.h)
        mg_gp(_node(self))[0] = d

    @property
    def label(self):
        """A name for drawings ('' unless set)."""
        return '' if self._label is None else self._label

    @label.setter
    def label(self, value):
        _node(self)
        _check_label(value)
        self._label = value
        _mark_heavy(self)
        _track_if_may_cycle(self, value)

    @property
    def _op(self):
        """The op that produced this node ('' on leaves)."""
        cdef NodeC* n = _node(self)
        if self._opstr is not None:
            return self._opstr
        if n.op == OP_POWC:
            return _pow_text(n)
        return _op_text(n)

    @_op.setter
    def _op(self, value):
        _node(self)
        self._opstr = value
        _mark_heavy(self)
        _track_if_may_cycle(self, value)

    @property
    def _prev(self):
        """The set of this node's children (the same handles while they live)."""
        return set(_kid_handles(_node(self)))

    @property
    def _children(self):
        """This node's children in operand order, a tuple (the same handles while they live)."""
        return tuple(_kid_handles(_node(self)))

    @property
    def _local_grads(self):
        """The local grads given as Value(data, children, local_grads), a tuple of floats; () on a
        leaf; on an output of micrograd.functional's softmax, log_softmax or rmsnorm, its
        derivatives with respect to each input (its _children), from the data as they are now;
        None on other op nodes (their rule is their op's)."""
        cdef NodeC* n = _node(self)
        cdef double* lg
        cdef uint32_t i
        if n.op == OP_LEAF or mg_nkids(n) == 0:
            return ()
        if MG_IS_FOUT(n.op):
            return _fused_local_grads(n)
        if n.op != OP_LOCAL:
            return None
        lg = mg_local_grads(n)
        return tuple([lg[i] for i in range(mg_nkids(n))])

    @property
    def _backward(self):
        """This node's local chain rule only: adds its grad's contribution to its children."""
        cdef NodeC* n = _node(self)
        cdef _LocalBackward lb
        if self._bw is not None:
            return self._bw
        if n.op == OP_LEAF or n.op == OP_CUSTOM:
            return _noop  # (LOCAL's rule is built in: it gets a _LocalBackward)
        lb = _LocalBackward.__new__(_LocalBackward)
        lb.v = self
        lb.op = n.op
        if MG_IS_FOUT(n.op):  # its group's rule for this output alone: it keeps the group
            lb.head = _hold(n.a)
            lb.idx = <uint32_t>n.v.idx
        lb.aux = n.u.aux if n.op == OP_POWC or n.op == OP_ADDC or n.op == OP_MULC else 0.0
        return lb

    @_backward.setter
    def _backward(self, fn):
        cdef NodeC* n = _node(self)
        cdef NodeC** arr
        cdef MgCall* call
        cdef NodeC* head
        cdef uint32_t i
        if not callable(fn):
            raise TypeError(f"_backward must be callable, not {type(fn).__name__!r}")
        if isinstance(fn, _LocalBackward) and (<_LocalBackward>fn).v is self:
            return  # assigning a node's own rule back: nothing changes
        if n.op == OP_LOCAL:
            n.op = OP_CUSTOM  # the same array: its local grads stay for a saved _LocalBackward
        elif n.op != OP_CUSTOM:
            # becomes a user-defined op over the same children, with the same _op text
            if self._opstr is None:
                self._opstr = _op_text(n)
            _materialize(ARENA, n)
            arr = mg_kids_new(mg_nkids(n), 0)
            if arr == NULL:
                raise MemoryError()
            for i in range(mg_nkids(n)):
                arr[1 + i] = node_kid(n, i)
            call = MG_CALL(n) if n.op == OP_DOT else NULL
            head = n.a if MG_IS_FOUT(n.op) else NULL
            if call != NULL or head != NULL:  # its children are links of its call or group's
                for i in range(mg_nkids(n)):   # head: it takes its own
                    node_link(arr[1 + i])
            if n.op == OP_LEAF:
                _leafgen_bump(ARENA)
                n.flags |= F_LATE  # no children and not on the tape: run after its parents
            n.a = NULL
            n.v.b = NULL
            n.u.kids = arr
            n.op = OP_CUSTOM
            n.flags &= ~(F_INTEXP | F_WLEAVES)
            if call != NULL:
                call_decref(ARENA, call)
            if head != NULL:
                node_decref(ARENA, head)
        self._bw = fn
        if not PyObject_GC_IsTracked(self):
            PyObject_GC_Track(self)  # fn may close over this Value: a cycle the GC must see
        _mark_heavy(self)

    # -- ops ----------------------------------------------------------------------------------

    def __add__(self, other):
        cdef NodeC* a
        cdef NodeC* b
        cdef double x
        if isinstance(other, Value):
            a = _node(self)
            b = _node(<Value>other)
            return _wrap(ARENA, _mk2(ARENA, OP_ADD, mg_dp(a)[0] + mg_dp(b)[0], a, b))
        if not _real(other, &x):  # first: its __float__ may run Python (see _arena.h)
            return NotImplemented
        a = _node(self)
        return _wrap(ARENA, _mkc(ARENA, OP_ADDC, mg_dp(a)[0] + x, a, x))

    def __radd__(self, other):  # other + self
        cdef NodeC* a
        cdef double x
        if not _real(other, &x):
            return NotImplemented
        a = _node(self)
        return _wrap(ARENA, _mkc(ARENA, OP_ADDC, mg_dp(a)[0] + x, a, x))

    def __mul__(self, other):
        cdef NodeC* a
        cdef NodeC* b
        cdef double x
        if isinstance(other, Value):
            a = _node(self)
            b = _node(<Value>other)
            return _wrap(ARENA, _mk2(ARENA, OP_MUL, mg_dp(a)[0] * mg_dp(b)[0], a, b))
        if not _real(other, &x):  # first: its __float__ may run Python (see _arena.h)
            return NotImplemented
        a = _node(self)
        return _wrap(ARENA, _mkc(ARENA, OP_MULC, mg_dp(a)[0] * x, a, x))

    def __rmul__(self, other):  # other * self
        cdef NodeC* a
        cdef double x
        if not _real(other, &x):
            return NotImplemented
        a = _node(self)
        return _wrap(ARENA, _mkc(ARENA, OP_MULC, mg_dp(a)[0] * x, a, x))

    def __neg__(self):  # -self
        cdef NodeC* a = _node(self)
        return _wrap(ARENA, _mkc(ARENA, OP_MULC, mg_dp(a)[0] * -1.0, a, -1.0))

    def __sub__(self, other):  # self + (-other)
        cdef NodeC* a = _node(self)
        cdef NodeC* b
        cdef NodeC* neg
        cdef NodeC* n
        cdef double x
        if isinstance(other, Value):
            b = _node(<Value>other)
            neg = _hold(_mkc(ARENA, OP_MULC, mg_dp(b)[0] * -1.0, b, -1.0))
            try:
                n = _mk2(ARENA, OP_ADD, mg_dp(a)[0] + mg_dp(neg)[0], a, neg)
            finally:
                node_decref(ARENA, neg)
            return _wrap(ARENA, n)
        if not _real(other, &x):
            return NotImplemented
        a = _node(self)  # again: other's __float__ may have re-initialised self
        return _wrap(ARENA, _mkc(ARENA, OP_ADDC, mg_dp(a)[0] + -x, a, -x))

    def __rsub__(self, other):  # (-self) + other
        cdef NodeC* a = _node(self)
        cdef NodeC* neg
        cdef NodeC* n
        cdef double x
        if not _real(other, &x):
            return NotImplemented
        a = _node(self)  # again: other's __float__ may have re-initialised self
        neg = _hold(_mkc(ARENA, OP_MULC, mg_dp(a)[0] * -1.0, a, -1.0))
        try:
            n = _mkc(ARENA, OP_ADDC, mg_dp(neg)[0] + x, neg, x)
        finally:
            node_decref(ARENA, neg)
        return _wrap(ARENA, n)

    def __truediv__(self, other):  # self * other**-1
        cdef NodeC* a = _node(self)
        cdef NodeC* b
        cdef NodeC* inv
        cdef NodeC* n
        cdef double x
        if isinstance(other, Value):
            b = _node(<Value>other)
            x = _recip(mg_dp(b)[0])
            inv = _hold(_mkc(ARENA, OP_POWC, x, b, -1.0))
            inv.flags |= F_INTEXP
            try:
                n = _mk2(ARENA, OP_MUL, mg_dp(a)[0] * mg_dp(inv)[0], a, inv)
            finally:
                node_decref(ARENA, inv)
            return _wrap(ARENA, n)
        if not _real(other, &x):
            return NotImplemented
        a = _node(self)  # again: other's __float__ may have re-initialised self
        x = _recip(x)
        return _wrap(ARENA, _mkc(ARENA, OP_MULC, mg_dp(a)[0] * x, a, x))

    def __rtruediv__(self, other):  # self**-1 * other
        cdef NodeC* a = _node(self)
        cdef NodeC* inv
        cdef NodeC* n
        cdef double x
        if not _real(other, &x):
            return NotImplemented
        a = _node(self)  # again: other's __float__ may have re-initialised self
        inv = _hold(_mkc(ARENA, OP_POWC, _recip(mg_dp(a)[0]), a, -1.0))
        inv.flags |= F_INTEXP
        try:
            n = _mkc(ARENA, OP_MULC, mg_dp(inv)[0] * x, inv, x)
        finally:
            node_decref(ARENA, inv)
        return _wrap(ARENA, n)

    def __pow__(self, other, mod=None):
        cdef NodeC* a = _node(self)
        cdef NodeC* b
        cdef NodeC* n
        cdef double x
        if mod is not None:
            return NotImplemented
        if isinstance(other, Value):
            b = _node(<Value>other)
            return _wrap(ARENA, _mk2(ARENA, OP_POW, _fpow(mg_dp(a)[0], mg_dp(b)[0]), a, b))
        if not _real(other, &x):
            return NotImplemented
        a = _node(self)  # again: other's __float__ may have re-initialised self
        n = _mkc(ARENA, OP_POWC, _fpow(mg_dp(a)[0], x), a, x)
        if PyLong_CheckExact(other):
            n.flags |= F_INTEXP
        v = _wrap(ARENA, n)
        if n.op == OP_POWC and not PyFloat_CheckExact(other) and not (
                PyLong_CheckExact(other) and fabs(x) < 9007199254740992.0):
            # bool, numpy scalars, ints past 2**53 (not exact as a double)...: keep upstream's
            # f'**{other}' text as the user wrote it
            (<Value>v)._opstr = f"**{other}"
            _mark_heavy(<Value>v)
        return v

    def __rpow__(self, other, mod=None):  # Value(other) ** self
        cdef NodeC* a = _node(self)
        cdef NodeC* base
        cdef NodeC* n
        cdef double x
        if mod is not None or not _real(other, &x):
            return NotImplemented
        a = _node(self)  # again: other's __float__ may have re-initialised self
        d = _fpow(x, mg_dp(a)[0])
        base = _hold(node_new(ARENA, OP_LEAF, x))
        try:
            n = _mk2(ARENA, OP_POW, d, base, a)
        finally:
            node_decref(ARENA, base)
        return _wrap(ARENA, n)

    def relu(self):
        """ReLU: max(0, x); the gradient at 0 is 0, as upstream."""
        return _unary(self, OP_RELU)

    def tanh(self):
        """Hyperbolic tangent."""
        return _unary(self, OP_TANH)

    def exp(self):
        """e ** x; raises OverflowError past ~709.78, like math.exp."""
        return _unary(self, OP_EXP)

    def log(self):
        """Natural logarithm; raises ValueError for x <= 0, like math.log."""
        return _unary(self, OP_LOG)

    def sigmoid(self):
        """Logistic sigmoid 1 / (1 + e**-x), computed without overflow."""
        return _unary(self, OP_SIGMOID)

    def sqrt(self):
        """Square root; raises ValueError for x < 0, like math.sqrt."""
        return _unary(self, OP_SQRT)

    def backward(self):
        """Backpropagate from this node: self.grad = 1, then every reachable node adds its part."""
        _backward(ARENA, _node(self))

    def __repr__(self):
        cdef NodeC* n = _node(self)
        return f"Value(data={mg_dp(n)[0]!r}, grad={mg_gp(n)[0]!r})"

    def __reduce__(self):
        # a Value pickles as a leaf: its data, grad, label and attributes (the graph is not saved)
        cdef NodeC* n = _node(self)
        if mg_has_attrs(<PyObject*>self):
            return (_rebuild, (mg_dp(n)[0], mg_gp(n)[0], self.label), mg_attrs_copy(<PyObject*>self))
        return (_rebuild, (mg_dp(n)[0], mg_gp(n)[0], self.label))

    def __setstate__(self, state):
        """The attributes of a pickled Value (set one by one, as v.name = value would)."""
        if not isinstance(state, dict):
            raise TypeError(f"a Value's pickled state is a dict of attributes, not {type(state).__name__!r}")
        for k, x in state.items():
            setattr(self, k, x)


# A user-defined op's _backward usually closes over its own output: handle -> _bw -> closure ->
# handle, a cycle the GC sees. While a parent node pins that handle, the pin is a reference the GC
# cannot see; a tracked handle therefore also reports the pins of its children when it is their
# only parent (count == handle + one link), so a chain of user-defined ops is freed in one pass.
def _rebuild(data, grad, label):
    """A leaf Value with this data, grad and label: how a pickled Value comes back."""
    v = Value(data, label=label)
    v.grad = grad
    return v


# ---------------------------------------------------------------------------------------------
# no_grad

@cython.final
cdef class _NoGrad:
    """no_grad()'s context manager; one object may be entered again, nested or not."""
    cdef list saved  # the mode at each __enter__ not yet exited

    def __cinit__(self):
        self.saved = []

    def __enter__(self):
        self.saved.append(ARENA.grad_enabled)
        ARENA.grad_enabled = False
        return None

    def __exit__(self, *exc):
        if self.saved:  # an __exit__ with no __enter__ changes nothing
            ARENA.grad_enabled = self.saved.pop()
        return False


def no_grad():
    """Within this block, ops compute data but record no graph (results are leaves)."""
    return _NoGrad()


def is_grad_enabled():
    """True unless inside no_grad()."""
    return ARENA.grad_enabled


