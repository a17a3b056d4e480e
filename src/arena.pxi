# ---------------------------------------------------------------------------------------------
# The arena: slabs of nodes, a bit per free node, and iterative release.

cdef enum:
    SLAB_NODES = MG_SLAB_NODES # 8192 nodes a slab: 448 KiB of records, data and grads
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
# A full collection (gc.collect(), or the GC's own rare ones) gives back to the OS the pages of
# the slabs that have been all free, with no node made in them, for IDLE_SECONDS or more (but
# the first few): the memory of a graph dropped for good comes back, while a loop that frees and
# remakes a big graph, collecting in between, does not pay page faults every round.
cdef double IDLE_SECONDS = 1.0  # how long a slab stays all free and unused before it goes
# slabs sorted by address, to find a node's arena index (slab << MG_SLAB_SHIFT | offset)
# the tape (see _arena.h): op nodes' arena indices in the order they were made

cdef void* _regrow(void* p, size_t size) except NULL:
    """realloc, or MemoryError (p is then untouched and still the caller's)."""
    cdef void* q = PyMem_RawRealloc(p, size)
    if q == NULL:
        raise MemoryError("micrograd: the node arena cannot grow")
    return q


cdef int _arena_grow(ArenaC* A) except -1:
    """One more slab, every node of it free."""
    cdef NodeC* slab
    cdef Py_ssize_t i, cap
    if A.nslabs >= (1 << (32 - MG_SLAB_SHIFT)) - 1:
        raise MemoryError("micrograd: the node arena is full (2**32 nodes)")
    if A.nslabs == A.cap_slabs:  # each table grows in turn; one that fails leaves the others bigger
        cap = 2 * A.cap_slabs + 8
        A.slabs = <NodeC**>_regrow(A.slabs, cap * sizeof(NodeC*))
        A.by_addr = <NodeC**>_regrow(A.by_addr, cap * sizeof(NodeC*))
        A.by_addr_no = <uint32_t*>_regrow(A.by_addr_no, cap * sizeof(uint32_t))
        A.freebits = <uint64_t*>_regrow(A.freebits, cap * SLAB_WORDS * sizeof(uint64_t))
        A.slab_nfree = <uint32_t*>_regrow(A.slab_nfree, cap * sizeof(uint32_t))
        A.slab_state = <uint8_t*>_regrow(A.slab_state, cap * sizeof(uint8_t))
        A.slab_idle_since = <double*>_regrow(A.slab_idle_since, cap * sizeof(double))
        A.cap_slabs = cap
    slab = mg_slab_alloc()
    if slab == NULL:
        raise MemoryError("micrograd: the node arena cannot grow")
    A.slabs[A.nslabs] = slab
    i = A.nslabs  # insertion into the address-sorted table (slabs are few: 8192 nodes each)
    while i > 0 and A.by_addr[i - 1] > slab:
        A.by_addr[i] = A.by_addr[i - 1]
        A.by_addr_no[i] = A.by_addr_no[i - 1]
        i -= 1
    A.by_addr[i] = slab
    A.by_addr_no[i] = <uint32_t>A.nslabs
    for i in range(SLAB_WORDS):
        A.freebits[A.nslabs * SLAB_WORDS + i] = ~(<uint64_t>0)
    A.slab_nfree[A.nslabs] = SLAB_NODES
    A.slab_state[A.nslabs] = SLAB_BUSY
    A.nslabs += 1
    return 0


cdef uint32_t _index_slow(ArenaC* A, NodeC* n) noexcept:
    cdef Py_ssize_t lo = 0, hi = A.nslabs, mid
    while hi - lo > 1:  # the last slab starting at or below n
        mid = (lo + hi) // 2
        if A.by_addr[mid] <= n:
            lo = mid
        else:
            hi = mid
    A.last_slab = A.by_addr[lo]
    A.last_no = A.by_addr_no[lo]
    return (A.last_no << MG_SLAB_SHIFT) | <uint32_t>(n - A.last_slab)


cdef inline uint32_t node_index(ArenaC* A, NodeC* n) noexcept:
    """n's arena index: its slab's number and its offset in the slab."""
    if A.last_slab <= n and n < A.last_slab + SLAB_NODES:
        return (A.last_no << MG_SLAB_SHIFT) | <uint32_t>(n - A.last_slab)
    return _index_slow(A, n)


