"""Does a training step care in which order earlier nodes were freed?

    python -m benchmarks.fragmentation [--reps N]

Runs the suite's MLP(64,[64,64,10]) training step (forward, backward, optim.SGD) in two fresh
processes: one builds the model straight away, the other first makes 200,000 Values and frees
them in a shuffled order, so that every node the model and its steps get is a reused one. An
arena that handed nodes out in the order they were freed would scatter the weights and each
step's graph over the whole region; ours hands out the lowest free node, so the two medians
should be alike. Medians of wall time, per step, on the engine `import micrograd` selects.
"""
import argparse
import json
import os
import subprocess
import sys

_CHILD = r"""
import json, random, statistics, sys, time
import micrograd as mg
from micrograd.nn import MLP

shuffled, reps = sys.argv[1] == "shuffled", int(sys.argv[2])
if shuffled:
    junk = [mg.Value(float(i)) for i in range(200_000)]
    random.Random(0).shuffle(junk)
    while junk:
        junk.pop()
rng = random.Random(42)
xrow = [rng.uniform(-1.0, 1.0) for _ in range(64)]
target = [rng.uniform(-1.0, 1.0) for _ in range(10)]
random.seed(1337)
model = MLP(64, [64, 64, 10])
opt = mg.optim.SGD(model.parameters(), lr=1e-6)


def step():
    out = model(list(map(mg.Value, xrow)))
    loss = sum((o - t)**2 for o, t in zip(out, target))
    opt.zero_grad()
    loss.backward()
    opt.step()


for _ in range(20):
    step()
times = []
for _ in range(reps):
    t = time.perf_counter()
    step()
    times.append(time.perf_counter() - t)
print(json.dumps({"median": statistics.median(times), "engine": mg.engine.IMPLEMENTATION}))
"""


def measure(mode: str, reps: int) -> dict:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-c", _CHILD, mode, str(reps)], env=env, cwd=here,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=500, help="timed steps per process (default 500)")
    ap.add_argument("--rounds", type=int, default=3, help="process pairs, alternated (default 3)")
    args = ap.parse_args(argv)
    for r in range(args.rounds):
        fresh = measure("fresh", args.reps)
        shuffled = measure("shuffled", args.reps)
        print(f"round {r + 1} ({fresh['engine']}): fresh process {fresh['median'] * 1e6:.0f} us, "
              f"after a shuffled free {shuffled['median'] * 1e6:.0f} us, "
              f"ratio {shuffled['median'] / fresh['median']:.2f}")


if __name__ == "__main__":
    main()
