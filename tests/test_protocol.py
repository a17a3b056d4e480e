"""The kernel protocol (micrograd._protocol): both engines export every name alike."""
from __future__ import annotations

import inspect

import pytest

from conftest import compiled_only, load_engine
from micrograd._protocol import PROTOCOL


def doc(fn):
    # the compiled engine's docstrings open with the signature Cython embeds: not part of the text
    text = fn.__doc__ or ""
    head, _, rest = text.partition("\n\n")
    return rest if head.startswith(fn.__name__ + "(") else text


@pytest.mark.parametrize("name", sorted(PROTOCOL))
def test_engine_exports_the_name(engine, name):
    obj = getattr(engine, name)
    params = PROTOCOL[name]
    if params is not None:
        assert tuple(inspect.signature(obj).parameters) == params
        assert doc(obj), f"{name} has no docstring"


@compiled_only
@pytest.mark.parametrize("name", sorted(n for n, p in PROTOCOL.items() if p is not None))
def test_both_engines_document_it_alike(name):
    compiled, pure = load_engine("compiled"), load_engine("python")
    assert doc(getattr(compiled, name)) == doc(getattr(pure, name))


def test_nn_optim_losses_use_only_the_protocol():
    # every engine name the package modules reach through _impl is listed
    import importlib
    import inspect
    import re

    used = set()
    for mod in ("nn", "optim", "losses", "viz", "engine"):
        # the installed modules' own source (the tests also run against a wheel, elsewhere)
        src = inspect.getsource(importlib.import_module(f"micrograd.{mod}"))
        used |= set(re.findall(r"\b_impl\.(\w+)", src))
    assert used <= set(PROTOCOL), used - set(PROTOCOL)
