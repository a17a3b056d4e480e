"""Unbounded depth and flat memory: deep chains, long sums, training and inference loops, custom ops."""
from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import time
import tracemalloc
import weakref

import pytest

from conftest import compiled_only

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def settle(engine, target: int | None = None, passes: int = 3) -> int:
    """Collect garbage (custom ops make cycles) and return the live-node count (-1 on pure).

    With no target, collect until nothing more is freed, so that a baseline taken at the start
    of a test does not depend on what earlier tests left to the collector.
    """
    if target is None:
        for _ in range(1000):
            if gc.collect() == 0:
                break
        return engine._live_nodes()
    for _ in range(passes):
        if engine._live_nodes() == target:
            break
        gc.collect()
    return engine._live_nodes()


def rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: tracemalloc still checks the Python side
        return None


def is_compiled(engine) -> bool:
    return engine.IMPLEMENTATION == "compiled"


# ---- depth ------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_deep_chain(engine):
    n = 3_000_000 if is_compiled(engine) else 100_000
    V = engine.Value
    base = settle(engine)
    leaf = x = V(1.0)
    for _ in range(n):
        x = x * 1.0000001 + 0.1
    if is_compiled(engine):
        assert engine._live_nodes() == base + 2 * n + 1
    x.backward()
    # the same arithmetic in plain floats, in the same order: the results are exact
    data, grad = 1.0, 1.0
    for _ in range(n):
        data = data * 1.0000001 + 0.1
        grad = 1.0000001 * grad
    assert x.data == data
    assert leaf.grad == grad
    del x
    assert settle(engine, base + 1) == (base + 1 if is_compiled(engine) else -1)
    assert leaf.data == 1.0  # the leaf outlives the chain it started


@pytest.mark.slow
def test_long_sum(engine):
    n = 1_000_000 if is_compiled(engine) else 100_000
    V = engine.Value
    base = settle(engine)
    vs = [V(i * 0.5) for i in range(n)]
    s = sum(vs)  # 0 + v0 + v1 + ...: a left-deep chain of n additions
    s.backward()
    total = 0.0
    for i in range(n):
        total = total + i * 0.5
    assert s.data == total
    assert all(v.grad == 1.0 for v in vs)
    del s
    assert settle(engine, base + n) == (base + n if is_compiled(engine) else -1)
    del vs
    assert settle(engine, base) == (base if is_compiled(engine) else -1)


