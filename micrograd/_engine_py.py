"""The pure-Python engine: the readable statement of the semantics and the test oracle."""
from __future__ import annotations

import heapq
import itertools
import math
import numbers
from array import array
from typing import Any, Callable, Iterable, Optional, Sequence, Union

IMPLEMENTATION = "python"

Number = Union[int, float]
_grad_enabled = [True]


def _num(x: Any, what: str = "Value data") -> float:
    # Real numbers only (bool, int, float, numpy scalars, Fraction); never str or complex.
    if type(x) is float:
        return x
    if isinstance(x, numbers.Real) and not isinstance(x, (str, bytes)):
        return float(x)
    raise TypeError(f"{what} must be a real number, not {type(x).__name__!r}")


def _check_label(label: Any) -> None:
    if not isinstance(label, str):
        raise TypeError(f"label must be a str, not {type(label).__name__!r}")


def _fpow(x: float, y: float) -> float:
    """x ** y with Python float semantics, except that a complex result is a ValueError."""
    if x < 0 and math.isfinite(x) and math.isfinite(y) and y != math.floor(y):
        raise ValueError("negative number cannot be raised to a fractional power")
    r: float = x ** y  # ZeroDivisionError for 0**-1, OverflowError on overflow, as float does
    return r


def _is_odd_integer(y: float) -> bool:
    return math.isfinite(y) and y == math.floor(y) and math.fmod(y, 2.0) != 0.0


def _bpow(x: float, y: float) -> float:
    """x ** y as C's pow() gives it: used in backward, which never raises on math."""
    try:
        r = x ** y
    except ZeroDivisionError:  # pow(+-0, y<0)
        return math.copysign(math.inf, x) if _is_odd_integer(y) else math.inf
    except OverflowError:
        return -math.inf if (x < 0 and _is_odd_integer(y)) else math.inf
    return math.nan if isinstance(r, complex) else r


def _blog(x: float, out: float) -> float:
    """d(x**y)/dy = x**y * ln x, with the limit 0 at x == 0 and nan for x < 0."""
    if x > 0:
        return out * math.log(x)
    if x == 0:
        return 0.0
    return math.nan


def _brecip(x: float) -> float:
    """1 / x as C divides (backward never raises): +-inf at +-0."""
    return math.copysign(math.inf, x) if x == 0 else 1.0 / x


def _bdiv(x: float, y: float) -> float:
    """x / y as C divides (backward never raises): +-inf at +-0, nan for 0/0."""
    if y == 0:
        return math.nan if x == 0 or x != x else math.copysign(math.inf, x) * math.copysign(1.0, y)
    return x / y


def _math(f: Callable[[float], float], name: str, x: float) -> float:
    """f(x), its math errors worded as the compiled engine words them."""
    try:
        return f(x)
    except OverflowError:
        raise OverflowError(f"{name}({x!r}) is too large for a float (math range error)") from None
    except ValueError:
        raise ValueError(f"{name}({x!r}) is outside the domain of {name} (math domain error)") from None


def _recip(x: float) -> float:
    """1 / x for a division: ZeroDivisionError as float division words it."""
    if x == 0:
        raise ZeroDivisionError("float division by zero")
    return _fpow(x, -1.0)


def _exp(x: float) -> float:
    return math.exp(x)  # OverflowError past ~709.78, as Python's math.exp


def _sigmoid(x: float) -> float:
    # never overflows: exp of a non-positive number only
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _noop() -> None:
    return None


_made = itertools.count()  # numbers every Value in the order it was made (Value._seq)


