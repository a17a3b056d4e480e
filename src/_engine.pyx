# cython: freethreading_compatible = False
"""The compiled engine: Value handles over a node arena, iterative backward, fused nn kernels."""

cimport cython
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF, Py_DECREF
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_CheckExact, PyFloat_Check
from cpython.long cimport PyLong_Check, PyLong_CheckExact, PyLong_AsDouble
from cpython.sequence cimport PySequence_Fast_ITEMS
from cpython.exc cimport PyErr_CheckSignals
from cpython.mem cimport PyMem_RawMalloc, PyMem_RawFree, PyMem_RawRealloc, PyMem_Malloc, PyMem_Free
from libc.string cimport memcmp
from libc.math cimport pow, exp, log, tanh, fabs, floor, fmod, isnan, isinf, isfinite, sqrt, copysign
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, uintptr_t

from _arena cimport *

import numbers as _numbers

IMPLEMENTATION = "compiled"

cdef extern from "Python.h":
    void PyObject_GC_Track(object)
    void PyObject_GC_UnTrack(object)
    bint PyObject_GC_IsTracked(object)

# ---------------------------------------------------------------------------------------------
# The arena: slabs of nodes, a bit per free node, and iterative release.

cdef enum:
    SLAB_NODES = MG_SLAB_NODES # 8192: 448 KiB a slab of 56-byte nodes
    SLAB_WORDS = MG_SLAB_NODES // 64  # words of free bits a slab
    SLABS_KEPT = 2             # all-free slabs a full collection leaves with their pages
    SLAB_BUSY = 0              # a node was made in it since the last full collection
    SLAB_IDLE = 1              # all free at a full collection, and nothing made since
    SLAB_GONE = 2              # its pages went back to the OS; nothing made since
    SIGNAL_EVERY = 1 << 18     # work (a node plus its children) between checks for Ctrl-C
    TAPE_MIN = 4096            # the tape's first capacity, in entries

# Free nodes are bits, slab by slab, and a new node is the lowest free one of the lowest slab
# that has one: nodes made one after another sit side by side in memory whatever order the
# earlier ones were freed in (a free list would hand them out in that order, scattered), which
# keeps a layer's weights, and each step's graph, dense for the caches.
cdef uint64_t* _freebits = NULL  # SLAB_WORDS a slab; a set bit is a free node
cdef uint32_t* _slab_nfree = NULL
cdef uint32_t* _slab_word = NULL  # no free node in this slab's words below this one
cdef Py_ssize_t _low_slab = 0    # no free node in the slabs below this one
# A full collection (gc.collect(), or the GC's own rare ones) gives back to the OS the pages of
# the slabs that have been all free, with no node made in them, for IDLE_SECONDS or more (but
# the first few): the memory of a graph dropped for good comes back, while a loop that frees and
# remakes a big graph, collecting in between, does not pay page faults every round.
cdef uint8_t* _slab_state = NULL  # SLAB_BUSY, SLAB_IDLE (all free, nothing made since), SLAB_GONE
cdef double* _slab_idle_since = NULL  # SLAB_IDLE: when a full collection first found it so
cdef double IDLE_SECONDS = 1.0  # how long a slab stays all free and unused before it goes
cdef NodeC** _slabs = NULL
cdef Py_ssize_t _nslabs = 0
cdef Py_ssize_t _cap_slabs = 0
cdef Py_ssize_t _live = 0
cdef Py_ssize_t _limit = -1      # test hook: most nodes the arena may hold (-1: no limit)
cdef NodeC* _dead = NULL         # nodes whose count reached zero, linked through .handle
cdef bint _draining = False
cdef uint16_t _epoch = 0
cdef bint _grad_enabled = True
cdef uintptr_t _leafgen = 0     # moves on whenever a leaf becomes a user-defined op
cdef uint64_t _reinit = 0        # moves on whenever Value.__init__ runs again on a live handle
cdef uint64_t _passes = 0        # backward passes so far
# slabs sorted by address, to find a node's arena index (slab << MG_SLAB_SHIFT | offset)
cdef NodeC** _by_addr = NULL
cdef uint32_t* _by_addr_no = NULL
cdef NodeC* _last_slab = NULL    # the slab of the last lookup, and its number
cdef uint32_t _last_no = 0
# the tape (see _arena.h): op nodes' arena indices in the order they were made
cdef uint32_t* _tape = NULL
cdef Py_ssize_t _tape_len = 0
cdef Py_ssize_t _tape_cap = 0
cdef Py_ssize_t _live_ops = 0    # live nodes with an entry (op nodes that are not F_LATE)
cdef Py_ssize_t _tape_dead = 0   # such nodes released since the last compaction
cdef Py_ssize_t _tape_compactions = 0
cdef Py_ssize_t _tape_looked = 0     # entries backward passes have looked at, in all
cdef int _scanning = 0           # a backward pass holds the tape: it may grow, not be compacted


cdef void* _regrow(void* p, size_t size) except NULL:
    """realloc, or MemoryError (p is then untouched and still the caller's)."""
    cdef void* q = PyMem_RawRealloc(p, size)
    if q == NULL:
        raise MemoryError("micrograd: the node arena cannot grow")
    return q


cdef int _arena_grow() except -1:
    """One more slab, every node of it free."""
    global _slabs, _cap_slabs, _nslabs, _by_addr, _by_addr_no, _freebits, _slab_nfree, _slab_word
    global _slab_state, _slab_idle_since
    cdef NodeC* slab
    cdef Py_ssize_t i, cap
    if _nslabs >= (1 << (32 - MG_SLAB_SHIFT)) - 1:
        raise MemoryError("micrograd: the node arena is full (2**32 nodes)")
    if _nslabs == _cap_slabs:  # each table grows in turn; one that fails leaves the others bigger
        cap = 2 * _cap_slabs + 8
        _slabs = <NodeC**>_regrow(_slabs, cap * sizeof(NodeC*))
        _by_addr = <NodeC**>_regrow(_by_addr, cap * sizeof(NodeC*))
        _by_addr_no = <uint32_t*>_regrow(_by_addr_no, cap * sizeof(uint32_t))
        _freebits = <uint64_t*>_regrow(_freebits, cap * SLAB_WORDS * sizeof(uint64_t))
        _slab_nfree = <uint32_t*>_regrow(_slab_nfree, cap * sizeof(uint32_t))
        _slab_word = <uint32_t*>_regrow(_slab_word, cap * sizeof(uint32_t))
        _slab_state = <uint8_t*>_regrow(_slab_state, cap * sizeof(uint8_t))
        _slab_idle_since = <double*>_regrow(_slab_idle_since, cap * sizeof(double))
        _cap_slabs = cap
    slab = <NodeC*>PyMem_RawMalloc(SLAB_NODES * sizeof(NodeC))
    if slab == NULL:
        raise MemoryError("micrograd: the node arena cannot grow")
    _slabs[_nslabs] = slab
    i = _nslabs  # insertion into the address-sorted table (slabs are few: 8192 nodes each)
    while i > 0 and _by_addr[i - 1] > slab:
        _by_addr[i] = _by_addr[i - 1]
        _by_addr_no[i] = _by_addr_no[i - 1]
        i -= 1
    _by_addr[i] = slab
    _by_addr_no[i] = <uint32_t>_nslabs
    for i in range(SLAB_WORDS):
        _freebits[_nslabs * SLAB_WORDS + i] = ~(<uint64_t>0)
    _slab_nfree[_nslabs] = SLAB_NODES
    _slab_word[_nslabs] = 0
    _slab_state[_nslabs] = SLAB_BUSY
    _nslabs += 1
    return 0


