"""A Hypothesis state machine drives both engines in lockstep: build, drop handles, collect, backward, compare."""
from __future__ import annotations

import gc
import math
import sys

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from conftest import compiled_only, load_engine
from test_engine_hypothesis import binop, custom, fbits

pytestmark = compiled_only  # the pure engine is the reference the compiled one is checked against


@pytest.fixture(autouse=True, scope="module")
def quick_gc():
    # this machine calls gc.collect() hundreds of times: move everything that exists before
    # it starts (modules, Hypothesis, other tests' objects) out of the collector's sight
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()

# Milder numbers than the bit-for-bit test: this machine is about handles and memory, and
# the exotic corners (bool exponents, overflow inside complex powers) live over there.
values = st.one_of(st.floats(-3.0, 3.0, allow_nan=False),
                   st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.0, 1e300, math.inf, math.nan]))
nonzero = st.one_of(st.floats(0.1, 3.0), st.floats(-3.0, -0.1))
exponents = st.sampled_from([2, 3, -1, 0.5, 1.5, 0, 2.0])
index = st.integers(0, 1 << 16)
BINOPS = ["+", "-", "*", "/", "**"]
UNOPS = ["relu", "tanh", "exp", "log", "sigmoid"]


def observe(v) -> tuple:
    return fbits(v.data), fbits(v.grad), v._op, len(v._prev)


class EnginesInLockstep(RuleBasedStateMachine):
    """Every live pair (compiled handle, python handle) is the same Value built on each engine."""

    def __init__(self):
        super().__init__()
        self.C = load_engine("compiled")
        self.P = load_engine("python")
        self.pairs: list[tuple] = []
        for _ in range(1000):  # a clean baseline, whatever the last example left behind
            if gc.collect() == 0:
                break
        self.base = self.C._live_nodes()

    def settled_live_nodes(self, target: int = -1) -> int:
        # custom ops form reference cycles through the arena: stacked on each other through
        # intermediate results whose handles are gone, they free one level per collection
        # (README); collect until the count stops falling (stop early once it is where it should be)
        last = -1
        for _ in range(50):
            now = self.C._live_nodes()
            if now == target or now == last:
                break
            last = now
            gc.collect()
        return self.C._live_nodes()

    def pick(self, i: int) -> tuple:
        return self.pairs[i % len(self.pairs)]

    def both(self, f) -> None:
        """Run f on each engine; the same result or the same exception type; keep the result."""
        out, errors = [], []
        for mod in (self.C, self.P):
            try:
                out.append(f(mod))
            except (ArithmeticError, ValueError) as e:
                errors.append(type(e))
        assert len(errors) in (0, 2), f"only one engine raised: {errors}"
        if errors:
            assert errors[0] is errors[1]
            return
        self.pairs.append(tuple(out))

    def side(self, mod, pair):
        return pair[0] if mod is self.C else pair[1]

    @rule(x=values)
    def leaf(self, x):
        self.pairs.append((self.C.Value(x), self.P.Value(x)))

    @precondition(lambda self: self.pairs)
    @rule(op=st.sampled_from(BINOPS), i=index, j=index)
    def binary(self, op, i, j):
        a, b = self.pick(i), self.pick(j)
        self.both(lambda m: binop(op, self.side(m, a), self.side(m, b)))

    @precondition(lambda self: self.pairs)
    @rule(op=st.sampled_from(BINOPS), i=index, x=values, left=st.booleans())
    def with_number(self, op, i, x, left):
        a = self.pick(i)
        if left:
            self.both(lambda m: binop(op, x, self.side(m, a)))
        else:
            self.both(lambda m: binop(op, self.side(m, a), x))

    @precondition(lambda self: self.pairs)
    @rule(i=index, k=exponents)
    def power(self, i, k):
        a = self.pick(i)
        self.both(lambda m: self.side(m, a) ** k)

    @precondition(lambda self: self.pairs)
    @rule(name=st.sampled_from(UNOPS), i=index, quiet=st.booleans())
    def unary(self, name, i, quiet):
        a = self.pick(i)
        if quiet:  # under no_grad the result is a leaf
            def f(m):
                with m.no_grad():
                    return getattr(self.side(m, a), name)()
            self.both(f)
        else:
            self.both(lambda m: getattr(self.side(m, a), name)())

    @precondition(lambda self: self.pairs)
    @rule(i=index, j=index)
    def user_op(self, i, j):
        a, b = self.pick(i), self.pick(j)
        self.both(lambda m: custom(m.Value, self.side(m, a), self.side(m, b)))

    @precondition(lambda self: self.pairs)
    @rule(i=index)
    def pull_child(self, i):
        # take a handle on a child through _prev (the compiled engine may have to make one:
        # the child's own handle is gone, or it is a constant kept inside its parent);
        # children are paired by what they show
        c, p = self.pick(i)
        kids_c = {observe(k): k for k in c._prev}
        kids_p = {observe(k): k for k in p._prev}
        assert sorted(kids_c) == sorted(kids_p)
        unique = [key for key in kids_c
                  if sum(observe(k) == key for k in c._prev) == 1
                  and sum(observe(k) == key for k in p._prev) == 1]
        if unique:
            key = sorted(unique)[0]
            self.pairs.append((kids_c[key], kids_p[key]))

    @precondition(lambda self: self.pairs)
    @rule(i=index)
    def drop(self, i):
        del self.pairs[i % len(self.pairs)]

    @precondition(lambda self: len(self.pairs) > 1)
    @rule(data=st.data())
    def drop_some(self, data):
        order = data.draw(st.permutations(range(len(self.pairs))))
        n = data.draw(st.integers(1, len(self.pairs)))
        doomed = sorted(order[:n], reverse=True)
        for k in order[:n]:  # drop in a random order, collecting now and then
            self.pairs[k] = None
            if k % 3 == 0:
                gc.collect()
        for k in doomed:
            del self.pairs[k]

    @rule()
    def collect(self):
        gc.collect()

    @rule()
    def drop_all(self):
        self.pairs.clear()
        assert self.settled_live_nodes(self.base) == self.base

    @precondition(lambda self: self.pairs)
    @rule(i=index)
    def backward(self, i):
        c, p = self.pick(i)
        c.backward()
        p.backward()

    @precondition(lambda self: self.pairs)
    @rule(i=index, x=nonzero, grad=st.booleans())
    def mutate(self, i, x, grad):
        # nonzero: a log node's input set to 0 is a known divergence, tested elsewhere
        c, p = self.pick(i)
        name = "grad" if grad else "data"
        setattr(c, name, x)
        setattr(p, name, x)

    @invariant()
    def every_live_handle_reads_the_same(self):
        for c, p in self.pairs:
            assert observe(c) == observe(p)

    @invariant()
    def prev_handles_are_stable(self):
        for c, _ in self.pairs[-3:]:
            first = c._prev
            assert {id(k) for k in c._prev} == {id(k) for k in first}

    @invariant()
    def nodes_are_counted(self):
        live = self.C._live_nodes()
        assert live >= self.base + (1 if self.pairs else 0)

    def teardown(self):
        self.pairs.clear()
        if sys.exc_info()[0] is not None:
            return  # a step failed: its traceback still holds handles, and it is the report
        assert self.settled_live_nodes(self.base) == self.base


EnginesInLockstep.TestCase.settings = settings(max_examples=60, stateful_step_count=40,
                                               deadline=None)
TestEnginesInLockstep = EnginesInLockstep.TestCase
