# ---------------------------------------------------------------------------------------------
# Fused kernels used by micrograd.nn and micrograd.optim

# The activations a layer may apply: each an op of the table (linear: none), so a layer's
# outputs are the nodes Value.relu() and the others make. micrograd.nn lists these names.
cdef dict _ACTS = {"relu": OP_RELU, "tanh": OP_TANH, "sigmoid": OP_SIGMOID, "linear": OP_LEAF}
_ACTIVATIONS = tuple(_ACTS)


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
    cdef uint64_t reinit   # A.reinit when packed
    cdef bint plain        # every weight a plain leaf when packed, as of leafgen
    cdef uintptr_t leafgen
    cdef Py_ssize_t nin, nout
    cdef object outer      # None, or the list of rows ws came from (functional.linear's cache):
    cdef object zero       # then its rows are compared too, and every bias is this 0.0 leaf

    def __cinit__(self):
        self.r = NULL
        self.ws = self.bs = self.seen = ()
        self.outer = self.zero = None
        self.nin = -1  # not packed yet (also when made with __new__: then an empty layer)
        self.nout = 0

    def __dealloc__(self):
        if self.r != NULL:
            rows_decref(ARENA, self.r)
            self.r = NULL

    def __reduce__(self):
        return (_rows, (list(self.ws), list(self.bs)))


cdef int _rows_pack(ArenaC* A, _Rows rw) except -1:
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
    r = <MgRows*>PyMem_Malloc(mg_rows_size(nin, nout))
    if r == NULL:
        raise MemoryError()
    r.refcnt = 1
    r.nin = <uint32_t>nin
    r.nout = <uint32_t>nout
    r.spans = NULL
    for j in range(nout):
        r.nodes[k] = (<Value>rw.bs[j]).c
        node_link(r.nodes[k])
        k += 1
        for item in rows[j]:
            r.nodes[k] = (<Value>item).c
            node_link(r.nodes[k])
            k += 1
    mg_rows_contig(r)
    if rw.r != NULL:
        rows_decref(A, rw.r)
    rw.r = r
    rw.ws = tuple(rows)
    rw.seen = tuple(seen)
    rw.reinit = A.reinit
    rw.plain = plain
    rw.leafgen = A.leafgen
    rw.nin = nin
    rw.nout = nout
    return 0


def _rows(ws, bs):
    """A layer's weight rows (sequences of Values) and biases, packed once for _layer_rows."""
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


cdef int _rows_check(ArenaC* A, _Rows rw, Py_ssize_t nin) except -1:
    """Pack again if any row changed since (items are compared by identity, not touched)."""
    cdef Py_ssize_t j, k = 0
    cdef PyObject** seen
    if rw.outer is not None:  # the rows themselves may have been replaced, added or removed
        outer = rw.outer
        if len(outer) != len(rw.ws) or (len(outer) != 0 and memcmp(
                PySequence_Fast_ITEMS(outer), PySequence_Fast_ITEMS(rw.ws),
                len(outer) * sizeof(PyObject*)) != 0):
            for row in outer:
                if type(row) is not list and type(row) is not tuple:
                    raise TypeError(f"rows must be lists or tuples, not {type(row).__name__!r}")
            rw.ws = tuple(outer)
            rw.bs = (rw.zero,) * len(rw.ws)
            rw.nin = -1  # pack again
    if rw.nin >= 0 and rw.reinit == A.reinit:
        seen = PySequence_Fast_ITEMS(rw.seen)
        for j in range(rw.nout):
            row = <object>PySequence_Fast_ITEMS(rw.ws)[j]
            if len(row) != rw.nin:
                break
            # (an empty row's items may be NULL: memcmp must not see it, even for 0 bytes)
            if rw.nin != 0 and memcmp(PySequence_Fast_ITEMS(row), seen + k,
                                      rw.nin * sizeof(PyObject*)) != 0:
                break
            k += rw.nin
        else:
            if nin == rw.nin:
                return 0
    for row in rw.ws:  # a count that does not match says which row expected what
        if len(row) != nin:
            raise ValueError(f"expected {len(row)} inputs, got {nin}")
    _rows_pack(A, rw)
    return 0