cdef uint32_t _index_slow(NodeC* n) noexcept:
    global _last_slab, _last_no
    cdef Py_ssize_t lo = 0, hi = _nslabs, mid
    while hi - lo > 1:  # the last slab starting at or below n
        mid = (lo + hi) // 2
        if _by_addr[mid] <= n:
            lo = mid
        else:
            hi = mid
    _last_slab = _by_addr[lo]
    _last_no = _by_addr_no[lo]
    return (_last_no << MG_SLAB_SHIFT) | <uint32_t>(n - _last_slab)


cdef inline uint32_t node_index(NodeC* n) noexcept:
    """n's arena index: its slab's number and its offset in the slab."""
    if _last_slab <= n and n < _last_slab + SLAB_NODES:
        return (_last_no << MG_SLAB_SHIFT) | <uint32_t>(n - _last_slab)
    return _index_slow(n)


cdef int _tape_make_room() except -1:
    """Room for one more entry: drop dead and stale entries if that frees enough, else grow."""
    global _tape, _tape_cap
    cdef uint32_t* t
    cdef Py_ssize_t cap
    if _tape_len and _tape_dead >= _tape_len // 2 and not _scanning:  # worth a pass
        _tape_compact()
        if _tape_len <= _tape_cap // 2:
            return 0
    cap = max(2 * _tape_cap, TAPE_MIN)
    t = <uint32_t*>PyMem_RawRealloc(_tape, cap * sizeof(uint32_t))
    if t == NULL:
        raise MemoryError("micrograd: the tape cannot grow")
    _tape = t
    _tape_cap = cap
    return 0


cdef int _tape_resize(Py_ssize_t cap) noexcept:
    """Make the tape's capacity cap (>= its length); 0, or -1 if realloc failed (nothing changed)."""
    global _tape, _tape_cap
    cdef uint32_t* t = <uint32_t*>PyMem_RawRealloc(_tape, cap * sizeof(uint32_t))
    if t == NULL:
        return -1
    _tape = t
    _tape_cap = cap
    return 0


cdef void _tape_compact() noexcept:
    """Keep each live op node's newest entry, in order: dead slots and reused slots' old entries go."""
    global _tape_len, _tape_dead, _tape_compactions
    cdef uint16_t ep = _next_epoch()  # marks 'newer entry seen'; no pass is running (_scanning)
    cdef Py_ssize_t i, j = 0
    cdef NodeC* n
    i = _tape_len - 1
    while i >= 0:
        n = MG_NODE(_slabs, _tape[i])
        if n.op == OP_LEAF or (n.flags & F_LATE) or n.epoch == ep:
            _tape[i] = 0xFFFFFFFF
        else:
            n.epoch = ep
        i -= 1
    for i in range(_tape_len):
        if _tape[i] != 0xFFFFFFFF:
            _tape[j] = _tape[i]
            j += 1
    _tape_len = j
    _tape_dead = 0
    _tape_compactions += 1


cdef inline NodeC* node_new(uint8_t op, double data) except NULL:
    """A fresh node with no children, no handle and a count of zero; op nodes go on the tape."""
    global _low_slab, _live, _tape_len, _tape_dead, _live_ops
    cdef NodeC* n
    cdef Py_ssize_t s
    cdef uint32_t w, off
    cdef uint64_t* word
    if _limit >= 0 and _live >= _limit:
        raise MemoryError("micrograd: the node arena is full (test limit)")
    if op != OP_LEAF:
        if _live_ops == 0 and not _scanning:  # every entry is dead: start the tape afresh
            _tape_len = 0
            _tape_dead = 0
        if _tape_len == _tape_cap:
            _tape_make_room()
    s = _low_slab
    while s < _nslabs and _slab_nfree[s] == 0:
        s += 1
    if s == _nslabs:
        _arena_grow()
    _low_slab = s
    _slab_state[s] = SLAB_BUSY  # (if its pages went back, they come again as it is used)
    w = _slab_word[s]
    word = &_freebits[s * SLAB_WORDS + w]
    while word[0] == 0:  # there is a free node at or above w: the count says so
        w += 1
        word += 1
    _slab_word[s] = w
    off = (w << 6) | MG_CTZ64(word[0])
    word[0] &= word[0] - 1
    _slab_nfree[s] -= 1
    n = _slabs[s] + off
    _live += 1
    if op != OP_LEAF:
        _tape[_tape_len] = (<uint32_t>s << MG_SLAB_SHIFT) | off
        _tape_len += 1
        _live_ops += 1
    n.data = data
    n.grad = 0.0
    n.u.kids = NULL
    n.a = NULL
    n.b = NULL
    n.handle = NULL
    n.refcnt = 0
    n.epoch = 0
    n.op = op
    n.flags = 0
    return n


cdef inline NodeC* node_kid(NodeC* n, uint32_t i) noexcept:
    return mg_kid(n, i)


cdef void rows_decref(MgRows* r) noexcept:
    cdef Py_ssize_t i
    r.refcnt -= 1
    if r.refcnt == 0:
        for i in range(<Py_ssize_t>r.nout * (r.nin + 1)):
            node_decref(r.nodes[i])
        PyMem_Free(r)


cdef void call_decref(MgCall* c) noexcept:
    cdef uint32_t i
    c.refcnt -= 1
    if c.refcnt == 0:
        for i in range(c.nin):
            node_decref(c.x[i])
        rows_decref(c.rows)
        PyMem_Free(c)


cdef inline void _pin(NodeC* n) noexcept:
    # a handle with Python state must outlive its node's last parent, not its last user
    n.flags |= F_PINNED
    Py_INCREF(<object>n.handle)


cdef inline void node_link_n(NodeC* n, uint32_t k) noexcept:
    """n gains k parents."""
    n.refcnt += k
    if (n.flags & (F_HEAVY | F_PINNED)) == F_HEAVY and n.handle != NULL:
        _pin(n)


cdef inline void node_link(NodeC* n) noexcept:
    """n gains a parent."""
    node_link_n(n, 1)


cdef void _drain() noexcept:
    """Free every node on the dead stack and release its children: a loop, never recursion."""
    global _dead, _draining, _low_slab, _live, _live_ops, _tape_dead
    cdef NodeC* n
    cdef NodeC** kids
    cdef uint32_t i, idx, s, w
    _draining = True
    while _dead != NULL:
        n = _dead
        _dead = <NodeC*>n.handle
        if n.op != OP_LEAF and not (n.flags & F_LATE):
            _live_ops -= 1
            _tape_dead += 1
        if n.op == OP_DOT:
            call_decref(MG_CALL(n))
        elif n.op == OP_CUSTOM:
            kids = <NodeC**>n.u.kids + 1
            for i in range(mg_nkids(n)):
                node_decref(kids[i])
            PyMem_Free(n.u.kids)
        elif n.op != OP_LEAF:
            node_decref(n.a)
            if MG_ARITY[n.op] == 2:
                node_decref(n.b)
        n.op = OP_LEAF
        n.handle = NULL
        idx = node_index(n)
        s = idx >> MG_SLAB_SHIFT
        w = (idx & (SLAB_NODES - 1)) >> 6
        _freebits[s * SLAB_WORDS + w] |= (<uint64_t>1) << (idx & 63)
        _slab_nfree[s] += 1
        if w < _slab_word[s]:
            _slab_word[s] = w
        if s < _low_slab:
            _low_slab = s
        _live -= 1
    _draining = False


