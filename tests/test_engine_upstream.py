"""micrograd 0.1.0's behaviour on both engines: upstream's tests, the lecture, the seeds, the API details."""
from __future__ import annotations

import gc
import math

import numpy as np
import pytest

from more_ops import more_ops


def close(got: float, want: float, rel: float = 1e-12) -> bool:
    # PyTorch's numbers agree with a double-precision engine far below 1e-12 relative
    return abs(got - want) <= rel * max(1.0, abs(want))


# ---- upstream's test_engine.py, with PyTorch's results hard-coded -------------------------------

def test_sanity_check(engine):
    Value = engine.Value
    x = Value(-4.0)
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    y = h + q + q * x
    y.backward()
    assert close(y.data, -20.0)
    assert close(x.grad, 46.0)


def test_more_ops(engine):
    a, b, g = more_ops(engine.Value)
    g.backward()
    assert close(g.data, 24.70408163265306)
    assert close(a.grad, 138.83381924198252)
    assert close(b.grad, 645.5772594752186)


def test_seed_quickstart_prints(engine):
    # the README / seed snippet prints these four-digit figures
    a, b, g = more_ops(engine.Value)
    assert f"{g.data:.4f}" == "24.7041"
    g.backward()
    assert f"{a.grad:.4f}" == "138.8338"
    assert f"{b.grad:.4f}" == "645.5773"


# ---- the lecture ----------------------------------------------------------------------------------

def tanh_neuron(Value):
    x1, x2 = Value(2.0, label="x1"), Value(0.0, label="x2")
    w1, w2 = Value(-3.0, label="w1"), Value(1.0, label="w2")
    b = Value(6.8813735870195432, label="b")
    x1w1 = x1 * w1
    x2w2 = x2 * w2
    x1w1x2w2 = x1w1 + x2w2
    n = x1w1x2w2 + b
    return (x1, x2, w1, w2, b), (x1w1, x2w2, x1w1x2w2, n)


def check_neuron_grads(x1, x2, w1, w2):
    assert close(x1.grad, -1.5)
    assert close(w1.grad, 1.0)
    assert close(x2.grad, 0.5)
    assert w2.grad == 0.0


def test_lecture_tanh_neuron(engine):
    (x1, x2, w1, w2, b), (_, _, _, n) = tanh_neuron(engine.Value)
    o = n.tanh()
    o.label = "o"
    o.backward()
    assert close(o.data, 0.7071067811865476)
    check_neuron_grads(x1, x2, w1, w2)
    assert close(b.grad, 0.5)
    assert o.label == "o" and x1.label == "x1"


def test_lecture_tanh_from_exp(engine):
    # the lecture's second version: tanh spelled out with exp, -, + and /
    (x1, x2, w1, w2, _), (_, _, _, n) = tanh_neuron(engine.Value)
    e = (2 * n).exp()
    o = (e - 1) / (e + 1)
    o.backward()
    assert close(o.data, 0.7071067811865476)
    check_neuron_grads(x1, x2, w1, w2)


def test_lecture_manual_backward(engine):
    # the lecture calls each node's _backward by hand, from the output down
    (x1, x2, w1, w2, b), (x1w1, x2w2, x1w1x2w2, n) = tanh_neuron(engine.Value)
    o = n.tanh()
    o.grad = 1.0
    o._backward()
    assert close(n.grad, 0.5) and x1.grad == 0.0  # one step: only o's children moved
    n._backward()
    assert close(x1w1x2w2.grad, 0.5) and close(b.grad, 0.5)
    x1w1x2w2._backward()
    assert close(x1w1.grad, 0.5) and close(x2w2.grad, 0.5)
    x1w1._backward()
    x2w2._backward()
    check_neuron_grads(x1, x2, w1, w2)
    x1._backward()  # a leaf's _backward does nothing
    assert close(x1.grad, -1.5)