cdef MgRows* _rows_direct(ArenaC* A, object ws, object bs, Py_ssize_t nin, bint* plain) except NULL:
    """ws and bs packed in one pass into a fresh row block (count 1, the caller's): what _layer
    uses once, with no _Rows to keep. Only C runs here (no item is converted, so lists are read
    in place). bs None: every bias is one fresh leaf of 0.0."""
    cdef object rows = ws if type(ws) is tuple or type(ws) is list else tuple(ws)
    cdef object biases = None
    cdef Py_ssize_t nout = len(rows), j, i, k = 0, count
    cdef MgRows* r
    cdef NodeC* nd
    cdef NodeC* zero = NULL
    cdef PyObject** items
    if bs is not None:
        biases = bs if type(bs) is tuple or type(bs) is list else tuple(bs)
        if len(biases) != nout:
            raise ValueError(f"got {nout} weight rows but {len(biases)} biases")
    count = nout * (nin + 1)
    r = <MgRows*>PyMem_Malloc(mg_rows_size(nin, nout))
    if r == NULL:
        raise MemoryError()
    r.refcnt = 1
    r.nin = <uint32_t>nin
    r.nout = <uint32_t>nout
    r.spans = NULL
    r.contig = 0
    plain[0] = True
    try:
        if biases is None:
            zero = _hold(node_new(A, OP_LEAF, 0.0))  # (ours until every row links it)
        for j in range(nout):
            row = <object>PySequence_Fast_ITEMS(rows)[j]
            if type(row) is not list and type(row) is not tuple:
                row = tuple(row)
            if len(row) != nin:
                raise ValueError(f"expected {len(row)} inputs, got {nin}")
            nd = zero if zero != NULL else _pnode(PySequence_Fast_ITEMS(biases)[j])
            node_link(nd)
            r.nodes[k] = nd
            k += 1
            items = PySequence_Fast_ITEMS(row)
            for i in range(nin):
                nd = _pnode(items[i])
                plain[0] = plain[0] and nd.op == OP_LEAF
                node_link(nd)
                r.nodes[k] = nd
                k += 1
        mg_rows_contig(r)
    except BaseException:
        r.nout = 0  # (rows_decref releases nodes[0:nout * (nin + 1)]: release the k linked here)
        for i in range(k):
            node_decref(A, r.nodes[i])
        rows_decref(A, r)
        raise
    finally:
        if zero != NULL:
            node_decref(A, zero)
    return r


cdef MgRows* _rows_of_nodes(ArenaC* A, NodeC** base, Py_ssize_t nout, Py_ssize_t nin,
                            Py_ssize_t rstride, Py_ssize_t cstride, bint* plain) except NULL:
    """Rows of nodes the caller holds (row j's weight i is base[j * rstride + i * cstride]),
    every bias one fresh leaf of 0.0, in a fresh row block (count 1, the caller's): what
    _rows_direct packs from lists of Values with bs None, the same nodes made in the same order,
    with no handle read. Only C runs here."""
    cdef MgRows* r
    cdef NodeC* zero
    cdef NodeC* nd
    cdef Py_ssize_t j, i, k = 0
    r = <MgRows*>PyMem_Malloc(mg_rows_size(nin, nout))
    if r == NULL:
        raise MemoryError()
    r.refcnt = 1
    r.nin = <uint32_t>nin
    r.nout = <uint32_t>nout
    r.spans = NULL
    r.contig = 0
    try:
        zero = _hold(node_new(A, OP_LEAF, 0.0))  # (ours until every row links it)
    except BaseException:
        r.nout = 0
        rows_decref(A, r)
        raise
    plain[0] = True
    for j in range(nout):
        node_link(zero)
        r.nodes[k] = zero
        k += 1
        for i in range(nin):
            nd = base[j * rstride + i * cstride]
            plain[0] = plain[0] and nd.op == OP_LEAF
            node_link(nd)
            r.nodes[k] = nd
            k += 1
    mg_rows_contig(r)
    node_decref(A, zero)
    return r


