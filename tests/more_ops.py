"""Upstream's test_more_ops program, written once: the tests check its numbers, the benchmarks time it."""
# It lives here, not in benchmarks/, because the wheels' test run copies tests/ alone;
# the benchmarks always run from the repository, where they reach it (benchmarks/_workloads.py).


def more_ops(Value):
    """upstream's test/test_engine.py::test_more_ops, as written there: (a, b, g), before backward."""
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
    return a, b, g
