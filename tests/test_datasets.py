"""datasets.make_moons: shapes, labels, reproducibility, no use of the global random state."""
from __future__ import annotations

import math
import random

import pytest

from micrograd.datasets import make_moons


def test_shapes_and_labels():
    X, y = make_moons(101, 0.1, seed=0)
    assert len(X) == len(y) == 101
    assert all(isinstance(p, list) and len(p) == 2 and all(type(c) is float for c in p) for p in X)
    assert sorted(set(y)) == [-1, 1]
    assert y.count(-1) == 50 and y.count(1) == 51
    assert make_moons()[0].__len__() == 100


def test_noise_free_points_lie_on_the_moons():
    X, y = make_moons(40, 0.0, seed=1)
    for (a, b), label in zip(X, y):
        if label == -1:  # upper moon: the unit half circle
            assert math.hypot(a, b) == pytest.approx(1.0) and b >= -1e-12
        else:  # lower moon: centred at (1, 0.5), below it
            assert math.hypot(a - 1.0, b - 0.5) == pytest.approx(1.0) and b <= 0.5 + 1e-12


def test_seeded_and_private():
    random.seed(123)
    state = random.getstate()
    a = make_moons(50, 0.2, seed=7)
    assert random.getstate() == state  # the global stream (weights' seed) is untouched
    assert make_moons(50, 0.2, seed=7) == a
    assert make_moons(50, 0.2, seed=8) != a
    assert make_moons(1, 0.0, seed=0) == ([[0.0, 0.5]], [1])


@pytest.mark.parametrize("kwargs, err", [
    ({"n_samples": 0}, ValueError),
    ({"n_samples": 2.5}, TypeError),
    ({"noise": -0.1}, ValueError),
    ({"noise": "x"}, ValueError),
    ({"seed": 1.5}, TypeError),
])
def test_bad_arguments(kwargs, err):
    with pytest.raises(err):
        make_moons(**kwargs)
