"""Allocation failure: every op under a node cap raises MemoryError, leaks nothing, corrupts nothing."""
from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import compiled_only

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the node cap is a hook of the compiled arena; the pure engine allocates through Python
pytestmark = compiled_only


@pytest.fixture
def E():
    from micrograd import _engine
    _engine._set_node_limit(None)
    yield _engine
    _engine._set_node_limit(None)


def _ops(E):
    V = E.Value
    # name -> f(a, b) building one result from two live leaves; each needs 1 to 3 new nodes
    return {
        "a+b": lambda a, b: a + b, "a+2": lambda a, b: a + 2, "2+a": lambda a, b: 2 + a,
        "a*b": lambda a, b: a * b, "a*2": lambda a, b: a * 2, "2*a": lambda a, b: 2 * a,
        "-a": lambda a, b: -a, "a-b": lambda a, b: a - b, "a-2": lambda a, b: a - 2,
        "2-a": lambda a, b: 2 - a, "a/b": lambda a, b: a / b, "a/2": lambda a, b: a / 2,
        "2/a": lambda a, b: 2 / a, "a**2": lambda a, b: a ** 2, "a**b": lambda a, b: a ** b,
        "2**a": lambda a, b: 2 ** a, "relu": lambda a, b: a.relu(), "tanh": lambda a, b: a.tanh(),
        "exp": lambda a, b: a.exp(), "log": lambda a, b: a.log(), "sigmoid": lambda a, b: a.sigmoid(),
        "Value(children)": lambda a, b: V(3.0, (a, b), "f"),
        "Value(leaf)": lambda a, b: V(3.0),
        "_dot": lambda a, b: E._dot(b, [a, b], [a, 2.0]),
        "_layer": lambda a, b: E._layer(([a, b], [b, a]), (a, b), [1.5, b], "tanh"),
        "_prev of a+2": lambda a, b: list((a + 2)._prev),
    }


OP_NAMES = list(_ops(__import__("micrograd._engine_py", fromlist=["x"])).keys())


def _reference(E):
    """A graph built before the failures; returns it and a check that it still works exactly."""
    V = E.Value
    x, w = V(0.5), V(-1.25)
    nodes = [x, w]
    # one node per op (no a - b or a / b: their hidden middle node's grad could not be zeroed)
    nodes.append(x * w); nodes.append(nodes[-1] + 1.0); nodes.append(nodes[-1].tanh())
    nodes.append(x ** 2); nodes.append(nodes[-2] * nodes[-1]); nodes.append(x ** -1)
    nodes.append(w * nodes[-1]); nodes.append(nodes[-1] * -1.0)
    nodes.append(nodes[-4] + nodes[-1]); nodes.append(nodes[-1].exp())
    y = nodes[-1]
    y.backward()
    want = (y.data, x.grad, w.grad)

    def check():
        assert y.data == want[0]
        for v in nodes:  # intermediate grads accumulate, as upstream: zero them all
            v.grad = 0.0
        y.backward()
        assert (x.grad, w.grad) == (want[1], want[2])
    return nodes, check


@pytest.mark.parametrize("name", OP_NAMES)
def test_every_op_raises_memoryerror_and_leaves_the_arena_intact(E, name):
    op = _ops(E)[name]
    V = E.Value
    keep, check = _reference(E)
    a, b = V(1.5), V(2.5)
    gc.collect()
    base = E._live_nodes()
    failures = 0
    for room in range(0, 8):  # room = how many more nodes the arena may hold
        E._set_node_limit(base + room)
        try:
            out = op(a, b)
        except MemoryError:
            failures += 1
            E._set_node_limit(None)
            gc.collect()
            assert E._live_nodes() == base, f"{name}: {E._live_nodes() - base} nodes leaked at room={room}"
            continue
        E._set_node_limit(None)
        break
    else:
        pytest.fail(f"{name} still failed with 7 nodes of room")
    assert failures >= 1, f"{name} never hit the cap"
    # the op works once there is room, and gives the pure engine's numbers
    del out
    gc.collect()
    assert E._live_nodes() == base
    # the graph built before is untouched, and the engine still computes and backprops right
    check()
    ca, cb = V(1.5), V(2.5)
    res = op(ca, cb)
    r = res[0] if isinstance(res, list) else res
    if isinstance(r, V) and r._prev:
        r.backward()
    P = __import__("micrograd._engine_py", fromlist=["x"])
    pa, pb = P.Value(1.5), P.Value(2.5)
    pres = _ops(P)[name](pa, pb)
    pr = pres[0] if isinstance(pres, list) else pres
    if isinstance(pr, P.Value) and pr._prev:
        pr.backward()
    if name.startswith("_prev"):  # a set: its order is arbitrary
        assert sorted(v.data for v in res) == sorted(v.data for v in pres)
    elif isinstance(r, V):
        assert (r.data, ca.grad, cb.grad) == (pr.data, pa.grad, pb.grad)


