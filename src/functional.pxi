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
    return _keep(b, _mk2(ARENA, OP_ADD, mg_dp(x)[0] + mg_dp(y)[0], x, y))


cdef inline NodeC* _b_addc(_Built* b, NodeC* x, double c) except NULL:  # x + c, c + x
    return _keep(b, _mkc(ARENA, OP_ADDC, mg_dp(x)[0] + c, x, c))


cdef inline NodeC* _b_mul(_Built* b, NodeC* x, NodeC* y) except NULL:   # x * y
    return _keep(b, _mk2(ARENA, OP_MUL, mg_dp(x)[0] * mg_dp(y)[0], x, y))


cdef inline NodeC* _b_mulc(_Built* b, NodeC* x, double c) except NULL:  # x * c
    return _keep(b, _mkc(ARENA, OP_MULC, mg_dp(x)[0] * c, x, c))


cdef inline NodeC* _b_un(_Built* b, uint8_t op, NodeC* x) except NULL:  # x.exp(), x.log(), ...
    return _keep(b, _mk1(ARENA, op, _forward1(op, mg_dp(x)[0]), x))


cdef NodeC* _b_sum(_Built* b, NodeC** xs, Py_ssize_t m, double start) except NULL:
    """sum(xs, start) for a number start, as the built-in: start + x0 + x1 + ... (m >= 1)"""
    cdef NodeC* acc = _b_addc(b, xs[0], start)
    cdef Py_ssize_t i
    for i in range(1, m):
        acc = _b_add(b, acc, xs[i])
    return acc


# softmax, log_softmax and rmsnorm are fused: one group (MgGroup, _fused.h) holding the inputs
# and what the rule needs, a hidden head node owning it, and one node per output, each holding
# the head. The data are the formula's bit for bit (the same operations on the same doubles, in
# its order); so are the inputs' grads (the head's rule replays the formula's nodes' rules).

cdef MgGroup* _group_alloc(Py_ssize_t m, uint8_t kind) except NULL:
    """An empty group with room for m inputs (G.m = 0: none linked yet)."""
    cdef char* p = <char*>PyMem_Malloc(sizeof(MgGroup) + <size_t>m * (sizeof(NodeC*) + 2 * sizeof(double) + 1))
    cdef MgGroup* G
    if p == NULL:
        raise MemoryError()
    G = <MgGroup*>p
    G.kind = kind
    G.m = 0
    G.x = <NodeC**>(p + sizeof(MgGroup))
    G.e = <double*>(p + sizeof(MgGroup) + m * sizeof(NodeC*))
    G.g = G.e + m
    G.got = <uint8_t*>(G.g + m)
    return G


cdef MgGroup* _group_new(object xs, str what, uint8_t kind) except NULL:
    """A group over xs (Values or real numbers; numbers become leaves), every input linked once
    (the caller owns it: group_free). Every number is converted before any node is read."""
    # a list of Values is read in place (no Python code runs while it is read); anything else
    # from a tuple of its own, as a number's __float__ may change the caller's list
    cdef object t = xs if type(xs) is tuple or type(xs) is list else tuple(xs)
    cdef Py_ssize_t i, m = len(t)
    cdef MgGroup* G
    cdef double d
    cdef bint numbers = False
    cdef PyObject* o
    if type(t) is list:
        for i in range(m):
            o = PySequence_Fast_ITEMS(t)[i]
            if MG_TYPE(o) != <PyTypeObject*>Value:
                t = tuple(t)
                break
    if m == 0:
        raise ValueError(f"{MG_OP_TEXT[kind].decode()} of an empty sequence")
    if m > 0xFFFFFFF:
        raise ValueError(f"{MG_OP_TEXT[kind].decode()} of more than 2**28 elements")
    for i in range(m):  # numbers first: their __float__ may run Python
        o = PySequence_Fast_ITEMS(t)[i]
        if MG_TYPE(o) != <PyTypeObject*>Value and not isinstance(<object>o, Value):
            if not _real(<object>o, &d):
                raise TypeError(f"{what} must be Values or real numbers, not {type(<object>o).__name__!r}")
            numbers = True
        elif (<Value>o).c == NULL:
            _node(<Value>o)  # (raises: never initialised)
    G = _group_alloc(m, kind)
    try:
        for i in range(m):
            o = PySequence_Fast_ITEMS(t)[i]
            if MG_TYPE(o) == <PyTypeObject*>Value or isinstance(<object>o, Value):
                G.x[i] = _node(<Value>o)
            else:
                _real(<object>o, &d)  # (a number converts to the same double again: no Python
                G.x[i] = node_new(ARENA, OP_LEAF, d)  # code ran in between that could change it)
            node_link(G.x[i])
            G.got[i] = 0
            G.m += 1
    except BaseException:
        group_free(ARENA, G)
        raise
    return G


