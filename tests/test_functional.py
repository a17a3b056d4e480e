"""micrograd.functional: each function equals the scalar formula it replaces, on data and grads."""
from __future__ import annotations

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
from micrograd.engine import IMPLEMENTATION

from conftest import NO_EXTENSIONS

finite = st.floats(min_value=-4.0, max_value=4.0, allow_nan=False, allow_infinity=False)


# ---- the formulas, written with scalar ops as a script would (microgpt's own) ----------------

def c_softmax(logits):
    top = max(v.data for v in logits)
    exps = [(v - top).exp() for v in logits]
    total = sum(exps)
    return [e / total for e in exps]


def c_log_softmax(logits):
    top = max(v.data for v in logits)
    shifted = [v - top for v in logits]
    lse = sum(s.exp() for s in shifted).log()
    return [s - lse for s in shifted]


def c_rmsnorm(x, eps=1e-5):
    ms = sum(xi * xi for xi in x) / len(x)
    scale = (ms + eps) ** -0.5
    return [xi * scale for xi in x]


def c_linear(x, w, b=None):
    if b is None:
        return [sum(wi * xi for wi, xi in zip(row, x)) for row in w]
    return [sum((wi * xi for wi, xi in zip(row, x)), bj) for row, bj in zip(w, b)]


PAIRS = {  # name: (F's function, the formula), each a list -> list
    "softmax": (F.softmax, c_softmax),
    "log_softmax": (F.log_softmax, c_log_softmax),
    "rmsnorm": (F.rmsnorm, c_rmsnorm),
    "sum": (lambda xs: [F.sum(xs)], lambda xs: [sum(xs)]),
    "sum_from_value": (lambda xs: [F.sum(xs[1:], xs[0])], lambda xs: [sum(xs[1:], xs[0])]),
    "relu": (F.relu, lambda xs: [x.relu() for x in xs]),
    "tanh": (F.tanh, lambda xs: [x.tanh() for x in xs]),
    "sigmoid": (F.sigmoid, lambda xs: [x.sigmoid() for x in xs]),
}


@st.composite
def inputs(draw, min_size=1):
    """(floats, picks, numbers): picks[i] says which of the floats input i is (so a Value can
    come twice), numbers[i] whether input i is a plain number instead of a Value."""
    floats = draw(st.lists(finite, min_size=min_size, max_size=9))
    n = draw(st.integers(min_size, 9)) if floats else 0
    picks = draw(st.lists(st.integers(0, max(len(floats) - 1, 0)), min_size=n, max_size=n))
    numbers = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    return floats, picks, numbers


def build(spec):
    floats, picks, numbers = spec
    vals = [Value(f) for f in floats]
    xs = [floats[p] if num else vals[p] for p, num in zip(picks, numbers)]
    return vals, xs


def run(fn, spec, lift=False):
    """fn's outputs' data, and the inputs' grads after backward of sum(c_i * out_i); lift: the
    numbers made Values first (the formulas need Values; F takes a number as a constant)."""
    vals, xs = build(spec)
    outs = fn([x if isinstance(x, Value) else Value(x) for x in xs] if lift else xs)
    loss = Value(0.0)
    for i, o in enumerate(outs):
        loss = loss + o * (0.5 + i)
    loss.backward()
    return [o.data for o in outs], [v.grad for v in vals]


def same_bits(a, b):
    return len(a) == len(b) and all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b))


@pytest.mark.parametrize("name", sorted(PAIRS))
@settings(max_examples=150, deadline=None)
@given(spec=inputs())
def test_each_function_is_its_formula_bit_for_bit(name, spec):
    if name == "sum_from_value" and (not spec[2] or spec[2][0]):
        spec = (spec[0], spec[1], [False] + list(spec[2][1:]))  # start must be a Value
    fused, formula = PAIRS[name]
    got, want = run(fused, spec), run(formula, spec, lift=True)
    assert same_bits(got[0], want[0]), (got[0], want[0])
    assert same_bits(got[1], want[1]), (got[1], want[1])


