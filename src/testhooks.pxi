# ---------------------------------------------------------------------------------------------
# Introspection and test hooks

def _live_nodes():
    """How many nodes the arena holds right now."""
    return ARENA.live


def _arena_stats():
    """live nodes, slabs, bytes reserved by slabs, bytes per node, slabs whose pages went back
    to the OS (all free; see _give_back_memory)."""
    cdef Py_ssize_t s, gone = 0
    for s in range(ARENA.nslabs):
        gone += ARENA.slab_state[s] == SLAB_GONE
    return {"live": ARENA.live, "slabs": ARENA.nslabs, "bytes": ARENA.nslabs * MG_SLAB_BYTES,
            "node_bytes": MG_NODE_BYTES, "slabs_given_back": gone}


def _arena_index(Value v not None):
    """Test hook: the arena index of v's node (its slab's number << 13 | its place in the slab)."""
    return node_index(ARENA, _node(v))


def _tape_stats():
    """entries, capacity, live op nodes, op nodes released since the last compaction, compactions,
    entries looked at by all backward passes so far (and by all compactions: swept), and entries
    backward passes looked at in vain since the last compaction (waste)."""
    return {"len": ARENA.tape_len, "cap": ARENA.tape_cap, "live_ops": ARENA.live_ops, "dead": ARENA.tape_dead,
            "compactions": ARENA.tape_compactions, "looked": ARENA.tape_looked,
            "swept": ARENA.tape_swept, "waste": ARENA.tape_waste}


def _tape_shrink():
    """Test hook: compact the tape and give back its spare capacity (down to the first size)."""
    cdef Py_ssize_t cap = TAPE_MIN
    if ARENA.scanning:
        raise RuntimeError("backward() is running")
    _tape_compact(ARENA)
    while cap < ARENA.tape_len + 1:
        cap *= 2
    if _tape_resize(ARENA, cap) != 0:
        raise MemoryError()


def _set_node_limit(limit):
    """Test hook: make allocation fail (MemoryError) once `limit` nodes are live; None lifts it."""
    ARENA.limit = PY_SSIZE_T_MAX if limit is None else int(limit)


def _set_epoch(e):
    """Test hook: set the backward epoch counter (to exercise its wrap-around)."""
    ARENA.epoch = <uint16_t>(e & 0xFFFF)



def _layout(packed):
    """Test hook: how the kernels see a packing's nodes. A _Rows (packed by a layer call):
    (rows, rows whose weights are consecutive nodes); a _pack: (parameters, runs of consecutive
    nodes). (-1, -1): a _Rows not packed yet."""
    cdef _Rows rw
    cdef _Params pk
    if type(packed) is _Rows:
        rw = <_Rows>packed
        if rw.r == NULL:
            return (-1, -1)
        return (rw.r.nout, rw.r.contig)
    pk = <_Params?>packed
    return (pk.n, pk.nruns)


def _call_layout(Value v not None):
    """Test hook: how backward sees the layer call that made v (its dot node, or the activation
    over one): (the call is apart, its inputs' data are one array, rows whose weights are
    consecutive nodes); None if v was not made by a layer call."""
    cdef NodeC* n = _node(v)
    cdef MgCall* c
    if (n.op == OP_RELU or n.op == OP_TANH or n.op == OP_SIGMOID) and n.a.op == OP_DOT:
        n = n.a
    if n.op != OP_DOT:
        return None
    c = MG_CALL(n)
    return (bool(c.apart), bool(c.xdense), c.rows.contig)
