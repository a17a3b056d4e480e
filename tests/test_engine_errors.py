"""Bad inputs raise Python float's exceptions on both engines, and leave the engine intact."""
from __future__ import annotations

import decimal
import fractions
import gc
import math

import numpy as np
import pytest

from conftest import compiled_only, load_engine

BIG_INT = 10**400  # too large for a double

# each program takes an engine's Value class and does one bad thing
ERRORS = {
    # non-numbers: TypeError, and the message names the offending type
    "str": (lambda V: V("1.0"), TypeError, "str"),
    "None": (lambda V: V(None), TypeError, "NoneType"),
    "list": (lambda V: V([1.0]), TypeError, "list"),
    "complex": (lambda V: V(1j), TypeError, "complex"),
    "bytes": (lambda V: V(b"1"), TypeError, "bytes"),
    "set data str": (lambda V: setattr(V(1.0), "data", "2"), TypeError, "str"),
    "set data None": (lambda V: setattr(V(1.0), "data", None), TypeError, "NoneType"),
    "set grad complex": (lambda V: setattr(V(1.0), "grad", 2j), TypeError, "complex"),
    "add str": (lambda V: V(1.0) + "a", TypeError, "str"),
    "mul None": (lambda V: V(1.0) * None, TypeError, "NoneType"),
    "sub list": (lambda V: V(1.0) - [1], TypeError, "list"),
    "div complex": (lambda V: V(1.0) / 1j, TypeError, "complex"),
    "pow str": (lambda V: V(1.0) ** "2", TypeError, "str"),
    "radd None": (lambda V: None + V(1.0), TypeError, "NoneType"),
    "rmul complex": (lambda V: 1j * V(1.0), TypeError, "complex"),
    "rsub str": (lambda V: "a" - V(1.0), TypeError, "str"),
    "rdiv None": (lambda V: None / V(1.0), TypeError, "NoneType"),
    "rpow complex": (lambda V: 2j ** V(1.0), TypeError, "complex"),
    "label int": (lambda V: V(1.0, label=3), TypeError, "int"),
    "set label None": (lambda V: setattr(V(1.0), "label", None), TypeError, "NoneType"),
    "child not a Value": (lambda V: V(1.0, _children=(1.0,)), TypeError, None),
    # x / 0 and 0 ** negative: ZeroDivisionError
    "div int 0": (lambda V: V(1) / 0, ZeroDivisionError, None),
    "div float 0": (lambda V: V(1.0) / 0.0, ZeroDivisionError, None),
    "div Value 0": (lambda V: V(1.0) / V(0.0), ZeroDivisionError, None),
    "rdiv by 0": (lambda V: 1.0 / V(0.0), ZeroDivisionError, None),
    "0 ** -1": (lambda V: V(0) ** -1, ZeroDivisionError, None),
    "-0.0 ** -1": (lambda V: V(-0.0) ** -1, ZeroDivisionError, None),
    "0 ** -0.5": (lambda V: V(0.0) ** -0.5, ZeroDivisionError, None),
    "0 ** Value(-1)": (lambda V: V(0.0) ** V(-1.0), ZeroDivisionError, None),
    "0 rpow -1": (lambda V: 0 ** V(-1.0), ZeroDivisionError, None),
    # negative base, fractional exponent: ValueError (Python floats would go complex)
    "-8 ** 1/3": (lambda V: V(-8) ** (1 / 3), ValueError, None),
    "-8 ** Value(1/3)": (lambda V: V(-8.0) ** V(1 / 3), ValueError, None),
    "-8 rpow 1/3": (lambda V: (-8) ** V(1 / 3), ValueError, None),
    # log of a non-positive number: ValueError
    "log 0": (lambda V: V(0).log(), ValueError, None),
    "log -0.0": (lambda V: V(-0.0).log(), ValueError, None),
    "log -1": (lambda V: V(-1).log(), ValueError, None),
    "log -inf": (lambda V: V(-math.inf).log(), ValueError, None),
    # overflow: OverflowError
    "exp 1000": (lambda V: V(1000).exp(), OverflowError, None),
    "exp 710": (lambda V: V(710.0).exp(), OverflowError, None),
    "10 ** 400": (lambda V: V(10) ** 400, OverflowError, None),
    "Value(10) ** Value(400)": (lambda V: V(10.0) ** V(400.0), OverflowError, None),
    "10 rpow Value(400)": (lambda V: 10 ** V(400.0), OverflowError, None),
    "-10 ** 401": (lambda V: V(-10.0) ** 401, OverflowError, None),
    "huge int data": (lambda V: V(BIG_INT), OverflowError, None),
    "huge int operand": (lambda V: V(1.0) + BIG_INT, OverflowError, None),
}