cdef list _wrap_all(NodeC** nodes, Py_ssize_t m):
    """The handles of m fresh nodes nobody holds yet; if one cannot be made, the rest are freed."""
    cdef list out = PyList_New(m)  # (its items NULL until set: only set ones are released)
    cdef Py_ssize_t i = 0, j
    cdef Value v
    try:
        while i < m:
            v = _wrap(ARENA, nodes[i])
            Py_INCREF(v)
            PyList_SET_ITEM(out, i, v)
            i += 1
    except BaseException:
        for j in range(i + 1, m):  # (_wrap freed nodes[i] itself)
            nodes[j].refcnt = 1
            node_decref(ARENA, nodes[j])
        raise
    return out


cdef int _group_made(MgGroup* G, uint8_t kind, double* y, NodeC** out) except -1:
    """G's head, then its G.m outputs into out[0:G.m], data y, each holding the head: fresh
    nodes nobody holds. G is the head's from here on (freed here, with what was made, if a node
    cannot be made)."""
    cdef uint32_t m = G.m, i, made = 0
    cdef NodeC* head = NULL
    cdef NodeC* n
    try:
        head = node_new(ARENA, OP_FUSED, 0.0)  # below its outputs on the tape
        head.u.kids = G
        G = NULL  # (the head's)
        _hold(head)
        for i in range(m):
            n = node_new(ARENA, kind, y[i])
            n.a = head
            node_link(head)
            n.v.idx = i
            out[i] = n
            made += 1
    except BaseException:
        if G != NULL:
            group_free(ARENA, G)
        for i in range(made):
            out[i].refcnt = 1
            node_decref(ARENA, out[i])
        raise
    finally:
        if head != NULL:
            node_decref(ARENA, head)  # (its outputs hold it)
    return 0


cdef list _group_out(MgGroup* G, uint8_t kind, double* y):
    """The outputs of G, with data y[0:G.m]: the head, then one node per output holding it (or,
    inside no_grad(), leaves, and G freed). G is the callee's from here on."""
    cdef uint32_t m = G.m, i, made = 0
    cdef NodeC* small[64]
    cdef NodeC** out = &small[0]
    if m > 64:
        out = <NodeC**>PyMem_Malloc(m * sizeof(NodeC*))
    if out == NULL:
        group_free(ARENA, G)
        raise MemoryError()
    try:
        if ARENA.grad_enabled:
            _group_made(G, kind, y, out)
        else:
            try:
                for i in range(m):
                    out[i] = node_new(ARENA, OP_LEAF, y[i])
                    made += 1
            except BaseException:
                for i in range(made):
                    out[i].refcnt = 1
                    node_decref(ARENA, out[i])
                raise
            finally:
                group_free(ARENA, G)  # (y may be its g: read first)
        return _wrap_all(out, m)
    finally:
        if out != &small[0]:
            PyMem_Free(out)


cdef double _max_of(MgGroup* G) noexcept:
    """max(x.data for x in xs), as the built-in compares (a NaN first stays)."""
    cdef double top = mg_dp(G.x[0])[0]
    cdef uint32_t i
    for i in range(1, G.m):
        if mg_dp(G.x[i])[0] > top:
            top = mg_dp(G.x[i])[0]
    return top


