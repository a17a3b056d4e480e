"""draw_dot and trace: a Value's graph as a graphviz Digraph, as drawn in the micrograd lecture."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Protocol, Tuple, Union, overload

if TYPE_CHECKING:  # only named in annotations: trace() reads nothing but _prev
    from micrograd.engine import Value

__all__ = ["draw_dot", "trace", "Digraph"]

_INSTALL_GRAPHVIZ = (
    "install Graphviz, which provides it (Debian/Ubuntu: apt-get install graphviz; "
    "macOS: brew install graphviz; conda: conda install graphviz; "
    "others: https://graphviz.org/download/)"
)


class Digraph(Protocol):
    """What draw_dot returns, as a type checker sees it: a graphviz.Digraph (graphviz has no types)."""

    format: str

    @property
    def source(self) -> str:
        """The graph in the DOT language."""

    def node(self, name: str, label: Optional[str] = None, **attrs: Any) -> None:
        """Add a node."""

    def edge(self, tail_name: str, head_name: str, label: Optional[str] = None,
             **attrs: Any) -> None:
        """Add an edge."""

    def render(self, filename: Union[str, os.PathLike[str], None] = None,
               directory: Union[str, os.PathLike[str], None] = None, view: bool = False,
               cleanup: bool = False, format: Optional[str] = None, **kwargs: Any) -> str:
        """Save the source and render it with Graphviz's dot; returns the rendered file's path."""

    @overload
    def pipe(self, format: Optional[str] = None, *, encoding: None = None,
             **kwargs: Any) -> bytes: ...
    @overload
    def pipe(self, format: Optional[str] = None, *, encoding: str, **kwargs: Any) -> str: ...
    def pipe(self, format: Optional[str] = None, *, encoding: Optional[str] = None,
             **kwargs: Any) -> Union[bytes, str]:
        """The rendered graph: bytes, or str when an encoding is given."""

    def view(self, filename: Union[str, os.PathLike[str], None] = None,
             directory: Union[str, os.PathLike[str], None] = None, cleanup: bool = False,
             **kwargs: Any) -> str:
        """Render and open in the system's viewer; returns the rendered file's path."""

    def save(self, filename: Union[str, os.PathLike[str], None] = None,
             directory: Union[str, os.PathLike[str], None] = None, **kwargs: Any) -> str:
        """Save the DOT source; returns its path."""

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None,
                          **kwargs: Any) -> Dict[str, Union[bytes, str]]:
        """What Jupyter displays."""


def trace(root: Value) -> Tuple[List[Value], List[Tuple[Value, Value]]]:
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


def draw_dot(root: Value, format: str = "svg", rankdir: str = "LR") -> Digraph:
    """draw_dot(root, format='svg', rankdir='LR') -> graphviz.Digraph: root's graph, ready to render.

    One record per Value (`label | data | grad`, 4 decimals), one small node per op
    (`+`, `*`, `tanh`, `dot`, ...) with edges child -> op -> result. A fused `dot` node
    (a neuron's `b + sum w_i*x_i`) shows all of its inputs. In Jupyter the result displays
    itself; elsewhere call `.render()`, `.pipe()` or `.view()`, which need Graphviz's `dot`.
    Type checkers see it as a micrograd.viz.Digraph (graphviz ships no types).
    Needs the graphviz package (the [viz] extra): pip install graphviz.
    """
    if rankdir not in ("LR", "TB", "RL", "BT"):
        raise ValueError(f"rankdir must be 'LR', 'TB', 'RL' or 'BT', not {rankdir!r}")
    gv = _import_graphviz()
    nodes, edges = trace(root)
    name = {id(v): f"v{i}" for i, v in enumerate(nodes)}
    dot: Digraph = _digraph_class()(format=format, graph_attr={"rankdir": rankdir})
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
        import graphviz  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError as exc:
        raise ImportError(
            "micrograd.viz needs the graphviz Python package: pip install graphviz (the [viz] extra: "
            "pip install '.[viz]' in a checkout, pip install 'micrograd-compiled[viz]' once it is "
            "published on PyPI) "
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