cdef void _push_dead(NodeC* n) noexcept:
    global _dead
    n.handle = <PyObject*>_dead
    _dead = n
    if not _draining:
        _drain()


cdef void _unpin(NodeC* n) noexcept:
    # only the handle is left: unpin it; it may die now (and release n in turn)
    n.flags &= ~F_PINNED
    Py_DECREF(<object>n.handle)


cdef inline void node_decref(NodeC* n) noexcept:
    n.refcnt -= 1
    if n.refcnt == 0:
        _push_dead(n)
    elif n.refcnt == 1 and (n.flags & F_PINNED):
        _unpin(n)


# ---------------------------------------------------------------------------------------------
# Numbers with Python float semantics (errors included).

cdef int _real(object x, double* out) except -1:
    """1 and *out set if x is a real number, 0 if it is not one; raises only on conversion."""
    if PyFloat_CheckExact(x):
        out[0] = PyFloat_AS_DOUBLE(x)
        return 1
    if PyLong_Check(x):
        out[0] = PyLong_AsDouble(x)  # OverflowError for huge ints, as float(x)
        return 1
    if PyFloat_Check(x):
        out[0] = PyFloat_AS_DOUBLE(x)
        return 1
    if isinstance(x, (str, bytes)) or not isinstance(x, _numbers.Real):
        return 0
    out[0] = float(x)
    return 1


cdef double _num_other(object x, str what) except? -1.0:
    cdef double d
    if _real(x, &d):
        return d
    raise TypeError(f"{what} must be a real number, not {type(x).__name__!r}")


cdef inline double _num(object x, str what) except? -1.0:
    if PyFloat_CheckExact(x):  # the common case, without a call
        return PyFloat_AS_DOUBLE(x)
    return _num_other(x, what)


cdef inline bint _odd_integer(double y) noexcept:
    return isfinite(y) and fmod(fabs(y), 2.0) == 1.0


cdef double _fpow(double iv, double iw) except? -1.0:
    """iv ** iw exactly as Python's float does it; a complex result is a ValueError."""
    cdef bint negate = False
    cdef double ix
    if iw == 0.0:
        return 1.0
    if isnan(iv):
        return iv
    if isnan(iw):
        return 1.0 if iv == 1.0 else iw
    if isinf(iw):
        iv = fabs(iv)
        if iv == 1.0:
            return 1.0
        if (iw > 0.0) == (iv > 1.0):
            return fabs(iw)
        return 0.0
    if isinf(iv):
        if iw > 0.0:
            return iv if _odd_integer(iw) else fabs(iv)
        return copysign(0.0, iv) if _odd_integer(iw) else 0.0
    if iv == 0.0:
        if iw < 0.0:
            raise ZeroDivisionError("0.0 cannot be raised to a negative power")
        return iv if _odd_integer(iw) else 0.0
    if iv < 0.0:
        if iw != floor(iw):
            raise ValueError("negative number cannot be raised to a fractional power")
        iv = -iv
        negate = _odd_integer(iw)
    if iv == 1.0:
        return -1.0 if negate else 1.0
    ix = pow(iv, iw)
    if negate:
        ix = -ix
    if isinf(ix):
        raise OverflowError("(34, 'Numerical result out of range')")
    return ix


cdef double _exp(double x) except? -1.0:
    cdef double r = exp(x)
    if isinf(r) and isfinite(x):
        raise OverflowError("math range error")
    return r


cdef double _log(double x) except? -1.0:
    if x > 0.0 or isnan(x):
        return log(x)
    raise ValueError("math domain error")


cdef inline double _sigmoid(double x) noexcept:
    cdef double e
    if x >= 0.0:
        return 1.0 / (1.0 + exp(-x))
    e = exp(x)
    return e / (1.0 + e)


# ---------------------------------------------------------------------------------------------
# Making nodes and handles.

cdef inline NodeC* _mk1(uint8_t op, double data, NodeC* a) except NULL:
    cdef NodeC* n
    if not _grad_enabled:
        return node_new(OP_LEAF, data)
    n = node_new(op, data)
    n.a = a
    node_link(a)
    return n


cdef inline NodeC* _mk2(uint8_t op, double data, NodeC* a, NodeC* b) except NULL:
    cdef NodeC* n
    if not _grad_enabled:
        return node_new(OP_LEAF, data)
    n = node_new(op, data)
    n.a = a
    n.b = b
    node_link(a)
    node_link(b)
    return n


cdef inline NodeC* _mkc(uint8_t op, double data, NodeC* a, double aux) except NULL:
    cdef NodeC* n = _mk1(op, data, a)
    n.u.aux = aux
    return n


cdef inline bint _pins_below(NodeC* n) noexcept:
    # a handle over a pinned child (a user-defined op's output) may sit in a cycle through that
    # op's closure: the GC must see it to follow the chain (see _traverse_pins)
    if n.op == OP_LEAF or n.op >= OP_DOT:
        return False
    if n.a.flags & F_PINNED:
        return True
    return MG_ARITY[n.op] == 2 and (n.b.flags & F_PINNED) != 0


cdef extern from *:
    """
    /* Recycled Value handles: a plain handle that dies is kept here (untracked, its object
     * fields still None) and handed out again by _wrap, skipping allocation and GC bookkeeping. */
    #define MG_VFREE_CAP 1024
    static PyObject *mg_vfree[MG_VFREE_CAP];
    static int mg_nvfree = 0;
    static PyObject *mg_value_alloc(PyTypeObject *t) {
        PyObject *o;
        if (mg_nvfree == 0) return NULL;
        o = mg_vfree[--mg_nvfree];
        return PyObject_Init(o, t);  /* refcount 1, not tracked by the GC */
    }
    """
    PyObject* mg_value_alloc(PyTypeObject* t)


cdef Value _wrap(NodeC* n):
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
        return v
    try:
        v = Value.__new__(Value)
    except BaseException:
        if n.refcnt == 0:  # a node nobody holds yet: give it back
            n.refcnt = 1
            node_decref(n)
        raise
    if not _pins_below(n):
        PyObject_GC_UnTrack(v)  # plain handles cannot be in a cycle; keep them out of the GC
    v.c = n
    n.handle = <PyObject*>v
    n.refcnt += 1
    return v


cdef inline NodeC* _node(Value v) except NULL:
    if v.c == NULL:
        raise ValueError("this Value was never initialised (Value.__new__ without __init__)")
    return v.c


cdef inline NodeC* _hold(NodeC* n) noexcept:
    n.refcnt += 1
    return n


cdef int _materialize(NodeC* n) except -1:
    """Turn ADDC/MULC into ADD/MUL with a leaf for the constant, so _prev can show it."""
    cdef NodeC* leaf
    if n.op == OP_ADDC or n.op == OP_MULC:
        leaf = node_new(OP_LEAF, n.u.aux)
        leaf.grad = n.cgrad  # what backward has sent the constant so far, as upstream
        n.u.aux = 0.0
        n.b = leaf
        n.op = OP_ADD if n.op == OP_ADDC else OP_MUL
        node_link(leaf)
    return 0


cdef object _pow_text(NodeC* n):
    if n.flags & F_INTEXP:
        return "**" + str(int(n.u.aux))
    return "**" + repr(n.u.aux)


