"""optim.SGD and optim.Adam against hand-computed PyTorch updates; argument checks."""
from __future__ import annotations

import math
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from micrograd import MLP, Value, optim
from micrograd.engine import _impl


def _params(*pairs):
    ps = []
    for data, grad in pairs:
        p = Value(data)
        p.grad = grad
        ps.append(p)
    return ps


def test_sgd_plain_is_upstreams_update():
    ps = _params((1.0, 0.5), (-2.0, -0.25), (0.3, 0.0))
    opt = optim.SGD(ps, lr=0.1)
    opt.step()
    assert [p.data for p in ps] == [1.0 - 0.1 * 0.5, -2.0 - 0.1 * -0.25, 0.3 - 0.1 * 0.0]


def test_sgd_momentum_and_weight_decay():
    (p,) = _params((1.0, 0.5))
    opt = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)
    opt.step()
    g1 = 0.5 + 0.01 * 1.0
    buf = g1  # PyTorch: the first step's buffer is the gradient itself
    x1 = 1.0 - 0.1 * buf
    assert p.data == x1
    p.grad = -0.2
    opt.step()
    g2 = -0.2 + 0.01 * x1
    buf = 0.9 * buf + g2
    assert p.data == x1 - 0.1 * buf


def test_sgd_lr_can_change_between_steps():
    (p,) = _params((1.0, 1.0))
    opt = optim.SGD([p], lr=0.5)
    opt.step()
    opt.lr = 0.25
    opt.step()
    assert p.data == 1.0 - 0.5 - 0.25


