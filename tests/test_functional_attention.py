"""micrograd.functional.attention: the attention block of a microgpt-style script, one call."""
from __future__ import annotations

import gc
import math
import os
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import micrograd.functional as F
from micrograd import Value, no_grad

from conftest import NO_EXTENSIONS

finite = st.floats(min_value=-3.0, max_value=3.0, allow_nan=False, allow_infinity=False)


def scalar_attention(q, keys, values, n_head):
    """The block as microgpt writes it, with scalar ops only (numbers lifted to Values)."""
    lift = lambda v: v if isinstance(v, Value) else Value(v)  # noqa: E731
    q = [lift(v) for v in q]
    keys = [[lift(v) for v in k] for k in keys]
    values = [[lift(v) for v in k] for k in values]
    hd = len(q) // n_head
    out = []
    for h in range(n_head):
        lo, hi = h * hd, (h + 1) * hd
        q_h = q[lo:hi]
        k_h = [kt[lo:hi] for kt in keys]
        v_h = [vt[lo:hi] for vt in values]
        logits = [sum(q_h[j] * kt[j] for j in range(hd)) / hd ** 0.5 for kt in k_h]
        top = max(v.data for v in logits)
        exps = [(v - top).exp() for v in logits]
        total = sum(exps)
        weights = [e / total for e in exps]
        out.extend(sum(weights[t] * v_h[t][j] for t in range(len(v_h))) for j in range(hd))
    return out


def fused_formula(q, keys, values, n_head):
    """The docstring's formula, with F.linear and F.softmax (the same nodes F.attention makes)."""
    hd = len(q) // n_head
    out = []
    for h in range(n_head):
        lo, hi = h * hd, (h + 1) * hd
        logits = [s / hd ** 0.5 for s in F.linear(q[lo:hi], [k[lo:hi] for k in keys])]
        weights = F.softmax(logits)
        out += F.linear(weights, [[v[j] for v in values] for j in range(lo, hi)])
    return out


@st.composite
def blocks(draw):
    """(n_head, q, keys, values, leaves): floats, in some blocks some positions plain numbers
    (in the others every one a Value, as in a script), some Values shared (q itself as a key,
    one Value twice), some computed from the leaves (not leaves themselves)."""
    n_head, hd, T = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    n = n_head * hd
    numbers, computed = draw(st.booleans()), draw(st.booleans())
    leaves = [Value(x) for x in draw(st.lists(finite, min_size=3, max_size=3 * n * T + n))]

    def vec():
        out = []
        for _ in range(n):
            kind = draw(st.integers(0, 9))
            if numbers and kind == 0:
                out.append(draw(finite))  # a plain number: a constant
            elif computed and kind == 1:
                out.append(leaves[draw(st.integers(0, len(leaves) - 1))] * 0.75)  # one node
            else:
                out.append(leaves[draw(st.integers(0, len(leaves) - 1))])
        return out
    q = vec()
    keys = [q if draw(st.booleans()) and t == 0 else vec() for t in range(T)]
    values = [vec() for _ in range(T)]
    return n_head, q, keys, values, leaves


def run(fn, spec):
    n_head, q, keys, values, leaves = spec
    for v in leaves + q + [x for row in keys + values for x in row]:
        if isinstance(v, Value):
            v.grad = 0.0  # (a computed one's too: backward runs through it each time)
    outs = fn(q, keys, values, n_head)
    loss = Value(0.0)
    for i, o in enumerate(outs):
        loss = loss + o * (0.5 + 0.25 * i)
    loss.backward()
    return [o.data for o in outs], [v.grad for v in leaves]


@settings(max_examples=250, deadline=None)
@given(spec=blocks())
def test_attention_is_its_formula_bit_for_bit(spec):
    got = run(F.attention, spec)
    assert got == run(fused_formula, spec)
    data, grads = run(scalar_attention, spec)
    assert got[0] == data  # the scalar script's own data, bit for bit
    for a, b in zip(got[1], grads):  # grads: the same terms, summed in another order at most
        assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15), (a, b)