cdef dict _OP_TEXT = {
    OP_LEAF: "", OP_ADD: "+", OP_MUL: "*", OP_ADDC: "+", OP_MULC: "*", OP_POW: "**",
    OP_RELU: "ReLU", OP_TANH: "tanh", OP_EXP: "exp", OP_LOG: "log", OP_SIGMOID: "sigmoid",
    OP_DOT: "dot", OP_CUSTOM: "",
}


cdef void _mark_heavy(Value v) noexcept:
    cdef NodeC* n = v.c
    n.flags |= F_HEAVY
    if not (n.flags & F_PINNED) and n.refcnt > 1:
        _pin(n)


cdef void _leafgen_bump() noexcept:
    global _leafgen
    _leafgen += 1


def _noop():
    return None


# ---------------------------------------------------------------------------------------------
# The local chain rule of one node, and backward.

cdef int _local(NodeC* n) except -1:
    """The local chain rule of one node: built-in ops in C, user-defined ones call Python."""
    if n.op == OP_CUSTOM:
        if n.handle != NULL:
            fn = (<Value>n.handle)._bw
            if fn is not None:
                fn()
    else:
        mg_local(n)
    return 0


# reused between calls; a nested backward (from a user-defined op) gets its own
cdef NodeC** _order = NULL
cdef Py_ssize_t _order_cap = 0
cdef int _backward_depth = 0


cdef void _reset_epochs() noexcept:
    cdef Py_ssize_t s, i
    for s in range(_nslabs):
        if _slab_nfree[s] == SLAB_NODES:
            continue  # nothing live: node_new sets a node's epoch when it hands it out
        for i in range(SLAB_NODES):
            _slabs[s][i].epoch = 0


cdef void _give_back_memory(double now) noexcept:
    """At a full collection, `now` seconds on the monotonic clock: give back the pages of the
    slabs that have been all free, with no node made in them, since a collection at least
    IDLE_SECONDS ago (but the first SLABS_KEPT all-free ones); and then the tape's and
    backward's buffers too, where they are four times what is in use."""
    global _order, _order_cap
    cdef Py_ssize_t s, kept = 0, released = 0
    if _scanning or _backward_depth:
        return  # a pass holds the tape (and may read its dead entries): another time
    for s in range(_nslabs):
        if _slab_nfree[s] != SLAB_NODES or _slab_state[s] == SLAB_GONE:
            continue
        if kept < SLABS_KEPT:  # the lowest ones: where the next nodes will be made
            kept += 1
        elif _slab_state[s] == SLAB_BUSY:
            _slab_state[s] = SLAB_IDLE  # all free from now: if it stays so long enough, it goes
            _slab_idle_since[s] = now
        elif now - _slab_idle_since[s] >= IDLE_SECONDS:
            if not released and _tape_dead:
                _tape_compact()  # no entry may lead into pages that go back: none is read again
            if mg_release_pages(_slabs[s], SLAB_NODES * sizeof(NodeC)):
                _slab_state[s] = SLAB_GONE
                released += 1
    if released:  # a big graph is gone for good: so is the room it needed in the buffers
        if _tape_cap > TAPE_MIN and _tape_cap > 4 * _tape_len:
            _tape_resize(max(<Py_ssize_t>TAPE_MIN, 2 * _tape_len))
        if _order_cap > 4 * (_live + 1024):
            PyMem_RawFree(_order)  # made again, to size, by the next backward()
            _order = NULL
            _order_cap = 0


def _after_gc(phase, info):
    """gc.callbacks hook: after a full collection, unused arena memory goes back to the OS."""
    if phase == "stop" and info.get("generation") == 2:
        _give_back_memory(_monotonic())


from time import monotonic as _monotonic
import gc as _gc
_gc.callbacks.append(_after_gc)


cdef uint16_t _next_epoch() noexcept:
    global _epoch
    _epoch += 1
    if _epoch == 0:  # wrapped: no node may look marked
        _reset_epochs()
        _epoch = 1
    return _epoch


cdef Py_ssize_t _tape_find(NodeC* n) noexcept:
    """n's entry on the tape (the newest one); roots are nearly always near the top."""
    cdef uint32_t idx = node_index(n)
    cdef Py_ssize_t i = _tape_len - 1
    while i >= 0 and _tape[i] != idx:
        i -= 1
    return i if i >= 0 else _tape_len - 1  # not found cannot happen; from the top is still right


cdef int _scan(MgScan* sc) except -1:
    """Run the tape pass to its end, checking for Ctrl-C between slices of work."""
    global _scanning, _tape_looked
    _scanning += 1
    sc.looked = 0
    try:
        while not mg_scan(sc, _tape, _slabs, SIGNAL_EVERY):
            PyErr_CheckSignals()  # Python may run here: the tape may move, not be compacted
    finally:
        _scanning -= 1
        _tape_looked += sc.looked
    return 0


cdef int _backward(NodeC* root) except -1:
    """One pass down the tape (mg_scan), then any user-defined ops it met, in its order."""
    global _order, _order_cap, _backward_depth, _passes
    cdef MgScan sc
    cdef NodeC* n
    cdef Py_ssize_t i, tick = 0
    cdef bint nested = _backward_depth > 0
    if nested:
        sc.order = NULL; sc.cap = 0
    else:
        sc.order = _order; sc.cap = _order_cap
    _backward_depth += 1
    root.refcnt += 1
    try:
        if sc.cap <= _live:  # every reachable node fits: no capacity checks in the loop
            PyMem_RawFree(sc.order)
            sc.cap = 0
            sc.order = <NodeC**>PyMem_RawMalloc((_live + 1024) * sizeof(NodeC*))
            if sc.order == NULL:
                raise MemoryError("micrograd: no memory for backward's work buffers")
            sc.cap = _live + 1024
        if _tape_dead >= _tape_len // 2 and not _scanning:
            # dead entries that no op creation has cleared yet (it compacts only when the tape
            # is full): the search for the root and the pass would walk them on every call
            _tape_compact()
        sc.ep = _next_epoch()
        _passes += 1
        sc.pass_ = _passes
        sc.leafgen = _leafgen
        sc.count = 0
        sc.nlate = 0
        sc.collecting = 0
        root.grad = 1.0
        if root.op == OP_LEAF:
            return 0
        if root.flags & F_LATE:
            sc.order[sc.cap - 1] = root
            sc.nlate = 1
        else:
            root.epoch = sc.ep
            sc.pending = 1
            sc.pos = _tape_find(root)
            _scan(&sc)
        # what the pass collected (from the first user-defined op on), then the late leaves
        for i in range(sc.count + sc.nlate):
            n = sc.order[i] if i < sc.count else sc.order[sc.cap - 1 - (i - sc.count)]
            _local(n)
            tick += 1 + <Py_ssize_t>mg_nkids(n)
            if tick >= SIGNAL_EVERY:
                tick = 0
                PyErr_CheckSignals()
    finally:
        _backward_depth -= 1
        if nested:
            PyMem_RawFree(sc.order)
        else:
            _order = sc.order; _order_cap = sc.cap
        node_decref(root)
    return 0


@cython.final
cdef class _LocalBackward:
    """The local chain rule of one built-in node, callable as upstream's node._backward()."""
    cdef Value v

    def __call__(self):
        _local(_node(self.v))

    def __repr__(self):
        return f"<local backward of {self.v!r}>"


# ---------------------------------------------------------------------------------------------
# Value