cdef inline bint _rows_contig_n(MgRows* r, Py_ssize_t j, Py_ssize_t n) noexcept:
    """Rows j to j+n-1 (those that exist) all have their weights in consecutive nodes."""
    cdef uint8_t* flags = MG_ROWS_CONTIG(r)
    cdef Py_ssize_t k
    for k in range(j, min(j + n, <Py_ssize_t>r.nout)):
        if not flags[k]:
            return False
    return True


cdef object _layer_go(ArenaC* A, object x, uint8_t code, _Rows rows, object ws, object bs,
                      NodeC** xin=NULL, Py_ssize_t xn=0, NodeC*** outp=NULL,
                      Py_ssize_t* noutp=NULL, NodeC** rbase=NULL, Py_ssize_t rnout=0,
                      Py_ssize_t rstride=0, Py_ssize_t cstride=0):
    """A layer call over packed rows (rows) or over ws and bs packed for this call only.
    Python code can run here in two places (see the discipline in _arena.h): an input's
    __float__ while the inputs are converted, and anything _wrap's allocation triggers (a
    collection, its callbacks) while the outputs are made. So every input is converted first,
    the rows are checked (and packed again if a weight changed, even from that __float__) or
    packed only after, and the packing used is held by this call: a nested call that packs the
    rows again frees only its own reference.

    _mlp_rows chains layers through the last four arguments: with xin, the inputs are the xn
    nodes there (held by the caller) and x is unused; with outp, the outputs are not wrapped
    but held, in an array handed to the caller at *outp as soon as it is made, *noutp of them
    filled so far (what the caller releases, whether this returns or raises).

    With rbase, the rows are nodes the caller holds (_rows_of_nodes: rnout rows, strides
    rstride and cstride, every bias a fresh 0.0 leaf), and rows, ws and bs are unused."""
    cdef Py_ssize_t nin = xn if xin != NULL else len(x), nout, j, i
    cdef MgRows* r = NULL
    cdef MgCall* call = NULL
    cdef NodeC** row
    cdef NodeC* n
    cdef NodeC* xi_node
    cdef double sums[8]
    cdef Py_ssize_t g0 = 0, g1 = 0  # the rows whose sums are in sums[0 .. g1 - g0)
    cdef double acc, d
    cdef list out = []
    cdef double* xd = NULL
    cdef bint plain
    cdef uintptr_t leafgen
    cdef NodeC** dots = NULL  # with an activation: the dot nodes, held until it is applied
    cdef NodeC* few[64]       # (dots for up to 64 rows: no allocation)
    cdef Py_ssize_t ndots = 0
    if not A.grad_enabled:  # no graph: plain numbers in, leaves out
        xd = <double*>PyMem_Malloc((nin if nin else 1) * sizeof(double))
        if xd == NULL:
            raise MemoryError()
        try:
            for i in range(nin if xin == NULL else 0):  # numbers first (their __float__ may
                xi = x[i]                               # change a Value input) ...
                if not isinstance(xi, Value) and not _real(xi, &xd[i]):
                    raise TypeError(f"inputs must be Values or real numbers, not {type(xi).__name__!r}")
            for i in range(nin):  # ... then the Values' data, as the graph path reads them
                if xin != NULL:
                    xd[i] = mg_dp(xin[i])[0]
                    continue
                xi = x[i]
                if isinstance(xi, Value):
                    xd[i] = mg_dp(_node(<Value>xi))[0]
            if rows is not None:
                _rows_check(A, rows, nin)
                r = rows.r
                r.refcnt += 1
            elif rbase != NULL:
                r = _rows_of_nodes(A, rbase, rnout, nin, rstride, cstride, &plain)
            else:
                r = _rows_direct(A, ws, bs, nin, &plain)
            nout = r.nout
            if outp != NULL:
                _layer_outs(outp, noutp, nout)
            for j in range(nout):
                row = &r.nodes[j * (nin + 1)]
                acc = mg_dp(row[0])[0]
                for i in range(nin):
                    acc = acc + mg_dp(row[1 + i])[0] * xd[i]
                if code != OP_LEAF:
                    mg_forward1(code, acc, &acc)
                _layer_put(A, out, outp, noutp, j, node_new(A, OP_LEAF, acc))
        finally:
            PyMem_Free(xd)
            if r != NULL:
                rows_decref(A, r)
        return out
    call = <MgCall*>PyMem_Malloc(mg_call_size(nin))
    if call == NULL:
        raise MemoryError()
    call.refcnt = 1  # ours while the nodes are made
    call.rows = NULL  # set once the inputs are in (call_decref allows NULL)
    call.pass_ = 0
    call.nin = 0
    call.apart = call.xdense = 0
    call.xd = <double**>(&call.x[nin if nin else 1])
    try:
        for i in range(nin):
            if xin != NULL:
                xi_node = xin[i]
            else:
                xi = x[i]
                if isinstance(xi, Value):
                    xi_node = _node(<Value>xi)
                elif _real(xi, &d):
                    xi_node = node_new(A, OP_LEAF, d)
                else:
                    raise TypeError(f"inputs must be Values or real numbers, not {type(xi).__name__!r}")
            node_link(xi_node)
            call.x[i] = xi_node
            call.xd[i] = mg_dp(xi_node)
            call.nin += 1
        if rows is not None:
            _rows_check(A, rows, nin)
            r = rows.r
            r.refcnt += 1
            plain = rows.plain  # as packed: a nested repack changes rows, not this call's r
            leafgen = rows.leafgen
        elif rbase != NULL:
            r = _rows_of_nodes(A, rbase, rnout, nin, rstride, cstride, &plain)
            leafgen = A.leafgen
        else:
            r = _rows_direct(A, ws, bs, nin, &plain)
            leafgen = A.leafgen
        call.rows = r  # (the call's reference to r from here)
        call.apart = mg_inputs_apart(r, call.x, <size_t>nin)
        call.xdense = mg_inputs_dense(call.xd, <size_t>nin)
        nout = r.nout
        if outp != NULL:
            _layer_outs(outp, noutp, nout)
        if code != OP_LEAF:  # the dot nodes first, side by side on the tape (mg_scan runs
            dots = &few[0] if nout <= 64 else <NodeC**>PyMem_Malloc(nout * sizeof(NodeC*))
            if dots == NULL:  # (four at once)
                raise MemoryError()
        for j in range(nout):
            if j == g1:  # several neurons' sums at a time (each in upstream's order)
                g0 = j
                if call.xdense and (r.contig == nout or _rows_contig_n(r, j, 8)):
                    g1 = min(j + 8, nout)
                    mg_rows_dot8_dense(&r.nodes[j * (nin + 1)], <uint32_t>nin, call.xd[0],
                                       <uint32_t>(g1 - j), sums)
                elif r.contig == nout or _rows_contig_n(r, j, 4):
                    g1 = min(j + 4, nout)
                    mg_rows_dot_contig(&r.nodes[j * (nin + 1)], <uint32_t>nin, call.xd,
                                       <uint32_t>(g1 - j), sums)
                else:
                    g1 = min(j + 4, nout)
                    mg_rows_dot(&r.nodes[j * (nin + 1)], <uint32_t>nin, call.xd,
                                <uint32_t>(g1 - j), sums)
            row = &r.nodes[j * (nin + 1)]
            acc = sums[j - g0]
            n = node_new(A, OP_DOT, acc)
            n.u.kids = call
            call.refcnt += 1
            n.a = <NodeC*>row
            if plain:
                # every weight a plain leaf: backward need not mark them, until some leaf
                # anywhere becomes a user-defined op (A.leafgen moves on; this no longer holds)
                n.flags |= F_WLEAVES
                n.v.leafgen = leafgen
            if dots == NULL:
                _layer_put(A, out, outp, noutp, j, n)
            else:
                dots[j] = _hold(n)
                ndots += 1
        for j in range(ndots):  # then the activations (never fail), each over its dot node
            mg_forward1(code, mg_dp(dots[j])[0], &d)
            _layer_put(A, out, outp, noutp, j, _mk1(A, code, d, dots[j]))
    finally:
        for j in range(ndots):
            node_decref(A, dots[j])
        if dots != &few[0]:
            PyMem_Free(dots)
        call_decref(A, call)
    return out if outp == NULL else None


