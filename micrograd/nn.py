"""Module, Neuron, Layer, MLP: upstream micrograd's nn, run on the engine's fused layer kernel."""
from __future__ import annotations

import numbers
import operator
import random
from itertools import chain
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

from micrograd.engine import Value, _impl

__all__ = ["Module", "Neuron", "Layer", "MLP", "ACTIVATIONS"]

#: The activations a Neuron, Layer or MLP accepts, and the repr prefix of each.
ACTIVATIONS = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid", "linear": "Linear"}

# Bumped whenever a Neuron or Layer attribute is assigned: a Layer's cached kernel arguments
# are valid only while this number is unchanged, so reassigning n.b, n.w, n.nonlin, ... is seen.
_generation = [0]


def _is_real(x: Any) -> bool:
    if type(x) is float or type(x) is int:  # (skips the ABC check, ~270 ns)
        return True
    return isinstance(x, numbers.Real) and not isinstance(x, (str, bytes))


def _as_inputs(x: Any) -> Sequence[Any]:
    # a bare Value or number is a single input: a one-output layer's result feeds the next layer
    if isinstance(x, (list, tuple)):
        return x
    if isinstance(x, Value) or _is_real(x):
        return [x]
    try:
        return list(x)
    except TypeError:
        raise TypeError(
            f"inputs must be a sequence of Values or numbers, not {type(x).__name__!r}"
        ) from None


def _check_count(what: str, nin: int, x: Sequence[Any]) -> None:
    if len(x) != nin:
        raise ValueError(f"{what} expected {nin} inputs, got {len(x)}")


def _pick(value: Any, alias: Any, name: str, alias_name: str, owner: str) -> Any:
    # the seeds spell some arguments differently (input_size=, num_neurons=, ...): accept both
    if value is None and alias is None:
        raise TypeError(f"{owner}() missing required argument {name!r}")
    if value is not None and alias is not None:
        raise TypeError(f"{owner}() got both {name!r} and its alias {alias_name!r}")
    return value if value is not None else alias


def _check_size(n: Any, name: str) -> int:
    try:
        size = operator.index(n)
    except TypeError:
        raise TypeError(f"{name} must be an int, not {type(n).__name__!r}") from None
    if size < 0:
        raise ValueError(f"{name} must be >= 0, got {size}")
    return size


def _check_activation(activation: Any) -> str:
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)}")
    return activation


def _check_dropout(p: Any) -> float:
    if not _is_real(p) or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"dropout must be a probability in [0, 1], got {p!r}")
    return float(p)


def _drop(v: Value, p: float) -> Value:
    """Inverted dropout of one output: zero with probability p, else scaled by 1/(1-p)."""
    if random.random() < p:
        return v * 0.0
    return v * (1.0 / (1.0 - p))


