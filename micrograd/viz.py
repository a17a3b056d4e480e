"""draw_dot and trace: a Value's graph as a graphviz Digraph, as drawn in the micrograd lecture."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Tuple

if TYPE_CHECKING:  # graphviz is optional: the [viz] extra
    import graphviz  # type: ignore[import-untyped, unused-ignore]

__all__ = ["draw_dot", "trace"]

_INSTALL_GRAPHVIZ = (
    "install Graphviz, which provides it (Debian/Ubuntu: apt-get install graphviz; "
    "macOS: brew install graphviz; conda: conda install graphviz; "
    "others: https://graphviz.org/download/)"
)


def trace(root: Any) -> Tuple[List[Any], List[Tuple[Any, Any]]]:
    """trace(root) -> (nodes, edges): every Value reachable from root, and its graph's edges.

    nodes lists each Value once, root first; edges holds (child, parent) pairs, each once.
    Uses only `_prev`, so it works on both engines; iterative, so any depth is fine.
    """
    nodes = [root]
    edges = []
    seen = {id(root)}  # by id(): nodes keeps every Value alive, so ids stay unique
    stack = [root]
    while stack:
        v = stack.pop()
        for child in v._prev:
            edges.append((child, v))
            if id(child) not in seen:
                seen.add(id(child))
                nodes.append(child)
                stack.append(child)
    return nodes, edges


def draw_dot(root: Any, format: str = "svg", rankdir: str = "LR") -> "graphviz.Digraph":
    """draw_dot(root, format='svg', rankdir='LR') -> graphviz.Digraph: root's graph, ready to render.

    One record per Value (`label | data | grad`, 4 decimals), one small node per op
    (`+`, `*`, `tanh`, `dot`, ...) with edges child -> op -> result. A fused `dot` node
    (a neuron's `b + sum w_i*x_i`) shows all of its inputs. In Jupyter the result displays
    itself; elsewhere call `.render()`, `.pipe()` or `.view()`, which need Graphviz's `dot`.
    Needs the graphviz package: pip install 'micrograd-compiled[viz]'.
    """
    if rankdir not in ("LR", "TB", "RL", "BT"):
        raise ValueError(f"rankdir must be 'LR', 'TB', 'RL' or 'BT', not {rankdir!r}")
    gv = _import_graphviz()
    nodes, edges = trace(root)
    name = {id(v): f"v{i}" for i, v in enumerate(nodes)}
    dot = _digraph_class()(format=format, graph_attr={"rankdir": rankdir})
    for v in nodes:
        vid = name[id(v)]
        dot.node(vid, shape="record",
                 label=gv.nohtml(f"{{ {_record_text(v.label)} | data {v.data:.4f} | grad {v.grad:.4f} }}"))
        if v._op:
            # the op node of a result: its children point here, and it points at the result
            dot.node(vid + "_op", label=gv.nohtml(_escape(str(v._op))))
            dot.edge(vid + "_op", vid)
    for child, parent in edges:
        dot.edge(name[id(child)], name[id(parent)] + "_op")
    return dot


def _escape(text: str) -> str:
    # a backslash starts a DOT escape sequence (\n, \l, ...): keep it literal
    return text.replace("\\", "\\\\")


def _record_text(label: Any) -> str:
    # these characters structure a record label; a user's label shows them literally
    out = _escape(str(label))
    for ch in "{}|<>":
        out = out.replace(ch, "\\" + ch)
    return out


def _import_graphviz() -> Any:
    try:
        import graphviz
    except ImportError as exc:
        raise ImportError(
            "micrograd.viz needs the graphviz Python package: pip install 'micrograd-compiled[viz]' "
            f"(rendering also needs Graphviz's dot program: {_INSTALL_GRAPHVIZ})"
        ) from exc
    return graphviz


def _digraph_class() -> Any:
    # made on first use, since graphviz is optional; module __getattr__ below lets pickle find it
    cls = globals().get("_Digraph")
    if cls is None:
        gv = _import_graphviz()

        def _say_install(exc: Exception) -> None:
            if _INSTALL_GRAPHVIZ not in str(exc):
                exc.args = (f"{exc}; {_INSTALL_GRAPHVIZ}",)

        class _Digraph(gv.Digraph):  # type: ignore[misc, name-defined]
            """A graphviz.Digraph whose render errors say how to install Graphviz's dot."""

            def pipe(self, *args: Any, **kwargs: Any) -> Any:
                try:
                    return super().pipe(*args, **kwargs)
                except gv.ExecutableNotFound as exc:
                    _say_install(exc)
                    raise

            def render(self, *args: Any, **kwargs: Any) -> Any:
                try:
                    return super().render(*args, **kwargs)
                except gv.ExecutableNotFound as exc:
                    _say_install(exc)
                    raise

        _Digraph.__module__ = __name__
        _Digraph.__qualname__ = "_Digraph"
        globals()["_Digraph"] = cls = _Digraph
    return cls


def __getattr__(name: str) -> Any:
    if name == "_Digraph":
        return _digraph_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
