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


cdef inline bint _epoch_active(ArenaC* A, uint16_t e) noexcept:
    return (A.epochs_active[e >> 6] >> (e & 63)) & 1


cdef void _reset_epochs(ArenaC* A) noexcept:
    """The epoch wrapped: clear every mark but those of the passes still running (a signal
    handler's or another thread's passes may wrap it while an outer pass is mid-scan)."""
    cdef Py_ssize_t s, i
    cdef NodeC* n
    for s in range(A.nslabs):
        if A.slab_nfree[s] == SLAB_NODES:
            continue  # nothing live: node_new sets a node's epoch when it hands it out
        for i in range(SLAB_NODES):
            n = &A.slabs[s][i]
            if n.epoch != 0 and not _epoch_active(A, n.epoch):
                n.epoch = 0


cdef void _give_back_memory(ArenaC* A, double now) noexcept:
    """At a full collection, `now` seconds on the monotonic clock: give back the pages of the
    slabs that have been all free, with no node made in them, since a collection at least
    IDLE_SECONDS ago (but the first SLABS_KEPT all-free ones); and then the tape's and
    backward's buffers too, where they are four times what is in use."""
    cdef Py_ssize_t s, kept = 0, released = 0
    if A.scanning or A.backward_depth:
        return  # a pass holds the tape (and may read its dead entries): another time
    for s in range(A.nslabs):
        if A.slab_nfree[s] != SLAB_NODES or A.slab_state[s] == SLAB_GONE:
            continue
        if kept < SLABS_KEPT:  # the lowest ones: where the next nodes will be made
            kept += 1
        elif A.slab_state[s] == SLAB_BUSY:
            A.slab_state[s] = SLAB_IDLE  # all free from now: if it stays so long enough, it goes
            A.slab_idle_since[s] = now
        elif now - A.slab_idle_since[s] >= IDLE_SECONDS:
            if not released and A.tape_dead:
                _tape_compact(A)  # no entry may lead into pages that go back: none is read again
            if mg_release_pages(A.slabs[s], MG_SLAB_BYTES):
                A.slab_state[s] = SLAB_GONE
                released += 1
    if released:  # a big graph is gone for good: so is the room it needed in the buffers
        if A.tape_cap > TAPE_MIN and A.tape_cap > 4 * A.tape_len:
            _tape_resize(A, max(<Py_ssize_t>TAPE_MIN, 2 * A.tape_len))
        if A.order_cap > 4 * (A.live + 1024):
            PyMem_RawFree(A.order)  # made again, to size, by the next backward()
            A.order = NULL
            A.order_cap = 0


def _after_gc(phase, info):
    """gc.callbacks hook: after a full collection, unused arena memory goes back to the OS."""
    cdef ArenaC* A = ARENA
    if phase == "stop" and info.get("generation") == 2:
        _give_back_memory(A, _monotonic())




cdef uint16_t _next_epoch(ArenaC* A) except 0:
    """A fresh epoch: no node bears it, and no running pass uses it (_epoch_begin claims it)."""
    cdef Py_ssize_t tries
    for tries in range(65536):
        A.epoch += 1
        if A.epoch == 0:  # wrapped: no node may look marked by a pass that is over
            _reset_epochs(A)
            A.epoch = 1
        if not _epoch_active(A, A.epoch):
            return A.epoch
    raise RuntimeError("micrograd: 65535 backward passes are running at once")


cdef inline void _epoch_claim(ArenaC* A, uint16_t e) noexcept:
    A.epochs_active[e >> 6] |= (<uint64_t>1) << (e & 63)


cdef inline void _epoch_release(ArenaC* A, uint16_t e) noexcept:
    A.epochs_active[e >> 6] &= ~((<uint64_t>1) << (e & 63))


cdef Py_ssize_t _tape_find(ArenaC* A, NodeC* n) noexcept:
    """n's entry on the tape (the newest one); roots are nearly always near the top. The
    entries passed over count as waste (A.tape_waste)."""
    cdef uint32_t idx = node_index(A, n)
    cdef Py_ssize_t i = A.tape_len - 1
    while i >= 0 and A.tape[i] != idx:
        i -= 1
    A.tape_waste += A.tape_len - 1 - i
    return i if i >= 0 else A.tape_len - 1  # not found cannot happen; from the top is still right


cdef int _scan(ArenaC* A, MgScan* sc) except -1:
    """Run the tape pass to its end, checking for Ctrl-C between slices of work."""
    A.scanning += 1
    sc.looked = 0
    sc.met = 0
    try:
        while not mg_scan(sc, A.tape, A.slabs, SIGNAL_EVERY):
            PyErr_CheckSignals()  # Python may run here: the tape may move, not be compacted
    finally:
        A.scanning -= 1
        A.tape_looked += sc.looked
        A.tape_waste += sc.looked - sc.met
    return 0


