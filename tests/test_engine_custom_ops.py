"""User-defined ops and the graph under them: upstream's semantics (custom _backward, constants, growth mid-backward)."""
from __future__ import annotations

import fractions
import gc
import math

import numpy as np
import pytest

from test_engine_upstream import close

# ---- user-defined ops -------------------------------------------------------------------------------

def mul3(Value, a, b, c):
    out = Value(a.data * b.data * c.data, _children=(a, b, c), _op="mul3")

    def _backward():
        a.grad += b.data * c.data * out.grad
        b.grad += a.data * c.data * out.grad
        c.grad += a.data * b.data * out.grad
    out._backward = _backward
    return out


def square(Value, a):
    out = Value(a.data * a.data, _children=(a,), _op="sq")

    def _backward():
        a.grad += 2.0 * a.data * out.grad
    out._backward = _backward
    return out


def test_user_defined_op(engine):
    Value = engine.Value
    a, b, c = Value(2.0), Value(3.0), Value(5.0)
    m = mul3(Value, a, b, c)
    assert m._op == "mul3" and m._prev == {a, b, c} and m.data == 30.0
    y = m * 2 + a
    y.backward()
    assert (a.grad, b.grad, c.grad, m.grad) == (31.0, 20.0, 12.0, 2.0)


def test_user_defined_op_runs_in_topological_order(engine):
    # the custom node sits between two built-in ones: its _backward must run after y's
    # contribution to v arrived and before u passes its grad on to a and b
    Value = engine.Value
    a, b = Value(2.0), Value(3.0)
    u = a * b
    v = square(Value, u)
    w = (v + u).tanh() * 1e-2
    w.backward()
    dw_dt = 1e-2 * (1 - math.tanh(36.0 + 6.0) ** 2)
    assert close(u.grad, dw_dt * (2 * 6.0 + 1))
    assert close(a.grad, u.grad * 3.0) and close(b.grad, u.grad * 2.0)


def test_user_defined_op_without_backward(engine):
    Value = engine.Value
    a = Value(2.0)
    out = Value(4.0, _children=(a,), _op="opaque")
    y = out * 3
    y.backward()
    assert out.grad == 3.0 and a.grad == 0.0
    assert out._prev == {a} and out._op == "opaque"
    out._backward()  # the default is a no-op callable


def test_user_defined_op_manual_backward(engine):
    Value = engine.Value
    a, b, c = Value(1.0), Value(2.0), Value(3.0)
    m = mul3(Value, a, b, c)
    m.grad = 10.0
    m._backward()
    assert (a.grad, b.grad, c.grad) == (60.0, 30.0, 20.0)


def test_user_defined_op_calling_backward_inside(engine):
    # a custom _backward that runs another backward() (re-entrancy): the outer sweep must
    # not be disturbed by the inner one, whatever buffers the engine reuses
    Value = engine.Value
    p, q = Value(4.0), Value(5.0)
    inner = p * q + p

    a = Value(3.0)
    out = Value(a.data * 2.0, _children=(a,), _op="reenter")

    def _backward():
        inner.backward()
        a.grad += 2.0 * out.grad
    out._backward = _backward
    b = Value(7.0)
    y = (out * b + a) * 1.0
    y.backward()
    assert (a.grad, b.grad, out.grad) == (2.0 * 7.0 + 1.0, 6.0, 7.0)
    assert (p.grad, q.grad) == (6.0, 4.0)


def test_user_defined_op_on_intermediates_and_shared(engine):
    Value = engine.Value
    x = Value(0.5)
    h = x.tanh()
    s = square(Value, h)
    m = mul3(Value, h, s, h)  # h twice among the children: a set of two in _prev
    assert m._prev == {h, s}
    m.backward()
    t = math.tanh(0.5)
    # m = h * h^2 * h = h^4; dm/dh = 4 h^3
    assert close(h.grad, 4 * t**3, 1e-14)
    assert close(x.grad, 4 * t**3 * (1 - t * t), 1e-14)


