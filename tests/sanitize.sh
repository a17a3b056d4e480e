#!/usr/bin/env bash
# Build the engine with AddressSanitizer + UndefinedBehaviorSanitizer in a scratch copy of the
# working tree and run the engine, nn and hardening tests on it. Exit 0 only if there are zero
# sanitizer reports and the tests pass. The normal build in the working tree is never touched.
#
#   tests/sanitize.sh                 # the default test set (compiled-engine cases only)
#   tests/sanitize.sh tests/test_nn.py -x   # or any pytest arguments
#   KEEP=1 tests/sanitize.sh          # keep the scratch copy (path is printed)
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PY=${PYTHON:-$(python3 -c 'import sys; print(sys.executable)')}
START=$(date +%s)

LIBASAN=$(gcc -print-file-name=libasan.so)
if [ ! -e "$LIBASAN" ]; then
    echo "sanitize.sh: gcc's libasan.so not found (is gcc installed?)" >&2
    exit 2
fi

if ! "$PY" -c "import Cython, setuptools" 2>/dev/null; then
    echo "sanitize.sh: needs Cython and setuptools in $PY (pip install 'Cython>=3.0.8' 'setuptools>=77.0.3')" >&2
    exit 2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/micrograd-sanitize.XXXXXX")
[ -n "${KEEP:-}" ] || trap 'rm -rf "$WORK"' EXIT
echo "sanitize.sh: scratch copy in $WORK"

# the working tree as it is (tracked + untracked, minus what .gitignore drops: .so, .c, build/)
# (a tracked file deleted in the tree is only a warning)
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - 2>/dev/null | tar -xf - -C "$WORK"

cd "$WORK"
if ! MICROGRAD_SANITIZE=1 "$PY" setup.py -q build_ext --inplace >build.log 2>&1; then
    cat build.log
    echo "sanitize.sh: the sanitized build failed" >&2
    exit 2
fi

# pytest plugin (only in the scratch copy): the pure-Python engine's cases never touch the
# extension, so skip them; and no Hypothesis deadlines under the sanitizers' slowdown
cat >_sanitize_plugin.py <<'EOF'
import hypothesis

hypothesis.settings.register_profile("sanitize", deadline=None)
hypothesis.settings.load_profile("sanitize")


def pytest_collection_modifyitems(config, items):
    keep, drop = [], []
    for item in items:
        cs = getattr(item, "callspec", None)
        (drop if cs is not None and cs.params.get("engine") == "python" else keep).append(item)
    items[:] = keep
    config.hook.pytest_deselected(items=drop)
EOF

if [ $# -eq 0 ]; then
    set -- tests/test_engine_*.py tests/test_nn*.py tests/test_optim.py tests/test_losses.py tests/test_functional.py \
        tests/test_hardening_*.py
fi

export LD_PRELOAD="$LIBASAN"
# leaks: CPython's interned objects and arenas would drown the report, and valgrind.sh covers
# the extension's leaks; everything else aborts on the first report
# reports go to files, so a child process's report (tests spawn some) is counted too
mkdir -p "$WORK/reports"
export ASAN_OPTIONS="log_path=$WORK/reports/asan:detect_leaks=0:abort_on_error=1:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
export UBSAN_OPTIONS="log_path=$WORK/reports/ubsan:halt_on_error=1:abort_on_error=1:print_stacktrace=1"
# every Python object through malloc, so ASan also sees use-after-free of Value handles
export PYTHONMALLOC=malloc
export PYTHONPATH="$WORK"
export MICROGRAD_SANITIZED=1  # tests may shrink their workloads under the slowdown
# the re-entrancy fuzzer (tests/test_hardening_fuzz.py, in the default set): programs of a seed of
# its own, so with the normal suite's 4000 a CI run fuzzes 10^4
export MICROGRAD_FUZZ_EXAMPLES=${MICROGRAD_FUZZ_EXAMPLES:-6000}
export MICROGRAD_FUZZ_SEED=${MICROGRAD_FUZZ_SEED:-20261204}

# the sanitized build must be the one imported, never the normal one in $REPO
"$PY" -c "import micrograd._engine as e, sys; f = e.__file__; print('engine:', f); sys.exit(0 if f.startswith('$WORK/') else 1)" \
    || { echo "sanitize.sh: the sanitized engine is not the one imported" >&2; exit 2; }

"$PY" -m pytest -q -p _sanitize_plugin -p no:cacheprovider "$@" 2>&1 | tee pytest.log
RC=${PIPESTATUS[0]}

REPORTS=$(cat reports/* 2>/dev/null | grep -cE "ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer")
echo "sanitize.sh: pytest exit $RC, sanitizer reports: $REPORTS, $(( $(date +%s) - START )) s"
if [ "$REPORTS" != 0 ]; then
    head -c 20000 reports/*
    exit 1
fi
exit "$RC"
