"""Picks the engine: compiled, or the pure-Python twin when MICROGRAD_NO_EXTENSIONS is set or no build exists."""
from __future__ import annotations

import os
import warnings

NO_EXTENSIONS = os.environ.get("MICROGRAD_NO_EXTENSIONS", "") not in ("", "0")

if NO_EXTENSIONS:
    from micrograd import _engine_py as _impl
else:
    try:
        from micrograd import _engine as _impl  # type: ignore[no-redef]
    except ImportError as exc:  # no build: still usable, but say so
        warnings.warn(
            f"micrograd: the compiled engine is not available ({exc}); using the pure-Python "
            "engine, which is correct but far slower. Reinstall with a C compiler to fix.",
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
