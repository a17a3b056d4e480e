"""Saving: Values and Modules pickle on both engines; state_dict round trips and its errors."""
from __future__ import annotations

import copy
import json
import pickle
import random

import numpy as np
import pytest

from micrograd import MLP, Layer, Neuron, losses, optim


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_leaf_value_round_trip(engine, protocol):
    v = engine.Value(2.5, label="w")
    v.grad = -1.25
    w = pickle.loads(pickle.dumps(v, protocol))
    assert type(w) is engine.Value
    assert (w.data, w.grad, w.label) == (2.5, -1.25, "w")
    # a computed Value is saved as a leaf: its data and grad, not its graph
    c = v * 3.0
    d = pickle.loads(pickle.dumps(c, protocol))
    assert d.data == 7.5 and d._prev == set()
    # shared Values stay shared inside one pickle
    a, b = pickle.loads(pickle.dumps([v, v], protocol))
    assert a is b


def _trained(activation="relu", dropout=0.0):
    random.seed(2)
    model = MLP(2, [5, 4, 1], activation=activation, dropout=dropout)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    X = [[0.5, -1.0], [1.5, 0.25], [-0.75, 0.5]]
    for _ in range(3):
        loss = losses.hinge([model(x) for x in X], [1, -1, 1])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, X


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_module_round_trip(protocol):
    model, X = _trained("tanh", dropout=0.3)
    model.eval()
    blob = pickle.dumps(model, protocol)
    again = pickle.loads(blob)
    assert repr(again) == repr(model)
    assert [p.data for p in again.parameters()] == [p.data for p in model.parameters()]
    assert [p.grad for p in again.parameters()] == [p.grad for p in model.parameters()]
    assert not again.training and not again.layers[0].neurons[0].training
    assert again.layers[0].neurons[0].dropout == 0.3
    assert [again(x).data for x in X] == [model(x).data for x in X]
    # the copy is independent and trains on
    again.parameters()[0].data += 1.0
    assert again.parameters()[0].data != model.parameters()[0].data
    again.train()
    again(X[0]).backward()
    # no cached kernel arguments in the pickle
    assert b"_cache" not in blob


@pytest.mark.parametrize("module", [Neuron(3), Layer(3, 2, activation="sigmoid"), MLP(3, [2, 1])])
def test_each_module_pickles_and_deepcopies(module):
    x = [0.1, 0.2, 0.3]
    before = module(x)
    for twin in (pickle.loads(pickle.dumps(module)), copy.deepcopy(module)):
        out = twin(x)
        if isinstance(out, list):
            assert [o.data for o in out] == [o.data for o in before]
        else:
            assert out.data == before.data


def test_state_dict_shapes_are_nn_linears():
    model = MLP(3, [4, 2])
    sd = model.state_dict()
    assert list(sd) == ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]
    assert np.array(sd["layers.0.weight"]).shape == (4, 3)
    assert np.array(sd["layers.1.bias"]).shape == (2,)
    assert sd["layers.0.weight"][1] == [w.data for w in model.layers[0].neurons[1].w]
    json.dumps(sd)  # plain floats only
    assert Neuron(2).state_dict().keys() == {"weight", "bias"}
    assert np.array(Layer(2, 3).state_dict()["weight"]).shape == (3, 2)


def test_state_dict_round_trip():
    model, X = _trained()
    sd = json.loads(json.dumps(model.state_dict()))
    random.seed(99)
    fresh = MLP(2, [5, 4, 1])
    fresh.load_state_dict(sd)
    assert [p.data for p in fresh.parameters()] == [p.data for p in model.parameters()]
    assert [fresh(x).data for x in X] == [model(x).data for x in X]
    # numpy arrays are accepted too
    fresh.load_state_dict({k: np.array(v) for k, v in sd.items()})
    assert fresh.state_dict() == sd
    n = Neuron(2)
    n.load_state_dict({"weight": [1, 2], "bias": np.float64(0.5)})
    assert [p.data for p in n.parameters()] == [1.0, 2.0, 0.5]


def test_load_state_dict_errors_change_nothing():
    model = MLP(2, [3, 1])
    before = [p.data for p in model.parameters()]
    good = model.state_dict()
    bad = dict(good)
    del bad["layers.1.bias"]
    with pytest.raises(ValueError, match="missing \\['layers.1.bias'\\]"):
        model.load_state_dict(bad)
    with pytest.raises(ValueError, match="unexpected \\['extra'\\]"):
        model.load_state_dict({**good, "extra": [1.0]})
    with pytest.raises(ValueError, match=r"shape \(2, 2\), expected \(3, 2\)"):
        model.load_state_dict({**good, "layers.0.weight": [[0.0, 0.0]] * 2})
    with pytest.raises(ValueError, match="shape"):
        model.load_state_dict({**good, "layers.1.bias": 0.0})
    with pytest.raises(TypeError, match="numbers"):
        model.load_state_dict({**good, "layers.1.bias": ["x"]})
    with pytest.raises(TypeError, match="dict"):
        model.load_state_dict([1.0])
    assert [p.data for p in model.parameters()] == before


def test_load_into_torch_linear():
    torch = pytest.importorskip("torch")
    model, X = _trained()
    sd = model.state_dict()
    net = torch.nn.Sequential(torch.nn.Linear(2, 5), torch.nn.ReLU(), torch.nn.Linear(5, 4),
                              torch.nn.ReLU(), torch.nn.Linear(4, 1)).double()
    lins = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():  # as MLP's docstring shows
        for i, lin in enumerate(lins):
            lin.weight.copy_(torch.tensor(sd[f"layers.{i}.weight"], dtype=lin.weight.dtype))
            lin.bias.copy_(torch.tensor(sd[f"layers.{i}.bias"], dtype=lin.bias.dtype))
        out = net(torch.tensor(X, dtype=torch.float64)).squeeze(1).tolist()
    assert out == pytest.approx([model(x).data for x in X], rel=1e-12)
    # and back: torch's weights load into a fresh MLP
    random.seed(3)
    fresh = MLP(2, [5, 4, 1])
    fresh.load_state_dict({f"layers.{i}.{k}": getattr(lin, k).detach()
                           for i, lin in enumerate(lins) for k in ("weight", "bias")})
    assert fresh.state_dict() == sd
