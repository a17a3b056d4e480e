#!/usr/bin/env bash
# valgrind memcheck over a graph + training workload on the normal (installed, -O3) build.
# Fails on any invalid read/write, uninitialised use, bad free, or definitely-lost block whose
# allocation stack passes through the extension. CPython's own leaks at exit are listed, not
# counted: with PYTHONMALLOC=malloc every allocation is visible, so those are filtered by stack.
#
#   tests/valgrind.sh            # STEPS=300 training steps by default
set -uo pipefail
cd "$(dirname "$0")/.."
# `python` may be a pyenv shim (a shell script): valgrind must run the real interpreter
PY=${PYTHON:-$(python3 -c 'import sys; print(sys.executable)')}
STEPS=${STEPS:-300}
OUT=$(mktemp -d "${TMPDIR:-/tmp}/micrograd-valgrind.XXXXXX")
START=$(date +%s)

command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind is not installed" >&2; exit 2; }
# the in-place build of this checkout (pip install -e . or setup.py build_ext --inplace)
export PYTHONPATH="$PWD"
"$PY" -c "import micrograd._engine as e, sys; print('engine:', e.__file__); sys.exit(e.__file__.startswith('$PWD/') == 0)" \
    || { echo "valgrind.sh: build the engine in this checkout first (pip install -e .)" >&2; exit 2; }

cat >"$OUT/workload.py" <<'EOF'
"""Every op, backward twice, custom ops, _prev, no_grad, errors, and an MLP trained with SGD and Adam."""
import gc
import math
import sys
import time

from micrograd import _engine as E
from micrograd import losses, optim
from micrograd.datasets import make_moons
from micrograd.nn import MLP

V = E.Value
steps = int(sys.argv[1])
base = E._live_nodes()

# scalar graph with every op, backward twice (grads accumulate), _prev and _backward views
a, b = V(1.5, label="a"), V(-0.75)
c = a * b + a ** 2 - b / a + (a - 3) * 2.0 + 1 / b - (-a) + 2 ** b
d = c.relu() + c.tanh() + (a * 0.1).exp() + a.log() + c.sigmoid() + b ** V(2.0)
d.backward()
d.backward()
g1 = (a.grad, b.grad)
seen = set()
stack = [d]
while stack:  # walk the graph through _prev (materialises constants)
    v = stack.pop()
    if id(v) in seen:
        continue
    seen.add(id(v))
    _ = (v._op, v.data, v.grad, repr(v), v._backward)
    stack.extend(v._prev)
d._backward()

# a user-defined op closing over its own output (a cycle through the C side)
def custom(x):
    out = V(math.sin(x.data), (x,), "sin")
    def _backward():
        x.grad += math.cos(x.data) * out.grad
    out._backward = _backward
    return out
x = V(0.3)
y = custom(custom(x) * 3.0)
y.backward()

# errors leave the arena intact
for bad in (lambda: V(0.0) ** -1, lambda: V(1000.0).exp(), lambda: V(-1.0).log(),
            lambda: V(-8.0) ** (1 / 3), lambda: V("x"), lambda: V(1) + "s", lambda: V(1) / 0,
            lambda: E._layer(([V(1.0)],), (V(0.0),), ["x"], "relu")):
    try:
        bad()
    except (ZeroDivisionError, OverflowError, ValueError, TypeError):
        pass

# allocation failure mid-layer
E._set_node_limit(E._live_nodes() + 3)
try:
    E._layer(tuple([V(0.1)] * 2 for _ in range(4)), tuple(V(0.0) for _ in range(4)), [1.0, 2.0], "tanh")
except MemoryError:
    pass
E._set_node_limit(None)

# a graph of a dozen slabs dropped: full collections give their pages back to the OS, and
# new nodes are made there afterwards
keep = V(2.0)
kept = keep * keep
big = keep
for _ in range(50_000):
    big = big * 1.0 + 0.5
del big
gc.collect()
time.sleep(1.1)
gc.collect()  # all free and unused for a second: their pages go back
assert E._arena_stats()["slabs_given_back"] > 0, E._arena_stats()
big = keep
for _ in range(50_000):
    big = big * 1.0 + 0.5
big.backward()
kept.backward()
del big, kept, keep

with E.no_grad():
    z = (a * b).tanh() + 1
assert z._prev == set()

# training
X, Y = make_moons(16, noise=0.1, seed=0)
for opt_cls, kw in ((optim.SGD, {"lr": 0.05, "momentum": 0.9}), (optim.Adam, {"lr": 0.01})):
    model = MLP(2, [8, 8, 1])
    opt = opt_cls(model.parameters(), **kw)
    for step in range(steps // 2):
        scores = [model(xi) for xi in X]
        loss = losses.hinge(scores, Y) + 1e-4 * losses.l2(model.parameters())
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(opt_cls.__name__, "final loss", loss.data)

del a, b, c, d, x, y, z, v, stack, seen, model, opt, scores, loss, bad
for _ in range(3):  # custom ops: each collection frees one layer of pinned handles
    gc.collect()
print("live nodes", E._live_nodes(), "baseline", base, "grads", g1)
assert E._live_nodes() == base, (E._live_nodes(), base)
print("workload ok")
EOF

# PYTHONMALLOC=malloc: no pymalloc arenas, so valgrind sees every object
PYTHONMALLOC=malloc valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite \
    --errors-for-leak-kinds=definite --track-origins=yes --num-callers=40 \
    --xml=yes --xml-file="$OUT/memcheck.xml" --log-file="$OUT/memcheck.log" \
    "$PY" "$OUT/workload.py" "$STEPS" 2>&1 | tail -n 5
RC=${PIPESTATUS[0]}

"$PY" - "$OUT/memcheck.xml" "$RC" "$(( $(date +%s) - START ))" <<'EOF'
"""Summarise memcheck's XML: errors by kind, and which involve the extension."""
import collections
import sys
import xml.etree.ElementTree as ET

path, rc, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3]
root = ET.parse(path).getroot()
kinds = collections.Counter()
ours = collections.Counter()
examples = []
noise = collections.Counter()
for err in root.iter("error"):
    kind = err.findtext("kind")
    objs = [f.findtext("obj") or "" for f in err.iter("frame")]
    fns = [f.findtext("fn") or "" for f in err.iter("frame")]
    in_ext = any("_engine" in o for o in objs)
    kinds[kind] += 1
    # an invalid access or free counts wherever it is reported (a freed Value is read by CPython);
    # uninitialised use and leaks count when the extension is on the stack; the rest is
    # CPython's own (e.g. 3.11's int.from_bytes at startup, interned objects at exit)
    if in_ext or kind.startswith(("Invalid", "Mismatched", "Overlap", "SyscallParam")):
        ours[kind] += 1
        examples.append((kind, fns[:12]))
    else:
        noise[kind] += 1
print(f"valgrind.sh: workload exit {rc}, {secs} s")
print(f"valgrind.sh: all memcheck errors by kind: {dict(kinds) or 'none'}")
print(f"valgrind.sh: CPython's own, filtered (no extension frame): {dict(noise) or 'none'}")
lost = sum(n for k, n in kinds.items() if k == "Leak_DefinitelyLost")
print(f"valgrind.sh: definitely-lost records in all: {lost}")
print(f"valgrind.sh: findings counted: {sum(ours.values())} {dict(ours) or ''}")
for kind, fns in examples[:20]:
    print("  ", kind, " <- ".join(fns))
sys.exit(1 if ours or rc != 0 else 0)
EOF
STATUS=$?
echo "valgrind.sh: memcheck's XML in $OUT/memcheck.xml"
exit $STATUS
