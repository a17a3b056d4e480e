"""Picking the engine: MICROGRAD_NO_EXTENSIONS, and a fallback warning that names the real cause and fix."""
from __future__ import annotations

import importlib.machinery
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import micrograd
from micrograd._env import no_extensions

PACKAGE = pathlib.Path(micrograd.__file__).resolve().parent


def test_no_extensions_reads_the_variable():
    assert no_extensions({}) is False
    assert no_extensions({"MICROGRAD_NO_EXTENSIONS": ""}) is False
    assert no_extensions({"MICROGRAD_NO_EXTENSIONS": "0"}) is False
    assert no_extensions({"MICROGRAD_NO_EXTENSIONS": "1"}) is True
    assert no_extensions({"MICROGRAD_NO_EXTENSIONS": "yes"}) is True
    assert no_extensions({"OTHER": "1"}) is False


def pure_copy(folder: pathlib.Path) -> pathlib.Path:
    """folder/micrograd: the package's Python files, without a compiled engine."""
    dest = folder / "micrograd"
    dest.mkdir(parents=True)
    for f in PACKAGE.glob("*.py"):
        shutil.copy(f, dest)
    return dest


def import_micrograd(cwd: pathlib.Path, path: pathlib.Path | None = None, **env: str):
    """`import micrograd` in a fresh interpreter: (IMPLEMENTATION, micrograd.__file__, stderr)."""
    e = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MICROGRAD_NO_EXTENSIONS")}
    if path is not None:
        e["PYTHONPATH"] = str(path)
    e.update(env)
    code = "import micrograd; print(micrograd.IMPLEMENTATION); print(micrograd.__file__)"
    # -S: no site-packages, so neither an installed nor an editable micrograd can lend its engine
    r = subprocess.run([sys.executable, "-S", "-W", "always", "-c", code], cwd=cwd, env=e,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    impl, where = r.stdout.splitlines()
    return impl, where, r.stderr


@pytest.mark.parametrize("marker", ["pyproject.toml", "setup.py"])
def test_an_unbuilt_source_folder_is_said_to_shadow_the_installed_package(tmp_path, marker):
    # `pip install .`, then python in the repository: the current folder's micrograd/ wins
    repo = tmp_path / "repo"
    pkg = pure_copy(repo)
    (repo / marker).write_text("")
    impl, where, err = import_micrograd(repo)
    assert impl == "python" and pathlib.Path(where).parent == pkg
    assert err.count("RuntimeWarning") == 1, err
    assert f"imported from the source folder {pkg}, which has no compiled engine built in it" in err
    assert "shadows any installed micrograd" in err
    assert "To fix: `pip install -e .` builds the engine in place, or run from another folder" in err
    assert "partially initialized" not in err and "C compiler" not in err


def test_an_install_without_a_build_says_so(tmp_path):
    site = tmp_path / "site"
    pkg = pure_copy(site)
    impl, where, err = import_micrograd(tmp_path, path=site)
    assert impl == "python" and pathlib.Path(where).parent == pkg
    assert err.count("RuntimeWarning") == 1, err
    assert f"no compiled engine for this Python in {pkg}" in err
    assert "To fix: reinstall with a C compiler." in err
    assert "shadows" not in err and "source folder" not in err


def test_a_build_that_fails_to_import_is_named(tmp_path):
    site = tmp_path / "site"
    pkg = pure_copy(site)
    broken = pkg / ("_engine" + importlib.machinery.EXTENSION_SUFFIXES[0])
    broken.write_bytes(b"not a shared library")
    (site / "pyproject.toml").write_text("")  # a build is there: no shadowing to blame
    impl, _, err = import_micrograd(tmp_path, path=site)
    assert impl == "python"
    assert err.count("RuntimeWarning") == 1, err
    assert f"the compiled engine {broken} failed to import (" in err
    assert "To fix: reinstall, or rebuild it in place with `pip install -e .`." in err
    assert "shadows" not in err


@pytest.mark.parametrize("value", ["1", "yes"])
def test_asking_for_the_pure_engine_says_nothing(tmp_path, value):
    repo = tmp_path / "repo"
    pure_copy(repo)
    (repo / "pyproject.toml").write_text("")
    impl, _, err = import_micrograd(repo, MICROGRAD_NO_EXTENSIONS=value)
    assert impl == "python"
    assert err == ""


def test_zero_does_not_ask_for_the_pure_engine(tmp_path):
    site = tmp_path / "site"
    pure_copy(site)
    impl, _, err = import_micrograd(tmp_path, path=site, MICROGRAD_NO_EXTENSIONS="0")
    assert impl == "python" and "no compiled engine for this Python" in err