# Python floats do NOT raise here: neither may the engines (inf and nan flow through)
NO_ERRORS = {
    "mul overflow": (lambda V: V(1e308) * 10, math.inf),
    "add overflow": (lambda V: V(1e308) + 1e308, math.inf),
    "inf - inf": (lambda V: V(math.inf) - math.inf, math.nan),
    "inf * 0": (lambda V: V(math.inf) * 0, math.nan),
    "exp -1000": (lambda V: V(-1000.0).exp(), 0.0),
    "exp inf": (lambda V: V(math.inf).exp(), math.inf),
    "exp 709": (lambda V: V(709.0).exp(), math.exp(709.0)),
    "log inf": (lambda V: V(math.inf).log(), math.inf),
    "log nan": (lambda V: V(math.nan).log(), math.nan),
    "tanh big": (lambda V: V(1e6).tanh(), 1.0),
    "sigmoid -1000": (lambda V: V(-1000.0).sigmoid(), 0.0),
    "sigmoid 1000": (lambda V: V(1000.0).sigmoid(), 1.0),
    "-8 ** 3": (lambda V: V(-8.0) ** 3, -512.0),
    "-8 ** 2.0": (lambda V: V(-8.0) ** 2.0, 64.0),
    "-inf ** 0.5": (lambda V: V(-math.inf) ** 0.5, math.inf),
    "0 ** 0": (lambda V: V(0.0) ** 0, 1.0),
    "nan ** 0": (lambda V: V(math.nan) ** 0, 1.0),
    "inf ** -1": (lambda V: V(math.inf) ** -1, 0.0),
    "0 ** 2": (lambda V: V(0.0) ** V(2.0), 0.0),
    "Fraction": (lambda V: V(fractions.Fraction(1, 4)) * 2, 0.5),
}


def same_float(x: float, y: float) -> bool:
    return (math.isnan(x) and math.isnan(y)) or x == y


def baseline(engine) -> int:
    if engine._live_nodes() < 0:  # the pure engine does not count nodes
        return -1
    for _ in range(3):
        gc.collect()
    return engine._live_nodes()


def check_engine_intact(engine, base: int) -> None:
    # a correct graph after the error, and (compiled) nothing leaked by the failed op
    V = engine.Value
    a, b = V(-4.0), V(2.0)
    c = a * b + b**3
    d = (c - a).relu() + (b / a).tanh() * 10.0
    d.backward()
    assert d.data == (-8.0 + 8.0 + 4.0) + math.tanh(-0.5) * 10.0
    assert abs(b.grad - (1 * a.data + 3 * b.data**2 + 10.0 * (1 - math.tanh(-0.5) ** 2) / a.data)) < 1e-12
    del a, b, c, d
    assert baseline(engine) == base


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_error(engine, name):
    program, exc, type_name = ERRORS[name]
    base = baseline(engine)
    with pytest.raises(exc) as info:
        program(engine.Value)
    if type_name is not None:
        assert type_name in str(info.value), str(info.value)
    check_engine_intact(engine, base)


@pytest.mark.parametrize("name", sorted(NO_ERRORS))
def test_no_error(engine, name):
    program, want = NO_ERRORS[name]
    out = program(engine.Value)
    assert same_float(out.data, want), out.data
    out.backward()  # backward never raises on math: inf and nan just flow
    assert out.grad == 1.0


def run_for_exception(V, program):
    try:
        program(V)
    except Exception as e:  # noqa: BLE001 - the type is the observation
        return type(e)
    return None


ODD_INPUTS = {
    "Decimal": decimal.Decimal("1.5"),
    "0-d array": np.array(2.0),
    "1-d array": np.array([2.0]),
    "numpy bool": np.bool_(True),
    "numpy complex": np.complex128(1.0),
    "numpy float16": np.float16(0.5),
    "nan": math.nan,
    "object with __float__": type("F", (), {"__float__": lambda self: 1.0})(),
    "object with __index__": type("I", (), {"__index__": lambda self: 3})(),
    "Value class": None,  # filled with the engine's own class below
    "big int": BIG_INT,
    "str number": "3",
}

