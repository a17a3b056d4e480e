"""Typing and help: the stubs ship, mypy --strict passes on a user program, help() shows signatures."""
from __future__ import annotations

import ast
import importlib
import inspect
import os
import pathlib
import pydoc
import shutil
import site
import subprocess
import sys
import sysconfig

import pytest

import micrograd

SAMPLE = pathlib.Path(__file__).with_name("typing_sample.py")
PACKAGE_DIR = pathlib.Path(micrograd.__file__).parent


def _env_for(tmp_path: pathlib.Path) -> dict:
    env = dict(os.environ)
    env.pop("MYPYPATH", None)
    # An installed wheel, or an editable install (a path in a .pth file: test_packaging.py checks
    # that mypy finds it unaided), is found by mypy itself. A bare source tree, or an editable
    # install made before pyproject.toml spelled out package-dir (setuptools' import hook, which
    # mypy cannot follow), is found through MYPYPATH; mypy refuses MYPYPATH=site-packages.
    parent = PACKAGE_DIR.parent.resolve()
    installed = {pathlib.Path(p).resolve() for p in site.getsitepackages() + [site.getusersitepackages()]}
    installed |= {pathlib.Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
    if parent not in installed:
        env["MYPYPATH"] = str(parent)
    env["PYTHONPATH"] = ""  # the sample must import micrograd as users do
    return env


def test_typing_files_ship():
    for name in ("py.typed", "_engine.pyi", "engine.pyi"):
        assert (PACKAGE_DIR / name).is_file(), f"{name} missing next to {micrograd.__file__}"


def test_sample_runs(tmp_path):
    # the sample is a real program: it runs, on whichever engine this process selects
    shutil.copy(SAMPLE, tmp_path / "sample.py")
    out = subprocess.run([sys.executable, "sample.py"], cwd=tmp_path, env=_env_for(tmp_path),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("24.7041 ")


def test_mypy_strict_on_user_code(tmp_path):
    pytest.importorskip("mypy", reason="mypy is not installed (pip install mypy)")
    shutil.copy(SAMPLE, tmp_path / "sample.py")
    # follow-imports=silent: micrograd's own modules are analysed but, as for any installed
    # package, only the user's file reports errors
    cmd = [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
           "--no-error-summary", "--show-error-codes", "--cache-dir", str(tmp_path / ".cache"),
           "sample.py"]
    out = subprocess.run(cmd, cwd=tmp_path, env=_env_for(tmp_path), capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, f"mypy --strict failed:\n{out.stdout}{out.stderr}"


def test_mypy_strict_on_the_package_itself(tmp_path):
    # the package's own source, not only what a user's file sees of it (the pure engine, the
    # demos and datasets included), with the checkout's mypy settings when they are at hand
    pytest.importorskip("mypy", reason="mypy is not installed (pip install mypy)")
    config = PACKAGE_DIR.parent / "pyproject.toml"
    if not config.is_file():
        config = pathlib.Path(__file__).resolve().parent.parent / "pyproject.toml"
    cmd = [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--show-error-codes",
           "--cache-dir", str(tmp_path / ".cache"), "--config-file", str(config),
           "-p", "micrograd"]
    out = subprocess.run(cmd, cwd=tmp_path, env=_env_for(tmp_path), capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, f"mypy --strict micrograd failed:\n{out.stdout}{out.stderr}"


# -- help() -------------------------------------------------------------------------------------

VALUE_METHODS = ["relu", "tanh", "exp", "log", "sigmoid", "backward"]


def _signature(obj) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return ""


def test_engine_help_shows_signatures(engine):
    for name in VALUE_METHODS:
        meth = getattr(engine.Value, name)
        assert _signature(meth).startswith("(self"), f"{engine.IMPLEMENTATION}: Value.{name}"
        assert meth.__doc__ and meth.__doc__.strip(), f"{engine.IMPLEMENTATION}: Value.{name}"
        assert f"{name}(self" in pydoc.render_doc(meth, renderer=pydoc.plaintext)
    # the constructor: a signature, or (a compiled class) the docstring's first line
    text = pydoc.render_doc(engine.Value, renderer=pydoc.plaintext)
    assert "Value(data, _children=(), _op=''" in text or _signature(engine.Value).startswith("(data")
    for name in ("no_grad", "is_grad_enabled"):
        fn = getattr(engine, name)
        assert _signature(fn).startswith("()"), name
        assert fn.__doc__ and fn.__doc__.strip(), name


@pytest.mark.parametrize("modname", ["micrograd.nn", "micrograd.optim", "micrograd.losses",
                                     "micrograd.datasets", "micrograd.viz"])
def test_public_names_have_signatures_and_docs(modname):
    mod = importlib.import_module(modname)
    assert mod.__doc__, modname
    for name in mod.__all__:
        obj = getattr(mod, name)
        if not callable(obj):
            continue
        assert _signature(obj), f"{modname}.{name} has no signature"
        assert obj.__doc__ and obj.__doc__.strip(), f"{modname}.{name} has no docstring"
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if attr.startswith("_") and attr != "__call__":
                    continue
                fn = member.fget if isinstance(member, property) else member
                if callable(fn):
                    assert _signature(fn), f"{modname}.{name}.{attr} has no signature"
                    assert fn.__doc__ and fn.__doc__.strip(), f"{modname}.{name}.{attr} has no docstring"


def _documented_signatures(obj, name):
    """(where, first docstring line) for obj and its public methods, when the line starts 'name('."""
    out = []
    members = [(name, obj)]
    if inspect.isclass(obj):
        lower = name.lower()
        for attr, member in vars(obj).items():
            if attr == "__call__":
                members.append((lower, member))  # documented as `layer(x) -> ...`
            elif not attr.startswith("_") and callable(member):
                members.append((attr, member))
    for shown, member in members:
        doc = inspect.getdoc(member) or ""
        first = doc.splitlines()[0] if doc else ""
        if first.startswith(shown + "("):
            out.append((f"{name}.{shown}" if member is not obj else name, member, first))
    return out


def _docstring_params(where: str, first: str) -> list:
    # the balanced (...) after the name, parsed as a def: so it must be valid Python
    start = first.index("(")
    depth = 0
    for end, ch in enumerate(first[start:], start):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0:
            break
    params = first[start:end + 1]
    try:
        tree = ast.parse(f"def f{params}: pass")
    except SyntaxError as exc:
        raise AssertionError(f"{where}: the docstring's signature {params} is not valid Python: {exc}")
    a = tree.body[0].args
    names = [(p.arg, "positional") for p in a.posonlyargs + a.args]
    names += [("*" + a.vararg.arg, "var")] if a.vararg else []
    names += [(p.arg, "keyword-only") for p in a.kwonlyargs]
    names += [("**" + a.kwarg.arg, "var")] if a.kwarg else []
    return names


def _real_params(fn) -> list:
    kinds = {inspect.Parameter.POSITIONAL_ONLY: "positional",
             inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional",
             inspect.Parameter.KEYWORD_ONLY: "keyword-only"}
    out = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind == inspect.Parameter.VAR_POSITIONAL:
            out.append(("*" + p.name, "var"))
        elif p.kind == inspect.Parameter.VAR_KEYWORD:
            out.append(("**" + p.name, "var"))
        else:
            out.append((p.name, kinds[p.kind]))
    return out


@pytest.mark.parametrize("modname", ["micrograd.nn", "micrograd.optim", "micrograd.losses",
                                     "micrograd.datasets", "micrograd.viz",
                                     "micrograd._engine_py"])
def test_docstring_signatures_are_the_real_ones(modname):
    # help() shows a class's docstring under its signature: a first line such as
    # `Layer(nin, nout, *, num_inputs=None, ...)` must be valid Python, naming the real parameters
    mod = importlib.import_module(modname)
    names = getattr(mod, "__all__", None) or [n for n in vars(mod) if not n.startswith("_")]
    checked = 0
    for name in names:
        obj = getattr(mod, name)
        if not callable(obj) or getattr(obj, "__module__", None) != mod.__name__:
            continue
        for where, member, first in _documented_signatures(obj, name):
            documented = _docstring_params(f"{modname}.{where}", first)
            real = [p for p in _real_params(member) if p[0] != "self"]
            assert documented == real, f"{modname}.{where}: docstring says {first!r}, signature is {real}"
            checked += 1
    assert checked or modname == "micrograd._engine_py", f"no documented signature found in {modname}"