class Value:
    """ stores a single scalar value and its gradient """

    __slots__ = ("data", "grad", "label", "_children", "_op", "_backward", "_seq", "_local",
                 "__dict__", "__weakref__")  # __dict__: ad-hoc attributes, as upstream

    def __init__(self, data: Any, _children: Iterable["Value"] = (), _op: Any = "", label: Any = "",
                 *, children: Iterable["Value"] | None = None,
                 local_grads: Iterable[Any] | None = None) -> None:
        data = _num(data)
        _check_label(label)  # before anything changes (this may be __init__ run again)
        if children is not None:
            _children = children
        if not isinstance(_op, str):
            if local_grads is not None or not isinstance(_op, (tuple, list)):
                raise TypeError(f"_op must be a str, not {type(_op).__name__!r}")
            local_grads, _op = _op, ""  # microgpt's Value(data, children, local_grads)
        children = tuple(_children)
        for c in children:
            if not isinstance(c, Value):
                raise TypeError(f"_children must be Values, not {type(c).__name__!r}")
        grads = None
        if local_grads is not None:
            grads = tuple(_num(x, "a local grad") for x in local_grads)
            if len(grads) != len(children):
                raise ValueError(f"got {len(children)} children but {len(grads)} local grads")
        if children and _grad_enabled[0] and hasattr(self, "_seq"):
            _refuse_cycle(self, children)  # __init__ run again: nothing changed yet
        self.data = data
        self.grad = 0.0
        # internal variables used for autograd graph construction
        self._children = children if _grad_enabled[0] else ()
        self._op = _op
        self.label = label
        self._backward: Callable[[], None] = _noop
        self._seq = next(_made)  # creation order: children always come before their parents
        self._local = grads if self._children else None
        if self._local is not None:
            out = self

            def _backward() -> None:
                for child, local_grad in zip(out._children, grads or ()):
                    child.grad += local_grad * out.grad
            self._backward = _backward

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "data" or name == "grad":
            value = _num(value, name)
        elif name == "label":
            _check_label(value)
        elif name == "_backward" and not callable(value):
            raise TypeError(f"_backward must be callable, not {type(value).__name__!r}")
        object.__setattr__(self, name, value)

    @property
    def _prev(self) -> set["Value"]:
        return set(self._children)

    @property
    def _local_grads(self) -> tuple[float, ...] | None:
        """The local grads given as Value(data, children, local_grads), a tuple of floats; () on a
        leaf; None on other op nodes (their rule is their op's)."""
        if not self._children:
            return ()
        return self._local

    @staticmethod
    def _result(data: float, children: tuple[Value, ...], op: str) -> "Value":
        # a node made by an op: a leaf under no_grad
        out = Value.__new__(Value)
        object.__setattr__(out, "data", data)
        object.__setattr__(out, "grad", 0.0)
        object.__setattr__(out, "label", "")
        object.__setattr__(out, "_backward", _noop)
        object.__setattr__(out, "_seq", next(_made))
        object.__setattr__(out, "_local", None)
        if _grad_enabled[0]:
            object.__setattr__(out, "_children", children)
            object.__setattr__(out, "_op", op)
        else:
            object.__setattr__(out, "_children", ())
            object.__setattr__(out, "_op", "")
        return out

    def __add__(self, other: Any) -> "Value":
        if not isinstance(other, Value):
            if not _is_real(other):
                return NotImplemented
            other = Value(other)
        out = Value._result(self.data + other.data, (self, other), "+")

        def _backward() -> None:
            self.grad += out.grad
            other.grad += out.grad
        if out._children:
            out._backward = _backward

        return out

    def __mul__(self, other: Any) -> "Value":
        if not isinstance(other, Value):
            if not _is_real(other):
                return NotImplemented
            other = Value(other)
        out = Value._result(self.data * other.data, (self, other), "*")

        def _backward() -> None:
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        if out._children:
            out._backward = _backward

        return out

    def __pow__(self, other: Any) -> "Value":
        if isinstance(other, Value):
            return self._pow_value(other)
        if not _is_real(other):
            return NotImplemented
        k = _num(other)
        out = Value._result(_fpow(self.data, k), (self,), f"**{other}")

        def _backward() -> None:
            self.grad += (k * _bpow(self.data, k - 1.0)) * out.grad
        if out._children:
            out._backward = _backward

        return out

    def _pow_value(self, other: "Value") -> "Value":
        out = Value._result(_fpow(self.data, other.data), (self, other), "**")

        def _backward() -> None:
            self.grad += (other.data * _bpow(self.data, other.data - 1.0)) * out.grad
            other.grad += _blog(self.data, out.data) * out.grad
        if out._children:
            out._backward = _backward

        return out

    def __rpow__(self, other: Any) -> "Value":  # other ** self
        if not _is_real(other):
            return NotImplemented
        return Value(other)._pow_value(self)

    def relu(self) -> "Value":
        """ReLU: max(0, x); the gradient at 0 is 0, as upstream."""
        out = Value._result(0.0 if self.data < 0 else self.data, (self,), "ReLU")

        def _backward() -> None:
            self.grad += out.grad if out.data > 0 else 0.0
        if out._children:
            out._backward = _backward

        return out

    def tanh(self) -> "Value":
        """Hyperbolic tangent."""
        out = Value._result(math.tanh(self.data), (self,), "tanh")

        def _backward() -> None:
            self.grad += (1.0 - out.data * out.data) * out.grad
        if out._children:
            out._backward = _backward

        return out

    def exp(self) -> "Value":
        """e ** x; raises OverflowError past ~709.78, like math.exp."""
        out = Value._result(_math(_exp, "exp", self.data), (self,), "exp")

        def _backward() -> None:
            self.grad += out.data * out.grad
        if out._children:
            out._backward = _backward

        return out

    def log(self) -> "Value":
        """Natural logarithm; raises ValueError for x <= 0, like math.log."""
        out = Value._result(_math(math.log, "log", self.data), (self,), "log")

        def _backward() -> None:
            self.grad += _brecip(self.data) * out.grad
        if out._children:
            out._backward = _backward

        return out

    def sigmoid(self) -> "Value":
        """Logistic sigmoid 1 / (1 + e**-x), computed without overflow."""
        out = Value._result(_sigmoid(self.data), (self,), "sigmoid")

        def _backward() -> None:
            self.grad += (out.data * (1.0 - out.data)) * out.grad
        if out._children:
            out._backward = _backward

        return out

    def sqrt(self) -> "Value":
        """Square root; raises ValueError for x < 0, like math.sqrt."""
        out = Value._result(_math(math.sqrt, "sqrt", self.data), (self,), "sqrt")

        def _backward() -> None:
            self.grad += _bdiv(0.5, out.data) * out.grad
        if out._children:
            out._backward = _backward

        return out

    def backward(self) -> None:
        """Backpropagate from this node: self.grad = 1, then every reachable node adds its part."""
        # children are always made before their parents, so taking the reachable nodes newest
        # first is a topological order (a heap, so depth is unbounded); leaves have no rule,
        # except one the user gave a _backward: those run last, in the order they were reached.
        # The whole order is taken before any rule runs, as upstream's topo and the compiled
        # engine's scan: a rule that changes the graph (re-initialises a node) changes what
        # later passes reach, not this one
        self.grad = 1.0
        if not self._children:
            self._backward()
            return
        marked = {self}
        heap = [(-self._seq, self)]
        order = []
        late = []
        while heap:
            v = heapq.heappop(heap)[1]
            order.append(v)
            for child in v._children:
                if child not in marked:
                    marked.add(child)
                    if child._children:
                        heapq.heappush(heap, (-child._seq, child))
                    elif child._backward is not _noop:
                        late.append(child)
        for v in order:
            v._backward()
        for v in late:
            v._backward()

    def __neg__(self) -> "Value":  # -self
        return self * -1

    def __radd__(self, other: Any) -> "Value":  # other + self
        if not _is_real(other):
            return NotImplemented  # Python's own error then names the operands in order
        out: Value = self + other  # (other is Any to mypy, and so would be the sum)
        return out

    def __sub__(self, other: Any) -> "Value":  # self - other
        if not isinstance(other, Value):
            if not _is_real(other):
                return NotImplemented
            other = _num(other)
        out: Value = self + (-other)
        return out

    def __rsub__(self, other: Any) -> "Value":  # other - self
        if not _is_real(other):
            return NotImplemented
        other = _num(other)  # before -self reads self.data
        out: Value = (-self) + other
        return out

    def __rmul__(self, other: Any) -> "Value":  # other * self
        if not _is_real(other):
            return NotImplemented
        out: Value = self * other
        return out

    def __truediv__(self, other: Any) -> "Value":  # self / other
        if isinstance(other, Value):
            _recip(other.data)
            return self * other ** -1
        if not _is_real(other):
            return NotImplemented
        return self * _recip(_num(other))

    def __rtruediv__(self, other: Any) -> "Value":  # other / self
        if not _is_real(other):
            return NotImplemented
        other = _num(other)  # operands are converted before any math is checked
        _recip(self.data)
        out: Value = self ** -1 * other
        return out

    def __repr__(self) -> str:
        return f"Value(data={self.data!r}, grad={self.grad!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # a Value pickles as a leaf: its data, grad, label and attributes (the graph is not saved)
        if self.__dict__:
            return (_rebuild, (self.data, self.grad, self.label), dict(self.__dict__))
        return (_rebuild, (self.data, self.grad, self.label))

    def __setstate__(self, state: Any) -> None:
        """The attributes of a pickled Value (set one by one, as v.name = value would)."""
        if not isinstance(state, dict):
            raise TypeError(f"a Value's pickled state is a dict of attributes, not {type(state).__name__!r}")
        for k, x in state.items():
            setattr(self, k, x)