@st.composite
def linear_specs(draw):
    nin = draw(st.integers(0, 6))
    nout = draw(st.integers(0, 5))
    w = draw(st.lists(st.lists(finite, min_size=nin, max_size=nin), min_size=nout, max_size=nout))
    x = draw(st.lists(finite, min_size=nin, max_size=nin))
    b = draw(st.none() | st.lists(finite, min_size=nout, max_size=nout))
    w_numbers = draw(st.booleans())
    x_shared = draw(st.booleans())  # x reuses the first weight's Value (the same Value in w and x)
    return w, x, b, w_numbers, x_shared


def run_linear(fn, spec):
    w, x, b, w_numbers, x_shared = spec
    W = [[wi if w_numbers else Value(wi) for wi in row] for row in w]
    X = [Value(xi) for xi in x]
    if x_shared and X and W and not w_numbers:
        X[0] = W[0][0]
    B = None if b is None else [Value(bj) for bj in b]
    outs = fn(X, W, B) if B is not None else fn(X, W)
    loss = Value(0.0)
    for i, o in enumerate(outs):
        loss = loss + o * (1.5 - i)
    loss.backward()
    leaves = X + ([] if w_numbers else [wi for row in W for wi in row]) + (B or [])
    # (the formula's sum() of an empty row is the int 0, or b_j)
    return [o.data if isinstance(o, Value) else float(o) for o in outs], [v.grad for v in leaves]


@settings(max_examples=200, deadline=None)
@given(spec=linear_specs())
def test_linear_is_its_formula(spec):
    got, want = run_linear(F.linear, spec), run_linear(c_linear, spec)
    assert same_bits(got[0], want[0])
    # one fused node per row: a Value used twice may sum its grad's parts in another order
    assert all(math.isclose(g, w, rel_tol=1e-12, abs_tol=1e-12) for g, w in zip(got[1], want[1]))


@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid", "linear"])
@settings(max_examples=80, deadline=None)
@given(spec=linear_specs())
def test_linear_with_an_activation_is_the_activation_of_linear(act, spec):
    def fused(X, W, B=None):
        return F.linear(X, W, B, act=act)

    def composed(X, W, B=None):
        outs = c_linear(X, W, B)
        outs = [o if isinstance(o, Value) else Value(float(o)) for o in outs]
        return outs if act == "linear" else [getattr(o, act)() for o in outs]

    got, want = run_linear(fused, spec), run_linear(composed, spec)
    assert same_bits(got[0], want[0])
    assert all(math.isclose(g, w, rel_tol=1e-12, abs_tol=1e-12) for g, w in zip(got[1], want[1]))
    # and F.relu(F.linear(...)) bit for bit, grads too (the same kernel, the same order)
    if act != "linear":
        def two_calls(X, W, B=None):
            return getattr(F, act)(F.linear(X, W, B))
        again = run_linear(two_calls, spec)
        assert same_bits(got[0], again[0]) and same_bits(got[1], again[1])


def test_linear_names_a_bad_activation():
    x, w = [Value(1.0)], [[Value(2.0)]]
    for bad in ("gelu", "", 3, b"relu"):
        with pytest.raises(ValueError, match="unknown activation"):
            F.linear(x, w, act=bad)
    assert F.linear(x, w, act=None)[0].data == 2.0
    assert F.linear(x, w, act="relu")[0].data == 2.0
    assert F.linear(x, [[Value(-2.0)]], [Value(0.5)], act="relu")[0].data == 0.0