def test_grads_match_central_differences():
    import random
    rng = random.Random(3)
    q0 = [rng.uniform(-1, 1) for _ in range(4)]
    k0 = [[rng.uniform(-1, 1) for _ in range(4)] for _ in range(3)]
    v0 = [[rng.uniform(-1, 1) for _ in range(4)] for _ in range(3)]

    def f(qf, kf, vf):
        out = F.attention([Value(x) for x in qf], [[Value(x) for x in r] for r in kf],
                          [[Value(x) for x in r] for r in vf], 2)
        return sum(o.data * (i + 1) for i, o in enumerate(out))
    q = [Value(x) for x in q0]
    ks = [[Value(x) for x in r] for r in k0]
    vs = [[Value(x) for x in r] for r in v0]
    loss = Value(0.0)
    for i, o in enumerate(F.attention(q, ks, vs, 2)):
        loss = loss + o * (i + 1)
    loss.backward()
    h = 1e-6
    for which, vals, base in (("q", q, q0), ("k", ks, k0), ("v", vs, v0)):
        flat = vals if which == "q" else [x for r in vals for x in r]
        for idx, leaf in enumerate(flat):
            def bumped(d):
                qq, kk, vv = list(q0), [list(r) for r in k0], [list(r) for r in v0]
                if which == "q":
                    qq[idx] += d
                else:
                    tgt = kk if which == "k" else vv
                    tgt[idx // 4][idx % 4] += d
                return f(qq, kk, vv)
            numeric = (bumped(h) - bumped(-h)) / (2 * h)
            assert math.isclose(leaf.grad, numeric, rel_tol=1e-5, abs_tol=1e-7), (which, idx)


def test_one_head_one_position_is_the_value():
    q, k, v = [Value(0.3), Value(-1.0)], [Value(2.0), Value(0.5)], [Value(4.0), Value(-2.0)]
    out = F.attention(q, [k], [v], 1)
    assert [o.data for o in out] == [4.0, -2.0]  # softmax of one logit is 1.0


def test_tuples_and_other_sequences_work_as_lists():
    q = [Value(0.1 * i) for i in range(4)]
    ks = [[Value(0.2 * i - 0.3) for i in range(4)] for _ in range(2)]
    vs = [[Value(0.5 - 0.1 * i) for i in range(4)] for _ in range(2)]
    want = [o.data for o in F.attention(q, ks, vs, 2)]
    got = F.attention(tuple(q), tuple(tuple(k) for k in ks), (x for x in vs), 2)
    assert [o.data for o in got] == want


def test_bad_shapes_and_types_are_clear_errors():
    q = [Value(1.0)] * 4
    row = [Value(0.5)] * 4
    with pytest.raises(ValueError, match="q has 4 elements, not a multiple of n_head=3"):
        F.attention(q, [row], [row], 3)
    with pytest.raises(ValueError, match="not a multiple of n_head=0"):
        F.attention(q, [row], [row], 0)
    with pytest.raises(ValueError, match="keys is empty"):
        F.attention(q, [], [], 2)
    with pytest.raises(ValueError, match="2 keys but 1 values"):
        F.attention(q, [row, row], [row], 2)
    with pytest.raises(ValueError, match="q has 4 elements but key 1 has 3"):
        F.attention(q, [row, row[:3]], [row, row], 2)
    with pytest.raises(ValueError, match="q has 4 elements but value 0 has 5"):
        F.attention(q, [row], [row + row[:1]], 2)
    with pytest.raises(TypeError, match="n_head must be an int, not 'float'"):
        F.attention(q, [row], [row], 2.0)
    with pytest.raises(TypeError, match="Values or real numbers, not 'str'"):
        F.attention(q, [row[:3] + ["x"]], [row], 2)


def test_no_grad_makes_leaves_with_the_same_data():
    q = [Value(0.1 * i - 0.2) for i in range(6)]
    ks = [[Value(0.3 * i) for i in range(6)] for _ in range(3)]
    want = [o.data for o in F.attention(q, ks, ks, 3)]
    with no_grad():
        got = F.attention(q, ks, ks, 3)
    assert [o.data for o in got] == want
    assert all(not o._prev for o in got)


def test_a_gc_callback_that_empties_the_cache_mid_call():
    # making handles can start a collection: a callback that clears the KV cache and replaces
    # its rows must give an error or the right numbers, never a crash or a corrupted arena
    keys = [[Value(0.1 * (i + t)) for i in range(8)] for t in range(6)]
    values = [[Value(0.2 * (i - t)) for i in range(8)] for t in range(6)]
    fired = []

    def cb(phase, info):
        if phase == "stop" and len(fired) < 3:
            fired.append(1)
            values[:] = [None] * len(values)
            keys.clear()
    gc.callbacks.append(cb)
    old = gc.get_threshold()
    gc.set_threshold(1, 1, 1)
    try:
        for _ in range(5):
            try:
                F.attention([Value(0.5)] * 8, keys, values, 2)
            except (IndexError, TypeError, ValueError):
                pass
    finally:
        gc.set_threshold(*old)
        gc.callbacks.remove(cb)
    a = [Value(1.0), Value(2.0)]
    (a[0] * a[1]).backward()  # the engine still works
    assert a[0].grad == 2.0


@pytest.mark.skipif(NO_EXTENSIONS, reason="MICROGRAD_NO_EXTENSIONS is set: no compiled engine")
def test_compiled_and_pure_agree_bit_for_bit():
    code = textwrap.dedent("""
        import random
        import micrograd.functional as F
        from micrograd import Value
        rng = random.Random(5)
        params = [Value(rng.uniform(-1, 1)) for _ in range(40)]
        keys, values, outs = [], [], []
        for t in range(5):
            x = [params[(7 * t + i) % 40] * 1.5 for i in range(8)]
            keys.append(F.linear(x, [params[i:i + 8] for i in range(0, 32, 4)]))
            values.append([xi.tanh() for xi in x])
            outs += F.attention(x, keys, values, 4)
        loss = F.sum([o * (i % 5 - 2) for i, o in enumerate(outs)])
        loss.backward()
        print(" ".join(v.hex() for v in [loss.data] + [p.grad for p in params]))
    """)
    outs = []
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for pure in (False, True):
        env = dict(os.environ)
        env.pop("MICROGRAD_NO_EXTENSIONS", None)
        if pure:
            env["MICROGRAD_NO_EXTENSIONS"] = "1"
        env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout.split())
    assert outs[0] == outs[1] and len(outs[0]) == 41
