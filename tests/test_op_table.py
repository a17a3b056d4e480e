"""The op table: both engines list the same ops, each op does what its row says, and every listed op is tested."""
from __future__ import annotations

import pytest

import test_engine_hypothesis
from conftest import compiled_only, load_engine
from micrograd import nn


def make(engine, name):
    """One node of the listed op `name`, built as a user would, and its children's count."""
    V = engine.Value
    a, b = V(1.5), V(0.75)
    if name == "add":
        return a + b, 2
    if name == "mul":
        return a * b, 2
    if name == "pow":
        return a ** b, 2
    if name == "powc":
        return a ** 3, 1
    if name == "dot":
        return engine._dot(a, [b, V(2.0)], [V(3.0), V(4.0)]), 5
    return getattr(a, name)(), 1


LISTED = sorted(name for name, _text, _kids in load_engine("python")._OPS)


@compiled_only
def test_both_engines_list_the_same_ops():
    compiled, pure = load_engine("compiled"), load_engine("python")
    assert sorted(compiled._OPS) == sorted(pure._OPS)
    assert sorted(compiled._ACTIVATIONS) == sorted(pure._ACTIVATIONS)


@pytest.mark.parametrize("name", LISTED)
def test_each_op_is_what_its_row_says(engine, name):
    (row,) = [r for r in engine._OPS if r[0] == name]
    _name, text, kids = row
    out, nkids = make(engine, name)
    assert out._op.startswith(text) and (out._op == text or name == "powc")
    assert len(out._prev) == nkids
    assert kids == (-1 if name == "dot" else nkids)
    out.backward()  # its rule runs and reaches every child
    assert out.grad == 1.0


def test_every_listed_op_is_made_and_drawn_by_the_tests(engine):
    names = {name for name, _text, _kids in engine._OPS}
    # make() above knows every op, and the Hypothesis programs reach every op
    for name in names:
        make(engine, name)
    assert names <= set(test_engine_hypothesis.REACHES), names - set(test_engine_hypothesis.REACHES)


def test_activations_are_one_list(engine):
    # nn, the layer kernel and Value all take the engine's activations
    assert set(nn.ACTIVATIONS) == set(engine._ACTIVATIONS)
    x = engine.Value(0.3)
    w, b = [engine.Value(-2.0)], engine.Value(0.1)
    for act in engine._ACTIVATIONS:
        (out,) = engine._layer([w], [b], [x], act)
        dot = engine._dot(b, w, [x])
        want = dot if act == "linear" else getattr(dot, act)()
        assert out.data == want.data and out._op == want._op