def test_layer_fails_mid_layer_at_every_node(E):
    V = E.Value
    keep, check = _reference(E)
    nin, nout = 5, 6
    ws = tuple([V(0.1 * (i - j)) for i in range(nin)] for j in range(nout))
    bs = tuple(V(0.01 * j) for j in range(nout))
    x = [V(0.3), 0.7, -1.0, V(2.0), 0.5]  # numbers become leaf nodes too
    gc.collect()
    base = E._live_nodes()
    need = nout * 2 + 3  # a dot node and a tanh node per neuron, plus three number leaves
    for room in range(need):
        E._set_node_limit(base + room)
        with pytest.raises(MemoryError):
            E._layer(ws, bs, x, "tanh")
        E._set_node_limit(None)
        assert E._live_nodes() == base, f"room={room}: {E._live_nodes() - base} nodes leaked"
    E._set_node_limit(base + need)
    out = E._layer(ws, bs, x, "tanh")
    E._set_node_limit(None)
    loss = sum(out)
    loss.backward()
    P = __import__("micrograd._engine_py", fromlist=["x"])
    pws = tuple([P.Value(w.data) for w in row] for row in ws)
    pbs = tuple(P.Value(b.data) for b in bs)
    px = [P.Value(0.3), 0.7, -1.0, P.Value(2.0), 0.5]
    pl = sum(P._layer(pws, pbs, px, "tanh"))
    pl.backward()
    assert loss.data == pl.data
    assert [w.grad for row in ws for w in row] == [w.grad for row in pws for w in row]
    assert x[0].grad == px[0].grad and x[3].grad == px[3].grad
    check()


def test_training_survives_a_full_arena(E):
    """An MLP step that hits the cap raises; the model and optimizer go on as if it never ran."""
    import random

    from micrograd import losses, optim
    from micrograd.nn import MLP

    random.seed(1)
    model = MLP(2, [4, 4, 1])
    opt = optim.SGD(model.parameters(), lr=0.1)
    X, Y = [[0.5, -1.0], [1.0, 0.25], [-0.5, 0.5]], [1, -1, 1]

    def step():
        loss = losses.hinge([model(x) for x in X], Y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.data

    step()
    gc.collect()
    base = E._live_nodes()
    before = [p.data for p in model.parameters()]
    for room in (0, 1, 5, 17, 30):
        E._set_node_limit(base + room)
        with pytest.raises(MemoryError):
            step()
        E._set_node_limit(None)
        gc.collect()
        assert E._live_nodes() == base
        assert [p.data for p in model.parameters()] == before
    # same numbers as a model that never saw the failures
    random.seed(1)
    twin = MLP(2, [4, 4, 1])
    topt = optim.SGD(twin.parameters(), lr=0.1)
    tloss = losses.hinge([twin(x) for x in X], Y)
    topt.zero_grad(); tloss.backward(); topt.step()
    for _ in range(3):
        got = step()
        tl = losses.hinge([twin(x) for x in X], Y)
        topt.zero_grad(); tl.backward(); topt.step()
        assert got == tl.data
    assert [p.data for p in model.parameters()] == [p.data for p in twin.parameters()]


_RLIMIT_CHILD = textwrap.dedent(r"""
    import gc, resource, sys
    from micrograd import _engine as E
    from micrograd._engine_py import Value as P
    V = E.Value

    def vm_bytes():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * resource.getpagesize()

    # room for ~200 MiB more: the arena runs out long before the machine does
    limit = vm_bytes() + 200 * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    base = E._live_nodes()
    leaf = x = V(0.0)
    n = 0
    hit = None
    try:
        while True:
            x = x + 1.0
            n += 1
    except MemoryError as exc:
        hit = exc
    assert x.data == float(n), (x.data, n)   # the last node built is whole
    assert E._live_nodes() == base + n + 1
    # backward may or may not find room for its buffers; either way nothing breaks
    try:
        x.backward()
        assert leaf.grad == 1.0
    except MemoryError:
        pass
    del x, hit
    gc.collect()
    assert E._live_nodes() == base + 1, E._live_nodes()
    # still under the same limit: freed nodes are reused, so real work goes on
    pa, pb = P(2.0), P(-3.0)
    pc = (pa * pb + pa ** 3).tanh() + (pb / pa).exp()
    pc.backward()
    a, b = V(2.0), V(-3.0)
    c = (a * b + a ** 3).tanh() + (b / a).exp()
    c.backward()
    assert (c.data, a.grad, b.grad) == (pc.data, pa.grad, pb.grad)
    print(f"built {n} nodes before MemoryError; recovered")
""")


def _under_sanitizer() -> bool:
    return "asan" in os.environ.get("LD_PRELOAD", "") or bool(os.environ.get("MICROGRAD_SANITIZED"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux's")
@pytest.mark.skipif(_under_sanitizer(), reason="ASan reserves terabytes of address space")
def test_child_under_rlimit_as_recovers_and_exits_0():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])))
    r = subprocess.run([sys.executable, "-c", _RLIMIT_CHILD], capture_output=True, text=True,
                       timeout=120, env=env, cwd=REPO)
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr[-3000:]}"
    assert "recovered" in r.stdout
    n = int(r.stdout.split()[1])
    assert n > 100_000  # the limit was hit by the graph, not at start-up
