"""Every ```python block of README.md runs, each in a fresh process, and prints what its comments say.

The convention: a comment on a line that calls print() is the exact output expected, as in
``print(f'{g.data:.4f}')  # 24.7041``. Prose goes on a line of its own. Numbers are compared
to 1e-9 relative, so a last-bit difference between platforms' libm does not fail. A block
that needs an optional package (graphviz, matplotlib, torch) is skipped where it is missing.
"""
from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

import micrograd

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
OPTIONAL = ("graphviz", "matplotlib", "torch", "IPython")
# CI sets this after installing Graphviz: then a drawing block must run, not skip
REQUIRE_GRAPHVIZ = os.environ.get("MICROGRAD_REQUIRE_GRAPHVIZ", "") not in ("", "0")

_FENCE = re.compile(r"^([ \t]*)(`{3,}|~{3,})[ \t]*(\w[\w+-]*)?[^\n]*\n(.*?)^\1\2[ \t]*$",
                    re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list:
    """[(line of the block's first code line, code)] for every ```python / ```py block."""
    blocks = []
    for m in _FENCE.finditer(text):
        lang = (m.group(3) or "").lower()
        if lang in ("python", "py", "python3"):
            first = text.count("\n", 0, m.start(4)) + 1
            code = textwrap.dedent(m.group(4))
            blocks.append((first, code))
    return blocks


def _params() -> list:
    if not README.is_file():
        return [pytest.param(None, None, marks=pytest.mark.skip(reason=f"{README} not found"))]
    return [pytest.param(first, code, id=f"README.md:{first}")
            for first, code in python_blocks(README.read_text(encoding="utf-8"))]


# Runs one block: print() calls that carry a comment are replaced by a checking print.
_RUNNER = r'''
import ast, io, math, re, sys, tokenize

path, offset = sys.argv[1], int(sys.argv[2])
source = open(path, encoding="utf-8").read()
comments = {}
for tok in tokenize.generate_tokens(io.StringIO(source).readline):
    if tok.type == tokenize.COMMENT:
        comments[tok.start[0]] = tok.string[1:].strip()

tree = ast.parse(source, "README.md")
expected = {}

class Checked(ast.NodeTransformer):
    def visit_Call(self, node):
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id == "print" and node.end_lineno in comments:
            want = comments[node.end_lineno]
            line = node.end_lineno + offset - 1
            expected[line] = want
            node.func = ast.Name("__readme_print__", ast.Load())
            node.args[:0] = [ast.Constant(want), ast.Constant(line)]
        return node

tree = ast.fix_missing_locations(Checked().visit(tree))
ast.increment_lineno(tree, offset - 1)
seen = set()
NUM = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?inf|nan")

def same(got, want):
    if got == want:
        return True
    gnums, wnums = NUM.findall(got), NUM.findall(want)
    if NUM.sub("#", got) != NUM.sub("#", want) or len(gnums) != len(wnums):
        return False
    return all(math.isclose(float(g), float(w), rel_tol=1e-9, abs_tol=1e-12) or g == w
               for g, w in zip(gnums, wnums))

def __readme_print__(want, line, *args, **kwargs):
    seen.add(line)
    if kwargs.get("file") is not None:  # only what goes to stdout is checked
        return print(*args, **kwargs)
    buf = io.StringIO()
    print(*args, **kwargs, file=buf)
    got = buf.getvalue()
    sys.stdout.write(got)
    if not same(got.rstrip("\n").strip(), want):
        raise AssertionError(f"README.md:{line}: printed {got.rstrip()!r}, but its comment says {want!r} "
                             "(a comment on a print line is its expected output)")

namespace = {"__name__": "__main__", "__readme_print__": __readme_print__}
exec(compile(tree, "README.md", "exec"), namespace)
missing = sorted(set(expected) - seen)
if missing:
    raise AssertionError(f"README.md: the print() on line(s) {missing} never ran, so their "
                         "expected output was not checked")
'''


@pytest.mark.parametrize("first, code", _params())
def test_readme_block(first, code, tmp_path):
    (tmp_path / "block.py").write_text(code, encoding="utf-8")
    (tmp_path / "_runner.py").write_text(_RUNNER, encoding="utf-8")
    env = dict(os.environ)
    # the same micrograd as this test process imported: the installed wheel, or the source tree
    here = str(pathlib.Path(micrograd.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    env.setdefault("MPLBACKEND", "Agg")  # a plotting block must not open a window
    out = subprocess.run([sys.executable, "_runner.py", "block.py", str(first)], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        err = out.stderr
        missing = re.search(r"No module named '([\w.]+)'", err)
        if missing and missing.group(1).split(".")[0] in OPTIONAL:
            if not (REQUIRE_GRAPHVIZ and missing.group(1).startswith("graphviz")):
                pytest.skip(f"README.md:{first} needs {missing.group(1)}, which is not installed")
        if not REQUIRE_GRAPHVIZ and ("pip install 'micrograd-compiled[viz]'" in err
                                     or "ExecutableNotFound" in err):
            pytest.skip(f"README.md:{first} draws a graph: Graphviz is not installed")
        pytest.fail(f"README.md block at line {first} failed:\n{out.stdout}\n{err}", pytrace=False)


def test_block_extraction():
    text = textwrap.dedent("""\
        # Title
        ```python
        print(1 + 1)  # 2
        ```
        ```bash
        pip install .
        ```
        1. a list item

           ```py
           x = 3
           ```
        ~~~python
        y = 4
        ~~~
        """)
    assert python_blocks(text) == [(3, "print(1 + 1)  # 2\n"), (11, "x = 3\n"), (14, "y = 4\n")]


def test_runner_checks_comments(tmp_path):
    cases = {
        "print(f'{2/3:.4f}')  # 0.6667\n": 0,
        "print(0.1 + 0.2)  # 0.30000000000000004\n": 0,
        "print(0.1 + 0.2)  # 0.3000000000001\n": 0,  # numbers compare to 1e-9
        "print([1.5, 'a#b'])  # [1.5, 'a#b']\n": 0,
        "print(2 + 2)  # 5\n": 1,
        "print('x')  # the value of x\n": 1,  # prose on a print line is an expectation too
        "if False:\n    print(1)  # 1\n": 1,  # an expectation that never ran
        "import sys\nprint('to stderr', file=sys.stderr)  # anything\n": 0,
        "print('no comment')\n# 42\n": 0,
    }
    for code, rc in cases.items():
        (tmp_path / "block.py").write_text(code, encoding="utf-8")
        (tmp_path / "_runner.py").write_text(_RUNNER, encoding="utf-8")
        out = subprocess.run([sys.executable, "_runner.py", "block.py", "10"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
        assert (out.returncode != 0) == bool(rc), (code, out.stderr)
        if rc:
            assert "README.md:" in out.stderr, out.stderr
