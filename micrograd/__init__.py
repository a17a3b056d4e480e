"""micrograd, compiled: karpathy's scalar autograd engine and tiny nn library on a Cython node arena."""
from micrograd.engine import IMPLEMENTATION, Value, is_grad_enabled, no_grad
from micrograd.viz import draw_dot  # graphviz itself is imported on the first call
from micrograd.nn import MLP, Layer, Module, Neuron
from micrograd import datasets, losses, optim  # noqa: E402  (submodules: micrograd.optim.SGD, ...)

__version__ = "0.2.0"

__all__ = ["IMPLEMENTATION", "Value", "no_grad", "is_grad_enabled", "__version__",
           "Module", "Neuron", "Layer", "MLP", "draw_dot", "datasets", "losses", "optim"]