def test_lecture_manual_backward_each_op(engine):
    # the local rule of every built-in op, applied by hand with an upstream gradient of 2
    Value = engine.Value
    cases = [
        (lambda a: a + 3.0, 1.0),
        (lambda a: a * 3.0, 3.0),
        (lambda a: a**2, 2 * 1.5),
        (lambda a: a.relu(), 1.0),
        (lambda a: a.tanh(), 1 - math.tanh(1.5) ** 2),
        (lambda a: a.exp(), math.exp(1.5)),
        (lambda a: a.log(), 1 / 1.5),
        (lambda a: a.sigmoid(), (1 / (1 + math.exp(-1.5))) * (1 - 1 / (1 + math.exp(-1.5)))),
    ]
    for f, local in cases:
        a = Value(1.5)
        out = f(a)
        out.grad = 2.0
        out._backward()
        assert close(a.grad, 2.0 * local, 1e-14), (out._op, a.grad)
        out._backward()  # a second call adds again, as upstream's closures do
        assert close(a.grad, 4.0 * local, 1e-14), (out._op, a.grad)


def test_lecture_shared_use_bug(engine):
    # the lecture's "bug" section: a node used twice must accumulate, not overwrite
    Value = engine.Value
    a = Value(3.0)
    b = a + a
    b.backward()
    assert a.grad == 2.0
    assert len(b._prev) == 1 and a in b._prev
    a, b = Value(-2.0), Value(3.0)
    d = a * b
    e = a + b
    f = d * e
    f.backward()
    assert (a.grad, b.grad) == (-3.0, -8.0)


def test_square_of_self(engine):
    a = engine.Value(3.0)
    b = a * a
    b.backward()
    assert a.grad == 6.0
    assert b._prev == {a}


def test_backward_twice_accumulates(engine):
    # upstream: the root's grad is reset to 1, every other node adds its share again,
    # so intermediates double and what is below them grows faster
    Value = engine.Value
    x = Value(3.0)
    y = x * x
    z = y * 2
    z.backward()
    assert (z.grad, y.grad, x.grad) == (1.0, 2.0, 12.0)
    z.backward()
    assert (z.grad, y.grad, x.grad) == (1.0, 4.0, 36.0)


def test_backward_from_an_intermediate(engine):
    Value = engine.Value
    a, b = Value(2.0), Value(5.0)
    c = a * b
    d = c + a
    c.backward()
    assert (a.grad, b.grad, c.grad, d.grad) == (5.0, 2.0, 1.0, 0.0)
    d.backward()
    # c's grad was 1 and gets 1 more; a gets d's direct 1 plus c.grad(2) * b
    assert (c.grad, d.grad) == (2.0, 1.0)
    assert (a.grad, b.grad) == (5.0 + 1.0 + 2.0 * 5.0, 2.0 + 2.0 * 2.0)


def test_seed_patterns(engine):
    # seeds 001/003/004: sum() from 0 or from Value(0.0), += updates of .data, d = c + a
    Value = engine.Value
    a, b = Value(2.0), Value(3.0)
    c = a * b
    d = c + a
    d.backward()
    assert (a.grad, b.grad) == (4.0, 2.0)

    ws = [Value(float(i)) for i in range(1, 5)]
    loss = sum((w - 1.0) ** 2 for w in ws)  # starts from the int 0
    assert isinstance(loss, Value) and loss.data == 0 + 1 + 4 + 9
    loss2 = sum(((w - 1.0) ** 2 for w in ws), Value(0.0))
    assert loss2.data == loss.data
    for w in ws:
        w.grad = 0.0
    loss.backward()
    assert [w.grad for w in ws] == [0.0, 2.0, 4.0, 6.0]
    for w in ws:
        w.data += -0.1 * w.grad
    assert [w.data for w in ws] == [1.0, 2.0 - 0.2, 3.0 - 0.4, 4.0 - 0.6000000000000001]


# ---- API details ----------------------------------------------------------------------------------

def test_repr_and_types(engine):
    Value = engine.Value
    v = Value(2)
    assert type(v.data) is float and type(v.grad) is float
    assert repr(v) == "Value(data=2.0, grad=0.0)"
    w = v * -1.5
    w.backward()
    assert repr(w) == "Value(data=-3.0, grad=1.0)"
    assert repr(v) == "Value(data=2.0, grad=-1.5)"
    assert repr(Value(float("nan"))) == "Value(data=nan, grad=0.0)"
    assert repr(Value(0.1 + 0.2)) == "Value(data=0.30000000000000004, grad=0.0)"
    assert str(v) == repr(v)


def test_attributes_writable(engine):
    Value = engine.Value
    v = Value(1.0, label="a")
    v.data = 3
    v.grad = 2
    v.label = "b"
    assert (v.data, v.grad, v.label) == (3.0, 2.0, "b")
    assert type(v.data) is float and type(v.grad) is float
    assert Value(1.0).label == ""


