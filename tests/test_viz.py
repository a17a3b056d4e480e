"""micrograd.viz: trace and draw_dot on both engines; rendering an SVG when Graphviz's dot is here."""
from __future__ import annotations

import os
import pickle
import re
import shutil
import sys

import pytest

from micrograd import viz

# CI sets this after installing Graphviz: then a missing graphviz package or dot fails, not skips
REQUIRE = os.environ.get("MICROGRAD_REQUIRE_GRAPHVIZ", "") not in ("", "0")


def _need_graphviz():
    if REQUIRE:
        import graphviz
        return graphviz
    return pytest.importorskip("graphviz", reason="the graphviz package is not installed ([viz] extra)")


def _need_dot():
    gv = _need_graphviz()
    if shutil.which("dot") is None:
        if REQUIRE:
            pytest.fail("MICROGRAD_REQUIRE_GRAPHVIZ is set but Graphviz's dot is not on PATH")
        pytest.skip("Graphviz's dot program is not installed")
    return gv


def _example(engine):
    a = engine.Value(2.0, label="a")
    b = engine.Value(-3.0, label="b")
    c = a * b
    c.label = "c"
    d = (c + 10.0).tanh()
    d.label = "d"
    d.backward()
    return a, b, c, d


def test_trace_structure(engine):
    a, b, c, d = _example(engine)
    nodes, edges = viz.trace(d)
    assert nodes[0] is d
    assert len(nodes) == len({id(v) for v in nodes}) == 6  # a, b, c, 10.0, c + 10, d
    ids = {id(v) for v in nodes}
    assert {id(a), id(b), id(c), id(d)} <= ids
    assert len(edges) == len({(id(x), id(y)) for x, y in edges}) == 5
    assert (id(a), id(c)) in {(id(x), id(y)) for x, y in edges}
    for child, parent in edges:
        assert any(child is p for p in parent._prev)


def test_trace_leaf(engine):
    v = engine.Value(1.5)
    assert viz.trace(v) == ([v], [])


def test_trace_shared_child_once(engine):
    a = engine.Value(3.0)
    y = a * a + a
    nodes, edges = viz.trace(y)
    assert len(nodes) == 3  # a, a*a, y
    assert len(edges) == 3  # a -> *, (a*a) -> +, a -> +


def test_trace_deep_chain_is_iterative(engine):
    v = engine.Value(0.5)
    n = 3 * sys.getrecursionlimit()
    for _ in range(n):
        v = v + 1.0
    nodes, edges = viz.trace(v)
    assert len(nodes) > n


def test_trace_fused_dot_has_all_inputs(engine):
    b = engine.Value(0.1)
    w = [engine.Value(0.5), engine.Value(-1.0), engine.Value(2.0)]
    x = [engine.Value(1.0), engine.Value(2.0), engine.Value(-0.5)]
    out = engine._dot(b, w, x)
    assert out._op == "dot"
    nodes, edges = viz.trace(out)
    assert {id(v) for v in nodes} == {id(v) for v in [out, b, *w, *x]}
    assert {id(child) for child, parent in edges if parent is out} == {id(v) for v in [b, *w, *x]}


def test_draw_dot_structure_without_rendering(engine):
    _need_graphviz()
    a, b, c, d = _example(engine)
    dot = viz.draw_dot(d)
    src = dot.source
    assert "rankdir=LR" in src
    assert dot.format == "svg"
    records = re.findall(r'label="\{ (.*?) \| data (\S+) \| grad (\S+) \}"', src)
    assert len(records) == 6
    assert ("a", "2.0000", f"{a.grad:.4f}") in records
    assert ("d", f"{d.data:.4f}", "1.0000") in records
    assert ("c", "-6.0000", f"{c.grad:.4f}") in records
    # one op node per non-leaf: *, +, tanh; each op node has one edge to its result
    ops = re.findall(r'(\w+_op) \[label="?([^"\]]+)"?\]', src)
    assert sorted(label for _, label in ops) == sorted(["*", "+", "tanh"])
    edges = re.findall(r"(\w+) -> (\w+)", src)
    assert len(edges) == 3 + 5  # op -> result, then child -> op
    for name, _ in ops:
        assert sum(1 for x, y in edges if x == name) == 1
        assert sum(1 for x, y in edges if y == name) >= 1