@settings(max_examples=100, deadline=None)
@given(w=st.lists(finite, min_size=1, max_size=8), data=st.data())
def test_dot_is_linear_of_one_row(w, data):
    x = data.draw(st.lists(finite, min_size=len(w), max_size=len(w)))
    W, X = [Value(v) for v in w], [Value(v) for v in x]
    assert F.dot(W, X).data == sum(wi * xi for wi, xi in zip(W, X)).data


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "rmsnorm"])
@settings(max_examples=60, deadline=None)
@given(xs=st.lists(finite, min_size=1, max_size=7))
def test_grads_match_central_differences(name, xs):
    fn = PAIRS[name][0]
    coef = [0.5 + i for i in range(len(xs))]

    def loss_at(vals):
        return sum(c * o.data for c, o in zip(coef, fn([Value(v) for v in vals])))
    vals = [Value(v) for v in xs]
    loss = Value(0.0)
    for c, o in zip(coef, fn(vals)):
        loss = loss + o * c
    loss.backward()
    h = 1e-6
    for i in range(len(xs)):
        up, down = list(xs), list(xs)
        up[i] += h
        down[i] -= h
        fd = (loss_at(up) - loss_at(down)) / (2 * h)
        assert math.isclose(vals[i].grad, fd, rel_tol=1e-4, abs_tol=1e-4), (i, vals[i].grad, fd)


def test_shapes_and_types_are_clear_errors():
    a, b = Value(1.0), Value(2.0)
    with pytest.raises(ValueError, match=r"linear: w is 1x3 but x has 2 elements"):
        F.linear([a, b], [[a, b, a]])
    with pytest.raises(ValueError, match=r"linear: row 1 of w has 1 elements, row 0 has 2"):
        F.linear([a, b], [[a, b], [a]])
    with pytest.raises(ValueError, match=r"linear: w has 2 rows but b has 1 elements"):
        F.linear([a, b], [[a, b], [a, b]], [a])
    with pytest.raises(ValueError, match=r"dot: w has 2 elements but x has 1"):
        F.dot([a, b], [a])
    with pytest.raises(TypeError, match=r"linear: w must hold Values or real numbers, not 'str'"):
        F.linear([a], [["w"]])
    for fn in (F.softmax, F.log_softmax, F.rmsnorm):
        with pytest.raises(ValueError, match="empty sequence"):
            fn([])
        with pytest.raises(TypeError, match=r"must be Values or real numbers, not 'str'"):
            fn([a, "x"])
    with pytest.raises(TypeError, match="eps must be a real number"):
        F.rmsnorm([a], eps="small")
    with pytest.raises(TypeError, match="start must be a Value or a real number"):
        F.sum([a], start="s")
    with pytest.raises(ZeroDivisionError):
        F.rmsnorm([Value(0.0), 0.0], eps=0)  # 0.0 ** -0.5, as the formula raises
    assert a.data == 1.0 and b.data == 2.0  # nothing touched


def test_mixed_numbers_and_values():
    x = Value(0.5)
    out = F.softmax([x, 1.0, 2])
    assert [o.data for o in out] == [o.data for o in c_softmax([x, Value(1.0), Value(2)])]
    out[0].backward()
    assert x.grad != 0.0
    assert F.sum([1, 2.5]).data == 3.5 and isinstance(F.sum([]), Value)
    w = [[3, Value(4.0)]]
    assert [o.data for o in F.linear([1.0, 2.0], w, [0.5])] == [11.5]
    assert w[0][0] == 3 and type(w[0][0]) is int  # the caller's rows are not changed


def test_no_grad_makes_leaves_with_the_same_data():
    xs = [Value(0.3), Value(-1.2), Value(2.0)]
    with_graph = [o.data for o in F.softmax(xs)] + [o.data for o in F.rmsnorm(xs)]
    with no_grad():
        outs = F.softmax(xs) + F.rmsnorm(xs) + F.linear(xs, [xs]) + [F.sum(xs)]
    assert [o.data for o in outs[:6]] == with_graph
    assert all(o._prev == set() for o in outs)


def test_a_fused_linear_node_shows_its_inputs():
    w = [Value(1.0, label="w0"), Value(2.0, label="w1")]
    x = [Value(3.0, label="x0"), Value(4.0, label="x1")]
    out = F.linear(x, [w])[0]
    assert set(w) | set(x) <= out._prev
    assert out.data == 11.0


