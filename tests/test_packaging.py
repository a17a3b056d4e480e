"""What a newcomer meets first: the README's install story, the license metadata, an editable install that mypy sees, pytest's summary."""
from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import venv

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PYPROJECT = ROOT / "pyproject.toml"
# a checkout (or an unpacked sdist), not the copy of tests/ that runs against an installed wheel
IS_SOURCE_TREE = all((ROOT / f).is_file() for f in ("setup.py", "pyproject.toml", "micrograd/__init__.py"))
needs_source_tree = pytest.mark.skipif(not IS_SOURCE_TREE, reason="not run from a source tree")
# what the copy for the editable install leaves out: .gitignore's generated files, and git's own
IGNORED = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__",
                                 "*.so", "*.pyd", "*.c", "*.html", ".mypy_cache", ".pytest_cache",
                                 ".hypothesis", ".upstream", "*.png")


def _section(text: str, title: str) -> str:
    """The body of the README's `## title` section, up to the next `## ` heading."""
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert m, f"README.md has no '## {title}' section"
    return m.group(1)


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MYPYPATH", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


# -- the install story --------------------------------------------------------------------------

@pytest.mark.skipif(not README.is_file(), reason="README.md not found")
def test_readme_says_how_to_install_today():
    text = README.read_text(encoding="utf-8")
    install = _section(text, "Install")
    assert "pip install ." in install, "the Install section must show the install from a checkout"
    assert ".github/workflows/wheels.yml" in install, "the Install section must name the wheel workflow"
    if IS_SOURCE_TREE:
        assert (ROOT / ".github/workflows/wheels.yml").is_file()
    # every `pip install micrograd-compiled...` (extras too) is marked as for later: the package
    # is not on PyPI, so each paragraph or code block that shows one says so
    blocks = re.split(r"\n\s*\n", text)
    for block in blocks:
        for line in block.splitlines():
            if re.search(r"pip install\s.*micrograd-compiled", line):
                assert re.search(r"published|not on PyPI", block), \
                    f"README.md: {line.strip()!r} is not marked as for once it is published"


def test_viz_hint_works_today(monkeypatch):
    # the hint names a package that pip finds today; the PyPI spelling only as for later
    from micrograd import viz

    monkeypatch.setitem(sys.modules, "graphviz", None)  # as if it were not installed
    with pytest.raises(ImportError) as info:
        viz._import_graphviz()
    msg = str(info.value)
    assert "pip install graphviz" in msg
    assert "published" in msg


# -- metadata ------------------------------------------------------------------------------------

@needs_source_tree
def test_license_file_carries_both_notices():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License")
    assert "Copyright (c) 2020 Andrej Karpathy" in text  # upstream micrograd's
    assert re.search(r"Copyright \(c\) 2026 .*authors", text)  # this package's
    assert "Permission is hereby granted, free of charge" in text


@pytest.fixture(scope="module")
def editable(tmp_path_factory):
    """A fresh venv with `pip install -e .` of a copy of this checkout: (its python, pip's log).

    A copy, so that nothing is written into the checkout; the pure engine only
    (MICROGRAD_NO_EXTENSIONS=1), so that no compiler runs: what is checked is the install.
    pip fetches the build requirements (setuptools, Cython) as for any user.
    """
    if not IS_SOURCE_TREE:
        pytest.skip("not run from a source tree")
    base = tmp_path_factory.mktemp("editable")
    src = base / "checkout"
    shutil.copytree(ROOT, src, ignore=IGNORED)
    venv.create(base / "venv", with_pip=True)
    py = base / "venv" / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    env = _clean_env()
    env["MICROGRAD_NO_EXTENSIONS"] = "1"
    out = subprocess.run([str(py), "-m", "pip", "install", "-v", "-e", str(src)], cwd=base,
                         env=env, capture_output=True, text=True, timeout=600)
    log = out.stdout + out.stderr
    assert out.returncode == 0, f"pip install -e . failed in a fresh venv:\n{log[-6000:]}"
    return py, log, src


def test_editable_build_has_no_license_deprecation(editable):
    _, log, _ = editable
    warnings = log.split("SetuptoolsDeprecationWarning")[1:]
    about_license = [w[:400] for w in warnings if "licen" in w[:400].lower()]
    assert not about_license, "the build warns about the license metadata:\n" + "\n---\n".join(about_license)


