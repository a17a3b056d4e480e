# ---------------------------------------------------------------------------------------------
# Making nodes and handles.

cdef inline NodeC* _mk1(ArenaC* A, uint8_t op, double data, NodeC* a) except NULL:
    cdef NodeC* n
    if not A.grad_enabled:
        return node_new(A, OP_LEAF, data)
    n = node_new(A, op, data)
    n.a = a
    node_link(a)
    return n


cdef inline NodeC* _mk2(ArenaC* A, uint8_t op, double data, NodeC* a, NodeC* b) except NULL:
    cdef NodeC* n
    if not A.grad_enabled:
        return node_new(A, OP_LEAF, data)
    n = node_new(A, op, data)
    n.a = a
    n.v.b = b
    node_link(a)
    node_link(b)
    return n


cdef inline NodeC* _mkc(ArenaC* A, uint8_t op, double data, NodeC* a, double aux) except NULL:
    cdef NodeC* n = _mk1(A, op, data, a)
    n.u.aux = aux
    return n


cdef inline bint _pins_below(NodeC* n) noexcept:
    # a handle over a child with Python state (a user-defined op's output, a label) may sit in
    # a cycle through that state (the op's closure): it is a bridge, tracked and pinned, so the
    # GC can follow the chain from a user op's closure through the built-in op to the next
    # user op (see _traverse_pins). One level only: a handle over a bridge is not one.
    if n.op == OP_LEAF or n.op >= OP_DOT:
        return False
    if n.a.flags & F_HEAVY:
        return True
    return MG_ARITY[n.op] == 2 and (n.v.b.flags & F_HEAVY) != 0


cdef Value _wrap(ArenaC* A, NodeC* n):
    """The node's handle: its live one, or a new one (which counts as one reference)."""
    cdef Value v
    cdef PyObject* p
    if n.handle != NULL:
        return <Value>n.handle
    p = mg_value_alloc(<PyTypeObject*>Value)
    if p != NULL:
        v = <Value>p
        Py_DECREF(v)  # the cast took a second reference; v now owns the only one
        v.c = n
        n.handle = p
        n.refcnt += 1
        if _pins_below(n):
            PyObject_GC_Track(v)
            _pin(n)
        return v
    try:
        v = Value.__new__(Value)
    except BaseException:
        if n.refcnt == 0:  # a node nobody holds yet: give it back
            n.refcnt = 1
            node_decref(A, n)
        raise
    v.c = n
    n.handle = <PyObject*>v
    n.refcnt += 1
    if _pins_below(n):
        _pin(n)
    else:
        PyObject_GC_UnTrack(v)  # plain handles cannot be in a cycle; keep them out of the GC
    return v


cdef object _leaf(double d):
    """Value(d) for a number d (the fast call of _handles.h): a leaf and its handle, as
    __init__ makes them (no label, no children, untracked by the GC)."""
    return _wrap(ARENA, node_new(ARENA, OP_LEAF, d))


cdef inline NodeC* _node(Value v) except NULL:
    if v.c == NULL:
        raise ValueError("this Value was never initialised (Value.__new__ without __init__)")
    return v.c


cdef inline NodeC* _hold(NodeC* n) noexcept:
    node_link_n(n, 1)  # (a pinned node's holds are references to its handle, as its links)
    return n


cdef list _kid_handles(NodeC* n):
    """The handles of n's children in operand order. Making a handle can start the GC, whose
    finalizers may re-initialise Values or turn n into a user-defined op: so n's children are
    taken first, and n and each of them held until every handle is made."""
    cdef uint32_t i, m
    cdef NodeC** held
    cdef Value v
    cdef list out = []
    _materialize(ARENA, n)
    m = mg_nkids(n)
    held = <NodeC**>PyMem_Malloc((m + 1) * sizeof(NodeC*))
    if held == NULL:
        raise MemoryError()
    held[m] = _hold(n)
    for i in range(m):
        held[i] = _hold(node_kid(n, i))
    try:
        for i in range(m):
            v = _wrap(ARENA, held[i])
            out.append(v)
            # a handle once shown is the node's for as long as a parent holds the node, so
            # id()-keyed walks, sets and weak dictionaries see upstream's objects
            _mark_heavy(v)
    finally:
        for i in range(m + 1):
            node_decref(ARENA, held[i])
        PyMem_Free(held)
    return out


