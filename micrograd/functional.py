"""Whole-list ops for scalar programs: each one engine call, with the numbers of the formula it replaces.

    import micrograd.functional as F
    logits = F.linear(x, w)          # [sum(wi * xi for wi, xi in zip(row, x)) for row in w]
    probs = F.softmax(logits)

A microgpt-style script spends most of its time in Python: generators, list comprehensions, one
interpreter dispatch per scalar op. Swapping its helpers for these, line by line, keeps every
number (each docstring shows the formula a function equals) and does the work in C:

- `linear` and `dot` are the layer kernel (one fused node per row, as `Neuron`): the data are
  bit for bit those of the formula, the gradients too (up to the order in which a Value used
  twice accumulates);
- `softmax`, `log_softmax` and `rmsnorm` are fused (compiled engine): one node per output, each
  over the whole input list, whose data are the formula's bit for bit and whose backward, one C
  rule for the group, sends the inputs the formula's gradients bit for bit (it replays the rules
  of the formula's nodes, in their order). An output's `_op` is `'softmax'`, `'log_softmax'` or
  `'rmsnorm'`, its `_children`/`_prev` are the inputs, its `_local_grads` the derivatives with
  respect to each of them (from the data as they are now), and its `_backward()` called by
  hand sends the inputs its own part. The formula's intermediate nodes (the exps, the sum, ...)
  do not exist, so they have no grads to pile up over repeated `backward()` calls: a second
  pass over the same graph adds what the outputs' grads say, as a single op would;
- `sum`, `relu`, `tanh` and `sigmoid` build, in one call, the very nodes the formula builds
  with scalar ops (one per result for the activations): data and gradients are its own.

The pure engine (MICROGRAD_NO_EXTENSIONS=1) builds the formulas' own nodes: it is the reference.

Inputs may mix Values and real numbers (a number is a constant: a leaf nobody reads the grad
of). `no_grad()` is honoured. Both engines give the same bits.
"""
from __future__ import annotations

import builtins
import numbers
from typing import Any, Callable, List, Optional, Sequence, cast

from micrograd.engine import Value, _impl
from micrograd.losses import cross_entropy

__all__ = ["linear", "dot", "sum", "softmax", "log_softmax", "rmsnorm", "relu", "tanh",
           "sigmoid", "attention", "cross_entropy", "forget"]

_COMPILED = hasattr(_impl, "_f_softmax")
_ACTS = frozenset(_impl._ACTIVATIONS)  # what a Layer's kernel applies: relu, tanh, sigmoid, linear
if _COMPILED:  # bound once: each call below is then one lookup and one C call
    _f_linear: Callable[[Any, Any, Optional[str]], List[Value]] = _impl._f_linear
    _f_softmax: Callable[[Any], List[Value]] = _impl._f_softmax
    _f_log_softmax: Callable[[Any], List[Value]] = _impl._f_log_softmax
    _f_rmsnorm: Callable[[Any, float], List[Value]] = _impl._f_rmsnorm
    _f_map: Callable[[Any, str], List[Value]] = _impl._f_map
    _f_sum: Callable[[Any, Any], Value] = _impl._f_sum
    _f_attention: Callable[[Any, Any, Any, int], Optional[List[Value]]] = _impl._f_attention


def _values(xs: Any, what: str) -> List[Value]:
    """The sequence as Values, from a tuple of its own (a number's __float__ may run code that
    changes the caller's list); Values are only kept here, never read."""
    out = []
    for x in tuple(xs):
        if not isinstance(x, Value):
            if not isinstance(x, numbers.Real):
                raise TypeError(f"{what} must be Values or real numbers, not {type(x).__name__!r}")
            x = Value(x)
        out.append(x)
    return out


def _rows(w: Any, what: str) -> List[List[Any]]:
    rows = [list(row) for row in w]  # copies: numbers in them become Values here
    for j, row in enumerate(rows):
        if len(row) != len(rows[0]):
            raise ValueError(f"{what}: row {j} of w has {len(row)} elements, row 0 has {len(rows[0])}")
        for i, wi in enumerate(row):
            if not isinstance(wi, Value):
                if not isinstance(wi, numbers.Real):
                    raise TypeError(f"{what}: w must hold Values or real numbers, "
                                    f"not {type(wi).__name__!r}")
                row[i] = Value(wi)
    return rows


