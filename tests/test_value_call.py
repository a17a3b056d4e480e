"""Value(x) with one number, the call the compiled engine answers without parsing arguments, is
the same Value as every other call makes: data, identity, GC state, attributes, errors."""
from __future__ import annotations

import gc
import pickle
import weakref
from fractions import Fraction

import pytest

from conftest import compiled_only


@pytest.mark.parametrize("x, want", [(2.5, 2.5), (-0.0, -0.0), (3, 3.0), (-7, -7.0), (True, 1.0),
                                     (2**60 + 1, float(2**60 + 1)), (float("inf"), float("inf")),
                                     (Fraction(1, 4), 0.25)])
def test_one_number_makes_a_leaf(engine, x, want):
    v = engine.Value(x)
    assert type(v) is engine.Value and type(v.data) is float
    assert v.data == want and str(v.data) == str(want)
    assert v.grad == 0.0 and v._prev == set() and v._op == "" and v.label == ""
    assert v._children == () and v._local_grads == ()


def test_the_leaf_behaves_as_any_other(engine):
    V = engine.Value
    a, b = V(2.0), V(-3.0, label="")  # the fast call and the general one
    for v in (a, b):
        assert not gc.is_tracked(v) or engine.IMPLEMENTATION == "python"
        r = weakref.ref(v)
        assert r() is v
        v.note = "x"
        w = pickle.loads(pickle.dumps(v))
        assert (w.data, w.note) == (v.data, "x")
    out = a * b + a
    out.backward()
    assert (a.grad, b.grad) == (-2.0, 2.0)
    a.__init__(5)  # __init__ again on a Value the fast call made
    assert a.data == 5.0 and a.note == "x"
    del out, b
    assert V(1) is not V(1)


def test_other_calls_keep_their_errors(engine):
    V = engine.Value
    with pytest.raises(OverflowError):
        V(10**400)
    with pytest.raises(TypeError, match="real number"):
        V("1.0")
    with pytest.raises(TypeError):
        V()
    with pytest.raises(TypeError):
        V(1.0, bogus=2)
    assert V(1.0, label="k").label == "k"
    assert V(data=4).data == 4.0


def test_a_subclass_runs_its_own_init(engine):
    class Tagged(engine.Value):
        def __init__(self, data):
            super().__init__(data)
            self.tag = "mine"

    t = Tagged(3.0)
    assert type(t) is Tagged and t.tag == "mine" and t.data == 3.0


@compiled_only
def test_the_fast_call_under_a_node_cap(engine):
    if engine.IMPLEMENTATION != "compiled":
        pytest.skip("the node cap is a hook of the compiled arena")
    keep = [engine.Value(float(i)) for i in range(4)]
    live = engine._live_nodes()
    engine._set_node_limit(live)
    try:
        with pytest.raises(MemoryError):
            engine.Value(1.0)
        with pytest.raises(MemoryError):
            engine.Value(2)
    finally:
        engine._set_node_limit(None)
    assert engine._live_nodes() == live
    assert [v.data for v in keep] == [0.0, 1.0, 2.0, 3.0]
