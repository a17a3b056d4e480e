"""Losses built from engine ops: mse, hinge (upstream demo's), cross_entropy, l2."""
from __future__ import annotations

import numbers
import operator
from typing import Any, List, Sequence, Tuple

from micrograd.engine import Value, _impl

__all__ = ["mse", "hinge", "cross_entropy", "l2"]


def _seq(x: Any, name: str) -> List[Any]:
    # one Value or number stands for a sequence of one (a list skips the ABC check, ~270 ns)
    if type(x) is list:
        return list(x)
    if isinstance(x, Value) or isinstance(x, numbers.Real):
        return [x]
    try:
        return list(x)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of Values or numbers, "
                        f"not {type(x).__name__!r}") from None


def _pair(a: Any, b: Any, an: str, bn: str) -> Tuple[List[Any], List[Any]]:
    a, b = _seq(a, an), _seq(b, bn)
    if len(a) != len(b):
        raise ValueError(f"{an} and {bn} differ in length: {len(a)} != {len(b)}")
    if not a:
        raise ValueError(f"{an} is empty")
    return a, b


def _value(x: Any, name: str) -> Value:
    if isinstance(x, Value):
        return x
    if isinstance(x, numbers.Real) and not isinstance(x, bool):
        return Value(x)
    raise TypeError(f"{name} must hold Values or numbers, not {type(x).__name__!r}")


def _target(x: Any) -> Any:
    # numbers stay numbers: p - 2.0 makes fewer nodes than p - Value(2.0), with the same bits
    if isinstance(x, Value) or type(x) is float:  # (a float skips the ABC check, ~270 ns)
        return x
    if isinstance(x, numbers.Real) and not isinstance(x, bool):
        return float(x)
    raise TypeError(f"targets must hold Values or numbers, not {type(x).__name__!r}")


def _sum(values: List[Value]) -> Value:
    # builtin sum()'s graph, 0 + v[0] + v[1] + ..., spelled so that its type is Value (typeshed
    # types sum() of Values as `Value | int`, for the empty sum); values is never empty here
    return sum(values[1:], 0 + values[0])


def mse(predictions: Any, targets: Any) -> Value:
    """mse(predictions, targets) -> Value: mean((p - t)**2) over the pairs.

    Either side may hold Values or numbers (a single one counts as a sequence of one).
    The squares are summed in one fused node, so the graph stays small.
    """
    ps, ts = _pair(predictions, targets, "predictions", "targets")
    diffs = [_value(p, "predictions") - _target(t) for p, t in zip(ps, ts)]
    return _impl._dot(Value(0.0), diffs, diffs) * (1.0 / len(diffs))


def hinge(scores: Any, labels: Any) -> Value:
    """hinge(scores, labels) -> Value: mean(relu(1 - y*s)), upstream demo's max-margin loss.

    labels are -1 or +1 (0/1 labels become these with 2*y - 1). The graph is upstream's
    ``sum((1 + -y*s).relu() ...) * (1.0 / n)``, so the numbers match it bit for bit.
    """
    ss, ys = _pair(scores, labels, "scores", "labels")
    for y in ys:
        if isinstance(y, Value) or not isinstance(y, numbers.Real) or y not in (-1, 1):
            raise ValueError(f"hinge labels must be -1 or +1, got {y!r} (use 2*y - 1 for 0/1 labels)")
    losses = [(1 + -int(y) * _value(s, "scores")).relu() for s, y in zip(ss, ys)]
    return _sum(losses) * (1.0 / len(losses))


def cross_entropy(logits: Sequence[Any], target_index: int) -> Value:
    """cross_entropy(logits, target_index) -> Value: -log softmax(logits)[target_index].

    Computed as m + log(sum(exp(l - m))) - l[target] with m = max(l) held as a constant,
    so logits of 1000 or more do not overflow; the gradient is softmax - onehot exactly.
    """
    ls = [_value(v, "logits") for v in _seq(logits, "logits")]
    if not ls:
        raise ValueError("logits is empty")
    try:
        t = operator.index(target_index)
    except TypeError:
        raise TypeError(f"target_index must be an int, not {type(target_index).__name__!r}") from None
    if not 0 <= t < len(ls):
        raise IndexError(f"target_index {t} out of range for {len(ls)} logits")
    m = max(v.data for v in ls)
    total = _sum([(v - m).exp() for v in ls])
    return total.log() + m - ls[t]


def l2(params: Sequence[Value]) -> Value:
    """l2(params) -> Value: sum(p*p for p in params) as one fused node (upstream demo's reg).

    Same bits as upstream's ``sum(p*p for p in params)``; multiply by alpha yourself.
    """
    ps = list(params)
    for p in ps:
        if not isinstance(p, Value):
            raise TypeError(f"params must be Values, not {type(p).__name__!r}")
    return _impl._dot(Value(0.0), ps, ps)
