"""losses: values against their formulas, gradients against formulas and finite differences."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from micrograd import Value, losses

small = st.floats(min_value=-5.0, max_value=5.0, allow_nan=False, allow_infinity=False)


def _finite_diff(f, xs, h=1e-6):
    grads = []
    for i in range(len(xs)):
        up = list(xs)
        down = list(xs)
        up[i] += h
        down[i] -= h
        grads.append((f(up) - f(down)) / (2 * h))
    return grads


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(small, small), min_size=1, max_size=8))
def test_mse(pairs):
    ps = [Value(p) for p, _ in pairs]
    ts = [t for _, t in pairs]
    loss = losses.mse(ps, ts)
    n = len(pairs)
    assert loss.data == pytest.approx(sum((p - t) ** 2 for p, t in pairs) / n, rel=1e-12, abs=1e-12)
    loss.backward()
    for v, (p, t) in zip(ps, pairs):
        assert v.grad == pytest.approx(2 * (p - t) / n, rel=1e-12, abs=1e-12)


def test_mse_forms():
    target = Value(1.0)
    pred = Value(3.0)
    loss = losses.mse(pred, target)  # single values, Value targets get gradients too
    loss.backward()
    assert (loss.data, pred.grad, target.grad) == (4.0, 4.0, -4.0)
    assert losses.mse([Value(1.0), 2], np.array([0.0, 0.0])).data == 2.5


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(small, st.sampled_from([-1, 1])), min_size=1, max_size=8))
def test_hinge(pairs):
    ss = [Value(s) for s, _ in pairs]
    ys = [y for _, y in pairs]
    loss = losses.hinge(ss, ys)
    n = len(pairs)
    assert loss.data == pytest.approx(sum(max(0.0, 1 - y * s) for s, y in pairs) / n, abs=1e-12)
    loss.backward()
    for v, (s, y) in zip(ss, pairs):
        assert v.grad == pytest.approx(-y / n if 1 - y * s > 0 else 0.0)


def test_hinge_is_upstreams_expression():
    ss = [Value(v) for v in (0.3, -1.7, 2.2, 0.01)]
    ys = [1, -1, -1, 1]
    expected = sum((1 + -yi * si).relu() for yi, si in zip(ys, ss)) * (1.0 / len(ss))
    assert losses.hinge(ss, np.array(ys)).data == expected.data
    assert losses.hinge(ss, [1.0, -1.0, -1.0, 1.0]).data == expected.data


@settings(max_examples=60, deadline=None)
@given(st.lists(small, min_size=1, max_size=6), st.data())
def test_cross_entropy(logits, data):
    t = data.draw(st.integers(0, len(logits) - 1))
    ls = [Value(v) for v in logits]
    loss = losses.cross_entropy(ls, t)
    m = max(logits)
    lse = m + math.log(sum(math.exp(v - m) for v in logits))
    assert loss.data == pytest.approx(lse - logits[t], rel=1e-12, abs=1e-12)
    loss.backward()
    z = sum(math.exp(v - m) for v in logits)
    for i, v in enumerate(ls):
        soft = math.exp(logits[i] - m) / z
        assert v.grad == pytest.approx(soft - (i == t), rel=1e-9, abs=1e-12)
    fd = _finite_diff(lambda xs: losses.cross_entropy(xs, t).data, list(logits))
    assert [v.grad for v in ls] == pytest.approx(fd, abs=1e-6)


def test_cross_entropy_large_logits():
    ls = [Value(1000.0), Value(999.0), Value(-1000.0)]
    loss = losses.cross_entropy(ls, 1)
    assert loss.data == pytest.approx(1.0 + math.log1p(math.exp(-1.0)), rel=1e-12)
    loss.backward()
    assert sum(v.grad for v in ls) == pytest.approx(0.0, abs=1e-12)
    assert ls[2].grad == 0.0 and ls[1].grad < 0
    assert losses.cross_entropy([1e6, 0.0], 0).data == 0.0


def test_l2():
    ps = [Value(v) for v in (0.5, -2.0, 3.0)]
    loss = losses.l2(ps)
    assert loss.data == sum(p.data * p.data for p in ps)
    assert loss.data == sum(p * p for p in ps).data  # upstream's expression, same bits
    loss.backward()
    assert [p.grad for p in ps] == [1.0, -4.0, 6.0]
    assert losses.l2([]).data == 0.0


def test_finite_differences_mse_and_hinge():
    xs = [0.3, -0.8, 1.7]
    ts = [0.0, 1.0, -1.0]
    for loss_fn, lab in ((losses.mse, ts), (losses.hinge, [1, -1, 1])):
        vs = [Value(v) for v in xs]
        loss_fn(vs, lab).backward()
        fd = _finite_diff(lambda z: loss_fn(z, lab).data, xs)
        assert [v.grad for v in vs] == pytest.approx(fd, abs=1e-6)


@pytest.mark.parametrize("call, err, match", [
    (lambda: losses.mse([Value(1.0)], [1.0, 2.0]), ValueError, "differ in length"),
    (lambda: losses.mse([], []), ValueError, "empty"),
    (lambda: losses.mse(["a"], [1.0]), TypeError, "predictions"),
    (lambda: losses.mse([Value(1.0)], ["a"]), TypeError, "targets"),
    (lambda: losses.mse([Value(1.0)], [True]), TypeError, "targets"),
    (lambda: losses.mse(object(), [1.0]), TypeError, "sequence"),
    (lambda: losses.hinge([Value(1.0)], [0]), ValueError, "-1 or \\+1"),
    (lambda: losses.hinge([Value(1.0)], [2]), ValueError, "-1 or \\+1"),
    (lambda: losses.hinge([Value(1.0)], [Value(1.0)]), ValueError, "-1 or \\+1"),
    (lambda: losses.hinge([Value(1.0), Value(2.0)], [1]), ValueError, "differ in length"),
    (lambda: losses.cross_entropy([Value(1.0)], 1), IndexError, "out of range"),
    (lambda: losses.cross_entropy([Value(1.0)], -1), IndexError, "out of range"),
    (lambda: losses.cross_entropy([Value(1.0)], 0.5), TypeError, "target_index"),
    (lambda: losses.cross_entropy([], 0), ValueError, "empty"),
    (lambda: losses.l2([1.0]), TypeError, "Values"),
])
def test_bad_inputs(call, err, match):
    with pytest.raises(err, match=match):
        call()


class _Real(float):
    """A float subclass (as numpy.float64 is one): not the exact type the fast paths take."""


def test_numbers_of_every_kind_are_taken_alike():
    # the exact float and int skip the ABC check; a subclass or another Real goes the long way
    import fractions
    p = [Value(0.5), Value(-1.25)]
    want = losses.mse(p, [1.0, 2.0]).data
    for ts in ([1, 2], [_Real(1.0), _Real(2.0)], [fractions.Fraction(1), 2.0], (1.0, 2.0)):
        assert losses.mse(p, ts).data == want
    assert losses.mse(Value(3.0), 1.0).data == 4.0