def _rebuild(data: float, grad: float, label: Any) -> Value:
    """A leaf Value with this data, grad and label: how a pickled Value comes back."""
    v = Value(data, label=label)
    v.grad = grad
    return v


def _is_real(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, (str, bytes))


def _refuse_cycle(target: "Value", children: tuple[Value, ...]) -> None:
    """ValueError if target is below children: __init__ run again with them would make a Value
    its own descendant (the compiled engine's counts could never free such a cycle)."""
    stack, seen = list(children), set()
    while stack:
        v = stack.pop()
        if v is target:
            raise ValueError("a Value cannot become its own descendant: the new children "
                             "already depend on it")
        if id(v) not in seen:
            seen.add(id(v))
            stack.extend(v._children)


class _NoGrad:
    """no_grad()'s context manager; one object may be entered again, nested or not."""

    def __init__(self) -> None:
        self.saved: list[bool] = []  # the mode at each __enter__ not yet exited

    def __enter__(self) -> None:
        self.saved.append(_grad_enabled[0])
        _grad_enabled[0] = False

    def __exit__(self, *exc: Any) -> None:
        if self.saved:  # an __exit__ with no __enter__ changes nothing
            _grad_enabled[0] = self.saved.pop()


def no_grad() -> _NoGrad:
    """Within this block, ops compute data but record no graph (results are leaves)."""
    return _NoGrad()


