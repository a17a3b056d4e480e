"""Shared fixtures and marks: `engine` runs a test on each engine; `compiled_only` skips it on the pure-only run."""
from __future__ import annotations

import importlib

import pytest

from micrograd._env import no_extensions

NO_EXTENSIONS = no_extensions()

# for tests of what only the compiled engine has (its arena, its C loops, the module itself);
# CI's second run, on the pure engine alone, skips them
compiled_only = pytest.mark.skipif(NO_EXTENSIONS, reason="MICROGRAD_NO_EXTENSIONS is set: no compiled engine")

# module name of each engine; imported directly, never through micrograd.engine, so that
# a missing or broken build fails the "compiled" tests instead of quietly testing Python twice
ENGINE_MODULES = {"compiled": "micrograd._engine", "python": "micrograd._engine_py"}


def load_engine(name: str):
    """Import one engine module by its short name ("compiled" or "python")."""
    return importlib.import_module(ENGINE_MODULES[name])


@pytest.fixture(scope="session", params=["compiled", "python"])
def engine(request):
    """The engine module under test: use engine.Value, engine.no_grad, engine._live_nodes, ...

    The "compiled" run is skipped only when MICROGRAD_NO_EXTENSIONS is set (CI's second run).
    """
    if request.param == "compiled" and NO_EXTENSIONS:
        pytest.skip("MICROGRAD_NO_EXTENSIONS is set: pure-Python engine only")
    mod = load_engine(request.param)
    assert mod.IMPLEMENTATION == request.param
    return mod


@pytest.fixture(scope="session")
def engines():
    """Both engine modules as (compiled, python), for tests that run one program on each.

    Skipped when MICROGRAD_NO_EXTENSIONS is set: there is nothing to compare against then.
    """
    if NO_EXTENSIONS:
        pytest.skip("MICROGRAD_NO_EXTENSIONS is set: no compiled engine to compare")
    return load_engine("compiled"), load_engine("python")
