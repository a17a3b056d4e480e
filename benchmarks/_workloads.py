"""The workloads, written once against upstream micrograd's API: compiled, pure and upstream run the same code."""
import gc
import math
import os
import random
import sys
import time

# upstream's test_more_ops program is the tests' (tests/more_ops.py), kept there because the
# wheels' test run copies tests/ alone; the benchmarks always run from the repository. Appended,
# so that nothing in tests/ can stand in for the micrograd a job is meant to import
sys.path.append(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from more_ops import more_ops  # noqa: E402


class Span:
    """A measured interval on two clocks: wall time, and this process's CPU time.

    The table shows wall time; CPU time (in the JSON, and with --clock cpu) is what to read
    when other work competes for the machine's cores. A reading is a point on both clocks, and
    the difference of two readings (later - earlier) is the interval between them less the
    clocks' own cost (CLOCK_COST), so that a span measures the code between the readings alone.
    """
    __slots__ = ("wall", "cpu")

    def __init__(self, wall, cpu):
        self.wall, self.cpu = wall, cpu

    def __sub__(self, other):
        return Span(self.wall - other.wall - CLOCK_COST.wall, self.cpu - other.cpu - CLOCK_COST.cpu)

    def __truediv__(self, k):
        return Span(self.wall / k, self.cpu / k)


def _now():
    return Span(time.perf_counter_ns(), time.process_time_ns())


CLOCK_SPANS = 2001  # empty spans timed for CLOCK_COST


def clock_cost(n=CLOCK_SPANS):
    """What two readings of _now() with nothing between them measure, per clock (ns): the median
    of n such empty spans. Reading this process's CPU clock is a system call (~1 us on a VM),
    so without it a microsecond-scale sample would count the clock as well as the code."""
    walls, cpus = [], []
    for _ in range(n):
        a = _now()
        b = _now()
        walls.append(b.wall - a.wall)
        cpus.append(b.cpu - a.cpu)
    walls.sort()
    cpus.sort()
    return Span(walls[n // 2], cpus[n // 2])


CLOCK_COST = clock_cost()  # measured once per worker, before any workload runs

# Sizes and repetitions per mode. "smoke" only proves the code runs (tests/test_benchmarks.py).
SIZES = {
    "smoke": dict(budget=0.0, more_ops_batch=5, more_ops_reps=(2, 2), chains=20, depth=10,
                  graph_reps=(2, 2), deep=2000, deep_reps=(1, 1), moons_n=10, moons_hidden=[4, 4],
                  moons_reps=(2, 2), mlp=(8, [8, 8, 4]), mlp_reps=(2, 2), mlp_cold_reps=(2, 2), mem_chains=20,
                  mem_trace_chains=20, mem_depth=100, import_reps=1, gpt_steps=2, gpt_rounds=1, ratio_rounds=1, gpt_small=(8, 1),
                  gpt_large=(8, 2),
                  digits_n=100, digits_hidden=[8], digits_epochs=2, digits_batch=32,
                  digits_scaled={}, fops=(5, 2)),
    "quick": dict(budget=2.0, more_ops_batch=200, more_ops_reps=(5, 30), chains=2000, depth=100,
                  graph_reps=(2, 5), deep=10**6, deep_reps=(1, 3), moons_n=100,
                  moons_hidden=[16, 16], moons_reps=(3, 30), mlp=(64, [64, 64, 10]),
                  mlp_reps=(3, 50), mlp_cold_reps=(3, 30), mem_chains=100, mem_trace_chains=25, mem_depth=1000,
                  import_reps=3, gpt_steps=8, gpt_rounds=3, ratio_rounds=5, gpt_small=(16, 1), gpt_large=(32, 2),
                  digits_n=None, digits_hidden=[64, 64], digits_epochs=20, digits_batch=32,
                  digits_scaled={"pure": 4, "upstream": 2}, fops=(2000, 7)),
    "full": dict(budget=15.0, more_ops_batch=500, more_ops_reps=(15, 100), chains=2000, depth=100,
                 graph_reps=(5, 15), deep=10**6, deep_reps=(3, 7), moons_n=100,
                 moons_hidden=[16, 16], moons_reps=(10, 100), mlp=(64, [64, 64, 10]),
                 mlp_reps=(10, 200), mlp_cold_reps=(10, 100), mem_chains=1000, mem_trace_chains=200, mem_depth=1000,
                 import_reps=10, gpt_steps=20, gpt_rounds=3, ratio_rounds=5, gpt_small=(16, 1), gpt_large=(32, 2),
                 digits_n=None, digits_hidden=[64, 64], digits_epochs=20, digits_batch=32,
                 digits_scaled={"pure": 10, "upstream": 4}, fops=(5000, 9)),
}
# (min, max) repetitions: more than min only while the job has spent less than `budget`
# seconds, so fast implementations get many samples and slow ones at least min.
# The worker adds what the runner made and sent on its stdin: P["moons"] = [X, y], the
# moons_step data (benchmarks/runner.py's job_input), the same points for every implementation;
# P["digits"] = [X, y], scikit-learn's digits as micrograd.datasets.load_digits gives them (a
# seeded sample of digits_n of them when that is set), or P["digits_missing"], why not.
# digits: the demo's default training (digits_epochs epochs of batches of digits_batch); the
# implementations in digits_scaled time only that many batches of the first epoch and scale.


def repetitions(P, key):
    """Yields 0, 1, ... while more repetitions are wanted (see SIZES)."""
    lo, hi = P[key]
    t0 = time.perf_counter()
    i = 0
    while i < hi and (i < lo or time.perf_counter() - t0 < P["budget"]):
        yield i
        i += 1


class Unavailable(Exception):
    """This implementation lacks what the workload needs (e.g. micrograd.nn not written yet)."""


def metric(name, unit, samples, error=None, note="", ratios=True, scaled=None, paired=False):
    """One measured quantity: samples (numbers or Spans) already divided into their unit.

    scaled: how the samples were scaled up from a part of the work (the table marks the row).
    paired: sample k is the same piece of work in every implementation (a script's step k), so
    a target compares them step by step (the median of the per-step ratios).
    """
    samples = list(samples)
    spans = bool(samples) and isinstance(samples[0], Span)
    return {"metric": name, "unit": unit, "samples": [x.wall for x in samples] if spans else samples,
            "cpu_samples": [x.cpu for x in samples] if spans else None,
            "error": error, "note": note, "ratios": ratios, "scaled": scaled,
            "paired": paired}


def _errname(exc):
    return f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------- upstream's test_more_ops

def run_more_ops(Value, P):
    batch = P["more_ops_batch"]
    for _ in range(batch):  # warm-up
        more_ops(Value)[2].backward()
    samples = []
    for _ in repetitions(P, "more_ops_reps"):
        gc.collect()
        t0 = _now()
        for _ in range(batch):
            more_ops(Value)[2].backward()
        samples.append((_now() - t0) / batch / 1e9)
    a, b, g = more_ops(Value)
    g.backward()
    check = [float(g.data), float(a.grad), float(b.grad)]
    return {"metrics": [metric("build+backward", "s", samples)], "check": check,
            "info": {"calls_per_sample": batch}}


# ---------------------------------------------------------------- wide graph, depth ~100

def graph_leaves(Value, chains, seed=7):
    rng = random.Random(seed)
    A = [Value(rng.uniform(-1.0, 1.0)) for _ in range(chains)]
    B = [Value(rng.uniform(-0.9, 0.9)) for _ in range(chains)]  # |b| < 1: x*b + a stays bounded
    return A, B


def graph_build(A, B, depth):
    """`chains` independent chains x = x*b + a of `depth` op nodes, then a pairwise sum tree.

    Op nodes: chains*depth + chains - 1; longest path: depth + log2(chains), so upstream's
    recursive topological sort stays far from the recursion limit.
    """
    ends = []
    for a, b in zip(A, B):
        x = a
        for _ in range(depth // 2):
            x = x * b
            x = x + a
        ends.append(x)
    while len(ends) > 1:
        pairs = [ends[i] + ends[i + 1] for i in range(0, len(ends) - 1, 2)]
        if len(ends) % 2:
            pairs.append(ends[-1])
        ends = pairs
    return ends[0]


def graph_counts(chains, depth):
    ops = chains * 2 * (depth // 2) + chains - 1
    return ops, ops + 2 * chains  # op nodes, all nodes reached by backward (ops + leaves)


def run_graph(Value, P):
    chains, depth = P["chains"], P["depth"]
    ops, nodes = graph_counts(chains, depth)
    A, B = graph_leaves(Value, min(chains, 50))  # warm-up on a small graph
    graph_build(A, B, depth).backward()
    del A, B
    fwd, bwd, free, check = [], [], [], None
    for _ in repetitions(P, "graph_reps"):
        A, B = graph_leaves(Value, chains)
        gc.collect()
        t0 = _now()
        root = graph_build(A, B, depth)
        t1 = _now()
        root.backward()
        t2 = _now()
        if check is None:
            check = [float(root.data), math.fsum(float(v.grad) for v in A + B)]
        del A, B
        t3 = _now()
        del root
        gc.collect()  # upstream's closures make cycles: memory is back only after a collection
        t4 = _now()
        fwd.append((t1 - t0) / ops)
        bwd.append((t2 - t1) / nodes)
        free.append((t4 - t3) / nodes)
    return {"metrics": [metric("forward", "ns/node", fwd, note="per op node"),
                        metric("backward", "ns/node", bwd, note="per node reached (ops + leaves)"),
                        metric("free", "ns/node", free, note="del root + gc.collect()")],
            "check": check, "info": {"op_nodes": ops, "nodes": nodes, "longest_path":
                                     depth + math.ceil(math.log2(max(chains, 1)))}}


# ---------------------------------------------------------------- deep chain

def deep_build(Value, n):
    w = Value(0.999999)
    b = Value(1e-6)
    x = Value(1.0)
    for _ in range(n // 2):
        x = x * w
        x = x + b
    return x, w, b


def run_deep(Value, P):
    n = P["deep"]
    x, w, b = deep_build(Value, 200)  # warm-up, shallow enough for upstream's recursion
    x.backward()
    del x, w, b
    fwd, bwd, free, check, error = [], [], [], None, None
    for _ in repetitions(P, "deep_reps"):
        gc.collect()
        t0 = _now()
        x, w, b = deep_build(Value, n)
        t1 = _now()
        try:
            x.backward()
        except RecursionError as exc:
            error = _errname(exc)
            del exc
        t2 = _now()
        if error is None and check is None:
            check = [float(x.data), float(w.grad), float(b.grad)]
        del w, b
        t3 = _now()
        del x
        gc.collect()
        t4 = _now()
        fwd.append((t1 - t0) / 1e9)
        bwd.append((t2 - t1) / 1e9)
        free.append((t4 - t3) / 1e9)
        if error is not None:
            break  # deterministic: one failure says it
    return {"metrics": [metric("forward", "s", fwd), metric("backward", "s", [] if error else bwd,
                                                               error=error),
                        metric("free", "s", free, note="del root + gc.collect()")],
            "check": check, "info": {"op_nodes": 2 * (n // 2)}}


# ---------------------------------------------------------------- upstream's moons demo

def run_moons(mg, P):
    Value, MLP = mg.Value, mg.nn.MLP
    X, y = P["moons"]  # micrograd.datasets.make_moons(moons_n, 0.1, seed=1337), from the runner
    random.seed(1337)
    model = MLP(2, P["moons_hidden"] + [1])

    # upstream's demo.ipynb, cell by cell (the minibatch branch is never taken there)
    def loss(batch_size=None):
        Xb, yb = X, y
        inputs = [list(map(Value, xrow)) for xrow in Xb]
        # forward the model to get scores
        scores = list(map(model, inputs))
        # svm "max-margin" loss
        losses = [(1 + -yi*scorei).relu() for yi, scorei in zip(yb, scores)]
        data_loss = sum(losses) * (1.0 / len(losses))
        # L2 regularization
        alpha = 1e-4
        reg_loss = alpha * sum((p*p for p in model.parameters()))
        total_loss = data_loss + reg_loss
        # also get accuracy
        accuracy = [(yi > 0) == (scorei.data > 0) for yi, scorei in zip(yb, scores)]
        return total_loss, sum(accuracy) / len(accuracy)

    def step(k):
        # forward
        total_loss, acc = loss()
        # backward
        model.zero_grad()
        total_loss.backward()
        # update (sgd)
        learning_rate = 1.0 - 0.9*k/100
        for p in model.parameters():
            p.data -= learning_rate * p.grad
        return float(total_loss.data)

    losses = [step(0)]  # warm-up: step 0 of the demo
    samples = []
    for k in (1 + i for i in repetitions(P, "moons_reps")):
        gc.collect()
        t0 = _now()
        losses.append(step(k))
        samples.append((_now() - t0) / 1e9)
    return {"metrics": [metric("step", "s", samples)], "check": losses,
            "info": {"samples": len(X), "params": len(model.parameters())}}


# ---------------------------------------------------------------- MLP(64, [64, 64, 10]) per sample

MLP_LR = 1e-6  # upstream's init gives outputs ~100: a tiny step keeps every rep finite and alike


def mlp_sample(P):
    """The MLP(64) sample's sizes, input row and target; `random` seeded for the model's weights
    (run_mlp and its C floor draw them after this, in the same order)."""
    nin, nouts = P["mlp"]
    rng = random.Random(42)
    xrow = [rng.uniform(-1.0, 1.0) for _ in range(nin)]
    target = [rng.uniform(-1.0, 1.0) for _ in range(nouts[-1])]
    random.seed(1337)
    return nin, nouts, xrow, target


def run_mlp(mg, P):
    Value, MLP = mg.Value, mg.nn.MLP
    nin, nouts, xrow, target = mlp_sample(P)
    model = MLP(nin, nouts)
    lr = MLP_LR

    if mg.upstream:
        def step():
            x = list(map(Value, xrow))
            out = model(x)
            loss = sum((o - t)**2 for o, t in zip(out, target))
            model.zero_grad()
            loss.backward()
            for p in model.parameters():
                p.data -= lr * p.grad
            return float(loss.data)
    else:
        opt = mg.optim.SGD(model.parameters(), lr=lr)

        def step():
            x = list(map(Value, xrow))
            out = model(x)
            loss = sum((o - t)**2 for o, t in zip(out, target))
            opt.zero_grad()
            loss.backward()
            opt.step()
            return float(loss.data)

    losses = [step()]  # warm-up
    loop, cold = mlp_samples(step, P, losses)
    return {"metrics": [metric("sample", "s", loop, note=MLP_LOOP_NOTE),
                        metric("sample after gc.collect()", "s", cold, note=MLP_COLD_NOTE)],
            "check": losses, "info": {"params": len(model.parameters()),
                                      "update": "hand loop" if mg.upstream else "optim.SGD"}}


def run_mlp_floor(floor_module, P):
    """run_mlp's step as C arithmetic alone (the floor: _floor.MLPStep), from the same weights;
    and, timed apart, the step's own Python (its inputs and its loss) on the float-only Value.

    The weights are drawn as nn.MLP draws them (random.seed(1337); each neuron's nin draws of
    random.uniform(-1, 1), its bias 0.0), so its losses are the engine's, bit for bit. The two
    floors' sum is what any engine pays for this step: the arithmetic, and the Python that the
    workload itself runs (x = list(map(Value, xrow)) and the loss over the outputs), which no
    engine can make cheaper than a class that records nothing.
    """
    nin, nouts, xrow, target = mlp_sample(P)
    sizes = [nin] + list(nouts)
    weights = [[[random.uniform(-1, 1) for _ in range(sizes[k])] for _ in range(sizes[k + 1])]
               for k in range(len(nouts))]
    biases = [[0.0] * n for n in nouts]
    floor = floor_module.MLPStep(weights, biases, target, MLP_LR)
    Value = floor_module.Value
    outs = [Value(t + 0.5) for t in target]  # (stands for the model's outputs: one per target)

    def step():
        return floor.step(xrow)

    def own_python():  # (its Values made and freed within the span, as the step's are)
        x = list(map(Value, xrow))
        loss = sum((o - t)**2 for o, t in zip(outs, target))
        return len(x) + loss.data

    losses = [step()]  # warm-up
    loop, cold = mlp_samples(step, P, losses)
    own_python()
    py_loop, py_cold = mlp_samples(own_python, P, [])
    return {"metrics": [metric("sample", "s", loop, note=MLP_FLOOR_NOTE),
                        metric("sample after gc.collect()", "s", cold, note=MLP_COLD_NOTE),
                        metric(MLP_OWN_PYTHON, "s", py_loop, note=MLP_OWN_PYTHON_NOTE),
                        metric(MLP_OWN_PYTHON + " after gc.collect()", "s", py_cold,
                               note=MLP_COLD_NOTE)],
            "check": losses, "info": {"params": sum(n * (m + 1) for m, n in zip(sizes, nouts)),
                                      "update": "C loop"}}


MLP_OWN_PYTHON = "the step's own Python"
MLP_OWN_PYTHON_NOTE = ("the floor of the workload's own Python: its input Values and its loss "
                       "over 10 outputs, on the float-only Value (no graph)")
MLP_FLOOR_NOTE = ("the floor: the same step's arithmetic in plain C loops over dense arrays (no "
                  "graph, no objects), compiled with the engine's flags; its losses are ours")
MLP_LOOP_NOTE = "forward+backward+SGD step, steps back to back as a training loop runs them"
MLP_COLD_NOTE = "each step right after a full gc.collect() (cold caches, no collection inside)"


def mlp_samples(step, P, out):
    """Per-step times two ways: a training loop (the target's figure) and cold single steps.

    In the loop, steps run back to back with the cyclic GC left as users have it: its work in
    a step is that step's cost, and each step finds the caches as the last one left them. The
    cold figure runs gc.collect() before each step, outside the timing: no collection lands in
    the step, but the collection has just walked the whole heap through the caches.
    """
    gc.collect()
    loop = []
    for _ in repetitions(P, "mlp_reps"):
        t0 = _now()
        out.append(step())
        loop.append((_now() - t0) / 1e9)
    cold = []
    for _ in repetitions(P, "mlp_cold_reps"):
        gc.collect()
        t0 = _now()
        out.append(step())
        cold.append((_now() - t0) / 1e9)
    return loop, cold


# ---------------------------------------------------------------- the digits job, per epoch

DIGITS_SEED = 1337  # the demo's defaults: micrograd/demo_digits.py's train_digits
DIGITS_LR = 0.01
DIGITS_TEST_FRACTION = 0.2
DIGITS_EPOCH_NOTE = ("the demo's training batches (forward, cross-entropy averaged over the "
                     "batch, backward, Adam step); its per-epoch accuracy passes not timed")


def digits_split(n, seed, test_fraction=DIGITS_TEST_FRACTION):
    """(train, test) indices: micrograd.demo_digits.split's seeded shuffle (upstream cannot import it)."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    k = max(1, round(n * test_fraction))
    return order[k:], order[:k]


def digits_data(P):
    """The demo's split of the digits the runner sent: (X_train, y_train, X_test, y_test)."""
    if "digits_missing" in P:
        raise Unavailable(P["digits_missing"])
    X, y = P["digits"]
    train, test = digits_split(len(X), DIGITS_SEED)
    return [X[i] for i in train], [y[i] for i in train], [X[i] for i in test], [y[i] for i in test]


def digits_init(model):
    """The demo's weight scaling, uniform(-1, 1) / sqrt(nin): after random.seed(seed), MLP(...)."""
    for layer in model.layers:
        for neuron in layer.neurons:
            scale = len(neuron.w) ** -0.5
            for w in neuron.w:
                w.data *= scale


def digits_batches(n_train, P):
    """Epoch after epoch, the demo's minibatches: lists of training-row indices, seeded."""
    order = random.Random(DIGITS_SEED + 1)
    rows = list(range(n_train))
    batch = P["digits_batch"]
    for _ in range(P["digits_epochs"]):
        order.shuffle(rows)
        yield [rows[b:b + batch] for b in range(0, n_train, batch)]


def _upstream_unary(Value, x, f, df):
    # an op made the way upstream 0.1.0 makes its own (its Value has no exp or log)
    out = Value(f(x.data), (x,), f.__name__)

    def _backward():
        x.grad += df(x.data, out.data) * out.grad
    out._backward = _backward
    return out


def upstream_cross_entropy(Value, logits, t):
    """micrograd.losses.cross_entropy's graph, m + log(sum(exp(l - m))) - l[t], in upstream's Value."""
    m = max(v.data for v in logits)
    exps = [_upstream_unary(Value, v - m, math.exp, lambda x, e: e) for v in logits]
    total = sum(exps[1:], 0 + exps[0])
    return _upstream_unary(Value, total, math.log, lambda x, _: 1.0 / x) + m - logits[t]


class UpstreamAdam:
    """micrograd.optim.Adam's update (PyTorch's Adam), as a hand loop over upstream's Values."""

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-8):
        self.params, self.lr, self.betas, self.eps, self.t = params, lr, betas, eps, 0
        self.m = [0.0] * len(params)
        self.v = [0.0] * len(params)

    def step(self):
        beta1, beta2 = self.betas
        self.t += 1
        step = self.lr / (1.0 - beta1 ** self.t)
        bc2_sqrt = math.sqrt(1.0 - beta2 ** self.t)
        m, v = self.m, self.v
        for i, p in enumerate(self.params):
            g = p.grad
            m[i] = beta1 * m[i] + (1.0 - beta1) * g
            v[i] = beta2 * v[i] + (1.0 - beta2) * (g * g)
            p.data = p.data - step * (m[i] / (math.sqrt(v[i]) / bc2_sqrt + self.eps))


def run_digits(mg, P):
    """The digits demo's default training, timed per epoch; or its first batches, scaled to one.

    The same split, weights, batches, loss (the batch's mean cross-entropy: gradients averaged)
    and Adam schedule as `python -m micrograd.demo digits`; upstream gets the loss and the
    update written with its own Value. Implementations named in P["digits_scaled"] time that
    many batches of the first epoch, each scaled by (training rows / batch size) to an epoch.
    """
    Value = mg.Value
    X_train, y_train, X_test, y_test = digits_data(P)
    impl = "upstream" if mg.upstream else "pure" if mg.engine == "python" else "compiled"
    scaled = P["digits_scaled"].get(impl)
    random.seed(DIGITS_SEED)
    model = mg.nn.MLP(len(X_train[0]), P["digits_hidden"] + [10])
    digits_init(model)
    params = model.parameters()
    if mg.upstream:
        def xent(logits, t):
            return upstream_cross_entropy(Value, logits, t)
        opt = UpstreamAdam(params, lr=DIGITS_LR)
        zero_grad = model.zero_grad
    else:
        xent = mg.losses.cross_entropy
        opt = mg.optim.Adam(params, lr=DIGITS_LR)
        zero_grad = opt.zero_grad
    batch = P["digits_batch"]
    steps = P["digits_epochs"] * -(-len(X_train) // batch)
    losses = []

    def train(chunk):
        terms = [xent(model(X_train[i]), y_train[i]) for i in chunk]
        loss = sum(terms, Value(0.0)) * (1.0 / len(chunk))
        zero_grad()
        loss.backward()
        opt.lr = DIGITS_LR * (1.0 - 0.9 * len(losses) / steps)
        opt.step()
        losses.append(float(loss.data))

    samples = []
    for epoch in digits_batches(len(X_train), P):
        if scaled:
            for chunk in epoch[:scaled]:
                gc.collect()
                t0 = _now()
                train(chunk)
                samples.append((_now() - t0) / (len(chunk) / len(X_train)) / 1e9)
            break
        gc.collect()
        t0 = _now()
        for chunk in epoch:
            train(chunk)
        samples.append((_now() - t0) / 1e9)
    note = DIGITS_EPOCH_NOTE + ("; upstream: the loss's exp and log made as upstream makes "
                                "its ops, Adam as a hand loop" if mg.upstream else "")
    info = {"train": len(X_train), "test": len(X_test), "batch": batch,
            "params": len(params), "epochs": P["digits_epochs"]}
    if scaled:
        n = len(samples)
        how = (f"{n} batch{'es' if n != 1 else ''} of {batch} of the first epoch timed, each "
               f"× {len(X_train)}/{batch} (training rows / batch size)")
        info["scaled"] = how
        return {"metrics": [metric("epoch", "s", samples, note=note, scaled=how),
                            metric("test accuracy", "accuracy", [], ratios=False,
                                   error=f"not measured: scaled from {n} batches")],
                "check": losses, "info": info}
    if mg.upstream:
        predicted = [_argmax([v.data for v in model(row)]) for row in X_test]
    else:
        with mg.module.engine.no_grad():
            predicted = [_argmax([v.data for v in model(row)]) for row in X_test]
    acc = sum(p == t for p, t in zip(predicted, y_test)) / len(y_test)
    return {"metrics": [metric("epoch", "s", samples, note=note),
                        metric("test accuracy", "accuracy", [acc], ratios=False,
                               note=f"after {P['digits_epochs']} epochs, {len(y_test)} test images")],
            "check": losses, "info": info}


def _argmax(xs):
    return xs.index(max(xs))


# ---------------------------------------------------------------- memory

def rss_bytes():
    """Resident set size now, or None where it cannot be read cheaply."""
    try:
        import os
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        pass
    try:
        import psutil
        return psutil.Process().memory_info().rss
    except Exception:
        return None


def run_memory(mg, P):
    """Bytes per node of graphs kept alive only by their roots, and what is left once dropped.

    Per node is marginal: a first graph of the same size is built and kept, so one-time costs
    (allocator pools, the build's short-lived temporaries, a first slab) are paid before the
    measured graph is built. Nodes counted: op nodes + leaves.
    """
    import tracemalloc
    Value = mg.Value
    depth = P["mem_depth"]

    def build(chains):
        A, B = graph_leaves(Value, chains)
        return graph_build(A, B, depth)  # the leaf lists die here: only the root holds the graph

    live = getattr(mg, "live_nodes", None)
    A, B = graph_leaves(Value, 20)  # warm-up: code paths, interned objects
    graph_build(A, B, 10).backward()
    del A, B
    gc.collect()
    metrics = []

    # 1. Python's allocators, raw domain included (tracemalloc): exact, but slow for upstream,
    #    so on a smaller graph; first, so that its nodes are free for reuse in part 2.
    chains = P["mem_trace_chains"]
    nodes = graph_counts(chains, depth)[1]
    tracemalloc.start()
    t0 = tracemalloc.get_traced_memory()[0]
    keep = build(chains)
    gc.collect()
    t1 = tracemalloc.get_traced_memory()[0]
    root = build(chains)
    gc.collect()
    t2 = tracemalloc.get_traced_memory()[0]
    del keep, root
    gc.collect()
    t3 = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    # no ratios: exact for Python objects, but C arenas count in whole blocks at this size
    metrics.append(metric("retained (tracemalloc)", "B/node", [(t2 - t1) / nodes],
                          note=f"Python allocators (raw domain too), {nodes} nodes", ratios=False))
    metrics.append(metric("after drop (tracemalloc)", "B", [t3 - t0],
                          note="traced bytes still held after del + gc.collect()"))

    # 2. resident memory: sees every allocation, at page granularity (no tracemalloc running)
    chains = P["mem_chains"]
    nodes = graph_counts(chains, depth)[1]
    gc.collect()
    rss0 = rss_bytes()
    info = {"nodes": nodes, "depth": depth, "trace_nodes": graph_counts(P["mem_trace_chains"], depth)[1]}
    if rss0 is not None:
        keep = build(chains)
        gc.collect()
        rss1 = rss_bytes()
        root = build(chains)
        gc.collect()
        rss2 = rss_bytes()
        del keep, root
        gc.collect()
        rss3 = rss_bytes()
        if live is not None:
            info["live_nodes_after_drop"] = live()
        root = build(chains)
        gc.collect()
        rss4 = rss_bytes()
        del root
        gc.collect()
        metrics.insert(0, metric("retained (RSS)", "B/node", [(rss2 - rss1) / nodes],
                                 note=f"resident-set growth / nodes, {nodes} nodes"))
        metrics.insert(1, metric("after drop (RSS)", "B", [rss3 - rss0],
                                 note="RSS still held after del + gc.collect() (kept for reuse)"))
        metrics.insert(2, metric("rebuild after drop (RSS)", "B/node", [(rss4 - rss3) / nodes],
                                 note="growth when the same graph is built again: memory reused?",
                                 ratios=False))
    stats = getattr(mg, "arena_stats", None)
    if stats is not None:
        info["arena"] = stats()
    return {"metrics": metrics, "check": None, "info": info}


# ---------------------------------------------------------------- micrograd.functional per element

FOPS_NOTE = ("forward + backward of one call on fresh inputs, then backward() of F.sum of the "
             "results; per element (a layer's: per weight)")
FOPS_OWN_NOTE = ("less the harness: F.sum of the inputs themselves, its backward and release, on "
                 "a list as long (one sum node per element)")
FOPS_FLOOR_NOTE = ("a list op's floor, no graph and no arithmetic: one Python object per element made "
                   "and freed (float: array('d').tolist(); Value: list(map(Value, data)))")


def run_functional_ops(mg, P):
    """benchmarks/functional_ops.py's cases: ns per element of each F op, and nn.Layer's per weight.

    The pure engine runs a tenth of the calls (its figures are in no target).
    """
    import functional_ops
    calls, runs = P["fops"]
    if mg.engine == "python":
        calls = max(1, calls // 10)
    metrics = []
    for name, (total, own) in functional_ops.measure(calls, runs).items():
        name = name.replace("nn.Layer", "layer").replace(" (per weight)", " per weight")
        note = FOPS_FLOOR_NOTE if name.startswith("floor") else FOPS_NOTE
        metrics.append(metric(name, "ns/element", total, note=note))
        if own is not None:
            metrics.append(metric(name + " own", "ns/element", own, note=FOPS_OWN_NOTE))
    return {"metrics": metrics, "check": None, "info": {"calls": calls, "runs": runs}}


# ---------------------------------------------------------------- microgpt-style tiny GPT

def run_microgpt(Value, P, size, variant="a"):
    """benchmarks/microgpt.py's training step with this Value class: a fixed number of steps.

    Every implementation runs the same steps on the same names (a fixed count, not adaptive), so
    the losses can be compared step by step. The cyclic GC is left on, as scripts have it.
    """
    import microgpt
    n_embd, n_layer = P[size]
    trainer = microgpt.Trainer(Value, n_embd, n_layer, variant=variant)
    losses = [trainer.step()]  # warm-up: step 0
    samples = []
    for _ in range(P["gpt_steps"]):
        t0 = _now()
        losses.append(trainer.step())
        samples.append((_now() - t0) / 1e9)
    note = "forward + backward + " + ("optim.Adam" if variant == "c" else "the script's Adam loop")
    return {"metrics": [metric("step", "s", samples, note=note, paired=True)],
            "check": losses, "info": {"n_embd": n_embd, "n_layer": n_layer,
                                      "params": len(trainer.params), "steps": len(losses)}}


WORKLOADS = {
    "more_ops": run_more_ops,
    "graph200k": run_graph,
    "deep_chain": run_deep,
    "moons_step": run_moons,
    "mlp64_sample": run_mlp,
    "digits_epoch": run_digits,
    "functional_ops": run_functional_ops,
    "memory": run_memory,
    "microgpt16": lambda Value, P, variant="a": run_microgpt(Value, P, "gpt_small", variant),
    "microgpt32": lambda Value, P, variant="a": run_microgpt(Value, P, "gpt_large", variant),
}
# which take the bare Value class, which take the micrograd namespace (nn, optim...)
TAKES_VALUE = {"more_ops", "graph200k", "deep_chain", "microgpt16", "microgpt32"}
# the scalar-script workloads: the only ones the script's own Value ("inline") and the float-only
# floor class ("floor") run, and ones upstream 0.1.0 cannot (its Value has no exp or log)
SCRIPT_WORKLOADS = {"microgpt16", "microgpt32"}
# the workloads with a floor: the scripts' float-only class, and the MLP step's C arithmetic
FLOOR_WORKLOADS = SCRIPT_WORKLOADS | {"mlp64_sample"}