def test_adam_two_steps():
    (p,) = _params((0.5, 0.2))
    b1, b2, eps, lr, wd = 0.9, 0.999, 1e-8, 0.01, 0.1
    opt = optim.Adam([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    x, m, v = 0.5, 0.0, 0.0
    for t, grad in ((1, 0.2), (2, -0.7)):
        p.grad = grad
        opt.step()
        g = grad + wd * x
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        x = x - lr * m_hat / (math.sqrt(v_hat) + eps)
        assert p.data == pytest.approx(x, rel=1e-15, abs=1e-15)
    assert opt.t == 2
    # the first Adam step moves every parameter by about lr, whatever the gradient's size
    (q,) = _params((0.0, 1e-3))
    optim.Adam([q], lr=0.01).step()
    assert q.data == pytest.approx(-0.01, rel=1e-4)


def test_zero_grad():
    model = MLP(2, [3, 1])
    model([1.0, 2.0]).backward()
    opt = optim.Adam(model.parameters())
    opt.zero_grad()
    assert all(p.grad == 0.0 for p in model.parameters())


def test_steps_are_one_kernel_call(monkeypatch):
    ps = _params((1.0, 1.0), (2.0, 2.0))
    calls = []
    for name in ("_sgd_step", "_adam_step", "_zero_grad"):
        real = getattr(_impl, name)
        monkeypatch.setattr(_impl, name, lambda *a, _r=real, _n=name: (calls.append(_n), _r(*a))[1])
    sgd, adam = optim.SGD(ps, lr=0.1), optim.Adam(ps)
    sgd.step()
    adam.step()
    sgd.zero_grad()
    assert calls == ["_sgd_step", "_adam_step", "_zero_grad"]


def test_training_reduces_loss():
    import random
    random.seed(0)
    model = MLP(1, [8, 1])
    for opt in (optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                optim.Adam(model.parameters(), lr=0.02)):
        losses = []
        for _ in range(30):
            loss = sum((model([x]) - 2 * x) ** 2 for x in (-1.0, -0.5, 0.5, 1.0))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.data)
        assert losses[-1] < losses[0]


@pytest.mark.parametrize("make, err, match", [
    (lambda ps: optim.SGD(ps, lr=-0.1), ValueError, "learning rate"),
    (lambda ps: optim.SGD(ps, lr=0.1, momentum=-1), ValueError, "momentum"),
    (lambda ps: optim.SGD(ps, lr=0.1, weight_decay=-1), ValueError, "weight_decay"),
    (lambda ps: optim.SGD(ps, lr="0.1"), TypeError, "learning rate"),
    (lambda ps: optim.SGD(ps, lr=True), TypeError, "learning rate"),
    (lambda ps: optim.SGD(ps, lr=float("inf")), ValueError, "finite"),
    (lambda ps: optim.SGD(ps, lr=float("nan")), ValueError, "finite"),
    (lambda ps: optim.SGD(ps), TypeError, "lr"),
    (lambda ps: optim.Adam(ps, betas=(1.0, 0.999)), ValueError, "beta"),
    (lambda ps: optim.Adam(ps, betas=(0.9, -0.1)), ValueError, "beta"),
    (lambda ps: optim.Adam(ps, betas=0.9), ValueError, "betas"),
    (lambda ps: optim.Adam(ps, eps=-1e-8), ValueError, "epsilon"),
    (lambda ps: optim.Adam([]), ValueError, "empty"),
    (lambda ps: optim.Adam(ps + ps), ValueError, "more than once"),
    (lambda ps: optim.SGD([1.0, 2.0], lr=0.1), TypeError, "Values"),
    (lambda ps: optim.SGD(ps[0], lr=0.1), TypeError, "iterable"),
])
def test_bad_arguments(make, err, match):
    with pytest.raises(err, match=match):
        make(_params((1.0, 0.0), (2.0, 0.0)))


@pytest.mark.parametrize("lr, err", [(-1.0, ValueError), (float("nan"), ValueError),
                                     (True, TypeError), ("0.1", TypeError)])
def test_bad_lr_set_later(lr, err):
    opt = optim.SGD(_params((1.0, 0.0)), lr=0.1)
    opt.lr = lr
    with pytest.raises(err, match="learning rate"):
        opt.step()


def test_reprs():
    ps = _params((1.0, 0.0))
    assert repr(optim.SGD(ps, lr=0.1)).startswith("SGD(1 params, lr=0.1")
    assert repr(optim.Adam(ps)).startswith("Adam(1 params, lr=0.001")


finite_grads = st.one_of(st.just(0.0), st.just(-0.0),
                         st.floats(min_value=-1e3, max_value=1e3, allow_nan=False))


@st.composite
def adam_runs(draw):
    """Parameters made in blocks (side by side in the arena, as a layer's rows are), listed in
    order, shuffled or with one repeated; grads for a few steps; Adam's settings."""
    sizes = draw(st.lists(st.integers(0, 9), min_size=1, max_size=5))
    order = draw(st.sampled_from(["made", "shuffled", "reversed"]))
    betas = (draw(st.sampled_from([0.0, 0.5, 0.85, 0.9])), draw(st.sampled_from([0.0, 0.99, 0.999])))
    eps = draw(st.sampled_from([1e-8, 1e-3, 1.0, 0.0]))
    wd = draw(st.sampled_from([0.0, 0.0, 0.01]))
    n = sum(sizes)
    steps = [(draw(st.floats(0.0, 0.1)), draw(st.lists(finite_grads, min_size=n, max_size=n)))
             for _ in range(draw(st.integers(1, 3)))]
    perm = draw(st.permutations(range(n))) if order == "shuffled" else (
        list(range(n))[::-1] if order == "reversed" else list(range(n)))
    data = draw(st.lists(st.floats(-2.0, 2.0), min_size=n, max_size=n))
    return sizes, list(perm), betas, eps, wd, steps, data


@settings(max_examples=150, deadline=None)
@given(spec=adam_runs())
def test_adam_steps_agree_across_engines_bit_for_bit(engines, spec):
    """The compiled Adam (run by run, two parameters at once) and the pure engine's loop."""
    sizes, perm, betas, eps, wd, steps, data = spec

    def run(E):
        made = []
        for size in sizes:
            made += [E.Value(0.0) for _ in range(size)]  # one block of consecutive nodes
        for p, x in zip(made, data):
            p.data = x
        params = [made[i] for i in perm]
        m, v = array("d", bytes(8 * len(params))), array("d", bytes(8 * len(params)))
        out = []
        for t, (lr, grads) in enumerate(steps, start=1):
            for p, g in zip(params, grads):
                p.grad = g
            E._adam_step(params, lr, betas[0], betas[1], eps, wd, m, v, t)
            out.append([p.data.hex() for p in params] + [x.hex() for x in m] + [x.hex() for x in v])
        return out

    compiled, python = engines
    assert run(compiled) == run(python)


def test_adam_with_eps_zero_divides_as_ieee_on_both_engines(engines):
    """eps=0 is legal (as in PyTorch); a zero grad then makes 0 / 0: NaN on both engines, not a
    ZeroDivisionError on the pure one alone."""
    seen = []
    for E in engines:
        ps = [E.Value(1.0), E.Value(2.0)]
        ps[0].grad, ps[1].grad = 0.0, 0.5
        m, v = array("d", bytes(16)), array("d", bytes(16))
        E._adam_step(ps, 0.1, 0.9, 0.999, 0.0, 0.0, m, v, 1)
        assert math.isnan(ps[0].data)
        assert math.isfinite(ps[1].data) and ps[1].data < 2.0
        seen.append(ps[1].data)
    assert seen[0] == seen[1]