def test_a_failure_part_way_frees_what_was_made():
    import micrograd.engine as E
    live = getattr(E._impl, "_live_nodes")
    before = live()
    for _ in range(20):
        with pytest.raises(ZeroDivisionError):
            F.rmsnorm([Value(0.0)] * 5, eps=0)  # made 5 squares and a sum before 0.0 ** -0.5
    assert live() == before or before == -1


@pytest.mark.skipif(NO_EXTENSIONS, reason="MICROGRAD_NO_EXTENSIONS is set: no compiled engine")
def test_compiled_and_pure_agree_bit_for_bit():
    code = textwrap.dedent("""
        import random
        import micrograd.functional as F
        from micrograd import Value
        rng = random.Random(4)
        xs = [Value(rng.uniform(-3, 3)) for _ in range(12)]
        w = [[Value(rng.uniform(-1, 1)) for _ in range(12)] for _ in range(5)]
        h = F.linear(F.rmsnorm(xs), w, [Value(0.1)] * 5)
        p = F.softmax(F.tanh(h)) + F.log_softmax(F.relu(h)) + F.sigmoid(h)
        loss = F.sum([o * (i + 1) for i, o in enumerate(p)], Value(0.5))
        loss.backward()
        print(" ".join(v.hex() for v in [loss.data] + [x.grad for x in xs] + [wi.grad for r in w for wi in r]))
    """)
    outs = []
    for pure in (False, True):
        env = dict(os.environ)
        env.pop("MICROGRAD_NO_EXTENSIONS", None)
        if pure:
            env["MICROGRAD_NO_EXTENSIONS"] = "1"
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout.split())
    assert outs[0] == outs[1] and len(outs[0]) == 1 + 12 + 60


def test_a_matrix_edited_between_calls_is_always_read_as_it_is():
    # compiled: linear keeps the packing of a matrix of leaves; every edit is seen
    w = [[Value(0.1 * (i + j)) for i in range(3)] for j in range(2)]
    x = [Value(1.0), Value(2.0), Value(3.0)]

    def same():
        got = [o.data for o in F.linear(x, w)]
        return got == [o.data for o in c_linear(x, w)]
    leaf = Value(3.0)
    edits = [
        lambda: None,
        lambda: w[0].__setitem__(1, Value(5.0)),          # a weight replaced
        lambda: w.__setitem__(1, [Value(-1.0), Value(2.0), Value(0.5)]),  # a row replaced
        lambda: w.append([Value(7.0)] * 3),               # a row added
        lambda: setattr(w[0][0], "data", 9.0),            # data changed
        lambda: w[0][2].__init__(4.0),                    # a weight re-initialised
        lambda: w.__delitem__(0),                         # a row removed
        lambda: w[0].__setitem__(0, leaf * 2.0),          # an op node among the weights
    ]
    for edit in edits:
        edit()
        assert same()
    F.linear(x, w)[0].backward()
    assert leaf.grad == 2.0 * x[0].data  # through the op-node weight's own rule
    w[1].append(Value(1.0))
    with pytest.raises(ValueError, match="row 1 of w has 4 elements, row 0 has 3"):
        F.linear(x, w)


def test_forget_lets_the_kept_matrices_go():
    import gc
    import weakref
    w = [[Value(0.5), Value(-1.0)], [Value(2.0), Value(0.25)]]
    first = weakref.ref(w[0][0])
    assert [o.data for o in F.linear([1.0, 2.0], w)] == [-1.5, 2.5]
    del w
    gc.collect()
    # compiled: the packing is kept, and with it the matrix; the pure engine keeps nothing
    assert (first() is not None) == (IMPLEMENTATION == "compiled")
    F.forget()
    gc.collect()
    assert first() is None
    w = [[Value(1.0), Value(1.0)]]
    assert F.linear([1.0, 2.0], w)[0].data == 3.0  # packed again after a forget
    F.forget()
    w[0][1] = Value(10.0)
    assert F.linear([1.0, 2.0], w)[0].data == 21.0