cdef Py_ssize_t _arena_find(ArenaC* A) except -1:
    """node_new's slow path: the lowest word with a free node, at or above A.low_word (none is
    below it), skipping full slabs by their counts; a new slab when every one is full."""
    cdef Py_ssize_t g = A.low_word
    cdef Py_ssize_t s = g >> (MG_SLAB_SHIFT - 6)
    while True:
        if s == A.nslabs:
            _arena_grow(A)
        if A.slab_nfree[s] != 0:
            if g < s * SLAB_WORDS:
                g = s * SLAB_WORDS
            while A.freebits[g] == 0:  # there is a free node at or above g in slab s: its
                g += 1                 # count says so, and none below g
            A.low_word = g
            return g
        s += 1


cdef inline NodeC* node_new(ArenaC* A, uint8_t op, double data) except NULL:
    """A fresh node with no children, no handle and a count of zero; op nodes go on the tape."""
    cdef NodeC* n
    cdef Py_ssize_t g = A.low_word
    cdef uint64_t bits
    cdef uint32_t idx
    if A.live >= A.limit:
        raise MemoryError("micrograd: the node arena is full (test limit)")
    if op != OP_LEAF:
        if A.live_ops == 0 and not A.scanning:  # every entry is dead: start the tape afresh
            A.tape_len = 0
            A.tape_dead = 0
        if A.tape_len == A.tape_cap:
            _tape_make_room(A)
    # the lowest free node: nearly always in the word the last one came from
    if g == A.nslabs * SLAB_WORDS or A.freebits[g] == 0:
        g = _arena_find(A)
    bits = A.freebits[g]
    A.freebits[g] = bits & (bits - 1)
    idx = (<uint32_t>g << 6) | MG_CTZ64(bits)
    A.slab_nfree[idx >> MG_SLAB_SHIFT] -= 1
    A.slab_state[idx >> MG_SLAB_SHIFT] = SLAB_BUSY  # (pages that went back come again as used)
    n = MG_NODE(A.slabs, idx)
    A.live += 1
    if op != OP_LEAF:
        A.tape[A.tape_len] = idx
        A.tape_len += 1
        A.live_ops += 1
    mg_dp(n)[0] = data
    mg_gp(n)[0] = 0.0
    n.u.kids = NULL
    n.a = NULL
    n.v.b = NULL
    n.handle = NULL
    n.refcnt = 0
    n.epoch = 0
    n.op = op
    n.flags = 0
    return n


cdef inline NodeC* node_kid(NodeC* n, uint32_t i) noexcept:
    return mg_kid(n, i)


cdef void rows_decref(ArenaC* A, MgRows* r) noexcept:
    cdef Py_ssize_t i
    r.refcnt -= 1
    if r.refcnt == 0:
        for i in range(<Py_ssize_t>r.nout * (r.nin + 1)):
            node_decref(A, r.nodes[i])
        PyMem_Free(r.spans)
        PyMem_Free(r)


cdef void call_decref(ArenaC* A, MgCall* c) noexcept:
    cdef uint32_t i
    c.refcnt -= 1
    if c.refcnt == 0:
        for i in range(c.nin):
            node_decref(A, c.x[i])
        if c.rows != NULL:  # NULL: a layer call that failed before it took its rows
            rows_decref(A, c.rows)
        PyMem_Free(c)


cdef void group_free(ArenaC* A, MgGroup* G) noexcept:
    """Release a fused group's inputs (the G.m linked so far) and free it: its head's release."""
    cdef uint32_t i
    for i in range(G.m):
        node_decref(A, G.x[i])
    PyMem_Free(G)


cdef inline void _pin(NodeC* n) noexcept:
    # n's handle must outlive n's last parent, not its last user (it has Python state, or it
    # bridges to a child that has: handles.pxi): from now on every count of n but the handle's
    # own is also a reference to the handle, so the GC can be told which parent owns which
    # (see _traverse_pins)
    cdef uint32_t i
    n.flags |= F_PINNED
    for i in range(n.refcnt - 1):
        Py_INCREF(<object>n.handle)


cdef inline void node_link_n(NodeC* n, uint32_t k) noexcept:
    """n gains k parents (or holders)."""
    cdef uint32_t i
    n.refcnt += k
    if n.flags & F_PINNED:
        for i in range(k):
            Py_INCREF(<object>n.handle)


cdef inline void node_link(NodeC* n) noexcept:
    """n gains a parent."""
    node_link_n(n, 1)


