"""Where the time of the suite's MLP(64,[64,64,10]) training step goes, part by part.

    python benchmarks/mlp_parts.py                 # medians of 3000 steps, warm and cold
    python benchmarks/mlp_parts.py --steps 500
    python benchmarks/mlp_parts.py --hidden 1   # the same step's fixed costs: 1-wide hidden layers

The step is the `mlp64_sample` workload's (benchmarks/_workloads.py: the same sizes, input row,
target, weights and learning rate): the input Values, the forward pass, the loss, zero_grad,
backward and the SGD step, each timed on its own with perf_counter_ns. "warm": steps back to
back; "cold": a gc.collect() before each step, outside the timing. The parts' medians need not
add up to the whole step's median, and the timer's own cost (~50 ns a read) is in each part.
The suite's table is the figure to quote; this says where it goes.
"""
import argparse
import gc
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _workloads import MLP_LR, SIZES, mlp_sample  # noqa: E402

import micrograd  # noqa: E402

PARTS = ("input", "forward", "loss", "zero_grad", "backward", "step")


def build(hidden=None):
    """The workload's model, optimizer and one-step function that times its parts; hidden: the
    hidden layers' width instead of the workload's (the same inputs, outputs and loss)."""
    nin, nouts, xrow, target = mlp_sample(SIZES["quick"])
    if hidden is not None:
        nouts = [hidden] * (len(nouts) - 1) + nouts[-1:]
    model = micrograd.nn.MLP(nin, nouts)
    opt = micrograd.optim.SGD(model.parameters(), lr=MLP_LR)
    clock = time.perf_counter_ns

    def step():
        t0 = clock()
        x = list(map(micrograd.Value, xrow))
        t1 = clock()
        out = model(x)
        t2 = clock()
        loss = sum((o - t)**2 for o, t in zip(out, target))
        t3 = clock()
        opt.zero_grad()
        t4 = clock()
        loss.backward()
        t5 = clock()
        opt.step()
        t6 = clock()
        return (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t6 - t0)
    return step


def medians(step, steps, cold):
    rows = []
    for _ in range(steps):
        if cold:
            gc.collect()
        rows.append(step())
    return [statistics.median(r[k] for r in rows) / 1e3 for k in range(len(PARTS) + 1)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3000, help="steps per way (default 3000)")
    p.add_argument("--hidden", type=int, default=None,
                   help="hidden layers this wide (default: the workload's 64); 1 leaves the step's "
                        "fixed costs, those that do not grow with the weights")
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error("--steps must be at least 1")
    if args.hidden is not None and args.hidden < 1:
        p.error("--hidden must be at least 1")
    step = build(args.hidden)
    step()  # warm-up: the layers' packing, the optimizer's runs
    gc.collect()
    print(f"micrograd engine: {micrograd.engine.IMPLEMENTATION}; medians of {args.steps} steps, us")
    print(f"{'':6}" + "".join(f"{name:>11}" for name in PARTS + ("whole",)))
    for way, cold in (("warm", False), ("cold", True)):
        print(f"{way:6}" + "".join(f"{m:11.2f}" for m in medians(step, args.steps, cold)))


if __name__ == "__main__":
    main()
