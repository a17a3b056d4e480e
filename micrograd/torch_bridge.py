"""to_torch and from_torch: an MLP as a float64 torch.nn.Sequential of Linear and activation modules, and back."""
from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from micrograd.nn import MLP, Layer, Neuron

if TYPE_CHECKING:  # torch is optional: imported when a function runs, never with this module
    import torch  # type: ignore[import-not-found, unused-ignore]

__all__ = ["to_torch", "from_torch"]


def _import_torch() -> Any:
    try:
        import torch  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:
        raise ImportError(
            "micrograd.torch_bridge needs PyTorch: pip install torch "
            "(https://pytorch.org/get-started/locally/ for a CPU-only or GPU build)"
        ) from exc
    return torch


def to_torch(mlp: MLP, *, exact: bool = False) -> torch.nn.Sequential:
    """to_torch(mlp, *, exact=False) -> torch.nn.Sequential: the same network in PyTorch, float64.

    Each layer becomes a torch.nn.Linear(nin, nout) holding its weights (row j is neuron j's w)
    and biases, followed by torch.nn.ReLU, Tanh or Sigmoid unless the layer is linear (an MLP's
    last layer, as upstream), and torch.nn.Dropout(p) if its neurons have dropout p. The
    Sequential is in training mode when the MLP is. Feed it a (batch, nin) float64 tensor.

    Outputs are not bit for bit the engine's: Linear's matrix product (MKL in torch's CPU build)
    uses fused multiply-adds, one rounding where the engine's b + w0*x0 + w1*x1 + ... (left to
    right) has two, in its own order; torch's vectorized tanh, sigmoid and exp also round
    differently from the C library's. On the demo (make_moons(100, 0.1, seed=1337) through
    MLP(2, [16, 16, 1]) seeded 1337) most outputs differ, by at most 3.7 * 2**-52 times the
    largest output: 1.1e-15 with ReLU, 1.1e-15 with tanh, 5.6e-16 with sigmoid, 5.3e-15 linear.

    exact=True gives bit-for-bit outputs instead: Linear subclasses that sum in the engine's
    order (one vector operation per input, so slower for wide layers), and Tanh and Sigmoid
    subclasses that compute with the C library, as the engine does, element by element on the
    CPU (for checking, not training). Gradients agree to a few units in the last place either
    way: torch sums a hidden unit's gradient over the units it feeds, and a weight's over the
    batch, in its own order. Saving an exact=True model with torch.save needs micrograd to
    load it; the default model needs torch alone.
    """
    th = _import_torch()  # not named torch: the annotation above means the module
    if not isinstance(mlp, MLP) or type(mlp).__call__ is not MLP.__call__:
        raise TypeError(f"to_torch takes a micrograd MLP, not {type(mlp).__name__!r}")
    exact_mods = _exact_classes() if exact else None
    mods: List[Any] = []
    for i, layer in enumerate(mlp.layers):
        nin, act, p = _layer_shape(i, layer)
        nout = len(layer.neurons)
        lin_class = exact_mods["_EngineOrderLinear"] if exact_mods else th.nn.Linear
        lin = lin_class(nin, nout, dtype=th.float64)
        with th.no_grad():
            lin.weight.copy_(th.tensor([[w.data for w in n.w] for n in layer.neurons],
                                       dtype=th.float64).reshape(nout, nin))
            lin.bias.copy_(th.tensor([n.b.data for n in layer.neurons], dtype=th.float64))
        mods.append(lin)
        if act != "linear":
            if exact_mods and act != "relu":  # torch's relu is max(x, 0): already exact
                mods.append(exact_mods["_LibmTanh" if act == "tanh" else "_LibmSigmoid"]())
            else:
                mods.append({"relu": th.nn.ReLU, "tanh": th.nn.Tanh,
                             "sigmoid": th.nn.Sigmoid}[act]())
        if p:
            mods.append(th.nn.Dropout(p))
    seq: torch.nn.Sequential = th.nn.Sequential(*mods)
    seq.train(mlp.training)
    return seq


def _layer_shape(i: int, layer: Layer) -> Tuple[int, str, float]:
    # (nin, activation, dropout) of one layer, when its neurons agree on them
    if type(layer).__call__ is not Layer.__call__:
        raise TypeError(f"to_torch cannot map layer {i}, a {type(layer).__name__} with its own __call__")
    for n in layer.neurons:
        if not isinstance(n, Neuron) or type(n).__call__ is not Neuron.__call__:
            raise TypeError(f"to_torch cannot map layer {i}: it holds a {type(n).__name__}, "
                            "not a plain Neuron")
    if not layer.neurons:
        raise ValueError(f"to_torch cannot map layer {i}: it has no neurons")
    nins = {len(n.w) for n in layer.neurons}
    acts = {n.activation for n in layer.neurons}
    drops = {n.dropout for n in layer.neurons}
    for what, found in (("sizes", nins), ("activations", acts), ("dropouts", drops)):
        if len(found) > 1:
            raise ValueError(f"to_torch cannot map layer {i}: its neurons have different {what} "
                             f"{sorted(found)}; a torch layer has one")
    return nins.pop(), acts.pop(), drops.pop()


