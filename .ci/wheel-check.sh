#!/usr/bin/env bash
# The release path, proved here: sdist -> wheel built from it in a clean venv -> the sdist's test
# suite run against the installed wheel; then the cibuildwheel config's build identifiers.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
unset MICROGRAD_NO_EXTENSIONS  # this checks the compiled wheel
WORK=$(mktemp -d "${TMPDIR:-/tmp}/wheel-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

fail() { echo "wheel-check: $*" >&2; exit 1; }
step() { echo "--- wheel-check: $*"; }

step "sdist (python -m build --sdist, in a venv of its own)"
"$PY" -m venv "$WORK/tools"
TOOLS="$WORK/tools/bin/python"
"$TOOLS" -m pip install --quiet --upgrade pip
"$TOOLS" -m pip install --quiet build "cibuildwheel>=3.2,<5"
"$TOOLS" -m build --sdist --outdir "$WORK/dist" "$ROOT" > "$WORK/sdist.log" 2>&1 \
    || { cat "$WORK/sdist.log"; fail "building the sdist failed"; }
SDIST=$(ls "$WORK"/dist/*.tar.gz)
NAME=$(basename "$SDIST" .tar.gz)
tar -tzf "$SDIST" | sed "s|^$NAME/||" > "$WORK/sdist.txt"
for f in pyproject.toml setup.py MANIFEST.in README.md src/_engine.pyx micrograd/__init__.py benchmarks/__main__.py \
         micrograd/py.typed micrograd/_engine.pyi micrograd/engine.pyi tests/conftest.py; do
    grep -qx "$f" "$WORK/sdist.txt" || fail "$f is missing from the sdist"
done
for f in $(git -C "$ROOT" ls-files 'src/*' 'tests/*' 'micrograd/*'); do
    grep -qx "$f" "$WORK/sdist.txt" || fail "$f (tracked by git) is missing from the sdist"
done
if grep -E '\.(c|so|pyd)$' "$WORK/sdist.txt"; then fail "the sdist holds generated files (above)"; fi
echo "$(basename "$SDIST"): $(wc -l < "$WORK/sdist.txt") entries"

step "wheel from the sdist, in a clean venv"
"$PY" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install --quiet --upgrade pip
"$VPY" -m pip wheel --quiet --no-deps --wheel-dir "$WORK/wheelhouse" "$SDIST"
WHEEL=$(ls "$WORK"/wheelhouse/*.whl)
"$VPY" -m zipfile -l "$WHEEL" | awk 'NR > 1 {print $1}' > "$WORK/wheel.txt"
for f in micrograd/py.typed micrograd/_engine.pyi micrograd/engine.pyi micrograd/viz.py; do
    grep -qx "$f" "$WORK/wheel.txt" || fail "$f is missing from the wheel"
done
grep -qE '^micrograd/_engine\..*(so|pyd)$' "$WORK/wheel.txt" || fail "the compiled engine is missing from the wheel"
if grep -E '^(tests|benchmarks|src)/' "$WORK/wheel.txt"; then fail "the wheel holds files that are not the package (above)"; fi
echo "$(basename "$WHEEL")"

step "install the wheel, run the sdist's tests against it (from a folder with no micrograd/)"
# mypy and graphviz: the typing and drawing tests then check what the wheel ships
"$VPY" -m pip install --quiet "$WHEEL[test,viz]" mypy
mkdir "$WORK/sdist" "$WORK/run"
tar -xzf "$SDIST" -C "$WORK/sdist"
# what cibuildwheel's test-sources copies (pyproject.toml)
for f in tests README.md pyproject.toml; do cp -R "$WORK/sdist/$NAME/$f" "$WORK/run/"; done
cd "$WORK/run"
"$VPY" - <<'EOF'
import pathlib, sys
import micrograd, micrograd._engine
where = pathlib.Path(micrograd.__file__).resolve()
assert pathlib.Path(sys.prefix).resolve() in where.parents, f"micrograd imported from {where}, not the wheel"
assert micrograd.engine.IMPLEMENTATION == "compiled", micrograd.engine.IMPLEMENTATION
print("micrograd", micrograd.__version__, "from", where.parent, "engine:", micrograd.engine.IMPLEMENTATION)
EOF
# the benchmark suite times an in-place build from the repository root, not a wheel
"$VPY" -m pytest -q -W error::RuntimeWarning -p no:cacheprovider --ignore=tests/test_benchmarks.py

step "cibuildwheel: the build identifiers of the sdist's config"
cd "$WORK/sdist/$NAME"
versions="cp39 cp310 cp311 cp312 cp313 cp314"
for platform in linux macos windows; do
    case $platform in
        linux) tags="manylinux_x86_64 manylinux_aarch64 musllinux_x86_64 musllinux_aarch64" ;;
        macos) tags="macosx_x86_64 macosx_arm64" ;;
        windows) tags="win_amd64" ;;
    esac
    want=$(for v in $versions; do for t in $tags; do echo "$v-$t"; done; done | sort)
    got=$("$WORK/tools/bin/cibuildwheel" --print-build-identifiers --platform "$platform" | sort)
    [ "$got" = "$want" ] || { diff <(echo "$want") <(echo "$got") || true; fail "cibuildwheel builds other wheels than intended on $platform (above: - wanted, + got)"; }
    echo "$platform: $(echo "$got" | wc -l) wheels"
done
echo "wheel-check: ok"