cdef int _softmax_fill(MgGroup* G) except -1:
    """Softmax's data into G.g (the outputs' data until the outputs are made, then the rule's)
    and what the rule needs into G.e and G.k. Only C runs: the inputs' data stay as read."""
    cdef double* y = G.g
    cdef double top = _max_of(G), total, inv
    cdef uint32_t i, m = G.m
    for i in range(m):
        G.e[i] = _forward1(OP_EXP, mg_dp(G.x[i])[0] + -top)
    total = G.e[0] + 0.0
    for i in range(1, m):
        total = total + G.e[i]
    inv = _recip(total)
    for i in range(m):
        y[i] = G.e[i] * inv
    G.k[0] = total
    G.k[1] = inv
    return 0


def _f_softmax(logits):
    """[e / total for e in exps], exps = [(v - max(v.data ...)).exp() ...], total = sum(exps)."""
    cdef MgGroup* G = _group_new(logits, "logits", OP_SOFTMAX)
    try:
        _softmax_fill(G)
    except BaseException:
        group_free(ARENA, G)
        raise
    return _group_out(G, OP_SOFTMAX, G.g)


def _f_log_softmax(logits):
    """[s - lse for s in shifted], shifted = [v - max(v.data ...) ...],
    lse = sum(s.exp() for s in shifted).log()."""
    cdef MgGroup* G = _group_new(logits, "logits", OP_LOGSOFTMAX)
    cdef double* y = NULL
    cdef double top, total, neg
    cdef uint32_t i, m = G.m
    try:
        y = G.g  # the outputs' data, until _group_out has made them (then the rule's)
        top = _max_of(G)
        for i in range(m):
            y[i] = mg_dp(G.x[i])[0] + -top  # shifted
        for i in range(m):
            G.e[i] = _forward1(OP_EXP, y[i])
        total = G.e[0] + 0.0
        for i in range(1, m):
            total = total + G.e[i]
        neg = _forward1(OP_LOG, total) * -1.0
        for i in range(m):
            y[i] = y[i] + neg
        G.k[0] = total
    except BaseException:
        group_free(ARENA, G)
        raise
    return _group_out(G, OP_LOGSOFTMAX, y)


def _f_rmsnorm(xs, double eps):
    """[xi * scale for xi in x], scale = (sum(xi * xi for xi in x) / len(x) + eps) ** -0.5."""
    cdef MgGroup* G = _group_new(xs, "inputs", OP_RMSNORM)
    cdef double* y = NULL
    cdef double ss, invm, t, scale
    cdef uint32_t i, m = G.m
    try:
        y = G.g  # the outputs' data, until _group_out has made them (then the rule's)
        ss = mg_dp(G.x[0])[0] * mg_dp(G.x[0])[0] + 0.0
        for i in range(1, m):
            ss = ss + mg_dp(G.x[i])[0] * mg_dp(G.x[i])[0]
        invm = _recip(<double>m)
        t = ss * invm + eps
        scale = _fpow(t, -0.5)
        for i in range(m):
            y[i] = mg_dp(G.x[i])[0] * scale
        G.k[0] = t
        G.k[1] = scale
        G.k[2] = invm
    except BaseException:
        group_free(ARENA, G)
        raise
    return _group_out(G, OP_RMSNORM, y)


