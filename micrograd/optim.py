"""SGD and Adam with PyTorch's update rules; each step() is one engine call."""
from __future__ import annotations

import math
import numbers
from array import array
from typing import Any, Iterable, Tuple

from micrograd.engine import Value, _impl

__all__ = ["Optimizer", "SGD", "Adam"]


def _real(x: Any, name: str) -> float:
    # a float skips the ABC check (~270 ns, in every step() through _nonneg)
    if type(x) is not float and (not isinstance(x, numbers.Real) or isinstance(x, bool)):
        raise TypeError(f"{name} must be a real number, not {type(x).__name__!r}")
    f = float(x)
    if not math.isfinite(f):
        raise ValueError(f"{name} must be finite, got {f}")
    return f


def _nonneg(x: Any, name: str) -> float:
    f = _real(x, name)
    if f < 0.0:
        raise ValueError(f"invalid {name}: {f} (must be >= 0)")
    return f


class Optimizer:
    """Base class: holds the parameter list; zero_grad() clears their grads in one engine call."""

    def __init__(self, params: Iterable[Value]) -> None:
        if isinstance(params, Value):
            raise TypeError("params must be an iterable of Values, e.g. model.parameters()")
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        for p in params:
            if not isinstance(p, Value):
                raise TypeError(f"params must be Values, not {type(p).__name__!r}")
        if len({id(p) for p in params}) != len(params):
            # a repeated parameter would be stepped twice per step()
            raise ValueError("some parameters appear more than once in params")
        self.params = params
        # checked once and held by the engine: each step is then one C loop, no Python per weight
        self._pack = _impl._pack(params)

    def zero_grad(self) -> None:
        """zero_grad() -> None: set .grad = 0.0 on every parameter."""
        _impl._zero_grad(self._pack)

    def step(self) -> None:
        """step() -> None: update every parameter from its .grad."""
        raise NotImplementedError


class SGD(Optimizer):
    """SGD(params, lr, momentum=0.0, weight_decay=0.0): PyTorch's torch.optim.SGD (no dampening).

    g = grad + weight_decay * p; with momentum, buf = g on the first step and
    momentum * buf + g after; p -= lr * (buf or g). lr may be changed between steps.
    """

    def __init__(self, params: Iterable[Value], lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params)
        self.lr = _nonneg(lr, "learning rate")
        self.momentum = _nonneg(momentum, "momentum")
        self.weight_decay = _nonneg(weight_decay, "weight_decay")
        self._buf = array("d", bytes(8 * len(self.params)))
        self._started = False

    def step(self) -> None:
        """step() -> None: one SGD update of every parameter (one engine call)."""
        lr = _nonneg(self.lr, "learning rate")
        _impl._sgd_step(self._pack, lr, self.momentum, self.weight_decay, self._buf, self._started)
        self._started = True

    def __repr__(self) -> str:
        return (f"SGD({len(self.params)} params, lr={self.lr}, momentum={self.momentum}, "
                f"weight_decay={self.weight_decay})")


class Adam(Optimizer):
    """Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0): torch.optim.Adam.

    g = grad + weight_decay * p (L2, not AdamW); m and v are the usual moving averages,
    bias-corrected at step t; p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps).
    """

    def __init__(self, params: Iterable[Value], lr: float = 1e-3,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params)
        self.lr = _nonneg(lr, "learning rate")
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}") from None
        beta1, beta2 = _real(beta1, "beta1"), _real(beta2, "beta2")
        for i, b in enumerate((beta1, beta2)):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"invalid beta parameter at index {i}: {b} (must be in [0, 1))")
        self.betas = (beta1, beta2)
        self.eps = _nonneg(eps, "epsilon value")
        self.weight_decay = _nonneg(weight_decay, "weight_decay")
        n = len(self.params)
        self._m = array("d", bytes(8 * n))
        self._v = array("d", bytes(8 * n))
        self.t = 0  # steps taken

    def step(self) -> None:
        """step() -> None: one Adam update of every parameter (one engine call)."""
        lr = _nonneg(self.lr, "learning rate")
        self.t += 1
        _impl._adam_step(self._pack, lr, self.betas[0], self.betas[1], self.eps,
                         self.weight_decay, self._m, self._v, self.t)

    def __repr__(self) -> str:
        return (f"Adam({len(self.params)} params, lr={self.lr}, betas={self.betas}, "
                f"eps={self.eps}, weight_decay={self.weight_decay})")
