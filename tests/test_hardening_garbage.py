"""Garbage in: thousands of random calls of every public callable raise Python exceptions, never crash."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Run in a child so that a crash (segfault, abort) is a failed exit status, not a dead pytest.
# MICROGRAD_FUZZ_TRACE=1 prints every call before making it, to find the one that crashed.
_CHILD = textwrap.dedent(r"""
    import collections, decimal, faulthandler, fractions, gc, math, operator, os, random, sys
    import warnings
    faulthandler.enable()
    if sys.platform.startswith("linux") and not os.environ.get("MICROGRAD_SANITIZED"):
        import resource  # a safety net: a runaway allocation is a MemoryError, not a swapped box
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, resource.getrlimit(resource.RLIMIT_AS)[1]))
    warnings.simplefilter("ignore")

    import micrograd
    from micrograd import engine as ENG, losses, optim, datasets, nn
    from micrograd.viz import draw_dot, trace

    seed, calls = int(sys.argv[1]), int(sys.argv[2])
    TRACE = os.environ.get("MICROGRAD_FUZZ_TRACE") == "1"
    rng = random.Random(seed)
    V = micrograd.Value
    E = ENG._impl  # the active engine's kernels (_layer, _dot, optimizer steps)

    class EvilReal(float):
        def __float__(self): raise RuntimeError("evil __float__")
    class EvilIndex:
        def __index__(self): raise RuntimeError("evil __index__")
    class EvilIter:
        def __iter__(self): raise RuntimeError("evil __iter__")
        def __len__(self): return 3
    class LyingList(list):
        def __len__(self): return 10**6
    class EvilHash:
        def __hash__(self): raise RuntimeError("evil __hash__")
        def __eq__(self, o): raise RuntimeError("evil __eq__")

    def uninit():
        return V.__new__(V)

    def pool():
        xs = [None, "", "x", "1.0", b"2", [], [1.0, 2.0], (), (V(1.0),), {}, {1: 2}, set(),
              float("nan"), float("inf"), -float("inf"), 0, -0.0, 1, -1, 2, 0.5, 10**400,
              -10**400, 2**63, 2**64 + 1, 1e308, -1e308, 5e-324, complex(1, 2), 1j, True, False,
              object(), V(1.5), V(-2.0), V(0.0), V(float("nan")), uninit(), fractions.Fraction(1, 3),
              decimal.Decimal("1.5"), decimal.Decimal("nan"), lambda: 1, (i for i in range(3)),
              EvilReal(1.0), EvilIndex(), EvilIter(), LyingList([1.0]), EvilHash(), nn.MLP(2, [2, 1]),
              nn.Neuron(2), [V(1.0), V(2.0)], [[1.0, 2.0]], "relu", "tanh", "linear", -5, 10**6,
              range(3), memoryview(b"abcdefgh"), bytearray(8)]
        try:
            import numpy as np
            xs += [np.float64("nan"), np.float64(2.5), np.int64(7), np.array([1.0, 2.0]),
                   np.float32(1.5), np.zeros(3)]
        except ImportError:
            pass
        return xs

    POOL = pool()
    # sizes like 10**400 make nn and make_moons build for ever (the user's request, not a bug):
    # constructors and other callables get garbage without huge ints; the ops get everything
    SMALL = [x for x in POOL if not (isinstance(x, int) and abs(x) > 100)]

    def g():
        return rng.choice(POOL)

    def gs():
        return rng.choice(SMALL)

    def args(lo=0, hi=4):
        return [gs() for _ in range(rng.randint(lo, hi))]

    def kwargs():
        keys = ["data", "_children", "_op", "label", "nin", "nout", "nonlin", "activation", "dropout",
                "lr", "momentum", "betas", "eps", "weight_decay", "noise", "seed", "n_samples",
                "format", "rankdir", "input_size", "nouts", "bogus"]
        return {rng.choice(keys): gs() for _ in range(rng.randint(0, 2))}

    BIN = [operator.add, operator.sub, operator.mul, operator.truediv, operator.pow,
           operator.floordiv, operator.mod, operator.lt, operator.eq, operator.matmul]

    def fresh():
        return rng.choice([V(rng.uniform(-3, 3)), V(0.0), V(-1.0) ** 1, V(2.0) * V(3.0), uninit()])

    def model():
        return rng.choice([nn.MLP(2, [3, 1]), nn.Layer(2, 2), nn.Neuron(2), nn.Module()])

    def no_grad_case():
        c = ENG.no_grad(*args(0, 1))
        c.__enter__()
        try:
            rng.choice([fresh(), V(1.0)]) * g()
        finally:
            c.__exit__(*args(0, 3))

    CASES = {
        "Value()": lambda: V(*args(), **kwargs()),
        "binop": lambda: rng.choice(BIN)(fresh(), g()),
        "rbinop": lambda: rng.choice(BIN)(g(), fresh()),
        "pow3": lambda: pow(fresh(), g(), g()),
        "unary": lambda: rng.choice([operator.neg, operator.pos, abs, hash, repr, str, bool, float,
                                     int, round, math.floor])(fresh()),
        "method": lambda: getattr(fresh(), rng.choice(["relu", "tanh", "exp", "log", "sigmoid",
                                                        "backward", "__reduce__"]))(*args(0, 2)),
        "setattr": lambda: setattr(fresh(), rng.choice(["data", "grad", "label", "_op", "_prev",
                                                        "_backward", "c", "bogus"]), g()),
        "getattr": lambda: getattr(fresh(), rng.choice(["data", "grad", "label", "_op", "_prev",
                                                        "_backward"])),
        "backward_after": lambda: (lambda v: (setattr(v, "_backward", rng.choice([g(), lambda: 1,
                                   lambda: 1 / 0])), v.backward()))(fresh() * fresh()),
        "no_grad": no_grad_case,
        "is_grad_enabled": lambda: ENG.is_grad_enabled(*args(0, 1)),
        "Neuron": lambda: nn.Neuron(*args(0, 3), **kwargs()),
        "Layer": lambda: nn.Layer(*args(0, 3), **kwargs()),
        "MLP": lambda: nn.MLP(*args(0, 3), **kwargs()),
        "module_call": lambda: model()(*args(0, 2)),
        "module_method": lambda: getattr(model(), rng.choice(["parameters", "zero_grad", "train",
                                         "eval", "state_dict", "load_state_dict"]))(*args(0, 2)),
        "module_setattr": lambda: (lambda m: (setattr(m, rng.choice(["w", "b", "neurons", "layers",
                                   "nonlin", "activation", "dropout"]), g()), m([1.0, 2.0])))(model()),
        "SGD": lambda: optim.SGD(*args(0, 3), **kwargs()),
        "Adam": lambda: optim.Adam(*args(0, 3), **kwargs()),
        "opt_step": lambda: (lambda o: (setattr(o, rng.choice(["lr", "momentum", "betas", "eps",
                             "weight_decay", "t", "params", "_buf", "_m"]), g()), o.step(),
                             o.zero_grad()))(rng.choice([optim.SGD, optim.Adam])(
                             nn.MLP(2, [2, 1]).parameters(), lr=0.1)),
        "loss": lambda: getattr(losses, rng.choice(["mse", "hinge", "cross_entropy", "l2"]))(*args(0, 3)),
        "make_moons": lambda: datasets.make_moons(*args(0, 3), **kwargs()),
        "draw_dot": lambda: draw_dot(*args(0, 3), **kwargs()),
        "trace": lambda: trace(*args(0, 2)),
        "kernels": lambda: getattr(E, rng.choice(["_layer", "_dot", "_zero_grad", "_sgd_step",
                                                  "_adam_step"]))(*args(0, 9)),
    }
    names = sorted(CASES)

    def sane():
        # a fixed graph still gives the same numbers after whatever came before
        a, b = V(1.5), V(-0.5)
        c = (a * b + a ** 2 - b / a).tanh() + (a * 0.3).exp() - a.log() + b.relu() + b.sigmoid()
        c.backward()
        return (c.data, a.grad, b.grad)

    want = sane()
    outcomes = collections.Counter()
    bad = []
    for i in range(calls):
        name = rng.choice(names)
        if TRACE:
            print(i, name, flush=True)
        try:
            CASES[name]()
            outcomes["ok"] += 1
        except SystemError as exc:  # C-API misuse in the engine: a bug, never the input's fault
            bad.append((i, name, repr(exc)))
        except Exception as exc:
            outcomes[type(exc).__name__] += 1
        if not ENG.is_grad_enabled():
            bad.append((i, name, "no_grad() left recording off"))
            break
        if i % 500 == 0:
            assert sane() == want, (i, sane(), want)
    for _ in range(3):
        gc.collect()
    assert sane() == want
    print("summary", calls, "calls", dict(outcomes), "systemerrors", len(bad), flush=True)
    for b in bad[:20]:
        print("SYSTEMERROR", *b)
    sys.exit(1 if bad else 0)
""")


def _run(seed: int, calls: int, extra_env: dict | None = None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])))
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-c", _CHILD, str(seed), str(calls)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("seed", [1, 2])
def test_thousands_of_garbage_calls_never_crash(seed):
    calls = 2000 if os.environ.get("MICROGRAD_SANITIZED") else 10000
    r = _run(seed, calls)
    assert r.returncode == 0, (f"exit {r.returncode} (negative: killed by a signal); rerun with "
                               f"MICROGRAD_FUZZ_TRACE=1 to see the last call\n{r.stdout[-3000:]}\n"
                               f"{r.stderr[-5000:]}")
    assert f"summary {calls} calls" in r.stdout, r.stdout[-2000:]
    print(r.stdout.strip().splitlines()[-1])


def test_garbage_on_the_pure_engine_too():
    r = _run(3, 1000, {"MICROGRAD_NO_EXTENSIONS": "1"})
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    assert "summary 1000 calls" in r.stdout