def test_draw_dot_options(engine):
    _need_graphviz()
    v = engine.Value(1.0) * 2.0
    dot = viz.draw_dot(v, format="png", rankdir="TB")
    assert dot.format == "png"
    assert "rankdir=TB" in dot.source
    with pytest.raises(ValueError, match="rankdir"):
        viz.draw_dot(v, rankdir="XY")


def test_draw_dot_escapes_labels(engine):
    _need_graphviz()
    v = engine.Value(1.0, label="a|{b}<c>\\n")
    w = v.tanh()
    dot = viz.draw_dot(w)
    assert r"a\|\{b\}\<c\>\\n" in dot.source


def test_draw_dot_fused_dot_node(engine):
    _need_graphviz()
    b = engine.Value(0.1)
    w = [engine.Value(0.5), engine.Value(-1.0)]
    x = [engine.Value(1.0), engine.Value(2.0)]
    out = engine._dot(b, w, x).relu()
    src = viz.draw_dot(out).source
    (dot_op,) = re.findall(r"(\w+_op) \[label=dot\]", src)
    assert len(re.findall(rf"\w+ -> {dot_op}\b", src)) == 5  # b, w0, x0, w1, x1


def test_draw_dot_an_mlp():
    _need_graphviz()
    from micrograd import MLP, Value
    model = MLP(3, [4, 4, 1])
    out = model([Value(1.0), Value(-2.0), Value(3.0)])
    out.backward()
    nodes, _ = viz.trace(out)
    src = viz.draw_dot(out).source
    assert src.count("shape=record") == len(nodes)
    assert src.count("label=dot") == 9  # one fused node per neuron


def test_draw_dot_pickles(engine):
    _need_graphviz()
    dot = viz.draw_dot(engine.Value(2.0) * 3.0)
    again = pickle.loads(pickle.dumps(dot))
    assert again.source == dot.source


def test_render_svg(engine, tmp_path):
    _need_dot()
    a, b, c, d = _example(engine)
    svg = viz.draw_dot(d).pipe(encoding="utf-8")
    assert svg.lstrip().startswith("<?xml") and "</svg>" in svg
    assert "data 2.0000" in svg and "tanh" in svg
    path = viz.draw_dot(d).render(tmp_path / "graph", cleanup=True)
    assert open(path, encoding="utf-8").read().rstrip().endswith("</svg>")


def test_render_without_dot_says_install_graphviz(engine, monkeypatch, tmp_path):
    gv = _need_graphviz()
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot here
    dot = viz.draw_dot(_example(engine)[3])  # building the graph needs no dot
    assert "digraph" in dot.source
    with pytest.raises(gv.ExecutableNotFound, match="install Graphviz"):
        dot.pipe()
    with pytest.raises(gv.ExecutableNotFound, match="install Graphviz"):
        dot.render(tmp_path / "graph")
    with pytest.raises(gv.ExecutableNotFound, match="install Graphviz"):
        dot._repr_mimebundle_()  # what Jupyter calls


def test_missing_graphviz_package_names_the_extra(engine, monkeypatch):
    monkeypatch.delitem(viz.__dict__, "_Digraph", raising=False)  # made again on next use
    monkeypatch.setitem(sys.modules, "graphviz", None)  # import graphviz now raises ImportError
    v = engine.Value(1.0) + 2.0
    with pytest.raises(ImportError, match=re.escape("pip install 'micrograd-compiled[viz]'")):
        viz.draw_dot(v)
    assert len(viz.trace(v)[0]) == 3  # trace needs no graphviz