def from_torch(seq: torch.nn.Sequential) -> MLP:
    """from_torch(seq) -> MLP: a Sequential of Linear layers, each followed by at most one ReLU,
    Tanh, Sigmoid or Identity and one Dropout, as a micrograd MLP with the same weights.

    Weights of any floating dtype become Python floats exactly (float32 widens without loss), so
    to_torch then from_torch gives back the MLP bit for bit. Every Linear needs a bias; a
    module of another kind raises TypeError naming it, a Sequential of the wrong shape (an
    activation first, two in a row, sizes that do not chain) ValueError. Python's `random`
    state is left as it was (building an MLP draws weights, which are then overwritten).
    """
    torch = _import_torch()
    nn = torch.nn
    if not isinstance(seq, nn.Sequential):
        raise TypeError(f"from_torch takes a torch.nn.Sequential, not {type(seq).__name__!r}")
    exact = _exact_classes()
    linear = (nn.Linear, exact["_EngineOrderLinear"])
    acts: Dict[type, str] = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid",
                             nn.Identity: "linear", exact["_LibmTanh"]: "tanh",
                             exact["_LibmSigmoid"]: "sigmoid"}
    # per layer: [Linear, activation or None, dropout p or None]
    layers: List[List[Any]] = []
    for name, m in seq.named_children():
        kind = type(m)
        where = f"from_torch cannot map {name}: {m!r}"
        if kind in linear:
            if m.bias is None:
                raise ValueError(f"{where} has no bias (a Neuron has one)")
            if layers and layers[-1][0].out_features != m.in_features:
                raise ValueError(f"{where} takes {m.in_features} inputs but the layer before "
                                 f"gives {layers[-1][0].out_features}")
            layers.append([m, None, None])
        elif kind in acts or kind is nn.Dropout:
            if not layers:
                raise ValueError(f"{where} comes before any Linear")
            layer = layers[-1]
            if kind is nn.Dropout:
                if layer[2] is not None:
                    raise ValueError(f"{where} follows another Dropout in the same layer")
                layer[2] = float(m.p)
            elif layer[2] is not None:
                raise ValueError(f"{where} comes after a Dropout (a Neuron applies its dropout "
                                 "after its activation)")
            elif layer[1] is not None:
                raise ValueError(f"{where} follows another activation in the same layer")
            else:
                layer[1] = acts[kind]
        else:
            raise TypeError(f"{where} ({kind.__module__}.{kind.__qualname__}) has no micrograd "
                            "equivalent; from_torch knows Linear, ReLU, Tanh, Sigmoid, Identity "
                            "and Dropout")
    if not layers:
        raise ValueError("from_torch cannot map an empty Sequential (an MLP has a layer at least)")
    state = random.getstate()
    try:
        mlp = MLP(layers[0][0].in_features, [lin.out_features for lin, _, _ in layers])
    finally:
        random.setstate(state)
    sd: Dict[str, Any] = {}
    for i, (lin, act, p) in enumerate(layers):
        for n in mlp.layers[i].neurons:
            n.activation = act or "linear"
            n.dropout = p or 0.0
        sd[f"layers.{i}.weight"] = lin.weight.detach().to("cpu", torch.float64).tolist()
        sd[f"layers.{i}.bias"] = lin.bias.detach().to("cpu", torch.float64).tolist()
    mlp.load_state_dict(sd)
    mlp.train(seq.training)
    return mlp


def _exact_classes() -> Dict[str, Any]:
    # made on first use, since torch is optional; module __getattr__ below lets pickle find them
    classes: Optional[Dict[str, Any]] = globals().get("_EXACT")
    if classes is not None:
        return classes
    torch = _import_torch()
    from micrograd._engine_py import _sigmoid  # the engines agree on it bit for bit

    class _EngineOrderLinear(torch.nn.Linear):  # type: ignore[misc, name-defined, unused-ignore]
        """A Linear that sums b + w0*x0 + w1*x1 + ... left to right, as micrograd's engine."""

        def forward(self, x: Any) -> Any:
            out = self.bias.expand(*x.shape[:-1], self.out_features)
            for i in range(self.in_features):
                out = out + x[..., i:i + 1] * self.weight[:, i]
            return out

    def _libm(f: Callable[[float], float], local: Callable[[Any], Any]) -> Any:
        # an autograd function: f by the C library on each element, the engine's local grad
        class _Fn(torch.autograd.Function):  # type: ignore[misc, name-defined, unused-ignore]
            @staticmethod
            def forward(ctx: Any, x: Any) -> Any:
                y = x.detach().to("cpu", copy=True).apply_(f).to(x.device)
                ctx.save_for_backward(y)
                return y

            @staticmethod
            def backward(ctx: Any, g: Any) -> Any:
                (y,) = ctx.saved_tensors
                return local(y) * g

        return _Fn

    tanh_fn = _libm(math.tanh, lambda y: 1.0 - y * y)
    sigmoid_fn = _libm(_sigmoid, lambda y: y * (1.0 - y))

    class _LibmTanh(torch.nn.Tanh):  # type: ignore[misc, name-defined, unused-ignore]
        """Tanh by the C library's tanh, element by element, as micrograd's engine."""

        def forward(self, x: Any) -> Any:
            return tanh_fn.apply(x)

    class _LibmSigmoid(torch.nn.Sigmoid):  # type: ignore[misc, name-defined, unused-ignore]
        """Sigmoid as micrograd's engine computes it (C library exp), element by element."""

        def forward(self, x: Any) -> Any:
            return sigmoid_fn.apply(x)

    classes = {}
    for cls in (_EngineOrderLinear, _LibmTanh, _LibmSigmoid):
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__
        classes[cls.__name__] = cls
    globals()["_EXACT"] = classes
    return classes


def __getattr__(name: str) -> Any:
    if name in ("_EngineOrderLinear", "_LibmTanh", "_LibmSigmoid"):
        return _exact_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