def is_grad_enabled() -> bool:
    """True unless inside no_grad()."""
    return _grad_enabled[0]


# ---- fused kernels used by micrograd.nn and micrograd.optim ----------------------------------

#: The built-in ops a graph can show: (name, _op text, children; -1 for n-ary ones). The
#: compiled engine makes the same list from its op table; a test holds the two to each other.
_OPS = (
    ("add", "+", 2), ("mul", "*", 2), ("powc", "**", 1), ("pow", "**", 2),
    ("relu", "ReLU", 1), ("tanh", "tanh", 1), ("exp", "exp", 1), ("log", "log", 1),
    ("sigmoid", "sigmoid", 1), ("sqrt", "sqrt", 1), ("dot", "dot", -1),
)

# The activations a layer may apply (linear: none); micrograd.nn lists these names.
_ACTS: dict[str, Optional[Callable[[Value], Value]]] = {"relu": Value.relu, "tanh": Value.tanh, "sigmoid": Value.sigmoid, "linear": None}
_ACTIVATIONS = tuple(_ACTS)


def _as_value(x: Any) -> Value:
    if isinstance(x, Value):
        return x
    if not _is_real(x):
        raise TypeError(f"inputs must be Values or real numbers, not {type(x).__name__!r}")
    return Value(x)


def _dot(b: Value, w: Sequence[Value], x: Sequence[Value]) -> Value:
    """One node: b + w[0]*x[0] + w[1]*x[1] + ..., summed left to right as upstream's Neuron."""
    return _layer((w,), (b,), x, "linear")[0]


def _dot_node(b: Value, w: Sequence[Value], x: Sequence[Value]) -> Value:
    acc = b.data
    for wi, xi in zip(w, x):
        acc = acc + wi.data * xi.data
    children = [b]
    for wi, xi in zip(w, x):
        children.append(wi)
        children.append(xi)
    out = Value._result(acc, tuple(children), "dot")

    def _backward() -> None:
        g = out.grad
        b.grad += g
        for wi, xi in zip(w, x):
            wi.grad += xi.data * g
            xi.grad += wi.data * g
    if out._children:
        out._backward = _backward
    return out


def _layer(ws: Sequence[Sequence[Value]], bs: Optional[Sequence[Value]], x: Sequence[Any],
           act: str) -> list[Value]:
    """A whole layer: [act(b_j + sum_i w_ji x_i) for each neuron j], a dot node each (bs None: 0.0)."""
    if act not in _ACTS:
        raise ValueError(f"unknown activation {act!r}; expected one of {sorted(_ACTS)}")
    if bs is None:
        bs = [Value(0.0)] * len(ws)
    if len(ws) != len(bs):
        raise ValueError(f"got {len(ws)} weight rows but {len(bs)} biases")
    # a tuple of our own first: an input's __float__ may run code that changes the caller's list
    xs = [_as_value(xi) for xi in tuple(x)]
    out = []
    for w, b in zip(ws, bs):
        if len(w) != len(xs):
            raise ValueError(f"expected {len(w)} inputs, got {len(xs)}")
        w = list(w)
        for wi in w:
            if not isinstance(wi, Value):
                raise TypeError(f"weights must be Values, not {type(wi).__name__!r}")
        if not isinstance(b, Value):
            raise TypeError(f"biases must be Values, not {type(b).__name__!r}")
        out.append(_dot_node(b, w, xs))
    fn = _ACTS[act]
    if fn is not None:  # the activations after every dot node, in the compiled engine's order
        out = [fn(v) for v in out]
    return out


