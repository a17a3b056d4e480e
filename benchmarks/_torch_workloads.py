"""The same workloads in PyTorch: scalar tensors for the graphs, batched tensors for training."""
import gc
import random

import torch

from _workloads import (DIGITS_LR, DIGITS_SEED, MLP_COLD_NOTE, MLP_LOOP_NOTE, _now, deep_build,
                        digits_batches, digits_data, graph_build, graph_counts, metric, mlp_samples,
                        more_ops, repetitions)

# PyTorch's defaults, as a user has them: float32, its own thread count (the digits job: float64,
# as micrograd computes).


def leaf(x):
    return torch.tensor(x, requires_grad=True)


def run_more_ops(P):
    batch = P["more_ops_batch"]
    for _ in range(batch):
        more_ops(leaf)[2].backward()
    samples = []
    for _ in repetitions(P, "more_ops_reps"):
        gc.collect()
        t0 = _now()
        for _ in range(batch):
            more_ops(leaf)[2].backward()
        samples.append((_now() - t0) / batch / 1e9)
    return {"metrics": [metric("build+backward", "s", samples, note="one scalar tensor per Value")],
            "check": None, "info": {"calls_per_sample": batch}}


def run_graph(P):
    chains, depth = P["chains"], P["depth"]
    ops, nodes = graph_counts(chains, depth)
    rng = random.Random(7)

    def leaves(n):
        A = [leaf(rng.uniform(-1.0, 1.0)) for _ in range(n)]
        B = [leaf(rng.uniform(-0.9, 0.9)) for _ in range(n)]
        return A, B

    A, B = leaves(min(chains, 50))
    graph_build(A, B, depth).backward()
    fwd, bwd, free = [], [], []
    for _ in repetitions(P, "graph_reps"):
        A, B = leaves(chains)
        gc.collect()
        t0 = _now()
        root = graph_build(A, B, depth)
        t1 = _now()
        root.backward()
        t2 = _now()
        del A, B
        t3 = _now()
        del root
        gc.collect()
        t4 = _now()
        fwd.append((t1 - t0) / ops)
        bwd.append((t2 - t1) / nodes)
        free.append((t4 - t3) / nodes)
    note = "one scalar tensor per Value"
    return {"metrics": [metric("forward", "ns/node", fwd, note=note),
                        metric("backward", "ns/node", bwd, note=note),
                        metric("free", "ns/node", free, note=note)],
            "check": None, "info": {"op_nodes": ops, "nodes": nodes}}


def run_deep(P):
    n = P["deep"]
    x, w, b = deep_build(leaf, 200)
    x.backward()
    del x, w, b
    fwd, bwd, free = [], [], []
    for _ in repetitions(P, "deep_reps"):
        gc.collect()
        t0 = _now()
        x, w, b = deep_build(leaf, n)
        t1 = _now()
        x.backward()
        t2 = _now()
        del w, b
        t3 = _now()
        del x
        gc.collect()
        t4 = _now()
        fwd.append((t1 - t0) / 1e9)
        bwd.append((t2 - t1) / 1e9)
        free.append((t4 - t3) / 1e9)
    return {"metrics": [metric("forward", "s", fwd), metric("backward", "s", bwd),
                        metric("free", "s", free)], "check": None, "info": {"op_nodes": n}}


def run_moons(P):
    """The demo's training step, batched, as a PyTorch user writes it."""
    Xl, yl = P["moons"]
    X = torch.tensor(Xl)
    y = torch.tensor(yl, dtype=torch.float32)
    torch.manual_seed(1337)
    sizes = [2] + P["moons_hidden"] + [1]
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)

    def step(k):
        scores = model(X).squeeze(1)
        data_loss = torch.relu(1 - y * scores).mean()
        reg_loss = 1e-4 * sum((p * p).sum() for p in model.parameters())
        total_loss = data_loss + reg_loss
        acc = ((y > 0) == (scores > 0)).float().mean()
        opt.zero_grad()
        total_loss.backward()
        for group in opt.param_groups:
            group["lr"] = 1.0 - 0.9 * k / 100
        opt.step()
        return total_loss.item(), acc.item()

    step(0)
    samples = []
    for k in (1 + i for i in repetitions(P, "moons_reps")):
        gc.collect()
        t0 = _now()
        step(k)
        samples.append((_now() - t0) / 1e9)
    return {"metrics": [metric("step", "s", samples, note="batched tensors, torch.optim.SGD")],
            "check": None, "info": {"samples": len(Xl)}}