def test_an_input_float_that_replaces_a_row_is_seen():
    w = [[Value(1.0), Value(1.0)]]
    F.linear([1.0, 1.0], w)  # packed (and, compiled, kept)

    class R:
        def __float__(self):
            w[0] = [Value(10.0), Value(10.0)]
            return 1.0
    import numbers
    numbers.Real.register(R)
    assert F.linear([R(), 1.0], w)[0].data == 20.0  # as the pure engine: inputs first


# ---- the fused list ops' nodes (compiled: one node per output over a hidden group) -----------

FUSED = ["softmax", "log_softmax", "rmsnorm"]


@pytest.mark.parametrize("name", sorted(PAIRS))
@settings(max_examples=100, deadline=None)
@given(spec=inputs(), data=st.data())
def test_only_some_outputs_used_is_still_the_formula_bit_for_bit(name, spec, data):
    # a loss over a subset of the outputs (some never met by backward), the rest dropped
    if name == "sum_from_value" and (not spec[2] or spec[2][0]):
        spec = (spec[0], spec[1], [False] + list(spec[2][1:]))
    fused, formula = PAIRS[name]

    def go(fn, lift):
        vals, xs = build(spec)
        outs = fn([x if isinstance(x, Value) else Value(x) for x in xs] if lift else xs)
        keep = [o for o, k in zip(outs, picks) if k]
        del outs
        loss = Value(0.0)
        for i, o in enumerate(keep):
            loss = loss + o * (1.5 - i)
        loss.backward()
        return [o.data for o in keep], [v.grad for v in vals]
    picks = data.draw(st.lists(st.booleans(), min_size=9, max_size=9))
    got, want = go(fused, False), go(formula, True)
    assert same_bits(got[0], want[0]) and same_bits(got[1], want[1]), (got, want)


@pytest.mark.parametrize("name", FUSED)
def test_a_fused_output_shows_its_inputs(name):
    xs = [Value(0.5, label="a"), Value(-1.0, label="b"), 2.0]
    outs = PAIRS[name][0](xs)
    for o in outs:
        assert all(isinstance(c, Value) for c in o._children)
        assert isinstance(o._prev, set)
    if IMPLEMENTATION == "compiled":  # one op node per output, its children the inputs
        o = outs[1]
        assert o._op == name
        assert o._children[:2] == (xs[0], xs[1]) and o._children[2].data == 2.0
        assert o._prev == set(o._children)
        third = o._children[2]  # the number's leaf: the same handle while it lives
        assert o._children[2] is third and outs[0]._children[2] is third
        del xs, third
        assert [c.data for c in outs[0]._children] == [0.5, -1.0, 2.0]  # the group keeps them


@pytest.mark.parametrize("name", FUSED)
@settings(max_examples=40, deadline=None)
@given(xs=st.lists(finite, min_size=1, max_size=6), data=st.data())
def test_local_grads_and_own_backward_of_one_output(name, xs, data):
    # an output's _local_grads (d out / d input) and its own _backward() (by hand, as upstream's
    # node._backward()) are those of the formula's node for that output alone
    i = data.draw(st.integers(0, len(xs) - 1))
    vals = [Value(v) for v in xs]
    out = PAIRS[name][0](vals)[i]
    ref_vals = [Value(v) for v in xs]
    ref = PAIRS[name][1](ref_vals)[i]
    ref.backward()
    want = [v.grad for v in ref_vals]
    lg = out._local_grads
    if IMPLEMENTATION == "compiled":
        assert len(lg) == len(xs)
        assert all(math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12) for a, b in zip(lg, want)), (lg, want)
    out.grad = 1.0
    out._backward()
    if IMPLEMENTATION == "compiled":  # (the pure engine's output is the formula's last node)
        assert all(math.isclose(v.grad, w, rel_tol=1e-12, abs_tol=1e-12)
                   for v, w in zip(vals, want)), ([v.grad for v in vals], want)


