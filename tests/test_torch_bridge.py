"""micrograd.torch_bridge: MLP -> torch.nn.Sequential -> MLP, same weights, outputs and gradients."""
from __future__ import annotations

import os
import pickle
import random
import subprocess
import sys

import pytest

import micrograd
from micrograd import MLP, Value, losses
from micrograd.datasets import make_moons

EPS = 2.0 ** -52


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="PyTorch is not installed")


@pytest.fixture
def bridge(torch):
    from micrograd import torch_bridge
    return torch_bridge


def _moons():
    return make_moons(100, 0.1, seed=1337)


def _model(act="relu", hidden=(16, 16), seed=1337):
    random.seed(seed)
    return MLP(2, [*hidden, 1], activation=act)


def _ours(model, X):
    return [model(x).data for x in X]


def _theirs(torch, seq, X):
    with torch.no_grad():
        return seq(torch.tensor(X, dtype=torch.float64)).squeeze(1).tolist()


def test_module_imports_without_torch():
    # torch is imported only when a function runs; then a missing torch says how to install it
    code = ("import sys\nsys.modules['torch'] = None\n"
            "from micrograd import MLP\nfrom micrograd.torch_bridge import to_torch, from_torch\n"
            "try:\n    to_torch(MLP(2, [1]))\nexcept ImportError as e:\n    print(e)\n")
    here = os.path.dirname(os.path.dirname(os.path.abspath(micrograd.__file__)))
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=here),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "needs PyTorch: pip install torch" in out.stdout


def test_structure_and_weights(torch, bridge):
    model = MLP(3, [4, 5, 2], activation="tanh")
    seq = bridge.to_torch(model)
    kinds = [type(m) for m in seq]
    nn = torch.nn
    assert kinds == [nn.Linear, nn.Tanh, nn.Linear, nn.Tanh, nn.Linear]  # the last is linear
    for i, lin in enumerate(m for m in seq if isinstance(m, nn.Linear)):
        layer = model.layers[i]
        assert lin.weight.dtype == lin.bias.dtype == torch.float64
        assert lin.weight.tolist() == [[w.data for w in n.w] for n in layer.neurons]
        assert lin.bias.tolist() == [n.b.data for n in layer.neurons]
    assert [type(m) for m in bridge.to_torch(MLP(2, [3, 1], activation="linear"))] == [nn.Linear] * 2
    exact = bridge.to_torch(MLP(2, [3, 3, 1], activation="sigmoid"), exact=True)
    assert len(exact) == 5
    assert all(isinstance(m, k) for m, k in zip(exact, [nn.Linear, nn.Sigmoid] * 2 + [nn.Linear]))


@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid", "linear"])
def test_exact_outputs_are_bit_for_bit_on_the_demo_data(torch, bridge, act):
    X, _ = _moons()
    model = _model(act)
    ours = _ours(model, X)
    theirs = _theirs(torch, bridge.to_torch(model, exact=True), X)
    assert [v.hex() for v in theirs] == [v.hex() for v in ours]


@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid", "linear"])
def test_default_outputs_are_within_a_few_ulps_of_the_scale(torch, bridge, act):
    # MKL's dgemm sums (with fused multiply-adds) in another order than the engine's left to
    # right, and torch's tanh/sigmoid round differently from the C library's: measured at most
    # 3.7 * 2**-52 times the largest output on these models (see to_torch's docstring); 16 here
    # leaves room for another CPU's BLAS kernel
    X, _ = _moons()
    model = _model(act)
    ours = _ours(model, X)
    theirs = _theirs(torch, bridge.to_torch(model), X)
    scale = max(1.0, max(abs(v) for v in ours))
    worst = max(abs(a - b) for a, b in zip(ours, theirs))
    assert worst <= 16 * EPS * scale, worst / (EPS * scale)