cdef int _backward(ArenaC* A, NodeC* root) except -1:
    """One pass down the tape (mg_scan), then any user-defined ops it met, in its order."""
    cdef MgScan sc
    cdef NodeC* n
    cdef Py_ssize_t i, tick = 0
    cdef bint nested = A.backward_depth > 0
    if nested:
        sc.order = NULL; sc.cap = 0
    else:
        sc.order = A.order; sc.cap = A.order_cap
    sc.count = 0
    sc.nlate = 0
    sc.ep = 0  # none claimed yet
    A.backward_depth += 1
    _hold(root)
    try:
        if sc.cap <= A.live:  # every reachable node fits: no capacity checks in the loop
            PyMem_RawFree(sc.order)
            sc.cap = 0
            sc.order = <NodeC**>PyMem_RawMalloc((A.live + 1024) * sizeof(NodeC*))
            if sc.order == NULL:
                raise MemoryError("micrograd: no memory for backward's work buffers")
            sc.cap = A.live + 1024
        sc.ep = _next_epoch(A)
        _epoch_claim(A, sc.ep)
        A.passes += 1
        sc.pass_ = A.passes
        sc.leafgen = A.leafgen
        sc.count = 0
        sc.nlate = 0
        sc.collecting = 0
        mg_gp(root)[0] = 1.0
        if root.op == OP_LEAF:
            return 0
        if root.flags & F_LATE:
            sc.order[sc.cap - 1] = _hold(root)
            sc.nlate = 1
        else:
            root.epoch = sc.ep
            sc.pending = 1
            sc.pos = _tape_find(A, root)
            _scan(A, &sc)
            if A.tape_dead and A.tape_waste >= A.tape_len // 2 and not A.scanning:
                # dead or stale entries this and earlier passes walked in vain cost as much as
                # a compaction: do it, so the next passes do not (paid for, never in advance:
                # dead history below the graph, as when the last step's graph dies just before
                # this backward, costs no pass anything and is left for op creation to clear)
                _tape_compact(A)
        # what the pass collected (from the first user-defined op on), then the late leaves
        for i in range(sc.count + sc.nlate):
            n = sc.order[i] if i < sc.count else sc.order[sc.cap - 1 - (i - sc.count)]
            _local(n)
            tick += 1 + <Py_ssize_t>mg_nkids(n)
            if tick >= SIGNAL_EVERY:
                tick = 0
                PyErr_CheckSignals()
    finally:
        # the collected nodes were held, as Python ran their rules (may run Python again; a
        # nested pass started from here still gets a buffer of its own)
        for i in range(sc.count + sc.nlate):
            node_decref(A, sc.order[i] if i < sc.count else sc.order[sc.cap - 1 - (i - sc.count)])
        A.backward_depth -= 1
        if sc.ep != 0:
            _epoch_release(A, sc.ep)
        if nested:
            PyMem_RawFree(sc.order)
        else:
            A.order = sc.order; A.order_cap = sc.cap
        node_decref(A, root)
    return 0


@cython.final
cdef class _LocalBackward:
    """The local chain rule of one built-in node, callable as upstream's node._backward()."""
    cdef Value v
    cdef uint8_t op      # the node's op when the rule was taken, and its constant: the rule
    cdef double aux      # stays the built-in one after a user's _backward replaces it
    cdef NodeC* head     # a fused output's: its group's head (held), and its place in it
    cdef uint32_t idx

    def __dealloc__(self):
        if self.head != NULL:
            node_decref(ARENA, self.head)
            self.head = NULL

    def __call__(self):
        cdef NodeC* n
        if self.v is None:
            raise TypeError("this local backward belongs to no Value (made with __new__)")
        n = _node(self.v)
        if self.head != NULL:
            # the group's rule with this output's grad alone: what the composed formula's
            # nodes would send the inputs from it (the group's other outputs are left alone)
            mg_fused_apply(MG_GROUP(self.head), self.idx, mg_gp(n)[0])
        elif n.op == OP_CUSTOM and self.op != OP_CUSTOM:
            _builtin_rule(n, self.op, self.aux)  # e.g. a new _backward that calls this one
        else:
            _local(n)

    def __repr__(self):
        return f"<local backward of {self.v!r}>"


cdef void _builtin_rule(NodeC* n, uint8_t op, double aux) noexcept:
    """The rule of built-in op `op` on n, which has since become a user-defined op over the same
    children (in operand order: a, b; a dot node's b, w0, x0, w1, x1, ...)."""
    cdef NodeC** kids = <NodeC**>n.u.kids + 1
    cdef uint32_t i, nk = mg_nkids(n)
    cdef NodeC tmp
    cdef double g = mg_gp(n)[0]
    if op == OP_LOCAL:
        for i in range(nk):
            mg_gp(kids[i])[0] += mg_local_grads(n)[i] * g
        return
    if op == OP_DOT:
        mg_gp(kids[0])[0] += g
        i = 1
        while i + 1 < nk:
            mg_gp(kids[i])[0] += mg_dp(kids[i + 1])[0] * g
            mg_gp(kids[i + 1])[0] += mg_dp(kids[i])[0] * g
            i += 2
        return
    tmp = n[0]  # (a record's copy: its grad and data are passed, as they stay in n's slab)
    tmp.op = OP_ADD if op == OP_ADDC else OP_MUL if op == OP_MULC else op  # constants: leaves now
    tmp.u.aux = aux
    tmp.a = kids[0] if nk > 0 else NULL
    tmp.v.b = kids[1] if nk > 1 else NULL
    if tmp.a != NULL and MG_ARITY[tmp.op] <= nk:
        mg_local_as(&tmp, g, mg_dp(n)[0])


