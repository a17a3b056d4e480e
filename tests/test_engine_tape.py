"""backward() walks the tape of op nodes newest first: bounded, right across reuse, and in step with the pure engine."""
from __future__ import annotations

import gc
import random
import signal

import pytest

import micrograd.functional as F
from micrograd import _engine, _engine_py


def fbits(x: float) -> str:
    return "nan" if x != x else float.hex(x)


def churn_program(Value, seed: int) -> list:
    """A long session: a long-lived intermediate, thousands of dead graphs whose slots are
    reused, live graphs interleaved with dead ones, and backward from old and new nodes."""
    rng = random.Random(seed)
    ws = [Value(rng.uniform(-1, 1)) for _ in range(8)]
    scale = ws[0] * 0.5 + ws[1]  # an op node made first and used by every step below
    kept = []  # some results stay alive: their entries must survive compaction
    seen = []
    for step in range(300):
        x = [Value(rng.uniform(-1, 1)) for _ in range(4)]
        acc = scale
        for i in range(40):
            w = ws[rng.randrange(len(ws))]
            acc = (acc * w + x[i % 4]).tanh() if i % 3 else acc + w * x[i % 4] - scale
            if rng.random() < 0.02:
                kept.append(acc)
        loss = acc * acc
        for w in ws:
            w.grad = 0.0
        loss.backward()
        seen.append([fbits(w.grad) for w in ws])
        if step % 50 == 49 and kept:  # backward from an old node, far down the tape
            old = kept[rng.randrange(len(kept))]
            old.backward()
            seen.append(("old", fbits(old.grad), [fbits(w.grad) for w in ws]))
        if len(kept) > 30:
            del kept[: len(kept) // 2]
    return seen


def test_a_long_session_agrees_with_the_pure_engine():
    _engine._tape_shrink()  # a small tape, as in a fresh process: it fills and is compacted
    before = _engine._tape_stats()["compactions"]
    got = churn_program(_engine.Value, 3)
    want = churn_program(_engine_py.Value, 3)
    assert got == want
    # the session must have exercised the tape's housekeeping, or it proves little
    assert _engine._tape_stats()["compactions"] > before


def test_the_tape_stays_bounded_in_a_training_loop():
    from micrograd.nn import MLP

    # the op nodes other tests left alive (functional.linear's kept matrices hold theirs)
    # are not this loop's: count from what is live before it
    F.forget()
    gc.collect()
    live_before = _engine._tape_stats()["live_ops"]
    random.seed(0)
    model = MLP(3, [8, 8, 1])
    x = [0.5, -1.0, 2.0]
    caps = []
    for _ in range(400):
        loss = (model(x) - 1.0) ** 2
        model.zero_grad()
        loss.backward()
        caps.append(_engine._tape_stats()["len"])
    per_step = caps[-1]  # the live step's entries; the dead steps' are gone
    assert max(caps[200:]) <= 2 * per_step + 4096
    del loss
    gc.collect()
    stats = _engine._tape_stats()
    assert stats["live_ops"] == live_before  # the loop's graphs all gone


def test_backward_from_a_node_made_long_ago():
    for V in (_engine.Value, _engine_py.Value):
        a, b = V(1.5), V(-0.5)
        old = a * b + a
        noise = [V(float(i)) * 2.0 + 1.0 for i in range(20000)]  # newer entries above `old`
        old.backward()
        assert (a.grad, b.grad) == (0.5, 1.5)
        assert len(noise) == 20000


def test_repeated_backward_does_not_walk_dead_history():
    # `g` is made first; thousands of graphs made and dropped above it leave dead entries that
    # only a full tape would clear. backward() clears them itself: each call then looks at g's
    # own entries, not at the dead history
    _engine._tape_shrink()
    a, b = _engine.Value(-4.0), _engine.Value(2.0)
    g = ((a * b + b**3).relu() * a - b / a).tanh()
    ops = _engine._tape_stats()["live_ops"]
    for i in range(300):  # fewer entries than fill the tape: no compaction on the way
        ((a + float(i)) * b).exp()
    stats = _engine._tape_stats()
    assert stats["dead"] >= 600 and stats["len"] < stats["cap"]
    g.backward()
    assert _engine._tape_stats()["dead"] == 0
    looked = _engine._tape_stats()["looked"]
    g.backward()
    assert _engine._tape_stats()["looked"] - looked <= ops
    grads = (a.grad, b.grad)
    want_a, want_b = _engine_py.Value(-4.0), _engine_py.Value(2.0)
    want = ((want_a * want_b + want_b**3).relu() * want_a - want_b / want_a).tanh()
    want.backward()
    want.backward()
    assert grads == (want_a.grad, want_b.grad)


def test_a_signal_handler_that_makes_values_mid_backward():
    # Python code may run at a Ctrl-C check inside the pass: here it makes thousands of op
    # nodes, so the tape grows (and moves) while the pass is reading it
    made = []

    def build():
        a, b = _engine.Value(0.999), _engine.Value(0.3)
        x = a
        for _ in range(600_000):
            x = x * a + b
        return a, b, x

    a, b, x = build()
    x.backward()
    want = (fbits(a.grad), fbits(b.grad))
    del a, b, x
    a, b, x = build()

    def handler(signum, frame):
        stats = _engine._tape_stats()
        v = _engine.Value(1.0)
        # enough to fill the tape the first time: it must be reallocated mid-pass
        n = stats["cap"] - stats["len"] + 10 if not made else 5000
        made.extend(v * float(i) for i in range(n))
        signal.setitimer(signal.ITIMER_REAL, 0.001)  # again, once this one is done

    cap0 = _engine._tape_stats()["cap"]
    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.001)
        x.backward()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old)
    if not made:
        pytest.skip("the timer never fired during backward on this machine")
    assert _engine._tape_stats()["cap"] > cap0  # it did grow while the pass held it
    assert (fbits(a.grad), fbits(b.grad)) == want