def test_op_strings(engine):
    Value = engine.Value
    a, b = Value(2.0), Value(3.0)
    assert a._op == ""
    assert (a + b)._op == "+"
    assert (a + 1)._op == "+" and (1 + a)._op == "+"
    assert (a * b)._op == "*" and (a * 2)._op == "*" and (2 * a)._op == "*"
    assert (-a)._op == "*"
    assert (a - b)._op == "+" and (a - 1)._op == "+" and (1 - a)._op == "+"
    assert (a**2)._op == "**2"
    assert (a**2.0)._op == "**2.0"
    assert (a**-1)._op == "**-1"
    assert (a**0.5)._op == "**0.5"
    assert (a**b)._op == "**" and (2**a)._op == "**"
    q = a / b
    assert q._op == "*"
    assert sorted(p._op for p in q._prev) == ["", "**-1"]
    assert (a / 2)._op == "*"
    assert (2 / a)._op == "*"
    assert a.relu()._op == "ReLU"
    assert a.tanh()._op == "tanh"
    assert a.exp()._op == "exp"
    assert a.log()._op == "log"
    assert a.sigmoid()._op == "sigmoid"


def test_prev_is_a_set_of_the_operands(engine):
    Value = engine.Value
    a, b = Value(2.0), Value(3.0)
    c = a * b
    assert isinstance(c._prev, set)
    assert c._prev == {a, b}
    assert any(p is a for p in c._prev) and any(p is b for p in c._prev)
    assert a._prev == set()
    r = a.relu()
    assert r._prev == {a}


def test_prev_shows_constants_as_leaves(engine):
    Value = engine.Value
    a = Value(2.0)
    for out, const in [(a * 3.0, 3.0), (a + 4, 4.0), (5 + a, 5.0), (a * -1, -1.0)]:
        kids = out._prev
        assert len(kids) == 2 and a in kids
        (k,) = [p for p in kids if p is not a]
        assert isinstance(k, Value) and k.data == const and k._op == "" and k._prev == set()


def test_prev_identity_is_stable(engine):
    # draw_dot keys nodes by id(): the same node must come back as the same handle
    Value = engine.Value
    a, b = Value(2.0), Value(3.0)
    c = a * b + 1.0  # the a*b node has no handle of its own
    k1 = c._prev
    k2 = c._prev
    assert {id(p) for p in k1} == {id(p) for p in k2}
    (m,) = [p for p in k1 if p._op == "*"]
    (m2,) = [p for p in c._prev if p._op == "*"]
    assert m2 is m
    assert m.data == 6.0 and m._prev == {a, b}
    (konst,) = [p for p in k1 if p._op == ""]
    (konst2,) = [p for p in c._prev if p._op == ""]
    assert konst2 is konst
    del k1, k2, m, m2, konst, konst2
    gc.collect()
    # recreated after all its handles died: a fresh handle onto the same node
    (m3,) = [p for p in c._prev if p._op == "*"]
    assert m3.data == 6.0 and m3._prev == {a, b}
    c.backward()
    assert m3.grad == 1.0 and (a.grad, b.grad) == (3.0, 2.0)
    assert c._prev >= {m3}


def test_prev_identity_after_the_leaf_handle_dies(engine):
    # a node reached through two parents is one handle, even after the user's own handle died
    Value = engine.Value
    a = Value(2.0)
    sq = a * a
    d = sq + a
    del a, sq
    gc.collect()
    (sq,) = [p for p in d._prev if p._op == "*"]
    (a1,) = [p for p in d._prev if p._op == ""]
    (a2,) = sq._prev
    assert a2 is a1 and a1.data == 2.0
    d.backward()
    assert a1.grad == 2.0 * 2.0 + 1.0 and sq.grad == 1.0
    # writing through a recreated handle writes the node the graph uses
    a1.data = 3.0
    a1.grad = 0.0
    sq.grad = 0.0
    d.backward()
    assert a1.grad == 2.0 * 3.0 + 1.0


def trace(root):
    # draw_dot's trace(): nodes and edges keyed by the handles themselves
    nodes, edges, stack = set(), set(), [root]
    while stack:
        v = stack.pop()
        if v not in nodes:
            nodes.add(v)
            for child in v._prev:
                edges.add((child, v))
                stack.append(child)
    return nodes, edges


