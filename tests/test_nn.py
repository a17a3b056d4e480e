"""micrograd.nn on the active engine: upstream's behaviour, the seeds' additions, bad inputs."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest

import micrograd
from micrograd import MLP, Layer, Module, Neuron, Value, nn
from micrograd.engine import _impl


def _reference(neuron_w, b, x, act):
    # upstream's Neuron written with scalar ops: sum((wi*xi ...), b), then the activation
    out = sum((wi * xi for wi, xi in zip(neuron_w, x)), b)
    return {"relu": out.relu, "tanh": out.tanh, "sigmoid": out.sigmoid,
            "linear": lambda: out}[act]()


def test_exports():
    assert micrograd.Neuron is nn.Neuron and micrograd.MLP is nn.MLP
    assert micrograd.Layer is nn.Layer and micrograd.Module is nn.Module
    assert micrograd.optim.SGD and micrograd.losses.hinge and micrograd.datasets.make_moons


def test_reprs_match_upstream():
    assert repr(Neuron(2)) == "ReLUNeuron(2)"
    assert repr(Neuron(3, nonlin=False)) == "LinearNeuron(3)"
    assert repr(Layer(2, 2)) == "Layer of [ReLUNeuron(2), ReLUNeuron(2)]"
    assert repr(MLP(2, [3, 1])) == ("MLP of [Layer of [ReLUNeuron(2), ReLUNeuron(2), "
                                    "ReLUNeuron(2)], Layer of [LinearNeuron(3)]]")
    assert repr(MLP(2, [1, 1], activation="tanh")) == (
        "MLP of [Layer of [TanhNeuron(2)], Layer of [LinearNeuron(1)]]")
    assert repr(Neuron(1, activation="sigmoid")) == "SigmoidNeuron(1)"
    assert repr(Neuron(1, activation="linear")) == "LinearNeuron(1)"


def test_seeded_weights_are_upstreams_draws():
    # upstream draws random.uniform(-1, 1) per weight: neuron by neuron, layer by layer
    random.seed(1337)
    model = MLP(2, [16, 16, 1])
    random.seed(1337)
    expected = []
    for nin, nout in [(2, 16), (16, 16), (16, 1)]:
        for _ in range(nout):
            expected += [random.uniform(-1, 1) for _ in range(nin)] + [0.0]
    assert [p.data for p in model.parameters()] == expected
    assert len(model.parameters()) == 337
    # the next draw is the same as upstream's too: nothing else was taken from `random`
    after = random.random()
    random.seed(1337)
    MLP(2, [16, 16, 1])
    assert random.random() == after


def test_parameters_order_and_bias():
    n = Neuron(3)
    assert n.parameters() == n.w + [n.b]
    assert n.b.data == 0.0 and isinstance(n.b, Value)
    layer = Layer(3, 2)
    assert layer.parameters() == [p for ne in layer.neurons for p in ne.parameters()]
    model = MLP(3, [2, 1])
    assert model.parameters() == [p for la in model.layers for p in la.parameters()]
    assert Module().parameters() == []


def test_single_output_is_bare_value():
    assert isinstance(Layer(2, 1)([1.0, 2.0]), Value)
    out = Layer(2, 3)([1.0, 2.0])
    assert isinstance(out, list) and len(out) == 3
    assert isinstance(MLP(2, [4, 1])([1.0, 2.0]), Value)
    # a one-output hidden layer feeds the next layer (upstream would fail here)
    assert len(MLP(2, [1, 3])([1.0, 2.0])) == 3


@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid", "linear"])
def test_neuron_matches_scalar_ops(act):
    random.seed(7)
    n = Neuron(4, activation=act)
    n.b.data = 0.3
    x = [Value(v) for v in (0.5, -1.25, 2.0, 0.75)]
    out = n(x)
    out.backward()
    got = (out.data, [p.grad for p in n.parameters()], [v.grad for v in x])
    w = [Value(p.data) for p in n.w]
    b = Value(n.b.data)
    xr = [Value(v.data) for v in x]
    ref = _reference(w, b, xr, act)
    ref.backward()
    assert got == (ref.data, [p.grad for p in w + [b]], [v.grad for v in xr])


def test_mlp_matches_scalar_ops_with_plain_numbers():
    random.seed(3)
    model = MLP(3, [5, 4, 2], activation="tanh")
    x = [1.0, -2, np.float64(0.5)]
    out = model(x)
    (out[0] * out[1]).backward()
    # the same net from scalar ops
    ref_params = [Value(p.data) for p in model.parameters()]
    it = iter(ref_params)
    h = [Value(float(v)) for v in x]
    for li, layer in enumerate(model.layers):
        nxt = []
        for ne in layer.neurons:
            w = [next(it) for _ in ne.w]
            b = next(it)
            nxt.append(_reference(w, b, h, ne.activation))
        h = nxt
    (h[0] * h[1]).backward()
    assert [o.data for o in out] == [o.data for o in h]
    assert [p.grad for p in model.parameters()] == [p.grad for p in ref_params]


def test_numpy_inputs():
    model = MLP(2, [3, 1])
    a = model(np.array([0.5, -1.0])).data
    assert model([np.float32(0.5), np.int64(-1)]).data == a
    assert model((0.5, -1.0)).data == a
    assert model(iter([0.5, -1.0])).data == a


def test_wrong_number_of_inputs():
    with pytest.raises(ValueError, match="expected 3 inputs, got 2"):
        Neuron(3)([1.0, 2.0])
    with pytest.raises(ValueError, match="expected 2 inputs, got 3"):
        Layer(2, 4)([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="expected 2 inputs, got 1"):
        MLP(2, [4, 1])([1.0])
    with pytest.raises(ValueError, match="expected 3 inputs, got 2"):
        MLP(2, [3, 4, 1]).layers[1]([1.0, 2.0])


def test_bad_inputs():
    with pytest.raises(TypeError):
        MLP(2, [1])(["a", "b"])
    with pytest.raises(TypeError, match="sequence"):
        Neuron(2)(object())
    with pytest.raises(TypeError):
        Neuron(2)([1.0, None])
    with pytest.raises(ValueError, match="activation"):
        Neuron(2, activation="gelu")
    with pytest.raises(ValueError, match="activation"):
        MLP(2, [3, 1], activation="softmax")
    with pytest.raises(ValueError, match="dropout"):
        Neuron(2, dropout=1.5)
    with pytest.raises(ValueError, match="nin"):
        Neuron(-1)
    with pytest.raises(TypeError, match="nin"):
        Neuron(2.5)
    with pytest.raises(TypeError, match="missing required argument 'nin'"):
        Neuron()
    with pytest.raises(TypeError, match="both"):
        Neuron(3, input_size=3)
    with pytest.raises(TypeError, match="nout"):
        Layer(2)
    with pytest.raises(TypeError):
        MLP(2, 3)
    with pytest.raises(ValueError, match=r"at least one layer size, got nouts=\[\]"):
        MLP(2, [])  # upstream's is the identity, never what was meant
    with pytest.raises(TypeError):
        Layer(2, 2, bogus=1)


def test_seed_004_aliases():
    n = Neuron(input_size=3)
    inputs = [Value(1.0), Value(2.0), Value(-1.0)]
    output = n(inputs)
    output.backward()
    assert len(n.w) == 3
    layer = Layer(num_inputs=3, num_neurons=4)
    outputs = layer(inputs)
    assert len(outputs) == 4 and repr(layer).count("ReLUNeuron(3)") == 4
    mlp = MLP(input_size=3, layer_sizes=[4, 4, 1])
    output = mlp(inputs)
    output.backward()
    assert repr(mlp) == repr(MLP(3, [4, 4, 1]))


def test_seed_002_neuron_signature():
    neuron = Neuron(2, nonlin=True, dropout=0.0)
    output = neuron([Value(1.0), Value(-2.0)])
    output.backward()
    assert len([w.grad for w in neuron.parameters()]) == 3
    assert len(Layer(2, 3, nonlin=False).neurons) == 3


def test_nonlin_and_activation_attributes():
    n = Neuron(2, activation="tanh")
    assert n.nonlin and n.activation == "tanh"
    n.nonlin = False  # upstream-style mutation is honoured
    assert n.activation == "linear" and repr(n) == "LinearNeuron(2)"
    n.nonlin = True
    assert n.activation == "tanh"
    n.activation = "sigmoid"
    assert repr(n) == "SigmoidNeuron(2)"
    last = MLP(2, [3, 1], activation="tanh").layers[-1].neurons[0]
    assert last.activation == "linear" and not last.nonlin


def test_layer_sees_mutations():
    random.seed(5)
    layer = Layer(2, 3)
    x = [0.5, -0.25]
    first = [v.data for v in layer(x)]
    # data changes go straight through the cached kernel arguments
    layer.neurons[0].b.data = 10.0
    assert layer(x)[0].data == first[0] + 10.0
    # so do new Values put in place of old ones, in a list or as an attribute
    layer.neurons[1].w[0] = Value(0.0)
    layer.neurons[1].b = Value(-5.0)
    assert layer(x)[1].data == 0.0  # relu(-5 + 0*0.5 + w1*x1) with |w1*x1| < 1
    layer.neurons[2].nonlin = False
    layer.neurons[2].b = Value(-7.0)
    assert layer(x)[2].data < -5.0
    # and reordering the neurons list
    layer.neurons.reverse()
    assert layer(x)[0].data < -5.0
    layer.neurons.append(Neuron(2))
    assert len(layer(x)) == 4
    layer.neurons = layer.neurons[:1]
    assert isinstance(layer(x), Value)


def test_layer_with_mixed_and_custom_neurons():
    class Doubled(Neuron):
        def __call__(self, x):
            return super().__call__(x) * 2

    random.seed(11)
    layer = Layer(2, 2)
    layer.neurons[1].activation = "tanh"
    out = layer([1.0, 2.0])
    assert out[1].data == layer.neurons[1]([1.0, 2.0]).data
    layer.neurons[0] = Doubled(2)
    assert layer([1.0, 2.0])[0].data == 2 * layer.neurons[0].__class__.__mro__[1].__call__(
        layer.neurons[0], [1.0, 2.0]).data


def _spy(monkeypatch, name):
    calls = []
    real = getattr(_impl, name)

    def spy(*args):
        out = real(*args)
        calls.append(len(out))
        return out

    monkeypatch.setattr(_impl, name, spy)
    return calls


def test_layer_calls_the_kernel_once(monkeypatch):
    layers, nets = _spy(monkeypatch, "_layer_rows"), _spy(monkeypatch, "_mlp_rows")
    Layer(2, 16)([1.0, 2.0])
    assert layers == [16] and nets == []
    MLP(2, [16, 16, 1])([1.0, 2.0])  # the whole net: one call
    assert layers == [16] and nets == [1]


def _layer_by_layer(model, x):
    for layer in model.layers:
        x = layer(x)
    return x


@pytest.mark.parametrize("case", ["plain", "one-wide hidden", "tanh", "numbers in"])
def test_the_one_call_net_is_the_layer_by_layer_net(case):
    # the same nodes in the same order: data and grads bit for bit, over a few SGD steps
    sizes, act = {"one-wide hidden": [1, 5, 3]}.get(case, [6, 5, 3]), "tanh" if case == "tanh" else "relu"
    results = []
    for call in (lambda m, x: m(x), _layer_by_layer):
        random.seed(7)
        model = MLP(4, sizes, activation=act)
        xs = [[0.5, -1.0, 0.25, 2.0], [1.5, 0.5, -0.75, 0.0]]
        trace = []
        for row in xs * 2:
            x = row if case == "numbers in" else [Value(v) for v in row]
            out = call(model, x)
            loss = sum((o - 0.5) ** 2 for o in out)
            model.zero_grad()
            loss.backward()
            trace.append((loss.data, [p.grad for p in model.parameters()],
                          [v.grad for v in x] if case != "numbers in" else []))
            for p in model.parameters():
                p.data -= 0.05 * p.grad
        results.append(trace)
    assert results[0] == results[1]


def test_the_one_call_net_sees_every_edit():
    # the net's plan is cached: edits that set no attribute (lists changed in place) must be
    # seen as surely as those that do; positive weights and inputs keep every relu open, so
    # every edit changes the output
    rng = random.Random(11)

    def positive(m):
        for p in m.parameters():
            p.data = rng.uniform(0.1, 0.5)
        return m

    model = positive(MLP(3, [4, 4, 2]))
    x = [0.5, 1.0, 2.0]
    # made first: making a Module sets attributes, which alone would renew every cached plan
    layer, neuron, last = positive(Layer(4, 4)), positive(Neuron(3)), positive(Layer(2, 3, nonlin=False))
    edits = [
        lambda: model.layers.__setitem__(1, layer),               # lists edited in place
        lambda: model.layers[0].neurons.__setitem__(2, neuron),
        lambda: model.layers[2].neurons[0].w.__setitem__(1, Value(5.0)),
        lambda: model.layers.append(last),
        lambda: setattr(model.layers[0].neurons[1], "activation", "tanh"),  # an attribute
    ]
    for edit in edits:
        before = [v.data for v in model(x)]
        edit()
        after = [v.data for v in model(x)]
        assert after != before
        assert after == [v.data for v in _layer_by_layer(model, x)]


def test_nets_that_need_each_layer_go_layer_by_layer(monkeypatch):
    nets, layers = _spy(monkeypatch, "_mlp_rows"), _spy(monkeypatch, "_layer_rows")
    random.seed(3)
    model = MLP(3, [4, 2], dropout=0.5)  # dropout draws in training mode
    model([1.0, 2.0, 3.0])
    assert nets == [] and layers == [4, 2]
    model.eval()
    model([1.0, 2.0, 3.0])
    assert nets == [2]

    class Loud(Layer):
        def __call__(self, x):
            return super().__call__(x)

    model = MLP(3, [4, 2])
    model.layers[1] = Loud(4, 2)
    model([1.0, 2.0, 3.0])
    assert nets == [2] and layers[-2:] == [4, 2]
    model.layers[1] = Layer(5, 2)  # a size that does not fit: the layer's own error
    with pytest.raises(ValueError, match="expected 5 inputs, got 4|5"):
        model([1.0, 2.0, 3.0])
    with pytest.raises(ValueError):
        MLP(3, [4, 2])([1.0, 2.0])


def test_zero_grad_uses_the_kernel(monkeypatch):
    model = MLP(2, [3, 1])
    model([1.0, 2.0]).backward()
    assert any(p.grad for p in model.parameters())
    seen = []
    real = _impl._zero_grad
    monkeypatch.setattr(_impl, "_zero_grad", lambda ps: (seen.append(len(ps)), real(ps)))
    model.zero_grad()
    assert seen == [13]
    assert all(p.grad == 0.0 for p in model.parameters())


def test_dropout_training_and_eval():
    random.seed(0)
    model = MLP(2, [64, 1], dropout=0.5)
    hidden = model.layers[0]
    assert hidden.neurons[0].dropout == 0.5 and model.layers[1].neurons[0].dropout == 0.0
    x = [0.3, -0.7]
    model.eval()
    assert not any(n.training for n in hidden.neurons)
    state = random.getstate()
    clean = [v.data for v in hidden(x)]
    assert random.getstate() == state  # eval mode draws nothing
    model.train()
    assert model.training and hidden.neurons[5].training
    random.seed(42)
    dropped = [v.data for v in hidden(x)]
    random.seed(42)
    keep = [random.random() >= 0.5 for _ in range(64)]  # one draw per neuron, in order
    assert dropped == [c * 2.0 if k else 0.0 for c, k in zip(clean, keep)]
    out = model(x)
    out.backward()  # gradients flow through the kept units
    # dropout 0 in training mode draws nothing either
    plain = MLP(2, [8, 1])
    state = random.getstate()
    plain(x)
    assert random.getstate() == state
    assert model.eval() is model and model.train() is model


def test_neuron_dropout():
    n = Neuron(3, dropout=1.0)
    assert n([1.0, 2.0, 3.0]).data == 0.0
    n.eval()
    assert n([1.0, 2.0, 3.0]).data == _reference(n.w, n.b, [1.0, 2.0, 3.0], "relu").data


def test_seed_000_training_snippet():
    model = MLP(3, [4, 4, 1])
    x = [Value(1.0), Value(-2.0), Value(3.0)]
    output = model(x)
    target = Value(1.0)
    loss = (output - target) ** 2
    model.zero_grad()
    loss.backward()
    learning_rate = 0.01
    for p in model.parameters():
        p.data -= learning_rate * p.grad


def test_seed_001_and_003_training_loop():
    random.seed(1)
    n = MLP(3, [4, 4, 1])
    xs = [[-2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
    ys = [1.0, -1.0, -1.0, 1.0]
    first = None
    for k in range(50):
        ypred = [n(x) for x in xs]
        loss = sum(((yout - ygt) ** 2 for ygt, yout in zip(ys, ypred)), Value(0.0))
        for p in n.parameters():
            p.grad = 0.0
        loss.backward()
        for p in n.parameters():
            p.data += -0.05 * p.grad
        first = loss.data if first is None else first
    ypred = [n(x) for x in xs]
    loss = sum([(y_pred - y_target) ** 2 for y_target, y_pred in zip(ys, ypred)])
    assert math.isfinite(loss.data) and loss.data < first


def test_custom_module_subclass():
    class Affine(Module):
        def __init__(self):
            self.a = Value(2.0)
            self.b = Value(1.0)

        def __call__(self, x):
            return self.a * x + self.b

        def parameters(self):
            return [self.a, self.b]

    f = Affine()
    f(Value(3.0)).backward()
    assert (f.a.grad, f.b.grad) == (3.0, 1.0)
    f.zero_grad()
    assert (f.a.grad, f.b.grad) == (0.0, 0.0)
    assert f.state_dict() == {"parameters": [2.0, 1.0]}
    f.load_state_dict({"parameters": [5, 6.5]})
    assert (f.a.data, f.b.data) == (5.0, 6.5)


def test_load_state_dict_is_all_or_nothing_when_a_late_number_overflows():
    from micrograd.nn import MLP

    model = MLP(2, [2, 1])
    before = [p.data for p in model.parameters()]
    state = model.state_dict()
    last = list(state)[-1]
    state = {k: (_plus_one(v) if k != last else _overflowing(v)) for k, v in state.items()}
    with pytest.raises(OverflowError):
        model.load_state_dict(state)
    assert [p.data for p in model.parameters()] == before


def _overflowing(v):
    """The same nested shape with a 10**400 in its last place (an int too large for a float)."""
    if isinstance(v, list):
        return v[:-1] + [_overflowing(v[-1])]
    return 10**400


def _plus_one(v):
    return [_plus_one(x) for x in v] if isinstance(v, list) else v + 1.0