cdef inline int _layer_put(ArenaC* A, list out, NodeC*** outp, Py_ssize_t* noutp, Py_ssize_t j,
                           NodeC* n) except -1:
    """Output j of a layer call, n (a fresh node nobody holds): wrapped into out, or held at
    (*outp)[j] for the chaining caller."""
    if outp != NULL:
        outp[0][j] = _hold(n)
        noutp[0] = j + 1
    else:
        out.append(_wrap(A, n))
    return 0


cdef int _layer_outs(NodeC*** outp, Py_ssize_t* noutp, Py_ssize_t nout) except -1:
    """The array of a chained layer's outputs, handed to the caller before any is made."""
    outp[0] = <NodeC**>PyMem_Malloc((nout if nout else 1) * sizeof(NodeC*))
    if outp[0] == NULL:
        raise MemoryError()
    noutp[0] = 0
    return 0


cdef void _release_nodes(ArenaC* A, NodeC** nodes, Py_ssize_t n) noexcept:
    """Let go of the n nodes held in the array and free it (NULL: nothing)."""
    cdef Py_ssize_t i
    if nodes == NULL:
        return
    for i in range(n):
        node_decref(A, nodes[i])
    PyMem_Free(nodes)


def _mlp_rows(tuple rows not None, tuple acts not None, x):
    """MLP.__call__'s layers in one call: rows[k] with acts[k], each one's outputs the next's inputs."""
    # the hidden layers' outputs are the very nodes the layers make one by one, linked into the
    # next layer without a handle (_prev makes one when asked)
    cdef ArenaC* A = ARENA
    cdef Py_ssize_t k, nl = len(rows), ncur = 0, nnxt = 0
    cdef NodeC** cur = NULL
    cdef NodeC** nxt = NULL
    if nl == 0 or len(acts) != nl:
        raise ValueError(f"got {nl} layers of rows but {len(acts)} activations")
    for k in range(nl):
        if type(rows[k]) is not _Rows:
            raise TypeError(f"rows must be made by _rows, not {type(rows[k]).__name__!r}")
        if acts[k] not in _ACTS:
            raise ValueError(f"unknown activation {acts[k]!r}; expected one of {sorted(_ACTS)}")
    x = x if type(x) is tuple else tuple(x)  # (as _layer_rows: an input's __float__ may run)
    try:
        for k in range(nl):
            if k == nl - 1:
                return _layer_go(A, x, _ACTS[acts[k]], <_Rows>rows[k], None, None,
                                 cur, ncur)
            nxt = NULL
            nnxt = 0
            try:
                _layer_go(A, x, _ACTS[acts[k]], <_Rows>rows[k], None, None, cur, ncur,
                          &nxt, &nnxt)
            except BaseException:
                _release_nodes(A, nxt, nnxt)
                raise
            _release_nodes(A, cur, ncur)  # (the next layer's call links them from here)
            cur, ncur = nxt, nnxt
    finally:
        _release_nodes(A, cur, ncur)


def _layer_rows(_Rows rows not None, x, act):
    """_layer over rows made by _rows; a row edited since (w[i] = ...) is seen and packed again."""
    if act not in _ACTS:
        raise ValueError(f"unknown activation {act!r}; expected one of {sorted(_ACTS)}")
    # a tuple of our own: an input's __float__ may run Python that changes the caller's list
    return _layer_go(ARENA, x if type(x) is tuple else tuple(x), _ACTS[act], rows, None, None)


def _layer(ws, bs, x, act):
    """A whole layer: [act(b_j + sum_i w_ji x_i) for each neuron j], a dot node each (bs None: 0.0)."""
    if act not in _ACTS:
        raise ValueError(f"unknown activation {act!r}; expected one of {sorted(_ACTS)}")
    return _layer_go(ARENA, x if type(x) is tuple else tuple(x), _ACTS[act], None, ws, bs)


def _dot(b, w, x):
    """One node: b + w[0]*x[0] + w[1]*x[1] + ..., summed left to right as upstream's Neuron."""
    return _layer((w,), (b,), x, "linear")[0]