def _rows(ws: Sequence[Sequence[Value]], bs: Sequence[Value]) -> tuple[Any, ...]:
    """A layer's weight rows (sequences of Values) and biases, packed once for _layer_rows."""
    ws, bs = tuple(ws), tuple(bs)
    if len(ws) != len(bs):
        raise ValueError(f"got {len(ws)} weight rows but {len(bs)} biases")
    for b in bs:
        if not isinstance(b, Value):
            raise TypeError(f"biases must be Values, not {type(b).__name__!r}")
    return ws, bs


def _layer_rows(rows: tuple[Any, ...], x: Sequence[Any], act: str) -> list[Value]:
    """_layer over rows made by _rows; a row edited since (w[i] = ...) is seen and packed again."""
    return _layer(rows[0], rows[1], x, act)


def _mlp_rows(rows: tuple[Any, ...], acts: tuple[str, ...], x: Sequence[Any]) -> list[Value]:
    """MLP.__call__'s layers in one call: rows[k] with acts[k], each one's outputs the next's inputs."""
    # (the compiled engine links the hidden nodes without handles; here they are Values)
    if not rows or len(acts) != len(rows):
        raise ValueError(f"got {len(rows)} layers of rows but {len(acts)} activations")
    out: Sequence[Any] = x
    for (ws, bs), act in zip(rows, acts):
        out = _layer(ws, bs, out, act)
    return list(out)


def _params_check(params: Sequence[Value]) -> None:
    for p in params:
        if not isinstance(p, Value):
            raise TypeError(f"parameters must be Values, not {type(p).__name__!r}")


def _pack(params: Iterable[Value]) -> tuple[Value, ...]:
    """The parameters, checked once, for the optimizer kernels (_zero_grad, _sgd_step, _adam_step)."""
    ps = tuple(params)
    _params_check(ps)
    return ps


def _zero_grad(params: Sequence[Value]) -> None:
    """Set .grad = 0.0 on every Value of the sequence (or of a _pack)."""
    _params_check(params)
    for p in params:
        p.grad = 0.0


def _sgd_step(params: Sequence[Value], lr: float, momentum: float, weight_decay: float,
              buf: array[float], started: bool) -> None:
    """PyTorch's SGD: g = grad + wd*p; buf = g (first step) or momentum*buf + g; p -= lr*buf."""
    _params_check(params)
    for i, p in enumerate(params):
        g = p.grad
        if weight_decay != 0.0:
            g = g + weight_decay * p.data
        if momentum != 0.0:
            if started:
                g = momentum * buf[i] + g
            buf[i] = g
        p.data = p.data - lr * g


def _over_zero(x: float) -> float:
    """x / +0.0 as IEEE 754 (and the compiled engine) has it, where Python raises: NaN for a
    zero or NaN x, else an infinity of x's sign (Adam with eps=0 and a zero second moment)."""
    if x == 0.0 or x != x:
        return math.nan
    return math.copysign(math.inf, x)


def _adam_step(params: Sequence[Value], lr: float, beta1: float, beta2: float, eps: float,
               weight_decay: float, m: array[float], v: array[float], t: int) -> None:
    """PyTorch's Adam (L2 weight decay added to the gradient), bias-corrected, step t >= 1."""
    _params_check(params)
    bc1 = 1.0 - beta1 ** t
    bc2 = 1.0 - beta2 ** t
    step = lr / bc1
    bc2_sqrt = math.sqrt(bc2)
    for i, p in enumerate(params):
        g = p.grad
        if weight_decay != 0.0:
            g = g + weight_decay * p.data
        m[i] = beta1 * m[i] + (1.0 - beta1) * g
        v[i] = beta2 * v[i] + (1.0 - beta2) * (g * g)
        denom = math.sqrt(v[i]) / bc2_sqrt + eps
        p.data = p.data - step * (m[i] / denom if denom != 0.0 else _over_zero(m[i]))


def _live_nodes() -> int:
    """Not tracked by the pure engine (Python's allocator owns its objects)."""
    return -1
