"""Internal types made with __new__, and a _backward that wraps the node's own rule: errors, never crashes."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from conftest import compiled_only


def run_child(code: str) -> subprocess.CompletedProcess:
    # a crash must fail the test, not the whole run
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120)


@compiled_only
def test_rows_made_with_new_is_an_empty_layer():
    r = run_child("""
        import micrograd._engine as E
        R = type(E._rows([], []))
        print(E._layer_rows(R.__new__(R), [], "linear"))
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


@compiled_only
def test_local_backward_made_with_new_raises():
    r = run_child("""
        import micrograd._engine as E
        a = E.Value(2.0) * 3.0
        L = type(a._backward)
        try:
            L.__new__(L)()
        except TypeError as e:
            print("TypeError", e)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("TypeError")


WRAPS = [
    ("a * b", (3.0, 2.0)),
    ("a + b", (1.0, 1.0)),
    ("a ** 3", (12.0, 0.0)),
    ("a * 4.0", (4.0, 0.0)),
    ("a + 4.0", (1.0, 0.0)),
    ("a ** b", (12.0, 8.0 * 0.6931471805599453)),
    ("(a * b).tanh()", None),
    ("E._dot(b, [a], [b])", (3.0, 3.0)),
]


@pytest.mark.parametrize("expr,grads", WRAPS)
def test_backward_that_wraps_the_nodes_own_rule(engine, expr, grads):
    # old = v._backward; v._backward = lambda: old(): the saved rule is still the built-in one
    a, b = engine.Value(2.0), engine.Value(3.0)
    v = eval(expr, {"a": a, "b": b, "E": engine})
    old = v._backward
    v._backward = lambda: old()
    (v * 1.0).backward()
    a2, b2 = engine.Value(2.0), engine.Value(3.0)  # the same graph, its rule untouched
    (eval(expr, {"a": a2, "b": b2, "E": engine}) * 1.0).backward()
    assert (a.grad, b.grad) == (a2.grad, b2.grad)
    if grads is not None:
        assert a.grad == pytest.approx(grads[0]) and b.grad == pytest.approx(grads[1])


@compiled_only
def test_wrapped_rule_with_a_high_recursion_limit_does_not_overflow_the_stack():
    r = run_child("""
        import sys
        sys.setrecursionlimit(10**6)
        from micrograd._engine import Value
        a, b = Value(2.0), Value(3.0)
        v = a * b
        old = v._backward
        v._backward = lambda: old()
        (v * 1.0).backward()
        print(a.grad, b.grad)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["3.0", "2.0"]


SHRINK = """
    import numbers
    import micrograd._engine as E
    from micrograd import nn
    xs = []
    class R:
        def __float__(self):
            xs.clear()
            return 1.0
    numbers.Real.register(R)
    xs.extend([R()] + [2.0] * 1000)
    ws = [[E.Value(0.5) for _ in range(1001)]]
    {call}
    print("ok")
"""


@compiled_only
@pytest.mark.parametrize("call", [
    "print(E._layer(ws, [E.Value(0.0)], xs, 'linear')[0].data)",
    "with E.no_grad(): print(E._layer(ws, [E.Value(0.0)], xs, 'linear')[0].data)",
])
def test_an_input_that_empties_the_list_during_a_layer_call(call):
    r = run_child(SHRINK.format(call=call))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1000.5", "ok"]  # the inputs as they were when the call began


def test_a_no_grad_object_entered_again(engine):
    ng = engine.no_grad()
    with ng:
        with ng:
            assert not engine.is_grad_enabled()
        assert not engine.is_grad_enabled()
    assert engine.is_grad_enabled()
    with ng:  # and once more, after
        assert not engine.is_grad_enabled()
    assert engine.is_grad_enabled()


def test_no_grad_exit_without_enter_changes_nothing(engine):
    engine.no_grad().__exit__(None, None, None)
    assert engine.is_grad_enabled()
    assert (engine.Value(1.0) * 2.0)._prev


class Ninety(float):
    def __float__(self):
        return 99.0


class NinetyInt(int):
    def __float__(self):
        return 99.0


@pytest.mark.parametrize("T", [Ninety, NinetyInt])
def test_a_number_subclass_float_is_honoured(engine, T):
    # one rule on both engines: float, int and bool as they are, any other number through float()
    x = T(1)
    assert engine.Value(x).data == 99.0
    assert (engine.Value(1.0) * x).data == 99.0
    assert (x + engine.Value(1.0)).data == 100.0


def test_pow_text_of_an_int_past_2_53(engine):
    assert (engine.Value(1.0) ** (2**53 + 1))._op == "**9007199254740993"
    assert (engine.Value(1.0) ** 2)._op == "**2"
    assert (engine.Value(1.0) ** -3)._op == "**-3"


@compiled_only
@pytest.mark.parametrize("graph", ["dot", "plain"])
def test_prev_while_a_gc_callback_reinitialises_the_value(graph):
    # making _prev's handles starts collections; each re-initialises the Value being read
    r = run_child(f"""
        import gc
        import micrograd._engine as E
        V = E.Value
        xs = [V(float(i)) for i in range(40)]
        ws = [V(0.5) for _ in range(40)]
        def make():
            return E._dot(V(1.0), ws, xs) if {graph!r} == "dot" else xs[0] * xs[1] + xs[2]
        v = make()
        k = make()  # the same graph, untouched
        n = [0]
        def hook(phase, info):
            if phase == "start" and n[0] < 50:
                n[0] += 1
                v.__init__(-1.0)
        gc.callbacks.append(hook)
        gc.set_threshold(1, 1, 1)
        for _ in range(20):
            kids = v._prev | set(v._children)
            for c in kids:
                assert c.data in {{x.data for x in xs}} | {{w.data for w in ws}} | {{1.0, -1.0, 0.0}} \\
                    or c._op, c
        gc.callbacks.remove(hook)
        gc.set_threshold(700, 10, 10)
        print(n[0] > 0, sorted(c.data for c in k._prev) == sorted(c.data for c in make()._prev))
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "True"]
