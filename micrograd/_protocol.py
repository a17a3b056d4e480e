"""The private protocol that nn, optim and losses call on an engine: both engines export it alike."""
from __future__ import annotations

# Each name with its parameters, in order (None: not a function). tests/test_protocol.py checks
# that both engines export every name with these parameters and the same docstring, so nn, optim
# and losses can take either engine (micrograd.engine._impl) without asking which it is.
PROTOCOL: dict[str, tuple[str, ...] | None] = {
    "IMPLEMENTATION": None,   # "compiled" or "python"
    "Value": None,            # the scalar with a gradient
    "no_grad": (),            # a context manager: ops make leaves, no graph
    "is_grad_enabled": (),
    "_OPS": None,             # the built-in ops: (name, _op text, children; -1 for n-ary)
    "_ACTIVATIONS": None,     # the activations a layer may apply ("linear": none)
    # layers (micrograd.nn)
    "_dot": ("b", "w", "x"),                    # one fused neuron
    "_layer": ("ws", "bs", "x", "act"),         # one layer, packed for this call only
    "_rows": ("ws", "bs"),                      # a layer's rows, packed once ...
    "_layer_rows": ("rows", "x", "act"),        # ... and called many times
    "_mlp_rows": ("rows", "acts", "x"),         # a stack of them in one call (MLP.__call__)
    # optimizers (micrograd.optim)
    "_pack": ("params",),
    "_zero_grad": ("params",),
    "_sgd_step": ("params", "lr", "momentum", "weight_decay", "buf", "started"),
    "_adam_step": ("params", "lr", "beta1", "beta2", "eps", "weight_decay", "m", "v", "t"),
    # pickling
    "_rebuild": ("data", "grad", "label"),
}