@cython.freelist(64)
cdef class Value:
    """ stores a single scalar value and its gradient """
    cdef NodeC* c         # this handle's node (one reference)
    cdef object _label    # None, or the user's label
    cdef object _opstr    # None, or the _op text given to the constructor
    cdef object _bw       # None, or a user-assigned _backward callable
    cdef object __weakref__

    __array_ufunc__ = None  # numpy scalars defer to our reflected operators

    def __init__(self, data, _children=(), _op='', label=''):
        global _reinit
        cdef double d
        cdef list kids = None
        cdef NodeC* n
        cdef NodeC** arr = NULL
        cdef Py_ssize_t i
        d = _num(data, "Value data")
        if not (type(_children) is tuple and len(<tuple>_children) == 0):
            kids = []
            for ch in _children:
                if not isinstance(ch, Value):
                    raise TypeError(f"_children must be Values, not {type(ch).__name__!r}")
                _node(<Value>ch)
                kids.append(ch)
        if not isinstance(_op, str):
            raise TypeError(f"_op must be a str, not {type(_op).__name__!r}")
        if not _grad_enabled:
            kids = None
        if kids:
            arr = mg_kids_new(<uint32_t>len(kids))
            if arr == NULL:
                raise MemoryError()
            try:
                n = node_new(OP_CUSTOM, d)
            except BaseException:
                PyMem_Free(arr)
                raise
            n.u.kids = arr
            for i in range(len(kids)):
                arr[1 + i] = (<Value>kids[i]).c
                node_link(arr[1 + i])
        else:
            n = node_new(OP_LEAF, d)
        if self.c != NULL:  # __init__ called again: let go of the old node
            _reinit += 1  # packed layer rows holding the old node must see the new one
            self._release()
        PyObject_GC_UnTrack(self)
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

    cdef void _release(self) noexcept:
        _release_handle(<PyObject*>self)

    # -- attributes ---------------------------------------------------------------------------

    @property
    def data(self):
        """The scalar value (a float)."""
        return _node(self).data

    @data.setter
    def data(self, value):
        _node(self).data = _num(value, "data")

    @property
    def grad(self):
        """The gradient accumulated by backward() (a float)."""
        return _node(self).grad

    @grad.setter
    def grad(self, value):
        _node(self).grad = _num(value, "grad")

    @property
    def label(self):
        """A name for drawings ('' unless set)."""
        return '' if self._label is None else self._label

    @label.setter
    def label(self, value):
        _node(self)
        self._label = value
        _mark_heavy(self)

    @property
    def _op(self):
        """The op that produced this node ('' on leaves)."""
        cdef NodeC* n = _node(self)
        if self._opstr is not None:
            return self._opstr
        if n.op == OP_POWC:
            return _pow_text(n)
        return _OP_TEXT[n.op]

    @_op.setter
    def _op(self, value):
        _node(self)
        self._opstr = value
        _mark_heavy(self)

    @property
    def _prev(self):
        """The set of this node's children (the same handles while they live)."""
        cdef NodeC* n = _node(self)
        cdef uint32_t i
        _materialize(n)
        out = set()
        for i in range(mg_nkids(n)):
            out.add(_wrap(node_kid(n, i)))
        return out

    @property
    def _backward(self):
        """This node's local chain rule only: adds its grad's contribution to its children."""
        cdef NodeC* n = _node(self)
        cdef _LocalBackward lb
        if self._bw is not None:
            return self._bw
        if n.op == OP_LEAF or n.op == OP_CUSTOM:
            return _noop
        lb = _LocalBackward.__new__(_LocalBackward)
        lb.v = self
        return lb

    @_backward.setter
    def _backward(self, fn):
        cdef NodeC* n = _node(self)
        cdef NodeC** arr
        cdef MgCall* call
        cdef uint32_t i
        if not callable(fn):
            raise TypeError(f"_backward must be callable, not {type(fn).__name__!r}")
        if isinstance(fn, _LocalBackward) and (<_LocalBackward>fn).v is self:
            return  # assigning a node's own rule back: nothing changes
        if n.op != OP_CUSTOM:
            # becomes a user-defined op over the same children, with the same _op text
            if self._opstr is None:
                self._opstr = n.op == OP_POWC and _pow_text(n) or _OP_TEXT[n.op]
            _materialize(n)
            arr = mg_kids_new(mg_nkids(n))
            if arr == NULL:
                raise MemoryError()
            for i in range(mg_nkids(n)):
                arr[1 + i] = node_kid(n, i)
            call = MG_CALL(n) if n.op == OP_DOT else NULL
            if call != NULL:  # its children are links of its call: it takes its own
                for i in range(mg_nkids(n)):
                    node_link(arr[1 + i])
            if n.op == OP_LEAF:
                _leafgen_bump()
                n.flags |= F_LATE  # no children and not on the tape: run after its parents
            n.a = NULL
            n.b = NULL
            n.u.kids = arr
            n.op = OP_CUSTOM
            n.flags &= ~(F_INTEXP | F_WLEAVES)
            if call != NULL:
                call_decref(call)
        self._bw = fn
        if not PyObject_GC_IsTracked(self):
            PyObject_GC_Track(self)  # fn may close over this Value: a cycle the GC must see
        _mark_heavy(self)

    # -- ops ----------------------------------------------------------------------------------

    def __add__(self, other):
        cdef NodeC* a = _node(self)
        cdef NodeC* b
        cdef double x
        if isinstance(other, Value):
            b = _node(<Value>other)
            return _wrap(_mk2(OP_ADD, a.data + b.data, a, b))
        if not _real(other, &x):
            return NotImplemented
        return _wrap(_mkc(OP_ADDC, a.data + x, a, x))

    def __radd__(self, other):  # other + self
        cdef NodeC* a = _node(self)
        cdef double x
        if not _real(other, &x):
            return NotImplemented
        return _wrap(_mkc(OP_ADDC, a.data + x, a, x))

    def __mul__(self, other):
        cdef NodeC* a = _node(self)
        cdef NodeC* b
        cdef double x
        if isinstance(other, Value):
            b = _node(<Value>other)
            return _wrap(_mk2(OP_MUL, a.data * b.data, a, b))
        if not _real(other, &x):
            return NotImplemented
        return _wrap(_mkc(OP_MULC, a.data * x, a, x))

    def __rmul__(self, other):  # other * self
        cdef NodeC* a = _node(self)
        cdef double x
        if not _real(other, &x):
            return NotImplemented
        return _wrap(_mkc(OP_MULC, a.data * x, a, x))

    def __neg__(self):  # -self
        cdef NodeC* a = _node(self)
        return _wrap(_mkc(OP_MULC, a.data * -1.0, a, -1.0))

    def __sub__(self, other):  # self + (-other)
        cdef NodeC* a = _node(self)
        cdef NodeC* b
        cdef NodeC* neg
        cdef NodeC* n
        cdef double x
        if isinstance(other, Value):
            b = _node(<Value>other)
            neg = _hold(_mkc(OP_MULC, b.data * -1.0, b, -1.0))
            try:
                n = _mk2(OP_ADD, a.data + neg.data, a, neg)
            finally:
                node_decref(neg)
            return _wrap(n)
        if not _real(other, &x):
            return NotImplemented
        return _wrap(_mkc(OP_ADDC, a.data + -x, a, -x))

    def __rsub__(self, other):  # (-self) + other
        cdef NodeC* a = _node(self)
        cdef NodeC* neg
        cdef NodeC* n
        cdef double x
        if not _real(other, &x):
            return NotImplemented
        neg = _hold(_mkc(OP_MULC, a.data * -1.0, a, -1.0))
        try:
            n = _mkc(OP_ADDC, neg.data + x, neg, x)
        finally:
            node_decref(neg)
        return _wrap(n)

    def __truediv__(self, other):  # self * other**-1
        cdef NodeC* a = _node(self)
        cdef NodeC* b
        cdef NodeC* inv
        cdef NodeC* n
        cdef double x
        if isinstance(other, Value):
            b = _node(<Value>other)
            x = _fpow(b.data, -1.0)
            inv = _hold(_mkc(OP_POWC, x, b, -1.0))
            inv.flags |= F_INTEXP
            try:
                n = _mk2(OP_MUL, a.data * inv.data, a, inv)
            finally:
                node_decref(inv)
            return _wrap(n)
        if not _real(other, &x):
            return NotImplemented
        x = _fpow(x, -1.0)
        return _wrap(_mkc(OP_MULC, a.data * x, a, x))

    def __rtruediv__(self, other):  # self**-1 * other
        cdef NodeC* a = _node(self)
        cdef NodeC* inv
        cdef NodeC* n
        cdef double x
        if not _real(other, &x):
            return NotImplemented
        inv = _hold(_mkc(OP_POWC, _fpow(a.data, -1.0), a, -1.0))
        inv.flags |= F_INTEXP
        try:
            n = _mkc(OP_MULC, inv.data * x, inv, x)
        finally:
            node_decref(inv)
        return _wrap(n)

    def __pow__(self, other, mod=None):
        cdef NodeC* a = _node(self)
        cdef NodeC* b
        cdef NodeC* n
        cdef double x
        if mod is not None:
            return NotImplemented
        if isinstance(other, Value):
            b = _node(<Value>other)
            return _wrap(_mk2(OP_POW, _fpow(a.data, b.data), a, b))
        if not _real(other, &x):
            return NotImplemented
        n = _mkc(OP_POWC, _fpow(a.data, x), a, x)
        if PyLong_CheckExact(other):
            n.flags |= F_INTEXP
        v = _wrap(n)
        if not PyLong_CheckExact(other) and not PyFloat_CheckExact(other) and n.op == OP_POWC:
            # bool, numpy scalars...: keep upstream's f'**{other}' text as the user wrote it
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
        d = _fpow(x, a.data)
        base = _hold(node_new(OP_LEAF, x))
        try:
            n = _mk2(OP_POW, d, base, a)
        finally:
            node_decref(base)
        return _wrap(n)

    def relu(self):
        """ReLU: max(0, x); the gradient at 0 is 0, as upstream."""
        cdef NodeC* a = _node(self)
        return _wrap(_mk1(OP_RELU, 0.0 if a.data < 0.0 else a.data, a))

    def tanh(self):
        """Hyperbolic tangent."""
        cdef NodeC* a = _node(self)
        return _wrap(_mk1(OP_TANH, tanh(a.data), a))

    def exp(self):
        """e ** x; raises OverflowError past ~709.78, like math.exp."""
        cdef NodeC* a = _node(self)
        return _wrap(_mk1(OP_EXP, _exp(a.data), a))

    def log(self):
        """Natural logarithm; raises ValueError for x <= 0, like math.log."""
        cdef NodeC* a = _node(self)
        return _wrap(_mk1(OP_LOG, _log(a.data), a))

    def sigmoid(self):
        """Logistic sigmoid 1 / (1 + e**-x), computed without overflow."""
        cdef NodeC* a = _node(self)
        return _wrap(_mk1(OP_SIGMOID, _sigmoid(a.data), a))

    def backward(self):
        """Backpropagate from this node: self.grad = 1, then every reachable node adds its part."""
        _backward(_node(self))

    def __repr__(self):
        cdef NodeC* n = _node(self)
        return f"Value(data={n.data!r}, grad={n.grad!r})"

    def __reduce__(self):
        # a Value pickles as a leaf: its data, grad and label (the graph is not saved)
        cdef NodeC* n = _node(self)
        return (_rebuild, (n.data, n.grad, self.label))


