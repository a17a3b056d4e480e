"""Builds benchmarks/_floor.pyx once (Cython and a C compiler) into .bench-build/ and imports it."""
import hashlib
import importlib.util
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "_floor.pyx"
CACHE = HERE.parent / ".bench-build"
CFLAGS = ["-O3", "-ffp-contract=off"]  # the engine's (setup.py): the same compiler work


class FloorUnavailable(Exception):
    """Cython, setuptools or a compiler is missing: the floor has no figure."""


def load():
    """The compiled floor module, built on first use (a few seconds), cached by source and flags."""
    tag = hashlib.sha256(SOURCE.read_bytes() + " ".join(CFLAGS).encode()).hexdigest()[:12]
    out = CACHE / f"floor-{tag}"
    found = sorted(out.glob("_floor*.so")) + sorted(out.glob("_floor*.pyd"))
    if not found:
        try:
            from Cython.Build import cythonize
            from setuptools import Distribution, Extension
        except ImportError as exc:
            raise FloorUnavailable(f"the floor class needs Cython and setuptools ({exc})") from None
        out.mkdir(parents=True, exist_ok=True)
        ext = Extension("_floor", [str(SOURCE)], extra_compile_args=CFLAGS)
        dist = Distribution({"ext_modules": cythonize([ext], quiet=True, build_dir=str(out / "c"))})
        cmd = dist.get_command_obj("build_ext")
        cmd.build_lib, cmd.build_temp = str(out), str(out / "tmp")
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            saved = os.dup(1)
            os.dup2(devnull, 1)  # the compiler's command lines would land in the worker's JSON
            try:
                dist.run_command("build_ext")
            finally:
                os.dup2(saved, 1)
                os.close(saved)
                os.close(devnull)
        except Exception as exc:
            raise FloorUnavailable(f"the floor class did not build ({type(exc).__name__}: {exc})") from None
        found = sorted(out.glob("_floor*.so")) + sorted(out.glob("_floor*.pyd"))
    spec = importlib.util.spec_from_file_location("_floor", found[0])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sys.modules["_floor"] = mod
    return mod