def test_default_is_not_bit_for_bit_which_is_why_exact_exists(torch, bridge):
    X, _ = _moons()
    model = _model("relu")
    assert _theirs(torch, bridge.to_torch(model), X) != _ours(model, X)


@pytest.mark.parametrize("exact", [False, True])
def test_round_trip_is_bit_for_bit(torch, bridge, exact):
    X, _ = _moons()
    model = MLP(2, [8, 6, 1], activation="tanh")
    model.layers[1].neurons[0].activation = "tanh"  # still one activation per layer
    for n in model.layers[-1].neurons:
        n.activation = "sigmoid"  # a nonlinear last layer maps too
    back = bridge.from_torch(bridge.to_torch(model, exact=exact))
    assert type(back) is MLP
    assert back.state_dict() == model.state_dict()
    assert [[n.activation for n in layer.neurons] for layer in back.layers] == \
           [[n.activation for n in layer.neurons] for layer in model.layers]
    assert [v.hex() for v in _ours(back, X)] == [v.hex() for v in _ours(model, X)]
    # and the other way: torch -> MLP -> torch keeps every tensor
    seq = torch.nn.Sequential(torch.nn.Linear(2, 5), torch.nn.ReLU(), torch.nn.Linear(5, 1)).double()
    again = bridge.to_torch(bridge.from_torch(seq))
    for (k, a), (k2, b) in zip(seq.state_dict().items(), again.state_dict().items()):
        assert k == k2 and torch.equal(a, b)


def test_float32_weights_widen_exactly(torch, bridge):
    seq = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Sigmoid(), torch.nn.Linear(4, 2))
    model = bridge.from_torch(seq)
    assert model.layers[0].neurons[1].w[2].data == float(seq[0].weight[1, 2].item())
    assert [n.activation for n in model.layers[0].neurons] == ["sigmoid"] * 4
    assert [n.activation for n in model.layers[1].neurons] == ["linear"] * 2


def test_from_torch_leaves_random_alone(torch, bridge):
    seq = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Linear(16, 1))
    random.seed(5)
    want = random.random()
    random.seed(5)
    bridge.from_torch(seq)
    assert random.random() == want


@pytest.mark.parametrize("exact", [False, True])
def test_gradients_of_the_demo_loss_agree(torch, bridge, exact):
    # upstream demo's loss, hinge + 1e-4 * L2, on both sides; gradients summed over the batch
    # in different orders, so agreeing to a few ulps of the largest gradient, not bit for bit
    # (measured 1.7 * 2**-52 times the largest, 1.2 with exact=True)
    X, y = _moons()
    model = _model("relu")
    seq = bridge.to_torch(model, exact=exact)
    model.zero_grad()
    scores = [model(x) for x in X]
    total = losses.hinge(scores, y) + 1e-4 * losses.l2(model.parameters())
    total.backward()
    s = seq(torch.tensor(X, dtype=torch.float64)).squeeze(1)
    t = torch.tensor(y, dtype=torch.float64)
    reg = sum((p * p).sum() for p in seq.parameters())
    loss = torch.relu(1 - t * s).sum() * (1.0 / len(y)) + 1e-4 * reg
    loss.backward()
    assert abs(loss.item() - total.data) <= 4 * EPS * abs(total.data)
    lins = [m for m in seq if isinstance(m, torch.nn.Linear)]
    ours = [g for layer in model.layers for g in
            [[w.grad for w in n.w] for n in layer.neurons] + [[n.b.grad for n in layer.neurons]]]
    theirs = [g for lin in lins for g in lin.weight.grad.tolist() + [lin.bias.grad.tolist()]]
    flat_ours = [g for row in ours for g in row]
    flat_theirs = [g for row in theirs for g in row]
    scale = max(abs(g) for g in flat_ours)
    worst = max(abs(a - b) for a, b in zip(flat_ours, flat_theirs))
    assert sorted(map(len, ours)) == sorted(map(len, theirs))
    assert worst <= 16 * EPS * scale, worst / (EPS * scale)


