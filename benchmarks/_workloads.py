"""The workloads, written once against upstream micrograd's API: compiled, pure and upstream run the same code."""
import gc
import math
import random
import time

_now = time.perf_counter_ns

# Sizes and repetitions per mode. "smoke" only proves the code runs (tests/test_benchmarks.py).
SIZES = {
    "smoke": dict(more_ops_batch=5, more_ops_reps=2, chains=20, depth=10, graph_reps=2,
                  deep=2000, deep_reps=1, moons_n=10, moons_hidden=[4, 4], moons_reps=2,
                  mlp=(8, [8, 8, 4]), mlp_reps=2, mem_chains=20, mem_depth=100, import_reps=1),
    "quick": dict(more_ops_batch=200, more_ops_reps=7, chains=2000, depth=100, graph_reps=3,
                  deep=10**6, deep_reps=1, moons_n=100, moons_hidden=[16, 16], moons_reps=5,
                  mlp=(64, [64, 64, 10]), mlp_reps=5, mem_chains=2000, mem_depth=100,
                  import_reps=5),
    "full": dict(more_ops_batch=500, more_ops_reps=15, chains=2000, depth=100, graph_reps=7,
                 deep=10**6, deep_reps=3, moons_n=100, moons_hidden=[16, 16], moons_reps=15,
                 mlp=(64, [64, 64, 10]), mlp_reps=15, mem_chains=10000, mem_depth=100,
                 import_reps=15),
}


class Unavailable(Exception):
    """This implementation lacks what the workload needs (e.g. micrograd.nn not written yet)."""


def metric(name, unit, samples, error=None, note="", ratios=True):
    """One measured quantity: samples already divided into their unit."""
    return {"metric": name, "unit": unit, "samples": list(samples), "error": error, "note": note,
            "ratios": ratios}


def _errname(exc):
    return f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------- upstream's test_more_ops

def more_ops_graph(Value):
    """upstream's test/test_engine.py::test_more_ops, as written there."""
    a = Value(-4.0)
    b = Value(2.0)
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
    g.backward()
    return g, a, b


def run_more_ops(Value, P):
    batch, reps = P["more_ops_batch"], P["more_ops_reps"]
    for _ in range(batch):  # warm-up
        more_ops_graph(Value)
    samples = []
    for _ in range(reps):
        gc.collect()
        t0 = _now()
        for _ in range(batch):
            more_ops_graph(Value)
        samples.append((_now() - t0) / batch / 1e9)
    g, a, b = more_ops_graph(Value)
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
    chains, depth, reps = P["chains"], P["depth"], P["graph_reps"]
    ops, nodes = graph_counts(chains, depth)
    A, B = graph_leaves(Value, min(chains, 50))  # warm-up on a small graph
    graph_build(A, B, depth).backward()
    del A, B
    fwd, bwd, free, check = [], [], [], None
    for _ in range(reps):
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
    n, reps = P["deep"], P["deep_reps"]
    x, w, b = deep_build(Value, 200)  # warm-up, shallow enough for upstream's recursion
    x.backward()
    del x, w, b
    fwd, bwd, free, check, error = [], [], [], None, None
    for _ in range(reps):
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

def make_moons(n, noise=0.1, seed=1337):
    """Two interleaved half circles, labels in {-1, 1}; a tiny pure-Python twin of sklearn's."""
    rng = random.Random(seed)
    n_out = n // 2
    n_in = n - n_out
    X, y = [], []
    for i in range(n_out):
        t = math.pi * i / max(n_out - 1, 1)
        X.append([math.cos(t) + rng.gauss(0.0, noise), math.sin(t) + rng.gauss(0.0, noise)])
        y.append(-1)
    for i in range(n_in):
        t = math.pi * i / max(n_in - 1, 1)
        X.append([1.0 - math.cos(t) + rng.gauss(0.0, noise),
                  0.5 - math.sin(t) + rng.gauss(0.0, noise)])
        y.append(1)
    return X, y