def test_trace_like_draw_dot(engine):
    Value = engine.Value
    a, b, g = more_ops(Value)
    g.backward()
    nodes, edges = trace(g)
    nodes2, edges2 = trace(g)
    assert {id(n) for n in nodes} == {id(n) for n in nodes2}  # same handles while they live
    assert {(id(x), id(y)) for x, y in edges} == {(id(x), id(y)) for x, y in edges2}
    assert a in nodes and b in nodes and g in nodes
    # every edge's child is among its parent's _prev, and every non-leaf has an op
    for child, parent in edges:
        assert child in parent._prev
    assert all(n._op != "" for n in nodes if n._prev)


def test_trace_same_graph_on_both_engines(engines):
    # the drawn graph (ops, data and grads of every node, edge count) is the same on both
    shapes = []
    for mod in engines:
        _, _, g = more_ops(mod.Value)
        g.backward()
        nodes, edges = trace(g)
        shapes.append((sorted((n._op, n.data, n.grad) for n in nodes), len(edges)))
    assert shapes[0] == shapes[1]


def test_hash_and_eq_by_identity(engine):
    Value = engine.Value
    a, b = Value(1.0), Value(1.0)
    assert a is not b and a != b and not (a == b)
    assert a == a
    assert len({a, b}) == 2
    h = hash(a)
    a.data = 5.0
    a.grad = 3.0
    assert hash(a) == h
    d = {a: "a", b: "b"}
    assert d[a] == "a" and d[b] == "b"
    assert not (Value(1.0) == 1.0)


def test_no_grad(engine):
    Value = engine.Value
    a, b = Value(2.0), Value(3.0)
    assert engine.is_grad_enabled()
    with engine.no_grad():
        assert not engine.is_grad_enabled()
        c = a * b + 1.0
        t = (a**b).tanh()
        u = Value(9.0, _children=(a, b), _op="custom")
        with engine.no_grad():
            assert not engine.is_grad_enabled()
        assert not engine.is_grad_enabled()  # nesting restores the outer state
    assert engine.is_grad_enabled()
    assert c.data == 7.0 and t.data == math.tanh(8.0)
    assert c._prev == set() and c._op == "" and t._prev == set()
    assert u._prev == set()
    c.backward()
    assert c.grad == 1.0 and a.grad == 0.0 and b.grad == 0.0
    # a no_grad result is a leaf that later graphs can use
    y = c * a
    y.backward()
    assert c.grad == 1.0 + 2.0 and a.grad == 7.0


def test_no_grad_restored_after_exception(engine):
    with pytest.raises(ZeroDivisionError):
        with engine.no_grad():
            engine.Value(1.0) / 0
    assert engine.is_grad_enabled()
    a = engine.Value(2.0)
    assert (a * a)._prev == {a}


@pytest.mark.parametrize("T", [np.float64, np.float32, np.int64])
def test_numpy_scalars(engine, T):
    Value = engine.Value
    assert Value(T(3)).data == 3.0 and type(Value(T(3)).data) is float
    x = Value(2.0)
    results = {
        "x+n": (x + T(3), 5.0), "n+x": (T(3) + x, 5.0),
        "x*n": (x * T(3), 6.0), "n*x": (T(3) * x, 6.0),
        "x-n": (x - T(3), -1.0), "n-x": (T(3) - x, 1.0),
        "x/n": (x / T(4), 0.5), "n/x": (T(3) / x, 1.5),
        "x**n": (x ** T(3), 8.0), "n**x": (T(3) ** x, 9.0),
    }
    for name, (r, want) in results.items():
        assert isinstance(r, Value), (name, type(r))
        assert r.data == want, name
    total = sum(r for r, _ in results.values())
    total.backward()
    # d/dx of the ten results above, summed
    want = 1 + 1 + 3 + 3 + 1 - 1 + 0.25 - 3 / 4 + 3 * 4 + 9 * math.log(3)
    assert close(x.grad, want)
    v = Value(1.0)
    v.data = T(7)
    v.grad = T(2)
    assert (v.data, v.grad) == (7.0, 2.0) and type(v.data) is float and type(v.grad) is float
    f32 = Value(np.float32(0.1))
    assert f32.data == float(np.float32(0.1))


def test_bool_and_int_operands(engine):
    Value = engine.Value
    x = Value(True)
    assert x.data == 1.0
    y = x * 3 + False - True
    assert y.data == 2.0
    z = Value(2) ** 10
    assert z.data == 1024.0 and type(z.data) is float