def linear(x: Sequence[Any], w: Sequence[Sequence[Any]], b: Optional[Sequence[Any]] = None,
           act: Optional[str] = None) -> List[Value]:
    """linear(x, w, b=None, act=None) -> [sum(wi * xi for wi, xi in zip(row, x)) for row in w].

    With b: ``sum((wi * xi ...), b[j])`` for row j, as `Neuron` computes. One fused node per
    row. Also the attention products: ``linear(q, keys)`` is the logits, ``linear(weights,
    columns)`` (columns[j] = [v[j] for v in values]) the weighted sum of the values.

    act ("relu", "tanh" or "sigmoid"): ``[s.relu() for s in linear(x, w, b)]`` and so on, the
    same numbers as ``F.relu(F.linear(x, w, b))`` in one call, as a `Layer` computes; the row
    sums then get no Value of their own. None (or "linear"): the sums themselves.
    """
    if act is not None and (type(act) is not str or act not in _ACTS):
        raise ValueError(f"linear: unknown activation {act!r}; expected one of "
                         f"{sorted(_ACTS - {'linear'})} or None")
    xs = x if type(x) is tuple or type(x) is list else tuple(x)
    if b is None and _COMPILED and type(w) is list:
        try:  # the common case in one call (the kernel checks the shapes as it packs)
            return _f_linear(w, xs, act)
        except (TypeError, ValueError):
            pass  # numbers in w, or a bad shape: the slow way below says which
    xs = tuple(xs)
    if type(w) is not list and type(w) is not tuple:
        w = list(w)
    nout = len(w)
    if b is None:
        bs = None  # the kernel sums from one leaf of 0.0
    else:
        bs = _values(b, "biases")
        if len(bs) != nout:
            raise ValueError(f"linear: w has {nout} rows but b has {len(bs)} elements")
    if nout and len(w[0]) != len(xs):
        raise ValueError(f"linear: w is {nout}x{len(w[0])} but x has {len(xs)} elements")
    code = act or "linear"
    try:
        if bs is None and _COMPILED:
            return _f_linear(w, xs, act)  # (keeps the packing of a matrix of leaves)
        return _impl._layer(w, bs, xs, code)  # the kernel checks the rows as it packs them
    except (TypeError, ValueError):
        rows = _rows(w, "linear")  # numbers in w, or rows of different lengths: say which
        return _impl._layer(rows, bs, xs, code)


def forget() -> None:
    """forget() -> None: let go of the weight matrices `linear` keeps packed.

    On the compiled engine, `linear` keeps the packing of each matrix of plain leaves it is
    called with (the newest 64), and with it the matrix itself, so that the next call with the
    same list need not link its weights again. A program that drops a matrix and wants its
    memory (and its Values' graphs) back at once calls this; the next `linear` call with a
    kept matrix only packs it again. The pure engine keeps nothing: there it does nothing.
    """
    if _COMPILED:
        _impl._f_forget()


def dot(w: Sequence[Any], x: Sequence[Any]) -> Value:
    """dot(w, x) -> sum(wi * xi for wi, xi in zip(w, x)), one fused node."""
    w, x = list(w), tuple(x)
    if len(w) != len(x):
        raise ValueError(f"dot: w has {len(w)} elements but x has {len(x)}")
    return linear(x, [w])[0]


def sum(values: Sequence[Any], start: Any = 0) -> Value:
    """sum(values, start=0) -> start + v0 + v1 + ..., the nodes built-in sum() makes.

    Always a Value (of start, when values is empty), unlike built-in sum() of numbers.
    """
    if _COMPILED:
        return _f_sum(values, start)
    vs = _values(values, "values")
    if not isinstance(start, Value):
        if not isinstance(start, numbers.Real):
            raise TypeError(f"start must be a Value or a real number, not {type(start).__name__!r}")
        start = float(start)
    if not vs:
        return start if isinstance(start, Value) else Value(start)
    acc: Any = start
    for v in vs:
        acc = acc + v
    return cast(Value, acc)


def softmax(logits: Sequence[Any]) -> List[Value]:
    """softmax(logits) -> [e / total for e in exps], the max-subtracted form:

        top = max(v.data for v in logits)
        exps = [(v - top).exp() for v in logits]
        total = sum(exps)
    """
    if _COMPILED:
        return _f_softmax(logits)
    vs = _values(logits, "logits")
    if not vs:
        raise ValueError("softmax of an empty sequence")
    top = max(v.data for v in vs)
    exps = [(v - top).exp() for v in vs]
    total = builtins.sum(exps)
    return [e / total for e in exps]


