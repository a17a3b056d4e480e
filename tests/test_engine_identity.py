"""Handles shown by _prev/_children keep their identity while the graph lives (id walks, weak dicts)."""
from __future__ import annotations

import gc
import weakref

def id_walk(root):
    """A hand-written walker that remembers only id()s, as graph tools often do."""
    seen, stack = {id(root)}, [root]
    while stack:
        v = stack.pop()
        for c in v._prev:
            if id(c) not in seen:
                seen.add(id(c))
                stack.append(c)
    return len(seen)


def strong_walk(root):
    """The true node count: every handle kept alive, so no address can be reused."""
    seen, stack = {id(root): root}, [root]
    while stack:
        v = stack.pop()
        for c in v._prev:
            if id(c) not in seen:
                seen[id(c)] = c
                stack.append(c)
    return len(seen)


def weak_walk(root, attr="_prev"):
    """Children gathered into a WeakKeyDictionary, counted after a collection."""
    d = weakref.WeakKeyDictionary()
    stack = [root]
    while stack:
        v = stack.pop()
        for c in getattr(v, attr):
            if c not in d:
                d[c] = True
                stack.append(c)
    gc.collect()
    return len(d)


def readme_expression(V):
    a, b = V(2.0), V(-3.0)
    return (a * b + 1) * (a * b - 1)


def test_id_walk_counts_upstreams_nodes(engine):
    # upstream micrograd 0.1.0 gives 9: a, b, a*b twice, 1 and -1 (as Values), two sums, the root
    assert id_walk(readme_expression(engine.Value)) == 9


def test_weak_dictionary_keeps_every_child_while_the_root_lives(engine):
    root = readme_expression(engine.Value)
    assert weak_walk(root) == 8  # every node but the root
    assert weak_walk(root, "_children") == 8


def test_mlp_output_walks():
    # nn runs on the imported engine: the compiled one here, the pure one in CI's second run
    from micrograd.nn import MLP

    y = MLP(3, [4, 4, 1])([1.0, -2.0, 0.5])
    n = strong_walk(y)
    assert id_walk(y) == n
    assert weak_walk(y) == n - 1


def test_handle_identity_is_stable_across_reads(engine):
    V = engine.Value
    x = V(1.5)
    y = x * 2.0 + V(3.0)
    first = {id(c): c for c in y._prev}
    del first
    gc.collect()
    kids = list(y._prev)
    again = list(y._prev)
    assert sorted(map(id, kids)) == sorted(map(id, again))
    # the constant 2.0 gets one handle, shown the same by _prev and _children
    mul = next(c for c in y._children if c._op == "*")
    assert mul._children[1] is next(iter(c for c in mul._prev if c is not x))


def test_a_long_chain_walks_as_its_true_graph(engine):
    V = engine.Value
    s = V(0.0)
    for i in range(1, 50):
        s = s * 1.0 + V(float(i))  # every constant and every leaf dropped by the builder
    assert id_walk(s) == strong_walk(s) == 1 + 49 * 4
