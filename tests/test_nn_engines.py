"""Compiled and pure engines agree bit for bit on MLPs: forward, backward and optimizer steps."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from array import array

from hypothesis import given, settings
from hypothesis import strategies as st

ACTS = ["relu", "tanh", "sigmoid", "linear"]
finite = st.floats(min_value=-3.0, max_value=3.0, allow_nan=False, allow_infinity=False)


@st.composite
def mlps(draw):
    nin = draw(st.integers(1, 6))
    sizes = draw(st.lists(st.integers(1, 6), min_size=1, max_size=3))
    act = draw(st.sampled_from(ACTS))
    dims = list(zip([nin] + sizes, sizes))
    weights = [(draw(st.lists(st.lists(finite, min_size=i, max_size=i), min_size=o, max_size=o)),
                draw(st.lists(finite, min_size=o, max_size=o))) for i, o in dims]
    x = draw(st.lists(st.one_of(finite, st.integers(-3, 3)), min_size=nin, max_size=nin))
    as_values = draw(st.booleans())
    return act, weights, x, as_values


def _run(E, act, weights, x, as_values, opt):
    # an MLP through the fused kernels, as nn.Layer calls them: hidden `act`, last layer linear
    params = []
    layers = []
    for rows, biases in weights:
        ws = [[E.Value(w) for w in row] for row in rows]
        bs = [E.Value(b) for b in biases]
        for w, b in zip(ws, bs):
            params += w + [b]
        layers.append((ws, bs))
    xs = [E.Value(v) for v in x] if as_values else list(x)
    h = xs
    for i, (ws, bs) in enumerate(layers):
        h = E._layer(ws, bs, h, act if i < len(layers) - 1 else "linear")
    loss = E._dot(E.Value(0.5), h, h)  # sum of squares: exercises shared children
    loss = loss + 1e-4 * E._dot(E.Value(0.0), params, params)
    loss.backward()
    out = [loss.data] + [v.data for v in h] + [p.grad for p in params]
    if as_values:
        out += [v.grad for v in xs]
    n = len(params)
    if opt == "sgd":
        buf = array("d", bytes(8 * n))
        for started in (False, True):
            E._sgd_step(params, 0.1, 0.9, 0.01, buf, started)
        out += list(buf)
    else:
        m, v = array("d", bytes(8 * n)), array("d", bytes(8 * n))
        for t in (1, 2):
            E._adam_step(params, 0.01, 0.9, 0.999, 1e-8, 0.01, m, v, t)
        out += list(m) + list(v)
    out += [p.data for p in params]
    E._zero_grad(params)
    out += [p.grad for p in params]
    return [float(o).hex() for o in out]


@settings(max_examples=150, deadline=None)
@given(spec=mlps(), opt=st.sampled_from(["sgd", "adam"]))
def test_kernels_bit_identical(engines, spec, opt):
    compiled, python = engines
    act, weights, x, as_values = spec
    assert _run(compiled, act, weights, x, as_values, opt) == _run(python, act, weights, x, as_values, opt)


def _run_hooked(E, act, weights, x, hooks, late):
    # gradient hooks (a _backward on a leaf) on some weights and inputs, set before the layers
    # run or after: both engines call them in the same order, with the same grads
    log = []
    layers = [([[E.Value(w) for w in row] for row in rows], [E.Value(b) for b in biases])
              for rows, biases in weights]
    xs = [E.Value(v) for v in x]
    leaves = xs + [v for ws, bs in layers for v in [w for row in ws for w in row] + bs]

    def hook_all():
        for k in hooks:
            v = leaves[k % len(leaves)]
            v._backward = lambda v=v, k=k: log.append((k, v.grad.hex()))
    if not late:
        hook_all()
    h = xs
    for i, (ws, bs) in enumerate(layers):
        h = E._layer_rows(E._rows(ws, bs), h, act if i < len(layers) - 1 else "linear")
    if late:
        hook_all()
    loss = E._dot(E.Value(0.5), h, h)
    loss.backward()
    return log, [v.grad.hex() for v in leaves]


@settings(max_examples=100, deadline=None)
@given(spec=mlps(), hooks=st.lists(st.integers(0, 200), max_size=6), late=st.booleans())
def test_gradient_hooks_run_alike(engines, spec, hooks, late):
    compiled, python = engines
    act, weights, x, _ = spec
    got = _run_hooked(compiled, act, weights, x, hooks, late)
    assert got == _run_hooked(python, act, weights, x, hooks, late)
    assert len(got[0]) == len({k % len(got[1]) for k in hooks})  # each hooked leaf ran once


SCRIPT = textwrap.dedent("""
    import json, pickle, random
    from micrograd import IMPLEMENTATION, MLP, losses, optim
    from micrograd.datasets import make_moons
    out = {"engine": IMPLEMENTATION, "runs": []}
    X, y = make_moons(30, 0.2, seed=3)
    for act, opt_name in [("relu", "sgd"), ("tanh", "adam"), ("sigmoid", "sgd")]:
        random.seed(5)
        model = MLP(2, [8, 6, 1], activation=act, dropout=0.25)
        params = model.parameters()
        opt = (optim.SGD(params, lr=0.2, momentum=0.9, weight_decay=1e-3) if opt_name == "sgd"
               else optim.Adam(params, lr=0.05, weight_decay=1e-3))
        trace = []
        for k in range(3):
            scores = [model(row) for row in X]
            loss = losses.hinge(scores, y) + 1e-4 * losses.l2(params)
            loss = loss + losses.mse(scores[:3], [0.5, -0.5, 1]) + losses.cross_entropy(scores[:4], 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
            trace.append(loss.data.hex())
        model.eval()
        trace += [model(row).data.hex() for row in X[:5]]
        copy = pickle.loads(pickle.dumps(model))
        trace += [p.data.hex() for p in copy.parameters()]
        out["runs"].append(trace)
    print(json.dumps(out))
""")


def _script(no_ext: bool) -> dict:
    env = dict(os.environ)
    env.pop("MICROGRAD_NO_EXTENSIONS", None)
    if no_ext:
        env["MICROGRAD_NO_EXTENSIONS"] = "1"
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_training_script_bit_identical_across_engines(engines):
    # nn, optim, losses and dropout through the engine each process selects at import
    compiled, python = _script(False), _script(True)
    assert (compiled["engine"], python["engine"]) == ("compiled", "python")
    assert compiled["runs"] == python["runs"]
