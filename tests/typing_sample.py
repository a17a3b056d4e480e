"""A user program over the whole public API: `mypy --strict` must pass on it (tests/test_typing.py)."""
from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Callable, List, Sequence, Union

import micrograd
from micrograd import MLP, Layer, Module, Neuron, Value, is_grad_enabled, no_grad
from micrograd import datasets, losses, optim
from micrograd.engine import IMPLEMENTATION
from micrograd.viz import Digraph

if TYPE_CHECKING:
    from typing_extensions import assert_type
else:
    def assert_type(value, typ):
        return value


# -- the engine ---------------------------------------------------------------------------------

def engine_ops() -> None:
    a = Value(-4.0)
    b = Value(2, label="b")  # ints are accepted (and become floats)
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    h = 2 ** b - 1.5 - b / a + b ** a + (a * 0.5).tanh().exp() + b.log() + a.sigmoid()
    g.backward()
    h.backward()
    assert_type(g, Value)
    assert_type(h, Value)
    assert_type(g.data, float)
    assert_type(a.grad, float)
    assert_type(g._prev, "set[Value]")
    assert_type(g._op, str)
    assert_type(b.label, str)
    a.grad = 0  # an int is a fine float
    a.data = 1.5
    a.label = "a"
    print(f"{g.data:.4f} {a.grad:.4f} {b.grad:.4f} {h.data:.4f} {micrograd.IMPLEMENTATION} {IMPLEMENTATION}")


def custom_op(x: Value) -> Value:
    """A user-defined op, as in the lecture: out = x**3 with its own chain rule."""
    out = Value(x.data**3, (x,), "cube")

    def _backward() -> None:
        x.grad += 3 * x.data**2 * out.grad

    out._backward = _backward
    return out


def predict(model: MLP, x: Sequence[float]) -> Value:
    # an MLP (or Layer) returns `Value | list[Value]`: one Value when its last layer has one
    # neuron, as upstream; isinstance() tells mypy which
    score = model(list(x))
    assert_type(score, Union[Value, List[Value]])
    assert isinstance(score, Value)
    return score


def inference(model: MLP, x: Sequence[float]) -> float:
    with no_grad():
        assert not is_grad_enabled()
        return predict(model, x).data  # a return inside the block: mypy knows nothing follows


def total(values: Sequence[Value]) -> Value:
    # sum() with a Value start: typeshed types a bare sum(values) as `Value | int`
    return sum(values, Value(0.0))


# -- nn, optim, losses --------------------------------------------------------------------------

class Affine(Module):
    """A user Module: y = a*x + b."""

    def __init__(self) -> None:
        self.a = Value(random.uniform(-1, 1))
        self.b = Value(0.0)

    def __call__(self, x: Value) -> Value:
        return self.a * x + self.b

    def parameters(self) -> List[Value]:
        return [self.a, self.b]


def train() -> float:
    random.seed(1337)
    X, y = datasets.make_moons(n_samples=20, noise=0.1)
    model = MLP(2, [8, 8, 1])
    opt: optim.Optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scores: List[Value] = []
    loss = Value(0.0)
    for _ in range(3):
        scores = [predict(model, xi) for xi in X]
        loss = losses.hinge(scores, y) + 1e-4 * losses.l2(model.parameters())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert_type(loss, Value)
    assert_type(model.parameters()[0].data, float)

    neuron = Neuron(3, nonlin=False)
    layer = Layer(3, 2, activation="tanh")
    n_out = neuron([1.0, 2.0, 3.0])
    assert_type(n_out, Value)  # a Neuron always gives one Value
    l_out = layer([Value(1.0), 2.0, 3.0])
    assert_type(l_out, Union[Value, List[Value]])
    assert isinstance(l_out, list)  # two neurons: a list
    mse = losses.mse(l_out, [0.5, -0.5]) + losses.mse(n_out, 1.0)
    ce = losses.cross_entropy(l_out, 1)
    (mse + ce).backward()
    for p in neuron.parameters() + layer.parameters():
        p.data -= 0.01 * p.grad
    model.zero_grad()

    f = Affine()
    adam = optim.Adam(f.parameters(), lr=0.1)
    for _ in range(3):
        err = f(Value(2.0)) - 5.0
        sq = err * err
        adam.zero_grad()
        sq.backward()
        adam.step()
    model.eval()
    model.train()
    state = model.state_dict()
    model.load_state_dict(state)

    cube = custom_op(Value(2.0))
    cube.backward()
    act: Callable[[Value], Value] = Value.tanh
    return inference(model, X[0]) + total(scores).data + act(cube).data + math.fsum([loss.data])


def draw() -> None:
    from micrograd.viz import draw_dot, trace

    x = Value(1.0, label="x")
    y = (x * 2.0).tanh()
    nodes, edges = trace(y)
    assert_type(nodes, List[Value])
    assert len(nodes) == 4 and len(edges) == 3
    try:
        dot = draw_dot(y, format="svg", rankdir="TB")
    except ImportError:  # the [viz] extra is optional
        return
    assert_type(dot, Digraph)
    assert_type(dot.source, str)
    print(dot.source.count("shape=record"))


def render(dot: Digraph) -> None:
    # not run (it needs Graphviz's dot program): mypy checks the types
    assert_type(dot.pipe(), bytes)
    assert_type(dot.pipe(format="svg", encoding="utf-8"), str)
    assert_type(dot.render("graph", cleanup=True), str)


def misuse() -> None:
    # each line is a type error that mypy must report (an unused ignore fails under --strict)
    v = Value(1.0)
    v + "2"  # type: ignore[operator]
    Value("1.0")  # type: ignore[arg-type]
    v.data = "x"  # type: ignore[assignment]
    v.relu(1.0)  # type: ignore[call-arg]
    # a Layer or MLP may return a list: using it as a Value unchecked is an error
    out: Value = Layer(2, 1)([1.0, 2.0])  # type: ignore[assignment]
    MLP(2, [1])([1.0, 2.0]).data  # type: ignore[union-attr]
    del out


if __name__ == "__main__":
    engine_ops()
    print(f"{train():.4f}")
    draw()
