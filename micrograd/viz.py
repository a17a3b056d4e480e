"""draw_dot and trace: a Value's graph as a graphviz Digraph, as drawn in the micrograd lecture."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Protocol, Sequence, Tuple, Union, overload

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


def draw_dot(root: Value, format: str = "svg", rankdir: str = "LR", *,
             expand: bool = False) -> Digraph:
    """draw_dot(root, format='svg', rankdir='LR', *, expand=False) -> graphviz.Digraph: root's graph.

    One record per Value (`label | data | grad`, 4 decimals), one small node per op
    (`+`, `*`, `tanh`, `dot`, ...) with edges child -> op -> result. A fused `dot` node
    (a neuron's `b + w0*x0 + w1*x1 + ...`) has its edges labelled `b`, `w0`, `x0`, `w1`, ...
    expand=True draws each fused node as upstream's Neuron built it: a `*` per weight and a
    chain of `+` from b (b + w0*x0, then + w1*x1, ...), the last `+` giving the fused node's
    own box; the products' and partial sums' data are recomputed from the children's data in
    that order, and their grad is the fused node's (all a `+` chain passes on, as upstream
    shows after one backward()). In Jupyter the result displays itself; elsewhere call
    `.render()`, `.pipe()` or `.view()`, which need Graphviz's `dot`.
    An output of micrograd.functional's fused softmax, log_softmax or rmsnorm is one op node
    (`softmax`, ...) with an edge from each input, with or without expand.
    Type checkers see it as a micrograd.viz.Digraph (graphviz ships no types).
    Needs the graphviz package (the [viz] extra): pip install graphviz.
    """
    if rankdir not in ("LR", "TB", "RL", "BT"):
        raise ValueError(f"rankdir must be 'LR', 'TB', 'RL' or 'BT', not {rankdir!r}")
    gv = _import_graphviz()
    boxes, ops, edges = _layout(root, expand)
    dot: Digraph = _digraph_class()(format=format, graph_attr={"rankdir": rankdir})
    for name, label, data, grad in boxes:
        dot.node(name, shape="record",
                 label=gv.nohtml(f"{{ {_record_text(label)} | data {data:.4f} | grad {grad:.4f} }}"))
    for name, text in ops:
        dot.node(name, label=gv.nohtml(_escape(text)))
    for tail, head, label in edges:
        if label is None:
            dot.edge(tail, head)
        else:
            dot.edge(tail, head, label=gv.nohtml(_escape(label)))
    return dot


# what draw_dot draws, before graphviz is involved: records (name, label, data, grad), op nodes
# (name, text), edges (tail, head, label or None); tests read it for the exact numbers
_Box = Tuple[str, Any, float, float]
_Edge = Tuple[str, str, Optional[str]]


def _layout(root: Value, expand: bool = False) -> Tuple[List[_Box], List[Tuple[str, str]], List[_Edge]]:
    nodes, edges = trace(root)
    name = {id(v): f"v{i}" for i, v in enumerate(nodes)}
    boxes: List[_Box] = [(name[id(v)], v.label, v.data, v.grad) for v in nodes]
    ops: List[Tuple[str, str]] = []
    out: List[_Edge] = []
    for v in nodes:
        if v._op:
            # the op node of a result: its children point here, and it points at the result
            vid = name[id(v)]
            children = _fused_children(v)
            if children is not None and expand and len(children) > 1:  # b alone: nothing to expand
                _expand_dot(vid, v, children, name, boxes, ops, out)
                continue
            ops.append((vid + "_op", str(v._op)))
            out.append((vid + "_op", vid, None))
            if children is not None:
                for child, roles in _roles(children):
                    out.append((name[id(child)], vid + "_op", roles))
    for child, parent in edges:
        if _fused_children(parent) is None:  # a fused node's edges are drawn above
            out.append((name[id(child)], name[id(parent)] + "_op", None))
    return boxes, ops, out


def _fused_children(v: Value) -> Optional[Tuple[Value, ...]]:
    # the engine's fused dot node orders its children b, w0, x0, w1, x1, ... (an odd count);
    # a user's own op named "dot" of that shape is drawn the same way (_op is all we can see)
    if v._op != "dot":
        return None
    children = tuple(v._children)
    return children if len(children) % 2 == 1 else None


def _role(k: int) -> str:
    return "b" if k == 0 else f"{'w' if k % 2 else 'x'}{(k - 1) // 2}"


def _roles(children: Sequence[Value]) -> List[Tuple[Value, str]]:
    # one edge per distinct child (as trace gives), naming every place it holds: "x0, x1"
    seen: Dict[int, int] = {}
    out: List[Tuple[Value, List[str]]] = []
    for k, child in enumerate(children):
        if id(child) not in seen:
            seen[id(child)] = len(out)
            out.append((child, []))
        out[seen[id(child)]][1].append(_role(k))
    return [(child, ", ".join(roles)) for child, roles in out]


def _expand_dot(vid: str, v: Value, children: Sequence[Value], name: Dict[int, str],
                boxes: List[_Box], ops: List[Tuple[str, str]], out: List[_Edge]) -> None:
    # upstream's Neuron: sum((wi*xi for wi, xi in zip(w, x)), b), each step a node of its own;
    # every one of them passes the fused node's grad on unchanged (a + node does, and each
    # product is a + node's child), so that is the grad upstream shows in each of their boxes
    b = children[0]
    prev, acc, n = name[id(b)], b.data, (len(children) - 1) // 2
    for i in range(n):
        w, x = children[2 * i + 1], children[2 * i + 2]
        prod = w.data * x.data
        acc = acc + prod
        m = f"{vid}_m{i}"
        boxes.append((m, "", prod, v.grad))
        ops.append((m + "_op", "*"))
        out.append((m + "_op", m, None))
        if w is x:  # one edge, as upstream's set of edges has for x*x
            out.append((name[id(w)], m + "_op", f"w{i}, x{i}"))
        else:
            out.append((name[id(w)], m + "_op", f"w{i}"))
            out.append((name[id(x)], m + "_op", f"x{i}"))
        s = vid if i == n - 1 else f"{vid}_s{i}"
        if s != vid:
            boxes.append((s, "", acc, v.grad))
        ops.append((s + "_op", "+"))
        out.append((s + "_op", s, None))
        out.append((prev, s + "_op", "b" if i == 0 else None))
        out.append((m, s + "_op", None))
        prev = s


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