cdef void _drain(ArenaC* A) noexcept:
    """Free every node on the dead stack and release its children: a loop, never recursion."""
    cdef NodeC* n
    cdef NodeC** kids
    cdef uint32_t i, idx
    A.draining = True
    while A.dead != NULL:
        n = A.dead
        A.dead = <NodeC*>n.handle
        if n.op != OP_LEAF and not (n.flags & F_LATE):
            A.live_ops -= 1
            A.tape_dead += 1
        if n.op == OP_DOT:
            call_decref(A, MG_CALL(n))
        elif n.op == OP_FUSED:
            group_free(A, MG_GROUP(n))
        elif MG_HAS_ARRAY(n):
            kids = <NodeC**>n.u.kids + 1
            for i in range(mg_nkids(n)):
                node_decref(A, kids[i])
            PyMem_Free(n.u.kids)
        elif n.op != OP_LEAF:
            node_decref(A, n.a)
            if MG_ARITY[n.op] == 2:
                node_decref(A, n.v.b)
        n.op = OP_LEAF
        n.handle = NULL
        idx = node_index(A, n)  # its free bit is word idx >> 6 (a slab's words run on)
        A.freebits[idx >> 6] |= (<uint64_t>1) << (idx & 63)
        A.slab_nfree[idx >> MG_SLAB_SHIFT] += 1
        if (idx >> 6) < A.low_word:
            A.low_word = idx >> 6
        A.live -= 1
    A.draining = False


cdef void node_drop_kids(ArenaC* A, NodeC* old) noexcept:
    """Release the children of `old`, a copy of a node's content that the node has since
    replaced (Value.__init__ run again): the links _drain would release. May run Python."""
    cdef NodeC** kids
    cdef uint32_t i
    if old.op == OP_DOT:
        call_decref(A, MG_CALL(old))
    elif old.op == OP_FUSED:  # (a head has no handle: only here for completeness)
        group_free(A, MG_GROUP(old))
    elif MG_HAS_ARRAY(old):
        kids = <NodeC**>old.u.kids + 1
        for i in range(mg_nkids(old)):
            node_decref(A, kids[i])
        PyMem_Free(old.u.kids)
    elif old.op != OP_LEAF:
        node_decref(A, old.a)
        if MG_ARITY[old.op] == 2:
            node_decref(A, old.v.b)


cdef int _refill(ArenaC* A, NodeC* n, double d, NodeC** arr, bint local) except -1:
    """n, a live node, takes new content: data d and the children in arr (owned from here on;
    NULL: a leaf), local grads after them if `local`. Its old children stay linked: the caller
    took a copy of n first and releases them (node_drop_kids). Like a node just made, n gets
    a new entry on top of the tape (its old one is stale), as the pure engine's Value a new
    _seq."""
    cdef uint32_t i
    if arr != NULL and A.tape_len == A.tape_cap:
        try:
            _tape_make_room(A)
        except BaseException:
            PyMem_Free(arr)
            raise
    if n.op != OP_LEAF and not (n.flags & F_LATE):
        A.live_ops -= 1
        A.tape_dead += 1
    mg_dp(n)[0] = d
    mg_gp(n)[0] = 0.0
    n.u.kids = arr
    n.a = NULL
    n.v.b = NULL
    n.flags &= ~(F_INTEXP | F_WLEAVES | F_LATE)
    if arr == NULL:
        n.op = OP_LEAF
    else:
        n.op = OP_LOCAL if local else OP_CUSTOM
        for i in range(mg_nkids(n)):
            node_link(arr[1 + i])
        A.tape[A.tape_len] = node_index(A, n)
        A.tape_len += 1
        A.live_ops += 1
        _leafgen_bump(A)  # it may have been a plain leaf that packed rows skip
    A.reinit += 1  # packed rows compare it (see _rows_check)
    return 0


cdef void _push_dead(ArenaC* A, NodeC* n) noexcept:
    n.handle = <PyObject*>A.dead
    A.dead = n
    if not A.draining:
        _drain(A)


cdef inline void node_decref(ArenaC* A, NodeC* n) noexcept:
    n.refcnt -= 1
    if n.refcnt == 0:
        _push_dead(A, n)
    elif n.flags & F_PINNED:
        # the reference this count held on the handle: when it was the last one but the
        # handle's own users', the handle may die now (and release n in turn)
        Py_DECREF(<object>n.handle)