@pytest.mark.parametrize("k", [2, 2.0, -1, 0.5, 1e20, 10**20, True, False, np.int64(2),
                               np.float64(2.0), np.float32(0.1), fractions.Fraction(1, 2)],
                         ids=repr)
def test_pow_op_string_is_upstreams_format(engine, k):
    # upstream writes f'**{other}': the exponent as the user gave it, whatever its type
    out = engine.Value(1.0) ** k
    assert out._op == f"**{k}"


def test_constant_leaves_get_their_grad(engine):
    # upstream wraps a number operand in a Value, which backward() fills like any child;
    # draw_dot shows that grad on the constant's node
    a = engine.Value(3.0)
    y = a * 2.0
    z = y + 5.0
    z.backward()
    (two,) = [p for p in y._prev if p is not a]
    (five,) = [p for p in z._prev if p is not y]
    assert (two.data, two.grad) == (2.0, 3.0)
    assert (five.data, five.grad) == (5.0, 1.0)


def test_op_and_label_are_writable_and_stay_with_the_node(engine):
    # upstream's _op and label are plain attributes; draw_dot reads them off _prev's handles
    Value = engine.Value
    a = Value(2.0)
    c = a * 2.0
    c._op = "times"
    c.label = "c"
    d = c + 1.0
    del c
    gc.collect()
    (c2,) = [k for k in d._prev if k._prev]
    assert (c2._op, c2.label) == ("times", "c")
    d.backward()
    assert a.grad == 2.0  # renaming the op does not change its rule


def test_arena_grows_during_backward(engine):
    # a user-defined op that builds and backpropagates a big graph inside the outer sweep:
    # the outer sweep's order must survive the arena growing (and being reused) under it
    Value = engine.Value
    a, b = Value(0.2), Value(0.5)
    out = Value(0.04, _children=(a,), _op="sq")
    inner = []

    def _backward():
        x = Value(1.0)
        for _ in range(100_000):
            x = x * 1.0000001 + 0.1
        x.backward()
        inner.append(x)
        a.grad += 2 * a.data * out.grad
    out._backward = _backward
    y = (out * b + a * b).tanh() * 1e-3
    y.backward()
    t = math.tanh(0.04 * 0.5 + 0.2 * 0.5)
    assert close(a.grad, 1e-3 * (1 - t * t) * (0.5 * 2 * 0.2 + 0.5), 1e-14)
    assert close(b.grad, 1e-3 * (1 - t * t) * (0.04 + 0.2), 1e-14)
    assert inner[0].data > 1.0
    del inner[:]


def test_handles_dropped_during_backward(engine):
    # a user-defined op's _backward drops the last handle on a child and collects: the node
    # is still in the graph being swept, so its grad must still flow down
    Value = engine.Value
    a = Value(2.0)
    x = Value(1.0)
    for _ in range(1000):
        x = x * 1.0 + 0.5
    holder = {"big": x * a}
    del x
    out = Value(holder["big"].data, _children=(holder["big"],), _op="id")

    def _backward():
        y0 = holder.pop("big")
        y0.grad += out.grad
        del y0
        gc.collect()
    out._backward = _backward
    r = out * 2.0
    r.backward()
    assert a.grad == 2.0 * (1.0 + 0.5 * 1000)


def test_constant_leaves_accumulate_like_upstream(engine):
    # a constant's grad is accumulated by each backward() like any other child's, from the
    # data and grads as they were during that sweep (not recomputed from today's values)
    Value = engine.Value
    a = Value(2.0)
    y = a + 3.0
    z = a * 3.0
    (three_y,) = [p for p in y._prev if p is not a]
    assert three_y.grad == 0.0 and math.copysign(1.0, three_y.grad) == 1.0
    del three_y
    y.backward()
    y.backward()
    z.backward()
    a.data = 10.0
    z.backward()
    (three_y,) = [p for p in y._prev if p is not a]
    (three_z,) = [p for p in z._prev if p is not a]
    assert three_y.grad == 2.0
    assert three_z.grad == 2.0 + 10.0
    z.grad = 100.0  # writing the parent's grad does not rewrite the children's
    (three_z,) = [p for p in z._prev if p is not a]
    assert three_z.grad == 12.0
