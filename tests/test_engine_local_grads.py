"""microgpt's Value(data, children, local_grads) on both engines, and _children / _local_grads."""
from __future__ import annotations

import math

import pytest

from test_engine_hypothesis import fbits


class Ops:
    """microgpt's ops, written as its Value writes them: each records its local grads."""

    def __init__(self, V):
        self.V = V

    def add(self, a, b):
        return self.V(a.data + b.data, (a, b), (1, 1))

    def mul(self, a, b):
        return self.V(a.data * b.data, (a, b), (b.data, a.data))

    def pow(self, a, k):
        return self.V(a.data**k, (a,), (k * a.data ** (k - 1),))

    def log(self, a):
        return self.V(math.log(a.data), (a,), (1 / a.data,))

    def exp(self, a):
        return self.V(math.exp(a.data), (a,), (math.exp(a.data),))

    def relu(self, a):
        return self.V(max(0, a.data), (a,), (float(a.data > 0),))


def program(V, xs):
    o = Ops(V)
    a, b, c = (V(x) for x in xs)
    h = o.relu(o.add(o.mul(a, b), c))
    y = o.log(o.add(o.exp(o.mul(h, a)), o.pow(b, 2)))
    return [a, b, c], o.mul(y, y) + a * 0.5  # mixed with a built-in op


XS = [(0.7, -1.3, 2.0), (1.5, 0.4, -0.2), (-0.9, 2.2, 3.1)]


@pytest.mark.parametrize("xs", XS)
def test_matches_finite_differences(engine, xs):
    leaves, out = program(engine.Value, xs)
    out.backward()
    for k in range(3):
        h = 1e-6
        up, down = list(xs), list(xs)
        up[k] += h
        down[k] -= h
        fd = (program(engine.Value, up)[1].data - program(engine.Value, down)[1].data) / (2 * h)
        assert leaves[k].grad == pytest.approx(fd, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("xs", XS)
def test_both_engines_give_the_same_bits(engines, xs):
    got = []
    for E in engines:
        leaves, out = program(E.Value, xs)
        out.backward()
        out.backward()  # accumulates, as upstream
        got.append([fbits(out.data)] + [fbits(v.grad) for v in leaves])
    assert got[0] == got[1]


def test_the_same_as_the_built_in_ops(engine):
    V = engine.Value
    a, b = V(1.25), V(-0.5)
    m = V(a.data * b.data, children=[a, b], local_grads=[b.data, a.data])
    (m * m).backward()
    a2, b2 = V(1.25), V(-0.5)
    m2 = a2 * b2
    (m2 * m2).backward()
    assert (a.grad, b.grad) == (a2.grad, b2.grad)


def test_children_and_local_grads(engine):
    V = engine.Value
    a, b = V(2.0), V(3.0)
    m = V(6.0, (a, b), [3.0, 2])
    assert m._children == (a, b) and m._local_grads == (3.0, 2.0)
    assert all(type(g) is float for g in m._local_grads)
    assert m._op == "" and m._prev == {a, b}
    assert a._children == () and a._local_grads == ()
    s = a * b
    assert s._children == (a, b) and s._local_grads is None
    k = a * 2.0
    assert k._children[0] is a and k._children[1].data == 2.0
    d = engine._dot(a, [b], [a])
    assert d._children == (a, b, a)
    assert V(1.0, (a,), _op="f")._children == (a,)  # the upstream form still takes _op


def test_no_grad_makes_a_leaf(engine):
    V = engine.Value
    a = V(2.0)
    with engine.no_grad():
        m = V(4.0, (a,), (4.0,))
    assert m._children == () and m._local_grads == ()
    m.backward()
    assert a.grad == 0.0


BAD = [
    (lambda V, a: V(1.0, ("x",)), TypeError),                      # a child that is no Value
    (lambda V, a: V(1.0, (), (1.0,)), ValueError),                 # grads without children
    (lambda V, a: V(1.0, (a,), ("a",)), TypeError),                # a grad that is no number
    (lambda V, a: V(1.0, (a,), (1.0, 2.0)), ValueError),           # lengths differ
    (lambda V, a: V(1.0, (a,), 3.0), TypeError),                   # neither _op nor grads
    (lambda V, a: V(1.0, (a,), (1.0,), local_grads=(1.0,)), TypeError),  # grads twice
]


@pytest.mark.parametrize("k", range(len(BAD)))
def test_bad_calls_raise(engine, k):
    make, err = BAD[k]
    with pytest.raises(err):
        make(engine.Value, engine.Value(2.0))