ODD_PROGRAMS = {
    "construct": lambda V, x: V(x),
    "add": lambda V, x: V(1.5) + x,
    "radd": lambda V, x: x + V(1.5),
    "mul": lambda V, x: V(1.5) * x,
    "rmul": lambda V, x: x * V(1.5),
    "rsub": lambda V, x: x - V(1.5),
    "div": lambda V, x: V(1.5) / x,
    "rdiv": lambda V, x: x / V(1.5),
    "pow": lambda V, x: V(1.5) ** x,
    "rpow": lambda V, x: x ** V(1.5),
    "set data": lambda V, x: setattr(V(1.5), "data", x),
    "set grad": lambda V, x: setattr(V(1.5), "grad", x),
}


@pytest.mark.parametrize("prog", sorted(ODD_PROGRAMS))
@pytest.mark.parametrize("what", sorted(ODD_INPUTS))
def test_same_exception_type_on_both_engines(engines, what, prog):
    outcomes = []
    for mod in engines:
        x = ODD_INPUTS[what] if what != "Value class" else mod.Value
        try:
            r = ODD_PROGRAMS[prog](mod.Value, x)
        except Exception as e:  # noqa: BLE001 - the type is the observation
            outcomes.append(type(e).__name__)
        else:
            outcomes.append(("ok", type(r).__name__ if not isinstance(r, mod.Value) else "Value",
                             repr(r.data) if isinstance(r, mod.Value) else None))
    assert outcomes[0] == outcomes[1], f"compiled: {outcomes[0]}, python: {outcomes[1]}"


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_error_same_type_on_both_engines(engines, name):
    program = ERRORS[name][0]
    types = [run_for_exception(mod.Value, program) for mod in engines]
    assert types[0] is types[1] is ERRORS[name][1]


def test_failed_ops_in_a_loop_leak_nothing(engine):
    # a failed op must not leave a half-built node behind: repeat each failure many times
    base = baseline(engine)
    V = engine.Value
    a, z, n = V(3.0), V(0.0), V(-2.0)
    h = a * 2.0 + 1.0
    for _ in range(500):
        for bad in (lambda: h / 0, lambda: h / z, lambda: z ** -1, lambda: n ** 0.5,
                    lambda: n ** V(0.5), lambda: (h * 300).exp(), lambda: n.log(),
                    lambda: z.log(), lambda: h ** 1000, lambda: h + "x", lambda: V(None),
                    lambda: h * BIG_INT):
            try:
                bad()
            except (ZeroDivisionError, ValueError, OverflowError, TypeError):
                pass
            else:
                raise AssertionError("no exception")
    # the graph the failed ops hung off is unchanged and backpropagates right
    assert len(h._prev) == 2 and h.data == 7.0
    h.backward()
    assert a.grad == 2.0
    assert (z.grad, n.grad) == (0.0, 0.0)
    del a, z, n, h
    assert baseline(engine) == base
    check_engine_intact(engine, base)


def test_error_inside_user_backward(engine):
    # an exception from a user's _backward propagates; the engine still works afterwards
    base = baseline(engine)
    V = engine.Value
    a = V(2.0)
    out = V(4.0, _children=(a,), _op="boom")

    def _backward():
        raise RuntimeError("boom")
    out._backward = _backward
    y = out * 3.0
    with pytest.raises(RuntimeError, match="boom"):
        y.backward()
    assert y.grad == 1.0 and out.grad == 3.0 and a.grad == 0.0
    # backward again: the same failure, and grads above it accumulate as usual
    with pytest.raises(RuntimeError):
        y.backward()
    assert out.grad == 6.0
    out._backward = lambda: None
    y.backward()
    assert out.grad == 9.0
    del a, out, y, _backward
    check_engine_intact(engine, base)


def test_bad_backward_assignment_same_on_both(engines):
    outcomes = []
    for mod in engines:
        v = mod.Value(1.0, _children=(mod.Value(2.0),))
        outcomes.append(run_for_exception(mod.Value, lambda V: setattr(v, "_backward", 5)))
    assert outcomes[0] is outcomes[1]