cdef int _materialize(ArenaC* A, NodeC* n) except -1:
    """Turn ADDC/MULC into ADD/MUL with a leaf for the constant, so _prev can show it."""
    cdef NodeC* leaf
    if n.op == OP_ADDC or n.op == OP_MULC:
        leaf = node_new(A, OP_LEAF, n.u.aux)
        mg_gp(leaf)[0] = n.v.cgrad  # what backward has sent the constant so far, as upstream
        n.u.aux = 0.0
        n.v.b = leaf
        n.op = OP_ADD if n.op == OP_ADDC else OP_MUL
        node_link(leaf)
    return 0


cdef object _pow_text(NodeC* n):
    if n.flags & F_INTEXP:
        return "**" + str(int(n.u.aux))
    return "**" + repr(n.u.aux)


cdef object _op_text(NodeC* n):
    """The _op text of a node's op (the op table's TEXT; POWC's exponent appended)."""
    if n.op == OP_POWC:
        return _pow_text(n)
    return MG_OP_TEXT[n.op].decode()


cdef inline Value _unary(Value self, uint8_t op):
    """op(self) for a one-child op of the table: its value, its node, its handle."""
    cdef NodeC* a = _node(self)
    return _wrap(ARENA, _mk1(ARENA, op, _forward1(op, mg_dp(a)[0]), a))


cdef void _track_if_may_cycle(Value v, object x) noexcept:
    # a label or _op text of a str subclass may carry attributes that refer back to v: the GC
    # must see v (only an exact str is known to hold no reference)
    if type(x) is not str and not PyObject_GC_IsTracked(v):
        PyObject_GC_Track(v)


cdef void _attrs_set(PyObject* o) noexcept:
    # tp_setattro's hook: v's dict now holds an attribute (see _handles.h)
    cdef Value v = <Value>o
    if v.c != NULL:
        _mark_heavy(v)
    if not PyObject_GC_IsTracked(v):
        PyObject_GC_Track(v)  # the dict may refer back to v


cdef void _mark_heavy(Value v) noexcept:
    cdef NodeC* n = v.c
    n.flags |= F_HEAVY
    if not (n.flags & F_PINNED):
        _pin(n)


cdef void _leafgen_bump(ArenaC* A) noexcept:
    A.leafgen += 1


def _noop():
    return None


cdef int _traverse_pins(PyObject* o, visitproc visit, void* arg) noexcept:
    # The references a pinned child's count holds on its handle, reported by the handle that
    # owns the link: o's node's links are o's alone when nothing else holds the node (a count
    # of 1, o's own), or when the node is pinned to o (it lives exactly as long as o). A dot
    # node's links belong to its row and call blocks, a fused output's to its group's head, which
    # other nodes share: not reported.
    # What is not reported keeps its target alive (a leak at worst, never a graph cleared
    # while in use).
    cdef NodeC* n = (<Value>o).c
    cdef NodeC* k
    cdef uint32_t i
    cdef int r
    if n == NULL or n.op == OP_DOT or MG_IS_FOUT(n.op) or (n.refcnt != 1 and not (n.flags & F_PINNED)):
        return 0
    for i in range(mg_nkids(n)):
        k = node_kid(n, i)
        if k.flags & F_PINNED:  # (a pinned node has its handle)
            r = visit(k.handle, arg)
            if r:
                return r
    return 0




cdef void _release_handle(PyObject* o) noexcept:
    cdef ArenaC* A = ARENA
    # o is dying (refcount 0): touch it only through the borrowed pointer, never as an object
    cdef NodeC* n = (<Value>o).c
    if n != NULL:
        (<Value>o).c = NULL
        n.handle = NULL
        n.flags &= ~(F_PINNED | F_HEAVY)  # (pinned, its count was the last: 1)
        node_decref(A, n)


cdef int _is_light(PyObject* o) noexcept:
    # no Python state on the handle: it can be recycled as it is
    return ((<Value>o)._label is None and (<Value>o)._opstr is None and (<Value>o)._bw is None
            and mg_no_dict(o))