@pytest.mark.parametrize("name", FUSED)
def test_a_replaced_backward_can_still_call_the_fused_rule(name):
    vals = [Value(0.3), Value(-0.7), Value(1.1)]
    outs = PAIRS[name][0](vals)
    own = outs[0]._backward
    calls = []

    def mine():
        calls.append(1)
        own()
    outs[0]._backward = mine
    outs[0].backward()
    ref_vals = [Value(v.data) for v in vals]
    PAIRS[name][1](ref_vals)[0].backward()
    assert calls == [1]
    assert all(math.isclose(v.grad, r.grad, rel_tol=1e-12, abs_tol=1e-12) for v, r in zip(vals, ref_vals))
    del own, mine, outs
    import gc
    gc.collect()


@pytest.mark.parametrize("name", FUSED + ["relu"])
def test_one_long_and_shared_inputs(name):
    a = Value(0.25)
    fused, formula = PAIRS[name]
    for xs in ([a], [a, a, a], [a, 1.5, a]):
        a.grad = 0.0
        got = fused(xs)
        sum(got).backward()
        g1 = a.grad
        a.grad = 0.0
        ref = formula([x if isinstance(x, Value) else Value(x) for x in xs])
        sum(ref).backward()
        assert [o.data for o in got] == [o.data for o in ref] and g1 == a.grad


def test_fused_graphs_are_freed():
    import micrograd.engine as E
    live = getattr(E._impl, "_live_nodes", None)
    if live is None:
        pytest.skip("the pure engine has no arena")
    xs = [Value(0.1 * i) for i in range(7)]
    before = live()
    for name in FUSED + ["relu"]:
        outs = PAIRS[name][0](xs + [3.0])
        keep = outs[2]
        del outs
        keep.backward()  # the group lives while one output does
        del keep
        assert live() == before, name
    with no_grad():
        outs = F.softmax(xs)
    del outs
    assert live() == before


@pytest.mark.parametrize("name", FUSED + ["relu"])
def test_an_input_float_that_runs_the_engine(name):
    # a number's __float__ builds, drops and backpropagates graphs, and re-initialises a Value
    # input, in the middle of the call: the call reads every input after every conversion
    import numbers
    a, b = Value(0.5), Value(-0.25)

    class Sneaky:
        def __float__(self):
            t = F.softmax([Value(1.0), Value(2.0)])
            F.rmsnorm(t)[0].backward()
            b.__init__(0.75)
            return 1.0
    numbers.Real.register(Sneaky)
    outs = PAIRS[name][0]([a, Sneaky(), b])
    ref = PAIRS[name][1]([Value(0.5), Value(1.0), Value(0.75)])
    assert [o.data for o in outs] == [o.data for o in ref]
    outs[0].backward()


def test_a_gc_callback_that_runs_the_engine_mid_call():
    # making the outputs' handles can start a collection; its callback builds and
    # backpropagates fused graphs while the call's group is half-handed out
    import gc
    seen = []

    def cb(phase, info):
        if phase == "stop" and len(seen) < 50:
            p = F.log_softmax([Value(0.1), Value(0.2)])
            F.softmax(p)[1].backward()
            seen.append(p[0].grad)
    gc.callbacks.append(cb)
    old = gc.get_threshold()
    gc.set_threshold(1, 1, 1)
    try:
        for _ in range(30):
            xs = [Value(0.1 * i) for i in range(20)]
            outs = F.softmax(xs) + F.rmsnorm(xs) + F.relu(xs)
            sum(outs).backward()
            ref_xs = [Value(0.1 * i) for i in range(20)]
            sum(c_softmax(ref_xs) + c_rmsnorm(ref_xs) + [x.relu() for x in ref_xs]).backward()
            assert [x.grad for x in xs] == [x.grad for x in ref_xs]
    finally:
        gc.set_threshold(*old)
        gc.callbacks.remove(cb)


