"""Toy data sets in pure Python (no numpy or scikit-learn needed)."""
from __future__ import annotations

import math
import numbers
import operator
import random
from typing import List, Optional, Tuple

__all__ = ["make_moons", "load_digits"]


def _linspace(stop: float, n: int) -> List[float]:
    # n points from 0 to stop inclusive, as numpy.linspace(0, stop, n)
    if n == 1:
        return [0.0]
    return [stop * i / (n - 1) for i in range(n)]


def make_moons(n_samples: int = 100, noise: float = 0.1,
               seed: Optional[int] = None) -> Tuple[List[List[float]], List[int]]:
    """make_moons(n_samples=100, noise=0.1, seed=None) -> (X, y): two interleaved half circles.

    The same shapes as scikit-learn's make_moons: n_samples // 2 points on the upper moon
    (label -1) and the rest on the lower one (label +1), shuffled, with Gaussian noise of
    standard deviation `noise` added to each coordinate. X is a list of [x, y] floats and
    y a list of ints in {-1, +1}, ready for losses.hinge (scikit-learn's 0/1 is (y + 1) // 2).

    seed makes the result reproducible; it uses a private random.Random, so the global
    `random` state (which seeds the weights of Neuron) is left untouched.
    """
    try:
        n = operator.index(n_samples)
    except TypeError:
        raise TypeError(f"n_samples must be an int, not {type(n_samples).__name__!r}") from None
    if n < 1:
        raise ValueError(f"n_samples must be >= 1, got {n}")
    if not isinstance(noise, numbers.Real) or isinstance(noise, bool) or not noise >= 0:
        raise ValueError(f"noise must be a number >= 0, got {noise!r}")
    if seed is not None and not isinstance(seed, (int, str, bytes)):
        raise TypeError(f"seed must be an int or None, not {type(seed).__name__!r}")
    rng = random.Random(seed)
    n_out = n // 2
    n_in = n - n_out
    points = [([math.cos(t), math.sin(t)], -1) for t in _linspace(math.pi, n_out)]
    points += [([1.0 - math.cos(t), 1.0 - math.sin(t) - 0.5], 1) for t in _linspace(math.pi, n_in)]
    rng.shuffle(points)
    sigma = float(noise)
    X = [[x + rng.gauss(0.0, sigma), y + rng.gauss(0.0, sigma)] for (x, y), _ in points]
    return X, [label for _, label in points]


def load_digits() -> Tuple[List[List[float]], List[int]]:
    """load_digits() -> (X, y): scikit-learn's 1,797 8x8 handwritten digits, pixels in [0, 1].

    X holds 64 floats per image (its 8 rows in turn; scikit-learn's 0..16 ink levels divided
    by 16) and y the digit, an int 0..9. The images ship inside scikit-learn, so nothing is
    downloaded; without it this raises ImportError saying how to install it.
    """
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits
    except ImportError as exc:
        raise ImportError(f"load_digits needs scikit-learn ({exc}): "
                          "pip install 'micrograd-compiled[datasets]'") from exc
    digits = sklearn_load_digits()
    X = [[v / 16.0 for v in row] for row in digits.data.tolist()]
    return X, [int(t) for t in digits.target.tolist()]