class Module:
    """Base class: parameters(), zero_grad(), train()/eval(), state_dict(), pickling."""

    #: True in training mode (dropout active), False after eval(). New modules train.
    training: bool = True

    def zero_grad(self) -> None:
        """zero_grad() -> None: set .grad = 0.0 on every parameter (one engine call)."""
        _impl._zero_grad(self.parameters())

    def parameters(self) -> List[Value]:
        """parameters() -> list[Value]: the trainable Values, in a fixed order."""
        return []

    def _children(self) -> Iterator[Module]:
        # submodules held directly or in a list/tuple attribute, as Layer.neurons and MLP.layers
        for v in vars(self).values():
            if isinstance(v, Module):
                yield v
            elif isinstance(v, (list, tuple)):
                for item in v:
                    if isinstance(item, Module):
                        yield item

    def train(self, mode: bool = True) -> Module:
        """train(mode=True) -> self: set training mode on this module and every submodule."""
        stack = [self]
        while stack:
            m = stack.pop()
            m.training = bool(mode)
            stack.extend(m._children())
        return self

    def eval(self) -> Module:
        """eval() -> self: inference mode (dropout off); same as train(False)."""
        return self.train(False)

    def _named_parameters(self) -> Dict[str, Any]:
        # key -> a Value, or nested lists of Values; state_dict() has the same shape in floats
        return {"parameters": self.parameters()}

    def state_dict(self) -> Dict[str, Any]:
        """state_dict() -> dict[str, ...]: the parameters' data as plain floats.

        A generic Module saves {"parameters": [floats in parameters() order]}; Neuron, Layer
        and MLP use PyTorch nn.Linear's names and shapes (see MLP's docstring).
        """
        return {k: _map_data(v) for k, v in self._named_parameters().items()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """load_state_dict(state) -> None: set every parameter's .data from a state_dict().

        Keys and shapes must match exactly; nothing is changed unless all of them do.
        Numbers may be floats, ints, numpy scalars or arrays (anything with .tolist()).
        """
        named = self._named_parameters()
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict, not {type(state).__name__!r}")
        missing = [k for k in named if k not in state]
        unexpected = [k for k in state if k not in named]
        if missing or unexpected:
            raise ValueError(f"state_dict keys differ: missing {missing}, unexpected {unexpected}")
        params: List[Value] = []
        values: List[Any] = []
        for key, mine in named.items():
            theirs = state[key]
            if hasattr(theirs, "tolist"):  # numpy arrays and torch tensors
                theirs = theirs.tolist()
            if _shape(mine) != _shape(theirs):
                raise ValueError(f"state_dict[{key!r}] has shape {_shape_str(theirs)}, "
                                 f"expected {_shape_str(mine)}")
            _flatten(mine, params)
            _flatten(theirs, values)
        for v in values:
            if not _is_real(v):
                raise TypeError(f"state_dict values must be numbers, not {type(v).__name__!r}")
        floats = [float(v) for v in values]  # all converted (10**400 raises here) before any is set
        for p, f in zip(params, floats):
            p.data = f

    def __getstate__(self) -> Dict[str, Any]:
        # caches of kernel arguments are rebuilt on first use; never pickle them
        return {k: v for k, v in vars(self).items() if not k.startswith("_cache")}


def _map_data(x: Any) -> Any:
    return [_map_data(i) for i in x] if isinstance(x, (list, tuple)) else x.data


def _flatten(x: Any, out: List[Any]) -> None:
    if isinstance(x, (list, tuple)):
        for item in x:
            _flatten(item, out)
    else:
        out.append(x)


def _shape(x: Any) -> Any:
    # nested lengths, so [[1, 2]] and [1, 2] differ; a scalar has shape None
    return [_shape(i) for i in x] if isinstance(x, (list, tuple)) else None


def _shape_str(x: Any) -> str:
    if not isinstance(x, (list, tuple)):
        return "()"
    dims = [len(x)]
    inner = x[0] if x else None
    while isinstance(inner, (list, tuple)):
        dims.append(len(inner))
        inner = inner[0] if inner else None
    return "(" + ", ".join(map(str, dims)) + ("," if len(dims) == 1 else "") + ")"


class Neuron(Module):
    """Neuron(nin, nonlin=True, dropout=0.0, *, activation='relu', input_size=None).

    out = act(b + w[0]*x[0] + w[1]*x[1] + ...), one fused node plus the activation node.
    w starts as nin draws of random.uniform(-1, 1), b as Value(0.0), as upstream.
    nonlin=False makes it linear whatever activation says (MLP's last layer relies on this).
    dropout=p zeroes the output with probability p in training mode and scales it by
    1/(1-p) otherwise; it draws nothing from `random` when p is 0 or in eval mode.
    input_size= is an alias of nin.
    """

    def __init__(self, nin: Optional[int] = None, nonlin: bool = True, dropout: float = 0.0, *,
                 activation: str = "relu", input_size: Optional[int] = None) -> None:
        nin = _check_size(_pick(nin, input_size, "nin", "input_size", "Neuron"), "nin")
        activation = _check_activation(activation)
        self.dropout = _check_dropout(dropout)
        self.w = [Value(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = Value(0.0)
        # the nonlinearity used while nonlin is true: so MLP can pass both to its last layer
        self._nonlinearity = "relu" if activation == "linear" else activation
        self.nonlin = bool(nonlin) and activation != "linear"

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        _generation[0] += 1

    @property
    def activation(self) -> str:
        """The activation in use: 'relu', 'tanh', 'sigmoid' or 'linear' (when nonlin is false)."""
        return self._nonlinearity if self.nonlin else "linear"

    @activation.setter
    def activation(self, activation: str) -> None:
        activation = _check_activation(activation)
        if activation == "linear":
            self.nonlin = False
        else:
            self._nonlinearity = activation
            self.nonlin = True

    def __call__(self, x: Any) -> Value:
        """neuron(x) -> Value: x is a sequence of nin Values or numbers."""
        x = _as_inputs(x)
        _check_count(repr(self), len(self.w), x)
        out = _impl._layer((self.w,), (self.b,), x, self.activation)[0]
        if self.dropout and self.training:
            out = _drop(out, self.dropout)
        return out

    def parameters(self) -> List[Value]:
        """parameters() -> list[Value]: w[0], ..., w[nin-1], b."""
        return self.w + [self.b]

    def _named_parameters(self) -> Dict[str, Any]:
        # state_dict() == {"weight": [nin floats], "bias": float}
        return {"weight": self.w, "bias": self.b}

    def __repr__(self) -> str:
        return f"{ACTIVATIONS[self.activation]}Neuron({len(self.w)})"


class _Plan:
    # what Layer.__call__ hands the kernel, cached until a Neuron/Layer attribute changes
    __slots__ = ("generation", "neurons", "nin", "ws", "bs", "act", "drops", "rows")

    def __init__(self, layer: Layer) -> None:
        self.generation = _generation[0]
        neurons = layer.neurons
        self.neurons = neurons[:]
        self.nin = len(neurons[0].w) if neurons else None
        self.ws = tuple(n.w for n in neurons)  # the lists themselves: n.w[i] = ... stays visible
        self.bs = tuple(n.b for n in neurons)
        acts = {n.activation for n in neurons}
        plain = all(type(n).__call__ is Neuron.__call__ for n in neurons)
        # None: call each neuron (mixed activations, or a subclass with its own __call__)
        self.act = acts.pop() if plain and len(acts) == 1 else None
        self.drops = tuple((j, n.dropout) for j, n in enumerate(neurons) if n.dropout and n.training)
        # the weights packed for the kernel: it checks the lists are unchanged on every call
        self.rows = _impl._rows(self.ws, self.bs) if self.act is not None else None


class Layer(Module):
    """Layer(nin, nout, *, num_inputs=None, num_neurons=None, **kwargs): nout Neurons(nin, **kwargs).

    Calling it makes one fused-kernel call for the whole layer and returns a list of nout
    Values, or the bare Value when nout is 1 (as upstream). num_inputs= and num_neurons= are
    aliases of nin and nout; kwargs (nonlin, dropout, activation) go to every Neuron.
    """

    _cache_plan: Optional[_Plan] = None

    def __init__(self, nin: Optional[int] = None, nout: Optional[int] = None, *,
                 num_inputs: Optional[int] = None, num_neurons: Optional[int] = None,
                 **kwargs: Any) -> None:
        nin = _check_size(_pick(nin, num_inputs, "nin", "num_inputs", "Layer"), "nin")
        nout = _check_size(_pick(nout, num_neurons, "nout", "num_neurons", "Layer"), "nout")
        self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        _generation[0] += 1

    def _plan(self) -> _Plan:
        plan = self._cache_plan
        if plan is None or plan.generation != _generation[0] or plan.neurons != self.neurons:
            plan = _Plan(self)
            object.__setattr__(self, "_cache_plan", plan)
        return plan

    def __call__(self, x: Any) -> Union[Value, List[Value]]:
        """layer(x) -> Value | list[Value]: x is a sequence of nin Values or numbers.

        A list of nout Values, or the bare Value when nout is 1 (as upstream). A type checker
        sees `Value | list[Value]`: narrow it with isinstance(out, Value) (see the README).
        """
        # the hot path of every forward pass: kept to a few attribute reads and one kernel call
        plan = self._cache_plan
        if plan is None or plan.generation != _generation[0] or plan.neurons != self.neurons:
            plan = self._plan()
        if type(x) is not list:
            x = _as_inputs(x)
        if len(x) != plan.nin and plan.nin is not None:
            _check_count(f"Layer of {len(plan.bs)} neurons", plan.nin, x)
        rows, act = plan.rows, plan.act
        if rows is None or act is None:
            out = [n(x) for n in self.neurons]
        else:
            out = _impl._layer_rows(rows, x, act)
            for j, p in plan.drops:
                out[j] = _drop(out[j], p)
        return out[0] if len(out) == 1 else out

    def parameters(self) -> List[Value]:
        """parameters() -> list[Value]: each neuron's parameters in turn (w..., b)."""
        return list(chain.from_iterable(n.parameters() for n in self.neurons))

    def _named_parameters(self) -> Dict[str, Any]:
        # nn.Linear(nin, nout)'s shapes: weight row j is neuron j's w
        return {"weight": [n.w for n in self.neurons], "bias": [n.b for n in self.neurons]}

    def __repr__(self) -> str:
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class _Chain:
    # what MLP.__call__ hands the one-call kernel, cached until a Module attribute changes or
    # a layer list or a neuron list is edited in place (rows None: run layer by layer)
    __slots__ = ("generation", "layers", "neurons", "rows", "acts", "nin")

    def __init__(self, layers: List[Layer]) -> None:
        self.generation = _generation[0]
        self.layers = layers[:]
        self.neurons = [layer.neurons[:] for layer in layers]
        self.rows: Optional[tuple[Any, ...]] = None
        self.acts: tuple[str, ...] = ()
        self.nin: Optional[int] = None
        rows: List[Any] = []
        acts: List[str] = []
        nin: Optional[int] = None
        for layer in layers:
            if type(layer) is not Layer:
                return
            plan = layer._plan()
            if plan.rows is None or plan.act is None or plan.drops or (
                    rows and plan.nin != nin):
                return
            if not rows:
                self.nin = plan.nin
            rows.append(plan.rows)
            acts.append(plan.act)
            nin = len(plan.bs)
        if rows and self.nin is not None:
            self.rows, self.acts = tuple(rows), tuple(acts)


class MLP(Module):
    """MLP(nin, nouts, *, activation='relu', dropout=0.0, input_size=None, layer_sizes=None).

    Layers of sizes nouts; every layer but the last uses `activation` (and `dropout`), the last
    is linear, as upstream. input_size= and layer_sizes= are aliases of nin and nouts.

    state_dict() keys are "layers.{i}.weight" (nout x nin) and "layers.{i}.bias" (nout),
    nn.Linear's shapes, so a PyTorch model of the same sizes takes them directly::

        import torch
        sd = model.state_dict()
        lins = [m for m in torch_model.modules() if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            for i, lin in enumerate(lins):
                lin.weight.copy_(torch.tensor(sd[f"layers.{i}.weight"], dtype=lin.weight.dtype))
                lin.bias.copy_(torch.tensor(sd[f"layers.{i}.bias"], dtype=lin.bias.dtype))

    Use torch_model.double() to keep every bit (our numbers are float64). The reverse way:
    ``model.load_state_dict({f"layers.{i}.{k}": getattr(lin, k).tolist() ...})``.
    """

    _cache_chain: Optional[_Chain] = None

    def __init__(self, nin: Optional[int] = None, nouts: Optional[Sequence[int]] = None, *,
                 activation: str = "relu", dropout: float = 0.0, input_size: Optional[int] = None,
                 layer_sizes: Optional[Sequence[int]] = None) -> None:
        nin = _check_size(_pick(nin, input_size, "nin", "input_size", "MLP"), "nin")
        nouts = _pick(nouts, layer_sizes, "nouts", "layer_sizes", "MLP")
        try:
            nouts = [_check_size(n, "layer size") for n in nouts]
        except TypeError as exc:
            raise TypeError(f"nouts must be a sequence of ints: {exc}") from None
        if not nouts:
            # upstream's MLP(nin, []) is the identity, which is never what was meant (a demo's
            # --hidden '' once trained that way): one layer size at least
            raise ValueError("MLP needs at least one layer size, got nouts=[]")
        sz = [nin] + nouts
        last = len(nouts) - 1
        self.layers = [Layer(sz[i], sz[i + 1], nonlin=i != last, activation=activation,
                             dropout=dropout if i != last else 0.0)
                       for i in range(len(nouts))]

    def __call__(self, x: Any) -> Union[Value, List[Value]]:
        """mlp(x) -> Value | list[Value]: the last layer's output (a bare Value if it has one).

        A type checker sees `Value | list[Value]`, as for Layer.
        """
        # the hot path: plain layers, each one kernel call with no dropout drawn, run as one
        # call whose hidden outputs are the same nodes with no Value made for them; anything
        # else (a subclass, mixed activations, dropout in training, a size mismatch) goes
        # layer by layer, as upstream's loop
        layers = self.layers
        chain = self._cache_chain
        if (chain is None or chain.generation != _generation[0] or chain.layers != layers
                or chain.neurons != [layer.neurons for layer in layers]):
            chain = _Chain(layers)
            object.__setattr__(self, "_cache_chain", chain)
        if chain.rows is not None:
            if type(x) is not list:
                x = _as_inputs(x)
            if len(x) == chain.nin:
                res = _impl._mlp_rows(chain.rows, chain.acts, x)
                return res[0] if len(res) == 1 else res
        out: Union[Value, List[Value]] = x
        for layer in layers:
            out = layer(out)
        return out

    def parameters(self) -> List[Value]:
        """parameters() -> list[Value]: each layer's parameters in turn."""
        return list(chain.from_iterable(layer.parameters() for layer in self.layers))

    def _named_parameters(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        for i, layer in enumerate(self.layers):
            for k, v in layer._named_parameters().items():
                out[f"layers.{i}.{k}"] = v
        return out

    def __repr__(self) -> str:
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"
