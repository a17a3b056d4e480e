"""ns per element of each micrograd.functional op (forward + backward), against the layer kernel.

    python benchmarks/functional_ops.py            # medians of 7 runs of 2000 calls each

The layer kernel's figure is nn.Layer's call on the same shape, per weight. Each op is timed as
a script uses it: fresh inputs' graph each call, then backward() of their sum. The harness (the
F.sum of the results, its backward and release) is a cost of its own for the list ops, one sum
node per element: "own" is the figure less the harness alone (F.sum of the inputs themselves,
its backward and release, on a list of the same length).

The list ops return one new Value per element, so no implementation of them can cost less per
element than making and freeing one Python object. Two floors say what that costs here, each
timed as the ops are (a call's result made, then freed), with no graph and no arithmetic:
"floor float" is a C loop making one float per element (`array('d').tolist()`: CPython's float
freelist, the cheapest object there is), "floor Value" one leaf Value per element
(`list(map(Value, data))`: a handle and a node each).
"""
import array
import statistics
import time

import micrograd.functional as F
from micrograd import Value, nn


def per_element(make, n_elements, calls=2000, runs=7):
    """ns per element of each run (calls calls each): the caller takes the median."""
    out = []
    for _ in range(runs):
        t = 0.0
        for _ in range(calls):
            fn = make()
            t0 = time.perf_counter_ns()
            fn()
            t += time.perf_counter_ns() - t0
        out.append(t / calls / n_elements)
    return out


def case_linear(nout, nin):
    w = [[Value(0.01 * (i - j)) for i in range(nin)] for j in range(nout)]

    def make():
        x = [Value(0.1 * i) for i in range(nin)]
        return lambda: F.sum(F.linear(x, w)).backward()
    return make, nout * nin


def case_layer(nout, nin):
    layer = nn.Layer(nin, nout, activation="linear")

    def make():
        x = [Value(0.1 * i) for i in range(nin)]
        return lambda: F.sum(layer(x)).backward()
    return make, nout * (nin + 1)


def case_list(fn, n):
    def make():
        x = [Value(0.3 * i - 2.0) for i in range(n)]
        return lambda: F.sum(fn(x)).backward()
    return make, n


def case_floor(make_one, n):
    data = [0.3 * i - 2.0 for i in range(n)]

    def make():
        return make_one(data)
    return make, n


def _floats(data):
    a = array.array("d", data)
    return a.tolist


def _values(data):
    return lambda: list(map(Value, data))


CASES = {
    "nn.Layer 16x16 (per weight)": case_layer(16, 16),
    "nn.Layer 64x16 (per weight)": case_layer(64, 16),
    "linear 16x16": case_linear(16, 16),
    "linear 64x16": case_linear(64, 16),
    "softmax 27": case_list(F.softmax, 27),
    "log_softmax 27": case_list(F.log_softmax, 27),
    "rmsnorm 16": case_list(F.rmsnorm, 16),
    "relu 64": case_list(F.relu, 64),
    "floor float 64": case_floor(_floats, 64),
    "floor Value 64": case_floor(_values, 64),
}


HARNESS = {"softmax 27": 27, "log_softmax 27": 27, "rmsnorm 16": 16, "relu 64": 64}


def measure(calls=2000, runs=7):
    """{case: (per-run ns per element, per-run "own" ns or None)}: own is each run's figure less
    the median of the harness alone (F.sum of the inputs, its backward and release)."""
    out, harness = {}, {}  # harness: its median per list length, timed once for each
    for name, (make, n) in CASES.items():
        total = per_element(make, n, calls, runs)
        own = None
        if name in HARNESS:
            m = HARNESS[name]
            if m not in harness:
                harness[m] = statistics.median(per_element(*case_list(lambda x: x, m), calls, runs))
            own = [t - harness[m] for t in total]
        out[name] = (total, own)
    return out


def main():
    for name, (total, own) in measure().items():
        line = f"{name:30s} {statistics.median(total):8.1f} ns per element, forward + backward"
        if own is not None:
            line += f" ({statistics.median(own):.1f} own, less the harness)"
        print(line)


if __name__ == "__main__":
    main()