def test_one_sample_gradients_of_the_last_layers_are_bit_for_bit_when_exact(torch, bridge):
    # where no sum over several paths is involved: the last layer's weights (one output) and
    # the layer before (each of its units feeds that one output); a hidden unit feeding several
    # units gets its grad summed in torch's order, not the engine's, and agrees to a few ulps
    model = _model("tanh", hidden=(4, 3))
    xs = [Value(0.3), Value(-1.2)]
    out = model(xs)
    out.backward()
    t = torch.tensor([[0.3, -1.2]], dtype=torch.float64, requires_grad=True)
    seq = bridge.to_torch(model, exact=True)
    y = seq(t)
    y.sum().backward()
    assert y.item() == out.data
    lins = [m for m in seq if isinstance(m, torch.nn.Linear)]
    for lin, layer in list(zip(lins, model.layers))[1:]:
        assert lin.weight.grad.tolist() == [[w.grad for w in n.w] for n in layer.neurons]
        assert lin.bias.grad.tolist() == [n.b.grad for n in layer.neurons]


def test_dropout_and_training_mode(torch, bridge):
    model = MLP(2, [4, 1], dropout=0.25)
    seq = bridge.to_torch(model)
    assert [type(m) for m in seq] == [torch.nn.Linear, torch.nn.ReLU, torch.nn.Dropout, torch.nn.Linear]
    assert seq[2].p == 0.25 and seq.training
    model.eval()
    assert not bridge.to_torch(model).training
    back = bridge.from_torch(seq.eval())
    assert not back.training
    assert [n.dropout for n in back.layers[0].neurons] == [0.25] * 4
    assert [n.dropout for n in back.layers[1].neurons] == [0.0]


def test_to_torch_refuses_what_it_cannot_map(torch, bridge):
    with pytest.raises(TypeError, match="takes a micrograd MLP, not 'Layer'"):
        bridge.to_torch(micrograd.Layer(2, 3))
    model = MLP(2, [3, 1])
    model.layers[0].neurons[1].activation = "tanh"
    with pytest.raises(ValueError, match=r"layer 0: its neurons have different activations \['relu', 'tanh'\]"):
        bridge.to_torch(model)


def test_from_torch_names_what_it_cannot_map(torch, bridge):
    nn = torch.nn
    with pytest.raises(TypeError, match=r"cannot map 1: LayerNorm.*torch.nn.modules.normalization.LayerNorm"):
        bridge.from_torch(nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3), nn.Linear(3, 1)))
    with pytest.raises(TypeError, match="takes a torch.nn.Sequential, not 'Linear'"):
        bridge.from_torch(nn.Linear(2, 3))
    with pytest.raises(ValueError, match=r"cannot map 0: ReLU\(\) comes before any Linear"):
        bridge.from_torch(nn.Sequential(nn.ReLU(), nn.Linear(2, 1)))
    with pytest.raises(ValueError, match="cannot map 2: Tanh.*follows another activation"):
        bridge.from_torch(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Tanh()))
    with pytest.raises(ValueError, match="cannot map 2: ReLU.*after a Dropout"):
        bridge.from_torch(nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.5), nn.ReLU()))
    with pytest.raises(ValueError, match="has no bias"):
        bridge.from_torch(nn.Sequential(nn.Linear(2, 3, bias=False)))
    with pytest.raises(ValueError, match="takes 4 inputs but the layer before gives 3"):
        bridge.from_torch(nn.Sequential(nn.Linear(2, 3), nn.Linear(4, 1)))
    with pytest.raises(ValueError, match="empty Sequential"):
        bridge.from_torch(nn.Sequential())


def test_exact_model_pickles(torch, bridge):
    seq = bridge.to_torch(MLP(2, [3, 1], activation="tanh"), exact=True)
    again = pickle.loads(pickle.dumps(seq))
    x = torch.tensor([[0.5, -0.25]], dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(again(x), seq(x))
