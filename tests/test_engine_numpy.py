"""numpy: object arrays of Values, elementwise and through np.dot / @, on both engines, as upstream."""
from __future__ import annotations

import numpy as np


def test_ndarray_op_value_is_an_object_array_of_values(engine):
    V = engine.Value
    for a in (np.array([1.0, 2.0]) * V(3.0), V(3.0) * np.array([1.0, 2.0])):
        assert a.dtype == object and a.shape == (2,)
        assert all(isinstance(v, V) for v in a)
        assert [v.data for v in a] == [3.0, 6.0]
    b = np.array([1.0, 4.0]) - V(1.0)
    assert [v.data for v in b] == [0.0, 3.0]


def test_numpy_scalars_on_either_side_give_a_value(engine):
    V = engine.Value
    for r in (np.float64(2.0) * V(3.0), V(3.0) * np.float64(2.0), np.float32(2.0) + V(4.0)):
        assert isinstance(r, V) and r.data == 6.0
        assert type(r.data) is float  # numpy scalars become floats (README: numpy)


def test_matrix_products_over_values_backpropagate(engine):
    V = engine.Value
    W = np.array([[V(1.0), V(2.0)], [V(3.0), V(4.0)]], dtype=object)
    x = np.array([V(0.5), V(-1.0)], dtype=object)
    y = W @ x
    assert [v.data for v in y] == [-1.5, -2.5]
    assert [v.data for v in np.dot(W, x)] == [-1.5, -2.5]
    y.sum().backward()
    assert [w.grad for w in W.ravel()] == [0.5, -1.0, 0.5, -1.0]
    assert [v.grad for v in x] == [4.0, 6.0]