cdef tuple _fused_local_grads(NodeC* n):
    """d out / d x_j for a fused output n and each input x_j of its group, from the data now."""
    cdef MgGroup* G = MG_GROUP(n.a)
    cdef uint32_t i = <uint32_t>n.v.idx, j, m = G.m
    cdef double yi, c
    cdef list out = []
    if G.kind == OP_SOFTMAX:      # y_i (delta_ij - y_j)
        yi = G.e[i] * G.k[1]
        for j in range(m):
            out.append(yi * ((1.0 if j == i else 0.0) - G.e[j] * G.k[1]))
    elif G.kind == OP_LOGSOFTMAX:  # delta_ij - softmax_j
        for j in range(m):
            out.append((1.0 if j == i else 0.0) - G.e[j] / G.k[0])
    else:                          # scale delta_ij + x_i d scale / d x_j
        c = -0.5 * _fpow(G.k[0], -1.5) * G.k[2] * 2.0
        for j in range(m):
            out.append((G.k[1] if j == i else 0.0) + mg_dp(G.x[i])[0] * c * mg_dp(G.x[j])[0])
    return tuple(out)


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
    """[getattr(x, act)() for x in xs] for an activation of the layer kernel's table: the nodes
    those calls make (one each), made in one loop."""
    cdef tuple t
    cdef Py_ssize_t m, i, made = 0
    cdef uint8_t code
    cdef NodeC** out
    cdef NodeC* a
    cdef PyObject* o
    cdef double r
    code = _ACTS.get(act, OP_LEAF) if type(act) is str else OP_LEAF
    if code == OP_LEAF:
        raise ValueError(f"unknown activation {act!r}; expected relu, tanh or sigmoid")
    t = xs if type(xs) is tuple else tuple(xs)
    m = len(t)
    for i in range(m):
        o = PySequence_Fast_ITEMS(t)[i]
        if MG_TYPE(o) != <PyTypeObject*>Value and not isinstance(<object>o, Value):
            return _f_map_mixed(t, code)  # numbers in it: converted first, the slow way
        _node(<Value>o)
    out = <NodeC**>PyMem_Malloc((m if m else 1) * sizeof(NodeC*))
    if out == NULL:
        raise MemoryError()
    try:
        try:
            for i in range(m):  # (C only from here to the handles: the nodes stay as read)
                a = (<Value>PySequence_Fast_ITEMS(t)[i]).c
                mg_forward1(code, mg_dp(a)[0], &r)  # (activations never fail)
                out[i] = _mk1(ARENA, code, r, a)
                made += 1
        except BaseException:
            for i in range(made):
                out[i].refcnt = 1
                node_decref(ARENA, out[i])
            raise
        return _wrap_all(out, m)
    finally:
        PyMem_Free(out)


cdef list _f_map_mixed(tuple xs, uint8_t code):
    cdef _Built b = _Built(NULL, 0, 0)
    cdef NodeC** x = NULL
    cdef Py_ssize_t m, i
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


def _f_linear(w, x, act=None):
    """[sum(wi * xi for wi, xi in zip(row, x)) for row in w]: the layer kernel from 0.0, with
    the packing of a matrix of leaves kept for its next call; act ("relu", "tanh", "sigmoid"):
    [s.relu() for s in ...], ..., with no handle for the sums."""
    cdef tuple xs = x if type(x) is tuple else tuple(x)
    cdef _Rows rw
    cdef uint8_t code = OP_LEAF
    if act is not None:
        if type(act) is not str or act not in _ACTS:
            raise ValueError(f"unknown activation {act!r}; expected one of "
                             f"{sorted(a for a in _ACTS if a != 'linear')} or None")
        code = _ACTS[act]
    if type(w) is list:
        ent = _PACKED.get(id(w))
        if ent is not None and (<_Rows>ent).outer is w:
            return _layer_go(ARENA, xs, code, <_Rows>ent, None, None)
        if len(<list>w) and _leaf_matrix(w):
            zero = Value(0.0)
            rw = _rows(w, (zero,) * len(<list>w))
            rw.outer = w
            rw.zero = zero
            if len(_PACKED) >= _PACKED_MAX:
                del _PACKED[next(iter(_PACKED))]  # the oldest
            _PACKED[id(w)] = rw
            return _layer_go(ARENA, xs, code, rw, None, None)
    return _layer_go(ARENA, xs, code, None, w, None)


def _f_forget():
    """Drop linear's kept packings (tests; a program that wants its matrices freed at once)."""
    _PACKED.clear()


