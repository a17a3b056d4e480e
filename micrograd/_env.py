"""MICROGRAD_NO_EXTENSIONS, read in one place: by the build, the engine selector, the tests and the benchmarks."""
from __future__ import annotations

import os
from typing import Mapping


def no_extensions(environ: Mapping[str, str] = os.environ) -> bool:
    """True when MICROGRAD_NO_EXTENSIONS asks for the pure-Python engine: set, and neither "" nor "0"."""
    return environ.get("MICROGRAD_NO_EXTENSIONS", "") not in ("", "0")