def test_deep_backward_twice_and_from_the_middle(engine):
    # upstream's accumulation, replayed in plain floats over the chain from the root down:
    # each node adds (local derivative * its parent's grad so far) on every sweep
    V = engine.Value
    n = 50_000
    leaf = x = V(0.5)
    mid = None
    for i in range(n):
        x = (x + 1.0) * 0.5
        if i == n // 2:
            mid = x
    local = [0.5, 1.0] * n  # top-down: the add under each mul gets 0.5, what is under an add 1
    grads = [0.0] * (2 * n + 1)

    def sweep(top):
        grads[top] = 1.0
        for k in range(top + 1, 2 * n + 1):
            grads[k] += local[k - 1] * grads[k - 1]

    x.backward()
    sweep(0)
    assert leaf.grad == grads[-1]
    x.backward()
    sweep(0)
    assert leaf.grad == grads[-1] and x.grad == 1.0
    mid.backward()
    sweep(2 * (n - n // 2 - 1))
    assert mid.grad == 1.0
    assert leaf.grad == grads[-1]


# ---- flat memory in loops ------------------------------------------------------------------------------

XS = [(2.0, 3.0), (-1.0, 0.5)]
YS = [1.0, -1.0]


def make_params(V):
    return [V(0.1), V(-0.2), V(0.05), V(0.3), V(-0.1)]


def predict(params, x):
    w1, w2, b, v, c = params
    h = (w1 * x[0] + w2 * x[1] + b).tanh()
    return (h * v + c).sigmoid()


def train_step(params):
    loss = sum((predict(params, x) - y) ** 2 for x, y in zip(XS, YS))
    for p in params:
        p.grad = 0.0
    loss.backward()
    for p in params:
        p.data -= 0.05 * p.grad
    return loss


SANITIZED = bool(os.environ.get("MICROGRAD_SANITIZED"))


class Meter:
    """Live nodes (compiled), traced Python memory and RSS, read at two points of a loop."""

    def __init__(self, engine):
        self.engine = engine
        self.marks = []

    def mark(self):
        # nodes are counted before collecting: built-in ops make no cycles, so the compiled
        # engine must free them at once; the pure engine's closures are cycles (as upstream's),
        # so its memory is measured after a collection
        # (under the sanitizers a test's own garbage can wait for the GC, and ASan's allocator
        # keeps its own books: there nodes are counted after a collection, and RSS is not read)
        live = None if SANITIZED else self.engine._live_nodes()
        gc.collect()
        if SANITIZED:
            live = self.engine._live_nodes()
        self.marks.append((live, tracemalloc.get_traced_memory()[0], None if SANITIZED else rss_bytes()))

    def assert_flat(self):
        (n0, py0, rss0), (n1, py1, rss1) = self.marks
        if is_compiled(self.engine):
            assert n1 == n0, f"live nodes grew from {n0} to {n1}"
        # far below what one leaked graph per iteration would add over 4,500 iterations
        assert py1 - py0 < 256 * 1024, f"traced Python memory grew by {py1 - py0} bytes"
        if rss0 is not None:
            assert rss1 - rss0 < 4 * 1024 * 1024, f"RSS grew by {rss1 - rss0} bytes"


@pytest.mark.slow
def test_training_loop_memory_is_flat(engine):
    params = make_params(engine.Value)
    first = train_step(params).data
    meter = Meter(engine)
    tracemalloc.start()
    try:
        for i in range(5000):
            loss = train_step(params)
            if i in (499, 4999):
                meter.mark()
    finally:
        tracemalloc.stop()
    meter.assert_flat()
    assert loss.data < first  # it did train


@pytest.mark.slow
def test_inference_loop_memory_is_flat(engine):
    # the previous result stays alive while the next graph is built, as in a user's loop
    params = make_params(engine.Value)
    meter = Meter(engine)
    prev = None
    tracemalloc.start()
    try:
        for i in range(5000):
            out = predict(params, XS[i % 2])
            if prev is not None:
                assert prev.data == predict(params, XS[(i - 1) % 2]).data
            prev = out
            if i in (499, 4999):
                meter.mark()
    finally:
        tracemalloc.stop()
    meter.assert_flat()


def test_no_grad_inference_loop_is_flat(engine):
    params = make_params(engine.Value)
    base = settle(engine)
    outs = []
    with engine.no_grad():
        for i in range(2000):
            outs = outs[-1:] + [predict(params, XS[i % 2])]
    if is_compiled(engine):
        # under no_grad every result is a leaf: the five params plus two live results
        assert engine._live_nodes() == base + 2
    assert all(o._prev == set() for o in outs)


# ---- user-defined ops: reference cycles through the arena -----------------------------------------------

def inc(V, a):
    """A user-defined op whose closure holds its own output: out -> _backward -> out."""
    out = V(a.data * 0.5 + 1.0, _children=(a,), _op="inc")

    def _backward():
        a.grad += 0.5 * out.grad
    out._backward = _backward
    return out


def test_custom_op_graph_is_freed(engine):
    V = engine.Value
    base = settle(engine)
    w = V(0.3)
    x = inc(V, w * 2.0)
    y = inc(V, x) + inc(V, x.tanh())
    refs = [weakref.ref(x), weakref.ref(y)]
    y.backward()
    t = x.tanh().data
    assert abs(w.grad - 2.0 * 0.5 * (0.5 + 0.5 * (1 - t * t))) < 1e-15
    del x, y
    settle(engine, base + 1)
    assert all(r() is None for r in refs)
    if is_compiled(engine):
        assert engine._live_nodes() == base + 1  # only w


LEVELS = {
    "custom on custom": lambda V, x: inc(V, x),
    "custom on built-in": lambda V, x: inc(V, x * 2.0),
    "built-in on custom": lambda V, x: inc(V, x) * 2.0,
}


@pytest.mark.parametrize("kind", sorted(LEVELS))
def test_custom_op_chain_is_freed_by_a_few_collections(engine, kind):
    # "a few gc.collect() calls" must free a whole graph, however many custom ops it chains
    # and whatever built-in ops sit between them
    V = engine.Value
    base = settle(engine)
    x = w = V(0.3)
    refs = []
    for _ in range(50):
        x = LEVELS[kind](V, x)
        refs.append(weakref.ref(x))
    x.backward()
    assert w.grad == (0.5 if kind == "custom on custom" else 1.0) ** 50
    del x
    settle(engine, base + 1, passes=3)
    alive = sum(r() is not None for r in refs)
    assert alive == 0, f"{alive} of 50 custom-op handles still alive after 3 collections"
    if is_compiled(engine):
        assert engine._live_nodes() == base + 1


@pytest.mark.slow
def test_custom_op_training_loop_is_flat(engine):
    # Python's own collector runs when it likes; afterwards a few collections free everything
    V = engine.Value
    base = settle(engine)
    w = V(0.3)
    refs = []
    for i in range(3000):
        x = w * 1.0
        for _ in range(10):
            x = inc(V, x)
        x.backward()
        w.data -= 0.01 * w.grad
        w.grad = 0.0
        if i % 100 == 0:
            refs.append(weakref.ref(x))
    del x
    settle(engine, base + 1, passes=3)
    assert sum(r() is not None for r in refs) == 0
    if is_compiled(engine):
        assert engine._live_nodes() == base + 1


DEEP_CUSTOM = textwrap.dedent("""
    import gc, importlib, sys
    m = importlib.import_module(sys.argv[1])
    V = m.Value
    def inc(a):
        out = V(a.data + 1.0, _children=(a,), _op="inc")
        def _backward():
            a.grad += out.grad
        out._backward = _backward
        return out
    leaf = x = V(0.0)
    for _ in range(int(sys.argv[2])):
        x = inc(x)
    x.backward()
    assert leaf.grad == 1.0 and x.data == float(sys.argv[2])
    del x
    for _ in range(3):
        gc.collect()
    x = leaf * 2.0  # still works after freeing
    x.backward()
    print("ok", leaf.grad)
""")


@pytest.mark.slow
def test_deep_custom_chain_frees_without_crashing(engine):
    # freeing a deep chain of Python-level ops must not recurse on the C stack; a crash here
    # would take the test process down, so it runs in a child process
    n = 200_000
    proc = subprocess.run(
        [sys.executable, "-c", DEEP_CUSTOM, engine.__name__, str(n)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["ok", "3.0"]


def test_many_backward_calls(engine):
    # engines may mark visited nodes with a small wrapping counter: a graph left alone for
    # exactly one full turn of it (2**16, 2**32 ...) must still be swept completely
    V = engine.Value
    x = V(3.0)
    g1 = x * x + x  # x reached twice in one sweep: visited once, grads from both parents
    other = V(1.0)
    g2 = other * 2.0
    g1.backward()
    assert x.grad == 7.0
    for _ in range(2**16 - 1):
        g2.backward()
    x.grad = 0.0
    g1.backward()  # now exactly 2**16 sweeps after the first
    sq = [k for k in g1._prev if k._op == "*"][0]
    assert sq.grad == 2.0 and x.grad == 2 * 3.0 * 2.0 + 1.0
    for _ in range(2**16 + 1):
        g2.backward()
    assert other.grad == 2.0 * (2 * 2**16)
    x.grad = 0.0
    sq.grad = 0.0
    g1.backward()
    assert x.grad == 7.0


# ---- where new nodes go, and when memory goes back (the compiled arena) -------------------------

@compiled_only
def test_new_nodes_sit_side_by_side_whatever_order_the_old_ones_died_in():
    # the compiled arena hands out the lowest free node: Values made one after another get
    # ascending places (a layer's weights stay dense for the caches) even when the nodes they
    # reuse were freed in a random order, and a slab's freed nodes are all used again
    import random

    from micrograd import _engine

    V = _engine.Value
    old = [V(float(i)) for i in range(20000)]
    places = sorted(_engine._arena_index(v) for v in old)
    random.Random(0).shuffle(old)
    slabs = _engine._arena_stats()["slabs"]
    while old:  # freed one at a time, in the shuffled order
        old.pop()
    new = [V(float(i)) for i in range(20000)]
    got = [_engine._arena_index(v) for v in new]
    assert all(a < b for a, b in zip(got, got[1:]))
    assert got[0] <= places[0]  # the freed places (or lower ones) are reused, in order
    assert _engine._arena_stats()["slabs"] == slabs
    assert [v.data for v in new] == [float(i) for i in range(20000)]


@compiled_only
def test_full_collections_give_a_dropped_graphs_memory_back():
    from micrograd import _engine

    V = _engine.Value
    settle(_engine)
    a = V(0.5)
    old = a * 3.0 + 1.0  # made first: low in the arena, and backpropagated after the release
    x = a
    for _ in range(300_000):  # 600,000 nodes, ~33 MB: dozens of slabs
        x = x * 1.0000001 + 0.25
    x.backward()
    grad_big = a.grad
    before = rss_bytes()
    del x
    gc.collect()  # the slabs are all free: once they have stayed so for a second, they go
    time.sleep(1.1)
    gc.collect()
    stats = _engine._arena_stats()
    after = rss_bytes()
    if sys.platform.startswith("linux") or sys.platform == "darwin":
        assert stats["slabs_given_back"] >= stats["slabs"] // 2, stats
    if sys.platform.startswith("linux") and not os.environ.get("MICROGRAD_SANITIZED"):
        # (AddressSanitizer's allocator keeps its own books: RSS says little there)
        assert before - after > 20 * 2**20, (before, after)  # most of the ~33 MB
    assert _engine._tape_stats()["cap"] <= 8192  # the tape's room for 600,000 went back too
    # the arena works on: the old graph backpropagates, and a new big one reuses the slabs
    a.grad = 0.0
    old.backward()
    assert a.grad == 3.0
    x = a
    for _ in range(300_000):
        x = x * 1.0000001 + 0.25
    assert _engine._arena_stats()["slabs"] == stats["slabs"]
    assert _engine._arena_stats()["slabs_given_back"] < stats["slabs_given_back"]
    a.grad = 0.0
    x.backward()
    assert a.grad == grad_big


@compiled_only
def test_a_loop_that_collects_between_big_graphs_keeps_its_pages():
    # build, drop, gc.collect(), build again...: the slabs are used again within the second,
    # so their pages stay (giving them back would cost page faults every round)
    import resource

    from micrograd import _engine

    V = _engine.Value
    settle(_engine)
    time.sleep(1.1)
    gc.collect()  # what earlier tests left idle goes now, not during the loop
    faults = []
    gone = []
    for _ in range(4):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        x = V(0.5)
        for _ in range(100_000):  # 200,000 nodes: 11 MB, ~2,700 pages
            x = x * 1.0000001 + 0.25
        x.backward()
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        del x
        gc.collect()
        gone.append(_engine._arena_stats()["slabs_given_back"])
    assert all(b <= a for a, b in zip(gone, gone[1:])), gone  # none given back in the loop
    if not os.environ.get("MICROGRAD_SANITIZED"):  # (ASan's allocator faults pages of its own)
        pages = 200_000 * _engine._arena_stats()["node_bytes"] // 4096
        assert max(faults[1:]) < pages // 2, (faults, pages)  # not the graph's pages again