def run_moons(mg, P):
    Value, MLP = mg.Value, mg.nn.MLP
    X, y = make_moons(P["moons_n"])
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
    for k in range(1, 1 + P["moons_reps"]):
        gc.collect()
        t0 = _now()
        losses.append(step(k))
        samples.append((_now() - t0) / 1e9)
    return {"metrics": [metric("step", "s", samples)], "check": losses,
            "info": {"samples": len(X), "params": len(model.parameters())}}


# ---------------------------------------------------------------- MLP(64, [64, 64, 10]) per sample

def run_mlp(mg, P):
    Value, MLP = mg.Value, mg.nn.MLP
    nin, nouts = P["mlp"]
    rng = random.Random(42)
    xrow = [rng.uniform(-1.0, 1.0) for _ in range(nin)]
    target = [rng.uniform(-1.0, 1.0) for _ in range(nouts[-1])]
    random.seed(1337)
    model = MLP(nin, nouts)
    lr = 0.01

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
    samples = []
    for _ in range(P["mlp_reps"]):
        gc.collect()
        t0 = _now()
        losses.append(step())
        samples.append((_now() - t0) / 1e9)
    return {"metrics": [metric("sample", "s", samples, note="forward+backward+SGD step")],
            "check": losses, "info": {"params": len(model.parameters()),
                                      "update": "hand loop" if mg.upstream else "optim.SGD"}}


# ---------------------------------------------------------------- memory

def rss_bytes():
    """Resident set size now, or None where it cannot be read cheaply."""
    try:
        with open("/proc/self/statm") as f:
            import os
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        pass
    try:
        import psutil
        return psutil.Process().memory_info().rss
    except Exception:
        return None


def run_memory(mg, P):
    """Bytes per node of a graph kept alive only by its root, and what is left once it is dropped."""
    import tracemalloc
    Value = mg.Value
    chains, depth = P["mem_chains"], P["mem_depth"]
    ops, nodes = graph_counts(chains, depth)

    def build():
        A, B = graph_leaves(Value, chains)
        return graph_build(A, B, depth)  # the leaf lists die here: only the root holds the graph

    live = getattr(mg, "live_nodes", None)
    A, B = graph_leaves(Value, 20)  # warm-up: code paths, interned objects
    graph_build(A, B, 10).backward()
    del A, B
    gc.collect()
    metrics = []
    live0 = live() if live else None

    # 1. resident memory (sees C allocations too); no tracemalloc running, it costs memory itself
    rss0 = rss_bytes()
    root = build()
    gc.collect()
    rss1 = rss_bytes()
    del root
    gc.collect()
    rss2 = rss_bytes()
    live_after = live() if live else None
    if rss0 is not None:
        metrics.append(metric("retained (RSS)", "B/node", [(rss1 - rss0) / nodes],
                              note="resident-set growth / nodes"))
        metrics.append(metric("after drop (RSS)", "B", [rss2 - rss0],
                              note="RSS still held after del + gc.collect() (may be cached for reuse)"))

    # 2. Python's allocators only (tracemalloc): exact for Python objects, blind to C malloc
    tracemalloc.start()
    t0 = tracemalloc.get_traced_memory()[0]
    root = build()
    gc.collect()
    t1 = tracemalloc.get_traced_memory()[0]
    del root
    gc.collect()
    t2 = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    # no ratios: the compiled engine's arena is C memory that tracemalloc does not see
    metrics.append(metric("retained (tracemalloc)", "B/node", [(t1 - t0) / nodes],
                          note="Python allocators only", ratios=False))
    metrics.append(metric("after drop (tracemalloc)", "B", [t2 - t0]))
    info = {"nodes": nodes, "op_nodes": ops}
    if live is not None and live0 is not None and live0 >= 0:
        info["live_nodes_before"] = live0
        info["live_nodes_after_drop"] = live_after
    return {"metrics": metrics, "check": None, "info": info}


WORKLOADS = {
    "more_ops": run_more_ops,
    "graph200k": run_graph,
    "deep_chain": run_deep,
    "moons_step": run_moons,
    "mlp64_sample": run_mlp,
    "memory": run_memory,
}
# which take the bare Value class, which take the micrograd namespace (nn, optim...)
TAKES_VALUE = {"more_ops", "graph200k", "deep_chain"}