cdef tuple _column(list vs, Py_ssize_t j):
    """(v[j] for v in vs) as a tuple: column j of the values, the weights' rows."""
    cdef Py_ssize_t t, T = len(vs)
    cdef tuple col = PyTuple_New(T)
    cdef object item
    for t in range(T):
        item = vs[t][j]  # (generic: a collection's callbacks may have changed the lists)
        Py_INCREF(item)
        PyTuple_SET_ITEM(col, t, item)
    return col


cdef bint _all_values(list xs) noexcept:
    """Every item a Value with a node (the kernels read their nodes without converting)."""
    cdef PyObject* o
    cdef Py_ssize_t i
    for i in range(len(xs)):
        o = PySequence_Fast_ITEMS(xs)[i]
        if MG_TYPE(o) != <PyTypeObject*>Value and not isinstance(<object>o, Value):
            return False
        if (<Value>o).c == NULL:
            return False
    return True


cdef bint _rows_all_values(list rows) noexcept:
    """_all_values of each row (every row a list: checked by the caller)."""
    cdef Py_ssize_t t
    for t in range(len(rows)):
        if not _all_values(<list>PySequence_Fast_ITEMS(rows)[t]):
            return False
    return True


cdef NodeC** _held_nodes(list rows, Py_ssize_t T, Py_ssize_t n, NodeC** into) noexcept:
    """The nodes of T lists of n Values each (_all_values), row after row, held, into into."""
    cdef Py_ssize_t t, i
    cdef PyObject** items
    for t in range(T):
        items = PySequence_Fast_ITEMS(<list>PySequence_Fast_ITEMS(rows)[t])
        for i in range(n):
            into[t * n + i] = _hold((<Value>items[i]).c)
    return into


cdef list _attention_nodes(list qs, list ks, list vs, Py_ssize_t n_head, Py_ssize_t hd,
                           double inv):
    """_f_attention's heads when every q, key and value item is a Value and a graph is being
    built: the very nodes its formula makes, in its order (per head: the logits' layer call,
    each logit times inv, the softmax group, the weighted sums' layer call), from the nodes
    themselves: no handle but the outputs', no list but theirs. Only C runs until the outputs'
    handles are made, and by then every node made is held by them or by this call."""
    cdef ArenaC* A = ARENA
    cdef Py_ssize_t n_embd = len(qs), T = len(ks), nin = n_embd * (1 + 2 * T)
    cdef Py_ssize_t h, t, lo, nlg = 0, nsc = 0, nwt = 0, nho = 0, nouts = 0, i
    cdef NodeC** held = NULL  # q's nodes, then the keys' and the values' (T rows of n_embd)
    cdef NodeC** lg = NULL    # a head's logits (its dot nodes), held
    cdef NodeC** sc = NULL    # each logit times inv, held; then the softmax outputs, held
    cdef NodeC** ho = NULL    # a head's weighted sums, held
    cdef NodeC** outs = NULL  # every head's outputs, held
    cdef MgGroup* G
    cdef list out
    cdef Value v
    held = <NodeC**>PyMem_Malloc(nin * sizeof(NodeC*))
    sc = <NodeC**>PyMem_Malloc(T * sizeof(NodeC*))
    outs = <NodeC**>PyMem_Malloc(n_embd * sizeof(NodeC*))
    if held == NULL or sc == NULL or outs == NULL:
        PyMem_Free(held)
        PyMem_Free(sc)
        PyMem_Free(outs)
        raise MemoryError()
    _held_nodes([qs], 1, n_embd, held)
    _held_nodes(ks, T, n_embd, held + n_embd)
    _held_nodes(vs, T, n_embd, held + n_embd * (1 + T))
    try:
        for h in range(n_head):
            lo = h * hd
            _layer_go(A, None, OP_LEAF, None, None, None, held + lo, hd, &lg, &nlg,
                      held + n_embd + lo, T, n_embd, 1)
            for t in range(T):  # s / scale, as Value's / by a number makes it
                sc[t] = _hold(_mkc(A, OP_MULC, mg_dp(lg[t])[0] * inv, lg[t], inv))
                nsc += 1
            _release_nodes(A, lg, nlg)
            lg = NULL
            nlg = 0
            G = _group_alloc(T, OP_SOFTMAX)
            for t in range(T):
                G.x[t] = sc[t]
                node_link(sc[t])
                G.got[t] = 0
                G.m += 1
            try:
                _softmax_fill(G)
            except BaseException:
                group_free(A, G)
                raise
            for t in range(T):  # (the group links them now)
                node_decref(A, sc[t])
            nsc = 0
            _group_made(G, OP_SOFTMAX, G.g, sc)
            for t in range(T):
                _hold(sc[t])
            nsc = T
            _layer_go(A, None, OP_LEAF, None, None, None, sc, T, &ho, &nho,
                      held + n_embd * (1 + T) + lo, hd, 1, n_embd)
            for t in range(T):
                node_decref(A, sc[t])
            nsc = 0
            for i in range(hd):  # (held: the holds move to outs)
                outs[nouts] = ho[i]
                nouts += 1
            PyMem_Free(ho)
            ho = NULL
            nho = 0
        out = PyList_New(n_embd)  # (its items NULL until set: only set ones are released)
        for i in range(n_embd):
            v = _wrap(A, outs[i])
            Py_INCREF(v)
            PyList_SET_ITEM(out, i, v)
        return out
    finally:
        _release_nodes(A, lg, nlg)
        _release_nodes(A, ho, nho)
        for i in range(nsc):
            node_decref(A, sc[i])
        PyMem_Free(sc)
        for i in range(nouts):
            node_decref(A, outs[i])
        PyMem_Free(outs)
        for i in range(nin):
            node_decref(A, held[i])
        PyMem_Free(held)