@compiled_only
def test_compiled_module_is_really_compiled():
    # the fixture imports micrograd._engine directly; make sure that is not the Python twin
    mod = load_engine("compiled")
    assert mod.IMPLEMENTATION == "compiled"
    assert not mod.__file__.endswith(".py")
    assert mod._live_nodes() >= 0


@pytest.mark.parametrize("make,err,text", [
    (lambda V: V(1.0) / 0, ZeroDivisionError, "float division by zero"),
    (lambda V: V(1.0) / V(0.0), ZeroDivisionError, "float division by zero"),
    (lambda V: 2 / V(-0.0), ZeroDivisionError, "float division by zero"),
    (lambda V: V(0.0) ** -1, ZeroDivisionError, "0.0 cannot be raised to a negative power"),
    (lambda V: V(-1.0).log(), ValueError, "log(-1.0) is outside the domain of log (math domain error)"),
    (lambda V: V(0.0).log(), ValueError, "log(0.0) is outside the domain of log (math domain error)"),
    (lambda V: V(-4.0).sqrt(), ValueError, "sqrt(-4.0) is outside the domain of sqrt (math domain error)"),
    (lambda V: V(1000.0).exp(), OverflowError, "exp(1000.0) is too large for a float (math range error)"),
])
def test_math_errors_say_what_went_wrong(engine, make, err, text):
    # the same words on both engines
    with pytest.raises(err) as info:
        make(engine.Value)
    assert str(info.value) == text


def test_division_rounds_as_python_pow(engines):
    # a / b is a * b**-1 as upstream writes it, b**-1 by the library's pow (as Python's float **)
    got = []
    for E in engines:
        a = E.Value(0.907927900230046)
        one = a / a  # 0x1.fffffffffffffp-1
        got.append(((a / one).data.hex(), (2.0 / one).data.hex(), (a / one.data).data.hex()))
    assert got[0] == got[1]
    assert got[0][0] == (0.907927900230046 * (float.fromhex("0x1.fffffffffffffp-1") ** -1)).hex()


def test_value_has_a_signature_for_help_and_inspect(engine):
    # help(Value) and IDEs read it; the compiled type once had none (ValueError from inspect)
    import inspect
    sig = inspect.signature(engine.Value)
    assert [(p.name, p.kind.name, p.default) for p in sig.parameters.values()] == [
        ("data", "POSITIONAL_OR_KEYWORD", inspect.Parameter.empty),
        ("_children", "POSITIONAL_OR_KEYWORD", ()), ("_op", "POSITIONAL_OR_KEYWORD", ""),
        ("label", "POSITIONAL_OR_KEYWORD", ""), ("children", "KEYWORD_ONLY", None),
        ("local_grads", "KEYWORD_ONLY", None)]
    assert "__pyx_vtable__" not in engine.Value.__doc__
    # help() lists the class's dict and __init__'s own signature (once __pyx_vtable__ = <capsule
    # object NULL> and __init__(self, /, *args, **kwargs))
    import pydoc
    page = pydoc.render_doc(engine.Value, renderer=pydoc.plaintext)
    assert "__pyx_vtable__" not in page and "__init__(self, /, *args, **kwargs)" not in page, page
    init = [p.name for p in inspect.signature(engine.Value.__init__).parameters.values()]
    assert init == ["self", "data", "_children", "_op", "label", "children", "local_grads"]


@pytest.mark.parametrize("op", ["+", "*"])
def test_reflected_ops_name_the_operands_in_order(engine, op):
    with pytest.raises(TypeError) as exc:
        eval(f"'a' {op} v", {"v": engine.Value(1.0)})
    msg = str(exc.value)
    if op == "+":  # str's own error, as for 'a' + 1.5: the str first, the Value second
        assert msg.startswith('can only concatenate str (not "') and "Value" in msg, msg
    else:
        assert msg.startswith("can't multiply sequence by non-int of type '") and "Value" in msg, msg


def test_a_layer_names_a_bad_input_alike_on_both_engines():
    # nn runs on the engine micrograd picked: CI's two runs cover both
    from micrograd.nn import MLP
    with pytest.raises(TypeError, match=r"^inputs must be Values or real numbers, not 'str'$"):
        MLP(2, [3, 1])("ab")
