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


# ---- fused nodes: edge labels, and expand=True as upstream's * and + chain ----------------------

UPSTREAM_DIR = os.environ.get("MICROGRAD_UPSTREAM_DIR", "/tmp/upstream_mg")

# Upstream's draw_dot (karpathy/micrograd's trace_graph.ipynb; the PyPI package has no viz):
# trace() collects Values and (child, parent) pairs through _prev sets; draw_dot() makes one
# record per Value, one op node per Value with an _op plus its edge to the Value, and one edge
# per (child, parent) pair. Re-derived here as counts and the boxes' numbers; the same source
# runs against upstream itself below.
UPSTREAM_COUNTS = '''
def upstream_counts(root):
    nodes, edges, stack = {root}, set(), [root]
    while stack:
        v = stack.pop()
        for child in v._prev:
            edges.add((child, v))
            if child not in nodes:
                nodes.add(child)
                stack.append(child)
    with_op = [v for v in nodes if v._op]
    boxes = sorted((float(v.data).hex(), float(v.grad).hex(), v._op) for v in nodes)
    return len(nodes) + len(with_op), len(edges) + len(with_op), boxes
'''
exec(UPSTREAM_COUNTS)

# Upstream's Neuron(2) and the README expression, with fixed numbers; `Value` is whichever
# engine runs it, `fused` says whether the neuron is our fused node or upstream's chain
MODELS = '''
def neuron(Value, fused):
    w = [Value(0.5), Value(-1.25)]
    b = Value(0.75)
    x = [Value(2.0), Value(-3.0)]
    if fused is None:
        act = sum((wi * xi for wi, xi in zip(w, x)), b)
    else:
        act = fused(b, w, x)
    out = act.relu()
    out.backward()
    return out


def readme(Value, fused):
    a, b = Value(2.0), Value(-3.0)
    out = (a * b + 1) * (a * b - 1)
    out.backward()
    return out


def nn_neuron(Value, fused):
    # the nn class itself (upstream's, or ours: a fused node) with fixed weights
    from micrograd.nn import Neuron
    n = Neuron(2)
    n.w[0].data, n.w[1].data, n.b.data = 0.5, -1.25, 0.75
    out = n([Value(2.0), Value(-3.0)])
    out.backward()
    return out


def mlp_layer(Value, fused):
    # two neurons sharing their inputs, then one more: an MLP(2, [2, 1]) with fixed weights
    x = [Value(1.5), Value(-0.5)]
    rows = [([Value(0.25), Value(-0.75)], Value(0.125)), ([Value(-1.0), Value(0.5)], Value(-0.25))]
    def unit(w, b, xs):
        if fused is None:
            return sum((wi * xi for wi, xi in zip(w, xs)), b)
        return fused(b, w, xs)
    h = [unit(w, b, x).relu() for w, b in rows]
    out = unit([Value(0.75), Value(-1.5)], Value(0.5), h)
    out.backward()
    return out
'''
exec(MODELS)


def _layout_counts(root, expand):
    boxes, ops, edges = viz._layout(root, expand=expand)
    opname = dict(ops)
    made = {}
    for tail, head, _ in edges:  # an op node's one outgoing edge names the box it makes
        if head in {name for name, _, _, _ in boxes} and tail in opname:
            made[head] = opname[tail]
    nums = sorted((data.hex(), float(grad).hex(), made.get(name, "")) for name, _, data, grad in boxes)
    return len(boxes) + len(ops), len(edges), nums


@pytest.mark.parametrize("model", ["neuron", "readme", "mlp_layer"])
def test_expanded_drawing_is_upstreams_graph(engine, model):
    build = globals()[model]
    want = upstream_counts(build(engine.Value, None))  # upstream's recipe, unfused, on our engine
    got = _layout_counts(build(engine.Value, engine._dot), expand=True)
    assert got[:2] == want[:2]
    assert got[2] == want[2]  # every box: the same data and grad, made by the same op


def test_expanded_counts_match_a_real_upstream_run(engine, tmp_path):
    if not os.path.isdir(os.path.join(UPSTREAM_DIR, "micrograd")):
        pytest.skip(f"upstream micrograd not installed (pip install --target {UPSTREAM_DIR} "
                    "micrograd==0.1.0)")
    import json
    import subprocess
    script = (UPSTREAM_COUNTS + MODELS + "\nimport json\nfrom micrograd.engine import Value\n"
              "print(json.dumps({m: upstream_counts(globals()[m](Value, None)) "
              "for m in ('nn_neuron', 'readme', 'mlp_layer')}))\n")
    env = dict(os.environ, PYTHONPATH=UPSTREAM_DIR)
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    upstream = json.loads(out.stdout)
    for m in ("nn_neuron", "readme", "mlp_layer"):
        if m == "nn_neuron":
            from micrograd import Value  # nn runs on the imported engine
            got = _layout_counts(nn_neuron(Value, None), expand=True)
        else:
            got = _layout_counts(globals()[m](engine.Value, engine._dot), expand=True)
        assert list(got[:2]) == upstream[m][:2], m
        assert [list(b) for b in got[2]] == upstream[m][2], m