# A user-defined op's _backward usually closes over its own output: handle -> _bw -> closure ->
# handle, a cycle the GC sees. While a parent node pins that handle, the pin is a reference the GC
# cannot see; a tracked handle therefore also reports the pins of its children when it is their
# only parent (count == handle + one link), so a chain of user-defined ops is freed in one pass.
cdef extern from *:
    """
    static traverseproc mg_orig_traverse = NULL;
    static int (*mg_extra_traverse)(PyObject *, visitproc, void *) = NULL;
    static int mg_traverse(PyObject *o, visitproc visit, void *arg) {
        int r = mg_orig_traverse(o, visit, arg);
        return r ? r : mg_extra_traverse(o, visit, arg);
    }
    static destructor mg_orig_dealloc = NULL;
    static void (*mg_release)(PyObject *) = NULL;
    /* Value's tp_dealloc: give the node back first, then Cython's own dealloc. (A __dealloc__
     * would make Cython save and restore the error state on every handle's death.) */
    static PyTypeObject *mg_value_type = NULL;
    static int (*mg_light)(PyObject *) = NULL;
    static void mg_dealloc(PyObject *o) {
        PyObject_GC_UnTrack(o);  /* releasing may run Python code: no GC visit of a dying object */
        mg_release(o);
        if (Py_TYPE(o) == mg_value_type && mg_nvfree < MG_VFREE_CAP && mg_light(o)
                && *(PyObject **)((char *)o + mg_value_type->tp_weaklistoffset) == NULL) {
            mg_vfree[mg_nvfree++] = o;  /* recycled by _wrap */
            return;
        }
        mg_orig_dealloc(o);
    }
    static void mg_install_dealloc(PyTypeObject *t, void (*release)(PyObject *),
                                   int (*light)(PyObject *)) {
        if (t->tp_dealloc == mg_dealloc) return;
        mg_orig_dealloc = t->tp_dealloc;
        mg_release = release;
        mg_light = light;
        mg_value_type = t;
        t->tp_dealloc = mg_dealloc;
    }
    static void mg_install_traverse(PyTypeObject *t, int (*extra)(PyObject *, visitproc, void *)) {
        if (t->tp_traverse == mg_traverse) return;
        mg_orig_traverse = t->tp_traverse;
        mg_extra_traverse = extra;
        t->tp_traverse = mg_traverse;
    }
    """
    ctypedef int (*visitproc)(PyObject*, void*) noexcept
    void mg_install_traverse(PyTypeObject* t, int (*extra)(PyObject*, visitproc, void*) noexcept)
    void mg_install_dealloc(PyTypeObject* t, void (*release)(PyObject*) noexcept,
                            int (*light)(PyObject*) noexcept)


cdef int _traverse_pins(PyObject* o, visitproc visit, void* arg) noexcept:
    cdef NodeC* n = (<Value>o).c
    cdef NodeC* k
    cdef uint32_t i
    cdef int r
    if n == NULL:
        return 0
    for i in range(mg_nkids(n)):
        k = node_kid(n, i)
        if (k.flags & F_PINNED) and k.refcnt == 2 and k.handle != NULL:
            r = visit(k.handle, arg)
            if r:
                return r
    return 0


mg_install_traverse(<PyTypeObject*>Value, _traverse_pins)


