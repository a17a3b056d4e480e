"""The extension list: one Cython module, the engine; skipped when MICROGRAD_NO_EXTENSIONS is set."""
import glob
import os
import runpy
import sys

from setuptools import Extension, setup

# by file path: importing the micrograd package would import the engine this file builds
NO_EXTENSIONS = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                            "micrograd", "_env.py"))["no_extensions"]()
# MICROGRAD_SANITIZE=1 builds with AddressSanitizer + UndefinedBehaviorSanitizer (tests/sanitize.sh)
SANITIZE = os.environ.get("MICROGRAD_SANITIZE", "") not in ("", "0")

if sys.platform == "win32":
    cflags = ["/O2", "/fp:precise"]
    ldflags = []
else:
    # -ffp-contract=off: no fused multiply-add, so every platform rounds a*b+c the same way
    cflags = ["-O3", "-ffp-contract=off"]
    ldflags = []
    if SANITIZE:
        # MG_NO_CLONES: the array loops' plain x86-64 build, so the suite also runs (and checks
        # bit for bit against the pure engine) the code a CPU without AVX2 takes
        cflags = ["-O1", "-g", "-ffp-contract=off", "-fno-omit-frame-pointer",
                  "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
                  "-DMG_NO_CLONES"]
        ldflags = ["-fsanitize=address,undefined"]

ext_modules = []
if not NO_EXTENSIONS:
    from Cython.Build import cythonize

    ext_modules = cythonize(
        [Extension("micrograd._engine", ["src/_engine.pyx"], include_dirs=["src"],
                   depends=sorted(glob.glob("src/*.pxi") + glob.glob("src/*.h") + glob.glob("src/*.pxd")),
                   extra_compile_args=cflags, extra_link_args=ldflags)],
        include_path=["src"],
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
        },
    )

setup(ext_modules=ext_modules)