def test_upstream_neuron_counts_by_hand(engine):
    # Neuron(2) on upstream: Values b, w0, w1, x0, x1, two products, two sums, ReLU = 10, and
    # 5 op nodes; edges: 2 per * and +, 1 for ReLU, plus each op's edge to its Value = 9 + 5
    out = neuron(engine.Value, engine._dot)
    assert _layout_counts(out, expand=True)[:2] == (15, 14)
    assert _layout_counts(out, expand=False)[:2] == (9, 8)  # 7 boxes, dot and ReLU; 5 + 1 + 2 edges


def test_fused_edges_are_labelled(engine):
    _need_graphviz()
    b = engine.Value(0.1, label="bias")
    w = [engine.Value(0.5), engine.Value(-1.0)]
    x = [engine.Value(1.0), engine.Value(2.0)]
    src = viz.draw_dot(engine._dot(b, w, x).tanh()).source
    (dot_op,) = re.findall(r"(\w+_op) \[label=dot\]", src)
    labels = re.findall(rf"\w+ -> {dot_op} \[label=\"?([\w, ]+?)\"?\]", src)
    assert sorted(labels) == ["b", "w0", "w1", "x0", "x1"]
    boxes, _, edges = viz._layout(engine._dot(b, w, x))
    by_name = {name: label for name, label, _, _ in boxes}
    assert [by_name[t] for t, h, lab in edges if lab == "b"] == ["bias"]


def test_fused_shared_child_is_one_edge_naming_each_place(engine):
    x = engine.Value(3.0)
    w = [engine.Value(0.5), engine.Value(2.0)]
    out = engine._dot(engine.Value(0.0), w, [x, x])
    _, _, edges = viz._layout(out)
    assert sorted(lab for _, _, lab in edges if lab) == ["b", "w0", "w1", "x0, x1"]
    # expanded, x feeds two products: two edges, as upstream's graph has
    _, _, edges = viz._layout(out, expand=True)
    assert sorted(lab for _, _, lab in edges if lab and "x" in lab) == ["x0", "x1"]


def test_expanded_boxes_hold_upstreams_partial_sums(engine):
    b = engine.Value(0.1)
    w = [engine.Value(0.7), engine.Value(-0.3), engine.Value(1.1)]
    x = [engine.Value(0.2), engine.Value(0.9), engine.Value(-0.4)]
    out = engine._dot(b, w, x)
    (out * 2.0).backward()
    boxes, ops, _ = viz._layout(out, expand=True)
    inner = {name: (data, grad) for name, _, data, grad in boxes if "_" in name}
    s0 = 0.1 + 0.7 * 0.2
    s1 = s0 + -0.3 * 0.9
    assert inner["v0_s0"] == (s0, 2.0) and inner["v0_s1"] == (s1, 2.0)
    assert inner["v0_m2"] == (1.1 * -0.4, 2.0)
    assert s1 + 1.1 * -0.4 == out.data  # the last + is the fused node's own box
    assert sorted(text for _, text in ops) == ["*"] * 3 + ["+"] * 3


def test_expand_leaves_other_nodes_alone(engine):
    _need_graphviz()
    a, b, c, d = _example(engine)
    assert viz.draw_dot(d, expand=True).source == viz.draw_dot(d).source
    lone = engine._dot(engine.Value(1.0), [], [])  # a fused node of b alone stays one node
    assert viz._layout(lone, expand=True) == viz._layout(lone)


def test_draw_dot_an_mlp_expanded():
    _need_graphviz()
    from micrograd import MLP, Value
    model = MLP(3, [4, 1])
    out = model([Value(1.0), Value(-2.0), Value(3.0)])
    out.backward()
    src = viz.draw_dot(out, expand=True).source
    assert "label=dot" not in src
    _, ops, _ = viz._layout(out, expand=True)
    texts = [t for _, t in ops]
    assert texts.count("*") == 4 * 3 + 4 and texts.count("+") == 4 * 3 + 4  # one per weight
    assert texts.count("ReLU") == 4


def test_import_draw_dot_without_graphviz():
    import subprocess
    code = ("import sys\nfrom micrograd import draw_dot, Value\n"
            "assert 'graphviz' not in sys.modules, 'graphviz imported early'\n"
            "sys.modules['graphviz'] = None\n"
            "try:\n    draw_dot(Value(1.0) * 2)\nexcept ImportError as e:\n    print(e)\n")
    here = os.path.dirname(os.path.dirname(os.path.abspath(viz.__file__)))
    env = dict(os.environ, PYTHONPATH=here)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "[viz]" in out.stdout and "pip install graphviz" in out.stdout
