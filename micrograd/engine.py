"""Picks the engine: compiled, or the pure-Python twin when MICROGRAD_NO_EXTENSIONS is set or no build exists."""
from __future__ import annotations

import importlib.machinery
import os
import warnings

from micrograd._env import no_extensions

NO_EXTENSIONS = no_extensions()


def _why_not_compiled(exc: ImportError) -> tuple[str, str]:
    """(cause, fix) for a compiled engine that did not import, told from what this folder holds."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        names = os.listdir(here)
    except OSError:  # not a folder (a zip file, say): nothing to tell from its contents
        names = []
    builds = [n for n in names if n.startswith("_engine.")
              and n.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))]
    if builds:
        return (f"the compiled engine {os.path.join(here, builds[0])} failed to import ({exc})",
                "reinstall, or rebuild it in place with `pip install -e .`")
    parent = os.path.dirname(here)
    if any(os.path.isfile(os.path.join(parent, n)) for n in ("pyproject.toml", "setup.py")):
        # typically `python` run in the repository after a plain `pip install .`: the current
        # folder comes first on sys.path, so this unbuilt copy hides the installed, built one
        return (f"imported from the source folder {here}, which has no compiled engine built in "
                "it; that folder shadows any installed micrograd",
                "`pip install -e .` builds the engine in place, or run from another folder to "
                "use the installed package")
    return (f"no compiled engine for this Python in {here} (installed without a C compiler, "
            "or with MICROGRAD_NO_EXTENSIONS set)", "reinstall with a C compiler")


if NO_EXTENSIONS:
    from micrograd import _engine_py as _impl
else:
    try:
        from micrograd import _engine as _impl  # type: ignore[no-redef]
    except ImportError as exc:  # still usable, but say why and how to fix it
        cause, fix = _why_not_compiled(exc)
        warnings.warn(
            f"micrograd: {cause}. Using the pure-Python engine, which is correct but far slower. "
            f"To fix: {fix}.",
            RuntimeWarning,
            stacklevel=2,
        )
        from micrograd import _engine_py as _impl

#: "compiled" or "python": which engine this process uses.
IMPLEMENTATION: str = _impl.IMPLEMENTATION

Value = _impl.Value
no_grad = _impl.no_grad
is_grad_enabled = _impl.is_grad_enabled

__all__ = ["IMPLEMENTATION", "Value", "no_grad", "is_grad_enabled"]