def test_editable_metadata(editable):
    py, _, _ = editable
    code = (
        "import importlib.metadata as m, json\n"
        "d = m.distribution('micrograd-compiled')\n"
        "md = d.metadata\n"
        "lic = [f for f in d.files if f.name == 'LICENSE']\n"
        "print(json.dumps({'expr': md['License-Expression'], 'files': md.get_all('License-File'),\n"
        "  'classifiers': md.get_all('Classifier'), 'urls': md.get_all('Project-URL'),\n"
        "  'text': lic[0].read_text() if lic else ''}))\n"
    )
    out = subprocess.run([str(py), "-c", code], cwd=py.parent, env=_clean_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    import json

    md = json.loads(out.stdout)
    assert md["expr"] == "MIT"
    assert md["files"] == ["LICENSE"]
    assert not [c for c in md["classifiers"] if c.startswith("License ::")]  # superseded by the expression
    assert "Upstream micrograd, https://github.com/karpathy/micrograd" in md["urls"]
    assert "Copyright (c) 2020 Andrej Karpathy" in md["text"]


def test_mypy_strict_after_editable_install(editable, tmp_path):
    # a user's program in a folder of its own, checked as the user would: no MYPYPATH, no
    # PYTHONPATH; mypy finds micrograd through the venv's site-packages alone
    pytest.importorskip("mypy", reason="mypy is not installed (pip install mypy)")
    py, _, src = editable
    user = tmp_path / "user"
    user.mkdir()
    shutil.copy(pathlib.Path(__file__).with_name("typing_sample.py"), user / "sample.py")
    env = _clean_env()
    env["MICROGRAD_NO_EXTENSIONS"] = "1"
    run = subprocess.run([str(py), "sample.py"], cwd=user, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("24.7041 ")
    # --python-executable: the mypy of this process, looking where the venv's python looks
    cmd = [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--show-error-codes",
           "--no-error-summary", "--python-executable", str(py), "--cache-dir", str(tmp_path / "cache"),
           "sample.py"]
    out = subprocess.run(cmd, cwd=user, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"mypy --strict after pip install -e .:\n{out.stdout}{out.stderr}"
    # and it was the editable checkout that mypy read
    where = subprocess.run([sys.executable, "-m", "mypy", "--python-executable", str(py),
                            "--cache-dir", str(tmp_path / "cache"), "-c",
                            "import micrograd\nreveal_type(micrograd.__file__)", "-v"],
                           cwd=user, env=env, capture_output=True, text=True, timeout=600)
    assert str(src / "micrograd") in where.stdout + where.stderr


# -- the test suite's own output ------------------------------------------------------------------

@pytest.mark.skipif(not PYPROJECT.is_file(), reason="pyproject.toml not found")
def test_pytest_summary_names_skip_reasons(tmp_path):
    # run pytest with this project's configuration on a test that skips: the closing summary
    # must say why, without -rs on the command line
    (tmp_path / "test_one.py").write_text(
        "import pytest\n\ndef test_skips():\n    pytest.skip('the reason for this skip')\n",
        encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "-c", str(PYPROJECT), "--rootdir", str(tmp_path), str(tmp_path / "test_one.py")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "1 skipped" in out.stdout, out.stdout + out.stderr
    assert "SKIPPED" in out.stdout and "the reason for this skip" in out.stdout, out.stdout


def test_engine_ids_are_as_the_readme_says(request):
    # every test run on each engine carries the engine's name first in its id: [compiled...] or
    # [python...]; the README's Testing section says how to read them
    seen = set()
    for item in request.session.items:
        cs = getattr(item, "callspec", None)
        if cs is None or "engine" not in cs.params:
            continue
        name = cs.params["engine"]
        assert name in ("compiled", "python"), item.nodeid
        assert re.search(rf"\[{name}(\]|-)", item.name), f"{item.nodeid}: the engine is not first in the id"
        seen.add(name)
    if README.is_file():
        testing = _section(README.read_text(encoding="utf-8"), "Testing")
        for word in ("[compiled", "[python", "MICROGRAD_NO_EXTENSIONS", "-ra"):
            assert word in testing, f"README.md's Testing section does not explain {word!r}"