def test_draw_dot_shows_a_fused_output_as_one_labelled_node():
    from micrograd.viz import _layout
    xs = [Value(0.5, label="a"), Value(-1.0, label="b")]
    out = F.softmax(xs)[0]
    for expand in (False, True):
        boxes, ops, edges = _layout(out, expand)
        labels = {b[1] for b in boxes}
        assert {"a", "b"} <= labels
        if IMPLEMENTATION == "compiled":
            assert [t for _, t in ops] == ["softmax"]
            assert len(edges) == 3  # a -> op, b -> op, op -> out


PROGRAM_OPS = ["softmax", "log_softmax", "rmsnorm", "relu", "tanh", "sigmoid", "linear", "add"]


@settings(max_examples=120, deadline=None)
@given(xs=st.lists(finite, min_size=1, max_size=6),
       prog=st.lists(st.tuples(st.sampled_from(PROGRAM_OPS), st.integers(0, 5)), min_size=1, max_size=6),
       keep=st.lists(st.booleans(), min_size=6, max_size=6))
def test_programs_of_fused_ops_compiled_equal_pure_bit_for_bit(engines, xs, prog, keep):
    # the compiled engine's fused kernels against the pure engine's composed formulas: chains of
    # them (fused outputs feeding fused ops, vectors added to earlier ones), some outputs never
    # used
    compiled, pure = engines

    def go(E, fused):
        V = E.Value
        vals = [V(x) for x in xs]
        vec, history = list(vals), [list(vals)]
        w = [[V(0.1 * (i - j) + 0.05) for i in range(len(xs))] for j in range(len(xs))]
        for op, k in prog:
            if op == "linear":
                vec = (E._f_linear(w, tuple(vec)) if fused else c_linear(vec, w))
            elif op == "add":
                other = history[k % len(history)]
                vec = [a + b for a, b in zip(vec, other)]
            elif op in ("relu", "tanh", "sigmoid"):
                vec = E._f_map(vec, op) if fused else [getattr(v, op)() for v in vec]
            else:
                f = {"softmax": (c_softmax, "_f_softmax"), "log_softmax": (c_log_softmax, "_f_log_softmax"),
                     "rmsnorm": (c_rmsnorm, "_f_rmsnorm")}[op]
                vec = (getattr(E, f[1])(vec, 1e-5) if op == "rmsnorm" else getattr(E, f[1])(vec)) if fused else f[0](vec)
            history.append(vec)
        loss = V(0.0)
        for i, (o, kp) in enumerate(zip(vec, keep)):
            if kp or i == 0:
                loss = loss + o * (0.75 - 0.25 * i)
        loss.backward()
        return [o.data for o in vec], [v.grad for v in vals] + [wi.grad for row in w for wi in row]
    got, want = go(compiled, True), go(pure, False)
    assert same_bits(got[0], want[0]), (got[0], want[0])
    assert same_bits(got[1], want[1]), (got[1], want[1])


@pytest.mark.parametrize("name", FUSED)
def test_reinitialised_outputs_and_inputs(name):
    # Value.__init__ run again on an output (it becomes a leaf; its group lives on for the
    # others) and on an input (the group reads its new data); a cycle through a group is refused
    import gc
    a, b = Value(0.4), Value(-0.3)
    outs = PAIRS[name][0]([a, b, 1.0])
    outs[0].__init__(5.0)
    assert outs[0]._prev == set() and outs[0].data == 5.0
    outs[1].backward()
    ref_a, ref_b = Value(0.4), Value(-0.3)
    PAIRS[name][1]([ref_a, ref_b, Value(1.0)])[1].backward()
    assert math.isclose(a.grad, ref_a.grad, rel_tol=1e-12, abs_tol=1e-15)
    with pytest.raises(ValueError, match="own descendant"):
        a.__init__(1.0, (outs[2],))
    b.__init__(2.0)  # a leaf again, with new data: the group's rule reads it
    del outs
    gc.collect()


def test_empty_lists():
    for fn in (F.relu, F.tanh, F.sigmoid):
        assert fn([]) == [] and fn(()) == []
    with no_grad():
        assert F.relu([]) == []
        assert F.softmax([1.0])[0].data == 1.0
