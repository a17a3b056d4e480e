cdef int _tape_make_room(ArenaC* A) except -1:
    """Room for one more entry: drop dead and stale entries if that frees enough, else grow."""
    cdef uint32_t* t
    cdef Py_ssize_t cap
    if A.tape_len and A.tape_dead >= A.tape_len // 2 and not A.scanning:  # worth a pass
        _tape_compact(A)
        if A.tape_len <= A.tape_cap // 2:
            return 0
    cap = max(2 * A.tape_cap, TAPE_MIN)
    t = <uint32_t*>PyMem_RawRealloc(A.tape, cap * sizeof(uint32_t))
    if t == NULL:
        raise MemoryError("micrograd: the tape cannot grow")
    A.tape = t
    A.tape_cap = cap
    return 0


cdef int _tape_resize(ArenaC* A, Py_ssize_t cap) noexcept:
    """Make the tape's capacity cap (>= its length); 0, or -1 if realloc failed (nothing changed)."""
    cdef uint32_t* t = <uint32_t*>PyMem_RawRealloc(A.tape, cap * sizeof(uint32_t))
    if t == NULL:
        return -1
    A.tape = t
    A.tape_cap = cap
    return 0


# a dropped entry while a compaction runs (a C constant: a bare literal this big would make
# Cython compare Python ints)
cdef extern from *:
    """#define MG_TAPE_GONE 0xFFFFFFFFu"""
    const uint32_t TAPE_GONE "MG_TAPE_GONE"


cdef void _tape_compact(ArenaC* A) noexcept:
    """Keep each live op node's newest entry, in order: dead slots and reused slots' old entries go.
    A free slot is seen in the free bits (dense, warm), so dead history costs no node read."""
    cdef uint16_t ep = _next_epoch(A)  # marks 'newer entry seen'; no pass is scanning
    cdef Py_ssize_t i, j = 0
    cdef uint32_t idx
    cdef NodeC* n
    if ep == 0:
        return  # (every epoch in use by a running pass: cannot happen; the tape stays as it is)
    i = A.tape_len - 1
    A.tape_swept += A.tape_len
    while i >= 0:
        idx = A.tape[i]
        if (A.freebits[(idx >> 6)] >> (idx & 63)) & 1:  # slab s's words start at s * SLAB_WORDS
            A.tape[i] = TAPE_GONE
            i -= 1
            continue
        n = MG_NODE(A.slabs, idx)
        if n.op == OP_LEAF or (n.flags & F_LATE) or n.epoch == ep:
            A.tape[i] = TAPE_GONE
        else:
            n.epoch = ep
        i -= 1
    for i in range(A.tape_len):
        if A.tape[i] != TAPE_GONE:
            A.tape[j] = A.tape[i]
            j += 1
    A.tape_len = j
    A.tape_dead = 0
    A.tape_waste = 0
    A.tape_compactions += 1