def test_a_user_op_that_runs_backward_inside_backward():
    for V in (_engine.Value, _engine_py.Value):
        a, b = V(2.0), V(3.0)
        inner = a * b

        out = V(inner.data + 1.0, _children=(inner,), _op="f")

        def _backward(out=out, inner=inner):
            inner.grad += out.grad
            side = V(5.0) * a  # nodes made and backpropagated while the outer pass runs
            side.backward()
        out._backward = _backward
        y = out * b
        y.backward()
        # y = (a*b + 1) * b: dy/da = b*b = 9 (+5 from the nested backward into a)
        assert a.grad == 9.0 + 5.0
        assert b.grad == 2 * a.data * b.data + 1.0


def _step_graph(ps, k):
    """One training step's graph over the leaves ps (a microgpt-style mix of ops), ~10 nodes a leaf."""
    total = 0
    for i, p in enumerate(ps):
        q = ps[(i * 7 + k) % len(ps)]
        total = total + ((p * q + 0.5).tanh() * (i + 1)).relu() + p ** 2
    return total


def _backward_cost(root):
    """(entries looked at, entries compacted) by one backward() from root."""
    before = _engine._tape_stats()
    root.backward()
    after = _engine._tape_stats()
    return after["looked"] - before["looked"], after["swept"] - before["swept"]


def test_backward_after_the_old_graph_dies_pays_no_housekeeping():
    # microgpt's loop: the new step's graph is built while the last one is alive, which dies
    # when `loss` is rebound, just before backward(). Its dead entries sit below the new graph:
    # the pass never reaches them, and backward() must not compact them either
    ps = [_engine.Value(0.01 * i - 0.3) for i in range(400)]
    _engine._tape_shrink()
    clean = _step_graph(ps, 0)
    clean_looked, clean_swept = _backward_cost(clean)
    assert clean_swept == 0
    loss = clean
    del clean
    costs = []
    for k in range(1, 8):
        new = _step_graph(ps, k)  # the old graph is alive while this one is built
        loss = new  # ... and dies here, so half the tape is dead history
        del new
        assert _engine._tape_stats()["dead"] > 0
        for p in ps:
            p.grad = 0.0
        costs.append(_backward_cost(loss))
    for looked, swept in costs:
        assert swept == 0
        assert looked <= 1.25 * clean_looked
    # the numbers are those of a clean tape (and of the pure engine)
    want_ps = [_engine_py.Value(0.01 * i - 0.3) for i in range(400)]
    _step_graph(want_ps, 7).backward()
    assert [fbits(p.grad) for p in ps] == [fbits(p.grad) for p in want_ps]


def test_dead_entries_inside_the_walk_are_compacted_once_they_cost_as_much():
    # dead entries interleaved with a live graph do cost each pass a look: once the passes
    # have paid a compaction's worth, backward() compacts, and later passes look at the graph only
    _engine._tape_shrink()
    a, b = _engine.Value(0.3), _engine.Value(-0.7)
    x = a
    for i in range(2000):
        _ = (x * 3.0 + 0.001 * i).exp()  # made and dropped between the chain's own nodes
        x = (x * b + a).tanh()
    ops = _engine._tape_stats()["live_ops"]
    total = 0
    for _ in range(12):
        looked, swept = _backward_cost(x)
        total += looked + swept
    assert _engine._tape_stats()["dead"] == 0
    assert total <= 12 * ops + 4 * _engine._tape_stats()["cap"]