def run_mlp(P):
    nin, nouts = P["mlp"]
    rng = random.Random(42)
    x = torch.tensor([[rng.uniform(-1.0, 1.0) for _ in range(nin)]])
    target = torch.tensor([[rng.uniform(-1.0, 1.0) for _ in range(nouts[-1])]])
    torch.manual_seed(1337)
    sizes = [nin] + nouts
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=1e-6)

    def step():
        loss = ((model(x) - target) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    step()
    loop, cold = mlp_samples(step, P, [])
    return {"metrics": [metric("sample", "s", loop, note="a 1x64 batch, torch.optim.SGD; " + MLP_LOOP_NOTE),
                        metric("sample after gc.collect()", "s", cold, note=MLP_COLD_NOTE)],
            "check": None, "info": {}}


def run_digits(P):
    """The digits demo's training as a PyTorch user batches it, from the very same start.

    float64; the same split, batches and Adam schedule; the model starts from the weights the
    demo's MLP draws (random.seed, upstream's uniform(-1, 1) per neuron, / sqrt(nin), zero
    biases), so its first loss is the demo's; F.cross_entropy averages over the batch.
    """
    import torch.nn.functional as F
    X_train, y_train, X_test, y_test = digits_data(P)
    sizes = [len(X_train[0])] + P["digits_hidden"] + [10]
    random.seed(DIGITS_SEED)
    layers = []
    for i, (nin, nout) in enumerate(zip(sizes, sizes[1:])):
        rows = [[random.uniform(-1, 1) for _ in range(nin)] for _ in range(nout)]
        scale = nin ** -0.5
        lin = torch.nn.Linear(nin, nout, dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(torch.tensor([[w * scale for w in r] for r in rows], dtype=torch.float64))
            lin.bias.zero_()
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=DIGITS_LR)  # betas (0.9, 0.999), eps 1e-8
    Xt = torch.tensor(X_train, dtype=torch.float64)
    yt = torch.tensor(y_train)
    batch = P["digits_batch"]
    steps = P["digits_epochs"] * -(-len(X_train) // batch)
    losses = []
    samples = []
    for epoch in digits_batches(len(X_train), P):
        idx = [torch.tensor(chunk) for chunk in epoch]
        gc.collect()
        t0 = _now()
        for chunk in idx:
            loss = F.cross_entropy(model(Xt[chunk]), yt[chunk])
            opt.zero_grad()
            loss.backward()
            for group in opt.param_groups:
                group["lr"] = DIGITS_LR * (1.0 - 0.9 * len(losses) / steps)
            opt.step()
            losses.append(loss.item())
        samples.append((_now() - t0) / 1e9)
    with torch.no_grad():
        predicted = model(torch.tensor(X_test, dtype=torch.float64)).argmax(1).tolist()
    acc = sum(p == t for p, t in zip(predicted, y_test)) / len(y_test)
    return {"metrics": [metric("epoch", "s", samples,
                               note="batched float64 tensors, F.cross_entropy, torch.optim.Adam"),
                        metric("test accuracy", "accuracy", [acc], ratios=False,
                               note=f"after {P['digits_epochs']} epochs, {len(y_test)} test images")],
            "check": losses[:1], "info": {"train": len(X_train), "test": len(X_test),
                                          "batch": batch, "epochs": P["digits_epochs"]}}


WORKLOADS = {
    "more_ops": run_more_ops,
    "graph200k": run_graph,
    "deep_chain": run_deep,
    "moons_step": run_moons,
    "mlp64_sample": run_mlp,
    "digits_epoch": run_digits,
}
