"""Threads: independent graphs built and backpropagated at once give the numbers of one thread."""
from __future__ import annotations

import gc
import math
import os
import random
import sys
import threading

import pytest

from conftest import compiled_only

THREADS = 6


@pytest.fixture
def fast_switching():
    # switch threads as often as CPython allows, so they interleave inside every op
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def _scalar_workload(E, seed: int) -> list:
    """A random graph of every op plus user-defined ops (Python code runs mid-backward)."""
    V = E.Value
    rng = random.Random(seed)
    leaves = [V(rng.uniform(0.5, 2.0)) for _ in range(8)]
    out = []
    for rep in range(30):
        xs = list(leaves)
        for _ in range(40):
            a, b = rng.choice(xs), rng.choice(xs)
            k = rng.randrange(12)
            if k == 0:
                c = a + b
            elif k == 1:
                c = a * b
            elif k == 2:
                c = a - b * 0.5
            elif k == 3:
                c = a / (b * b + 1.0)
            elif k == 4:
                c = (a * 0.1).tanh()
            elif k == 5:
                c = (a * 0.01).exp()
            elif k == 6:
                c = (a * a + 1.0).log()
            elif k == 7:
                c = a.relu() + b.sigmoid()
            elif k == 8:
                c = (a * a + 0.5) ** 0.5
            elif k == 9:
                c = 2.0 - a + 3.0 * b
            else:  # a user-defined op: its _backward is Python, where threads switch
                c = V(math.sin(a.data), (a,), "sin")

                def _backward(a=a, c=c):
                    a.grad += math.cos(a.data) * c.grad
                c._backward = _backward
            xs.append(c)
        root = sum(xs[-10:]) * (1.0 / 10)
        for v in leaves:
            v.grad = 0.0
        root.backward()
        out.append(root.data)
        out.extend(v.grad for v in leaves)
        del xs, root, c, a, b
    return out


def _nn_workload(seed: int) -> list:
    """An MLP trained with SGD on a few moons points, weights drawn from its own Random."""
    from micrograd import losses, optim
    from micrograd.datasets import make_moons
    from micrograd.nn import MLP

    rng = random.Random(seed)
    model = MLP(2, [8, 8, 1])
    for p in model.parameters():
        p.data = rng.uniform(-1, 1)
    X, Y = make_moons(12, noise=0.1, seed=seed)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    hist = []
    for _ in range(25):
        loss = losses.hinge([model(x) for x in X], Y) + 1e-4 * losses.l2(model.parameters())
        opt.zero_grad()
        loss.backward()
        opt.step()
        hist.append(loss.data)
    return hist + [p.data for p in model.parameters()]


def _in_threads(fn, seeds) -> dict:
    results, errors = {}, []
    barrier = threading.Barrier(len(seeds))

    def run(seed):
        try:
            barrier.wait()
            results[seed] = fn(seed)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append((seed, repr(exc)))

    threads = [threading.Thread(target=run, args=(s,)) for s in seeds]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors
    return results


def _settle(E):
    for _ in range(3):
        gc.collect()
    return E._live_nodes() if E.IMPLEMENTATION == "compiled" else 0


def test_scalar_graphs_in_threads_match_one_thread(engine, fast_switching):
    seeds = list(range(THREADS))
    base = _settle(engine)
    one = {s: _scalar_workload(engine, s) for s in seeds}
    assert _settle(engine) == base
    many = _in_threads(lambda s: _scalar_workload(engine, s), seeds)
    assert _settle(engine) == base, "nodes leaked by threaded runs"
    for s in seeds:
        assert many[s] == one[s], f"seed {s}: threaded numbers differ"


def test_nn_training_in_threads_matches_one_thread(fast_switching):
    from micrograd.engine import IMPLEMENTATION
    from micrograd.engine import _impl as E

    seeds = list(range(THREADS))
    base = _settle(E)
    one = {s: _nn_workload(s) for s in seeds}
    many = _in_threads(_nn_workload, seeds)
    for s in seeds:
        assert many[s] == one[s], f"seed {s}: threaded training differs"
    if IMPLEMENTATION == "compiled":
        assert _settle(E) == base


# stresses the compiled arena; on the pure engine a collector thread over its closures only
# makes the run minutes long
@compiled_only
def test_mixed_threads_scalar_nn_and_garbage_collection(fast_switching):
    """Training, scalar graphs and a thread that keeps collecting garbage, all at once."""
    from micrograd.engine import _impl as E

    stop = threading.Event()

    def collector():
        while not stop.is_set():
            gc.collect()

    want_nn = _nn_workload(7)
    want_sc = _scalar_workload(E, 8)
    c = threading.Thread(target=collector)
    c.start()
    try:
        got = _in_threads(lambda s: _nn_workload(7) if s % 2 else _scalar_workload(E, 8), [0, 1, 2, 3])
    finally:
        stop.set()
        c.join()
    assert got[1] == got[3] == want_nn
    assert got[0] == got[2] == want_sc


@compiled_only
def test_compiled_module_asks_for_the_gil():
    """The module declares Py_MOD_GIL_USED: a free-threaded CPython re-enables the GIL on import.

    The engine's arena (free bits, slabs, counters, backward's buffers, the no_grad flag) is
    process-global and unlocked; the GIL is what makes threads safe.
    """
    import sysconfig

    from micrograd import _engine as E

    assert E.IMPLEMENTATION == "compiled"
    if sysconfig.get_config_var("Py_GIL_DISABLED") and os.environ.get("PYTHON_GIL") != "0":
        assert sys._is_gil_enabled(), "free-threaded build: importing the engine must enable the GIL"
    c_file = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src", "_engine.c")
    if not os.path.exists(c_file):  # a wheel's test run: no generated C beside the tests
        return
    with open(c_file) as f:
        text = f.read()
    # Cython emits three defines: directive true, directive false, and the default when the
    # C macro CYTHON_FREETHREADING_COMPATIBLE is not set; the default is the one a build uses
    defines = [line.split()[-1] for line in text.splitlines()
               if line.startswith("#define __Pyx_FREETHREADING_COMPATIBLE ")]
    assert defines and defines[-1] == "Py_MOD_GIL_USED", defines
    assert "{Py_mod_gil, __Pyx_FREETHREADING_COMPATIBLE}" in text