def _f_attention(q, keys, values, Py_ssize_t n_head):
    """Causal self-attention over a KV cache, head by head, in the very ops of the formula of
    functional.attention (linear, the scale as `s / head_dim ** 0.5`, softmax, linear): the same
    nodes, with no interpreter between them. None unless q, keys, values and every key and value
    are lists of the shapes the formula needs (functional.attention then runs the formula itself,
    which converts other sequences and says what is wrong with a shape)."""
    cdef Py_ssize_t n_embd, hd, T, h, j, lo
    cdef list qs, ks, vs, heads, k_h, logits, cols
    if type(q) is not list or type(keys) is not list or type(values) is not list or n_head <= 0:
        return None
    qs, ks, vs = q, keys, values
    n_embd, T = len(qs), len(ks)
    if T == 0 or len(vs) != T or n_embd % n_head != 0:
        return None
    for t in range(T):
        if (type(ks[t]) is not list or len(<list>ks[t]) != n_embd or type(vs[t]) is not list
                or len(<list>vs[t]) != n_embd):
            return None
    hd = n_embd // n_head
    scale = PyNumber_Power(hd, 0.5, None)  # head_dim ** 0.5, as the formula computes it
    if ARENA.grad_enabled and _all_values(qs) and _rows_all_values(ks) and _rows_all_values(vs):
        return _attention_nodes(qs, ks, vs, n_head, hd, _recip(<double>scale))
    heads = []
    try:
        for h in range(n_head):
            lo = h * hd
            k_h = [kt[lo:lo + hd] for kt in ks]  # (generic indexing, as in _column)
            logits = [s / scale for s in
                      _layer_go(ARENA, tuple(qs[lo:lo + hd]), OP_LEAF, None, k_h, None)]
            weights = _f_softmax(logits)
            cols = [_column(vs, lo + j) for j in range(hd)]
            heads.extend(_layer_go(ARENA, tuple(weights), OP_LEAF, None, cols, None))
    except TypeError:  # a number among the keys or values (the kernel takes only Values
        return None    # there): the formula lifts them, or says what is wrong
    return heads