cdef void _release_handle(PyObject* o) noexcept:
    # o is dying (refcount 0): touch it only through the borrowed pointer, never as an object
    cdef NodeC* n = (<Value>o).c
    if n != NULL:
        (<Value>o).c = NULL
        n.handle = NULL
        n.flags &= ~F_PINNED
        node_decref(n)


cdef int _is_light(PyObject* o) noexcept:
    # no Python state on the handle: it can be recycled as it is
    return (<Value>o)._label is None and (<Value>o)._opstr is None and (<Value>o)._bw is None


mg_install_dealloc(<PyTypeObject*>Value, _release_handle, _is_light)


def _rebuild(data, grad, label):
    v = Value(data, label=label)
    v.grad = grad
    return v


# ---------------------------------------------------------------------------------------------
# no_grad

@cython.final
cdef class _NoGrad:
    cdef bint prev

    def __enter__(self):
        global _grad_enabled
        self.prev = _grad_enabled
        _grad_enabled = False
        return None

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self.prev
        return False


def no_grad():
    """Within this block, ops compute data but record no graph (results are leaves)."""
    return _NoGrad()


def is_grad_enabled():
    """True unless inside no_grad()."""
    return _grad_enabled


# ---------------------------------------------------------------------------------------------
# Fused kernels used by micrograd.nn and micrograd.optim

cdef dict _ACTS = {"relu": OP_RELU, "tanh": OP_TANH, "sigmoid": OP_SIGMOID, "linear": OP_LEAF}


cdef extern from *:
    """
    #define MG_TYPE(o) (Py_TYPE((PyObject *)(o)))
    """
    PyTypeObject* MG_TYPE(PyObject* o)


cdef inline NodeC* _pnode(PyObject* o) except NULL:
    """The node of a borrowed object that must be an initialised Value (no refcounting)."""
    if MG_TYPE(o) != <PyTypeObject*>Value and not isinstance(<object>o, Value):
        raise TypeError(f"weights and biases must be Values, not {type(<object>o).__name__!r}")
    if (<Value>o).c == NULL:
        _node(<Value>o)
    return (<Value>o).c


@cython.final
cdef class _Rows:
    """A layer's weights and biases packed for _layer_rows: their nodes, each linked once.

    It keeps the rows it was packed from and a tuple of the handles they held then, so a call
    notices `neuron.w[i] = ...` (items compared by identity, which the tuple keeps unambiguous)
    and packs again.
    """
    cdef MgRows* r
    cdef tuple ws          # the rows as given: the lists themselves
    cdef tuple bs
    cdef tuple seen        # ws's handles when packed, row after row
    cdef uint64_t reinit   # _reinit when packed
    cdef bint plain        # every weight a plain leaf when packed, as of leafgen
    cdef uintptr_t leafgen
    cdef Py_ssize_t nin, nout

    def __cinit__(self):
        self.r = NULL

    def __dealloc__(self):
        if self.r != NULL:
            rows_decref(self.r)
            self.r = NULL

    def __reduce__(self):
        return (_rows, (list(self.ws), list(self.bs)))


cdef int _rows_pack(_Rows rw) except -1:
    """Pack rw.r from rw.ws and rw.bs (every row of one length; checked here)."""
    cdef Py_ssize_t nout = len(rw.ws), nin, j, k = 0, count
    cdef MgRows* r
    cdef list seen = []
    cdef bint plain = True
    cdef NodeC* nd
    rows = [row if type(row) is list or type(row) is tuple else tuple(row) for row in rw.ws]
    nin = len(rows[0]) if nout else 0
    for j in range(nout):
        if len(rows[j]) != nin:
            raise ValueError(f"weight rows differ in length: {nin} and {len(rows[j])}")
        _pnode(<PyObject*>rw.bs[j])
        for item in rows[j]:
            nd = _pnode(<PyObject*>item)
            plain = plain and nd.op == OP_LEAF
            seen.append(item)
    count = nout * (nin + 1)
    r = <MgRows*>PyMem_Malloc(sizeof(MgRows) + (count if count else 1) * sizeof(NodeC*))
    if r == NULL:
        raise MemoryError()
    r.refcnt = 1
    r.nin = <uint32_t>nin
    r.nout = <uint32_t>nout
    for j in range(nout):
        r.nodes[k] = (<Value>rw.bs[j]).c
        node_link(r.nodes[k])
        k += 1
        for item in rows[j]:
            r.nodes[k] = (<Value>item).c
            node_link(r.nodes[k])
            k += 1
    if rw.r != NULL:
        rows_decref(rw.r)
    rw.r = r
    rw.ws = tuple(rows)
    rw.seen = tuple(seen)
    rw.reinit = _reinit
    rw.plain = plain
    rw.leafgen = _leafgen
    rw.nin = nin
    rw.nout = nout
    return 0


def _rows(ws, bs):
    """Pack a layer's weight rows (sequences of Values) and biases for _layer_rows."""
    cdef _Rows rw = _Rows.__new__(_Rows)
    rw.ws = tuple(row if type(row) is list or type(row) is tuple else tuple(row) for row in ws)
    rw.bs = tuple(bs)
    if len(rw.ws) != len(rw.bs):
        raise ValueError(f"got {len(rw.ws)} weight rows but {len(rw.bs)} biases")
    for b in rw.bs:
        _pnode(<PyObject*>b)
    rw.seen = ()
    rw.nin = -1  # packed on first use, when the inputs' count is known for the error message
    return rw


cdef int _rows_check(_Rows rw, Py_ssize_t nin) except -1:
    """Pack again if any row changed since (items are compared by identity, not touched)."""
    cdef Py_ssize_t j, k = 0
    cdef PyObject** seen
    if rw.nin >= 0 and rw.reinit == _reinit:
        seen = PySequence_Fast_ITEMS(rw.seen)
        for j in range(rw.nout):
            row = <object>PySequence_Fast_ITEMS(rw.ws)[j]
            if len(row) != rw.nin:
                break
            if memcmp(PySequence_Fast_ITEMS(row), seen + k, rw.nin * sizeof(PyObject*)) != 0:
                break
            k += rw.nin
        else:
            if nin == rw.nin:
                return 0
    for row in rw.ws:  # a count that does not match says which row expected what
        if len(row) != nin:
            raise ValueError(f"expected {len(row)} inputs, got {nin}")
    _rows_pack(rw)
    return 0


cdef NodeC* _act_node(uint8_t act, NodeC* n) except NULL:
    """act(n), n being a fresh dot node nobody holds yet (freed here if this fails)."""
    cdef NodeC* out
    _hold(n)
    try:
        if act == OP_RELU:
            out = _mk1(OP_RELU, 0.0 if n.data < 0.0 else n.data, n)
        elif act == OP_TANH:
            out = _mk1(OP_TANH, tanh(n.data), n)
        else:
            out = _mk1(OP_SIGMOID, _sigmoid(n.data), n)
    finally:
        node_decref(n)
    return out


