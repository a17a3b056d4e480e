# Types of the engine selector: whichever engine runs, its API is the one in _engine.pyi.
from micrograd import _engine
from micrograd._engine import Value as Value, is_grad_enabled as is_grad_enabled, no_grad as no_grad

_impl = _engine  # the engine module in use (its API is _engine.pyi's)

NO_EXTENSIONS: bool
IMPLEMENTATION: str

__all__ = ["IMPLEMENTATION", "Value", "no_grad", "is_grad_enabled"]