def log_softmax(logits: Sequence[Any]) -> List[Value]:
    """log_softmax(logits) -> [s - lse for s in shifted]:

        top = max(v.data for v in logits)
        shifted = [v - top for v in logits]
        lse = sum(s.exp() for s in shifted).log()
    """
    if _COMPILED:
        return _f_log_softmax(logits)
    vs = _values(logits, "logits")
    if not vs:
        raise ValueError("log_softmax of an empty sequence")
    top = max(v.data for v in vs)
    shifted = [v - top for v in vs]
    lse = cast(Value, builtins.sum([s.exp() for s in shifted])).log()
    return [s - lse for s in shifted]


def rmsnorm(x: Sequence[Any], eps: float = 1e-5) -> List[Value]:
    """rmsnorm(x, eps=1e-5) -> [xi * scale for xi in x]:

        ms = sum(xi * xi for xi in x) / len(x)
        scale = (ms + eps) ** -0.5
    """
    if _COMPILED and type(eps) is float:
        return _f_rmsnorm(x, eps)
    if not isinstance(eps, numbers.Real) or isinstance(eps, Value):
        raise TypeError(f"eps must be a real number, not {type(eps).__name__!r}")
    if _COMPILED:
        return _f_rmsnorm(x, float(eps))
    vs = _values(x, "inputs")
    if not vs:
        raise ValueError("rmsnorm of an empty sequence")
    ms = builtins.sum([xi * xi for xi in vs]) / len(vs)
    scale = (ms + float(eps)) ** -0.5
    return [xi * scale for xi in vs]


def _map(xs: Sequence[Any], act: str) -> List[Value]:
    if _COMPILED:
        return _f_map(xs, act)
    return [getattr(v, act)() for v in _values(xs, "inputs")]


def relu(xs: Sequence[Any]) -> List[Value]:
    """relu(xs) -> [v.relu() for v in xs]."""
    return _map(xs, "relu")


def tanh(xs: Sequence[Any]) -> List[Value]:
    """tanh(xs) -> [v.tanh() for v in xs]."""
    return _map(xs, "tanh")


def sigmoid(xs: Sequence[Any]) -> List[Value]:
    """sigmoid(xs) -> [v.sigmoid() for v in xs]."""
    return _map(xs, "sigmoid")


def attention(q: Sequence[Any], keys: Sequence[Sequence[Any]], values: Sequence[Sequence[Any]],
              n_head: int) -> List[Value]:
    """attention(q, keys, values, n_head) -> the heads' outputs, one list of len(q).

    Scaled dot-product attention of one query over a KV cache (keys[t], values[t]: the
    positions so far, each as long as q), head by head, as microgpt-style scripts write it:

        hd = len(q) // n_head
        for h in range(n_head):
            lo, hi = h * hd, (h + 1) * hd
            logits = [s / hd ** 0.5 for s in linear(q[lo:hi], [k[lo:hi] for k in keys])]
            weights = softmax(logits)
            out += linear(weights, [[v[j] for v in values] for j in range(lo, hi)])

    The same nodes as that code, data and gradients bit for bit, built in one engine call.
    """
    if isinstance(n_head, bool) or not isinstance(n_head, int):
        raise TypeError(f"n_head must be an int, not {type(n_head).__name__!r}")
    if _COMPILED:
        out = _f_attention(q, keys, values, n_head)
        if out is not None:
            return out
    qs = list(q)
    ks, vs = [list(k) for k in keys], [list(v) for v in values]
    if n_head <= 0 or len(qs) % n_head:
        raise ValueError(f"attention: q has {len(qs)} elements, not a multiple of n_head={n_head}")
    if not ks:
        raise ValueError("attention over no positions: keys is empty")
    if len(vs) != len(ks):
        raise ValueError(f"attention: {len(ks)} keys but {len(vs)} values")
    for what, rows in (("key", ks), ("value", vs)):
        for t, row in enumerate(rows):
            if len(row) != len(qs):
                raise ValueError(f"attention: q has {len(qs)} elements but {what} {t} has {len(row)}")
    hd = len(qs) // n_head
    out = []
    for h in range(n_head):
        lo, hi = h * hd, (h + 1) * hd
        logits = [s / hd ** 0.5 for s in linear(qs[lo:hi], [k[lo:hi] for k in ks])]
        weights = softmax(logits)
        out += linear(weights, [[v[j] for v in vs] for j in range(lo, hi)])
    return out