def _layer_rows(_Rows rows not None, x, act):
    """A whole layer: [act(b_j + sum_i w_ji x_i) for each neuron j], one dot node per neuron,
    summed left to right from b_j as upstream's Neuron. One call block holds the inputs."""
    cdef uint8_t code
    cdef Py_ssize_t nin, nout, j, i
    cdef MgRows* r
    cdef MgCall* call
    cdef NodeC** row
    cdef NodeC* n
    cdef NodeC* xi_node
    cdef double sums[4]
    cdef double acc, d
    cdef list out
    cdef double* xd = NULL
    if act not in _ACTS:
        raise ValueError(f"unknown activation {act!r}; expected one of {sorted(_ACTS)}")
    code = _ACTS[act]
    if type(x) is not list and type(x) is not tuple:
        x = list(x)
    nin = len(x)
    _rows_check(rows, nin)
    r = rows.r
    nout = rows.nout
    out = []
    if not _grad_enabled:  # no graph: plain numbers in, leaves out
        xd = <double*>PyMem_Malloc((nin if nin else 1) * sizeof(double))
        if xd == NULL:
            raise MemoryError()
        try:
            for i in range(nin):
                xi = x[i]
                if isinstance(xi, Value):
                    xd[i] = _node(<Value>xi).data
                elif not _real(xi, &xd[i]):
                    raise TypeError(f"inputs must be Values or real numbers, not {type(xi).__name__!r}")
            for j in range(nout):
                row = &r.nodes[j * (nin + 1)]
                acc = row[0].data
                for i in range(nin):
                    acc = acc + row[1 + i].data * xd[i]
                if code == OP_RELU:
                    acc = 0.0 if acc < 0.0 else acc
                elif code == OP_TANH:
                    acc = tanh(acc)
                elif code == OP_SIGMOID:
                    acc = _sigmoid(acc)
                out.append(_wrap(node_new(OP_LEAF, acc)))
        finally:
            PyMem_Free(xd)
        return out
    call = <MgCall*>PyMem_Malloc(sizeof(MgCall) + (nin if nin else 1) * sizeof(NodeC*))
    if call == NULL:
        raise MemoryError()
    call.refcnt = 1  # ours while the nodes are made
    call.rows = r
    r.refcnt += 1
    call.pass_ = 0
    call.nin = 0
    try:
        for i in range(nin):
            xi = x[i]
            if isinstance(xi, Value):
                xi_node = _node(<Value>xi)
            elif _real(xi, &d):
                xi_node = node_new(OP_LEAF, d)
            else:
                raise TypeError(f"inputs must be Values or real numbers, not {type(xi).__name__!r}")
            node_link(xi_node)
            call.x[i] = xi_node
            call.nin += 1
        for j in range(nout):
            if j % 4 == 0:  # four neurons' sums at a time (each in upstream's order)
                mg_rows_dot(&r.nodes[j * (nin + 1)], <uint32_t>nin, call.x,
                            <uint32_t>min(4, nout - j), sums)
            row = &r.nodes[j * (nin + 1)]
            acc = sums[j % 4]
            n = node_new(OP_DOT, acc)
            n.u.kids = call
            call.refcnt += 1
            n.a = <NodeC*>row
            if rows.plain:
                # every weight a plain leaf: backward need not mark them, until some leaf
                # anywhere becomes a user-defined op (_leafgen moves on; this no longer holds)
                n.flags |= F_WLEAVES
                n.b = <NodeC*>rows.leafgen
            if code != OP_LEAF:
                n = _act_node(code, n)
            out.append(_wrap(n))
    finally:
        call_decref(call)
    return out


def _layer(ws, bs, x, act):
    """A whole layer from weight rows and biases (packed for this call only)."""
    if act not in _ACTS:
        raise ValueError(f"unknown activation {act!r}; expected one of {sorted(_ACTS)}")
    return _layer_rows(_rows(ws, bs), x, act)


def _dot(b, w, x):
    """One node: b + w[0]*x[0] + w[1]*x[1] + ..., summed left to right as upstream's Neuron."""
    return _layer((w,), (b,), x, "linear")[0]


@cython.final
cdef class _Params:
    """A fixed list of parameters for the optimizer kernels: their nodes, held for its lifetime."""
    cdef NodeC** nodes
    cdef Py_ssize_t n
    cdef tuple values

    def __cinit__(self):
        self.nodes = NULL
        self.n = 0

    def __dealloc__(self):
        cdef Py_ssize_t i
        for i in range(self.n):
            node_decref(self.nodes[i])
        PyMem_Free(self.nodes)

    def __len__(self):
        return self.n

    def __iter__(self):
        return iter(self.values)

    def __reduce__(self):
        return (_pack, (list(self.values),))


def _pack(params):
    """The parameters as a _Params: checked once, so each optimizer step is a plain C loop."""
    cdef _Params pk = _Params.__new__(_Params)
    cdef tuple vals = tuple(params)
    cdef Py_ssize_t i, m = len(vals)
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
    pk.values = vals
    return pk


cdef _Params _as_params(object params):
    if type(params) is _Params:
        return <_Params>params
    return <_Params>_pack(params)


def _zero_grad(params):
    """Set .grad = 0.0 on every Value of the sequence (or _Params)."""
    cdef _Params pk = _as_params(params)
    cdef Py_ssize_t i
    for i in range(pk.n):
        pk.nodes[i].grad = 0.0


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
        for i in range(m):
            p = pk.nodes[i]
            p.data = p.data - lr * p.grad
        return
    for i in range(m):
        p = pk.nodes[i]
        g = p.grad
        if weight_decay != 0.0:
            g = g + weight_decay * p.data
        if momentum != 0.0:
            if started:
                g = momentum * buf[i] + g
            buf[i] = g
        p.data = p.data - lr * g


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
    for i in range(k):
        p = pk.nodes[i]
        g = p.grad
        if weight_decay != 0.0:
            g = g + weight_decay * p.data
        m[i] = beta1 * m[i] + (1.0 - beta1) * g
        v[i] = beta2 * v[i] + (1.0 - beta2) * (g * g)
        denom = sqrt(v[i]) / bc2_sqrt + eps
        p.data = p.data - step * (m[i] / denom)


# ---------------------------------------------------------------------------------------------
# Introspection and test hooks

def _live_nodes():
    """How many nodes the arena holds right now."""
    return _live


def _arena_stats():
    """live nodes, slabs, bytes reserved by slabs, bytes per node, slabs whose pages went back
    to the OS (all free; see _give_back_memory)."""
    cdef Py_ssize_t s, gone = 0
    for s in range(_nslabs):
        gone += _slab_state[s] == SLAB_GONE
    return {"live": _live, "slabs": _nslabs, "bytes": _nslabs * SLAB_NODES * sizeof(NodeC),
            "node_bytes": sizeof(NodeC), "slabs_given_back": gone}


def _arena_index(Value v not None):
    """Test hook: the arena index of v's node (its slab's number << 13 | its place in the slab)."""
    return node_index(_node(v))


def _tape_stats():
    """entries, capacity, live op nodes, op nodes released since the last compaction, compactions,
    entries looked at by all backward passes so far."""
    return {"len": _tape_len, "cap": _tape_cap, "live_ops": _live_ops, "dead": _tape_dead,
            "compactions": _tape_compactions, "looked": _tape_looked}


def _tape_shrink():
    """Test hook: compact the tape and give back its spare capacity (down to the first size)."""
    cdef Py_ssize_t cap = TAPE_MIN
    if _scanning:
        raise RuntimeError("backward() is running")
    _tape_compact()
    while cap < _tape_len + 1:
        cap *= 2
    if _tape_resize(cap) != 0:
        raise MemoryError()


def _set_node_limit(limit):
    """Test hook: make allocation fail (MemoryError) once `limit` nodes are live; None lifts it."""
    global _limit
    _limit = -1 if limit is None else int(limit)


def _set_epoch(e):
    """Test hook: set the backward epoch counter (to exercise its wrap-around)."""
    global _epoch
    _epoch = <uint16_t>(e & 0xFFFF)
